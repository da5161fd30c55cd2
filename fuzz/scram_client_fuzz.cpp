// Fuzz target for Sluice as the SCRAM-SHA-256 client (scram_client_fsm): what a PostgreSQL server, or anything
// answering on a backend's address, may send while Sluice logs in.
//
// Input: NUL-separated parts, "server-first-message \0 server-final-message". The client uses the RFC 7677 nonce
// and keys (no PBKDF2, so a fuzzed iteration count costs nothing), so the RFC's server messages authenticate.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/base64.hpp"
#include "auth/scram.hpp"
#include "fuzz_support.hpp"
#include "scram_vectors.hpp"

namespace {

using namespace sluice::auth;
namespace rfc = sluice::fuzz::rfc7677;

sha256_digest digest(std::string_view base64) {
    sha256_digest d{};
    const auto bytes = base64_decode(base64);
    std::copy(bytes->begin(), bytes->end(), d.begin());
    return d;
}

const scram_client_keys& rfc_keys() {
    static const scram_client_keys keys{digest(rfc::client_key), digest(rfc::server_key)};
    return keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto parts = sluice::fuzz::split(sluice::fuzz::as_text(data, size), '\0');

    scram_client_fsm client(rfc_keys(), std::string(rfc::client_nonce));
    SLUICE_FUZZ_CHECK(client.client_first_message() == "n,,n=," + ("r=" + std::string(rfc::client_nonce)));
    const auto final_message = client.on_server_first(parts[0]);
    if (!final_message.ok()) {
        SLUICE_FUZZ_CHECK(final_message.message.empty() && !final_message.reason.empty());
        SLUICE_FUZZ_CHECK(client.on_server_final(parts.size() > 1 ? parts[1] : std::string_view{}).error ==
                          scram_error::malformed);
        SLUICE_FUZZ_CHECK(!client.authenticated());
        return 0;
    }
    // c=biws (base64 of "n,,"), the server's nonce, which extends ours, and a 32-byte proof.
    const std::string prefix = "c=biws,r=" + std::string(rfc::client_nonce);
    SLUICE_FUZZ_CHECK(final_message.message.starts_with(prefix));
    SLUICE_FUZZ_CHECK(final_message.message.size() >= prefix.size() + 1 + 3 + 44);  // one more nonce character
    SLUICE_FUZZ_CHECK(final_message.message.ends_with("=") &&
                      final_message.message.substr(final_message.message.size() - 47, 3) == ",p=");
    SLUICE_FUZZ_CHECK(!client.derived_keys());  // built from keys: nothing derived, nothing to cache
    if (parts.size() < 2) {
        return 0;
    }
    const auto done = client.on_server_final(parts[1]);
    if (done.error == scram_error::server_error) {
        SLUICE_FUZZ_CHECK(parts[1].starts_with("e=") && parts[1].substr(2).starts_with(done.message));
    } else if (!done.ok()) {
        SLUICE_FUZZ_CHECK(done.error == scram_error::malformed || done.error == scram_error::server_signature_mismatch);
        SLUICE_FUZZ_CHECK(done.message.empty());
    } else {
        SLUICE_FUZZ_CHECK(done.message.empty());
        SLUICE_FUZZ_CHECK(parts[1].starts_with("v="));
    }
    SLUICE_FUZZ_CHECK(client.authenticated() == done.ok());
    SLUICE_FUZZ_CHECK(client.on_server_final(parts[1]).error == scram_error::malformed);
    return 0;
}
