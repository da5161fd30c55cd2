// Fuzz target for Sluice as the SCRAM-SHA-256 server (scram_server_fsm): what any client may send before it is
// authenticated. Also covers the stored-secret parser (parse_secret) and base64, which the exchange relies on.
//
// Input: NUL-separated parts, "client-first-message \0 client-final-message [\0 stored secret text]". SCRAM messages
// cannot contain a NUL (the fsm refuses them), so the separator costs no coverage. The server verifies against the
// RFC 7677 secret with the RFC's server nonce, so the RFC's own messages authenticate.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "auth/base64.hpp"
#include "auth/scram.hpp"
#include "auth/secret.hpp"
#include "fuzz_support.hpp"
#include "scram_vectors.hpp"

namespace {

using namespace sluice::auth;
namespace rfc = sluice::fuzz::rfc7677;

const secret& rfc_secret() {
    static const secret stored = [] {
        const auto salt = base64_decode(rfc::salt);
        return *parse_secret(make_scram_secret("pencil", *salt, rfc::iterations));
    }();
    return stored;
}

const sha256_digest& rfc_client_key() {
    static const sha256_digest key = [] {
        sha256_digest k{};
        const auto bytes = base64_decode(rfc::client_key);
        std::copy(bytes->begin(), bytes->end(), k.begin());
        return k;
    }();
    return key;
}

// Base64 is strict: an accepted encoding is the only one of its bytes, and encoding round-trips.
void check_base64(std::string_view text) {
    const auto decoded = base64_decode(text);
    if (decoded) {
        SLUICE_FUZZ_CHECK(base64_encode(*decoded) == text);
    }
    const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    const auto encoded = base64_encode(bytes);
    SLUICE_FUZZ_CHECK(encoded.size() == (text.size() + 2) / 3 * 4);
    const auto again = base64_decode(encoded);
    SLUICE_FUZZ_CHECK(again && std::equal(again->begin(), again->end(), bytes.begin(), bytes.end()));
}

// A parsed SCRAM secret is well-formed and survives formatting.
void check_secret(std::string_view text) {
    const auto parsed = parse_secret(text);
    if (!parsed) {
        SLUICE_FUZZ_CHECK(text.starts_with("SCRAM-SHA-256$"));
        return;
    }
    SLUICE_FUZZ_CHECK(parsed->stored == text);
    if (parsed->type == secret::kind::md5) {
        SLUICE_FUZZ_CHECK(is_md5_secret(text));
    }
    if (parsed->type != secret::kind::scram_sha_256) {
        return;
    }
    SLUICE_FUZZ_CHECK(!parsed->scram.salt.empty());
    SLUICE_FUZZ_CHECK(parsed->scram.iterations >= 1);
    const auto again = parse_secret(format_scram_secret(parsed->scram));
    SLUICE_FUZZ_CHECK(again && again->type == secret::kind::scram_sha_256 && again->scram == parsed->scram);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto parts = sluice::fuzz::split(sluice::fuzz::as_text(data, size), '\0');
    if (parts.size() > 2) {
        check_secret(parts[2]);
        check_base64(parts[2]);
    }

    scram_server_fsm server(rfc_secret(), "user", std::string(rfc::server_nonce_part));
    const auto first = server.on_client_first(parts[0]);
    if (!first.ok()) {
        SLUICE_FUZZ_CHECK(first.error == scram_error::malformed && first.message.empty() && !first.reason.empty());
        // Any error is final.
        const auto after = server.on_client_final(parts.size() > 1 ? parts[1] : std::string_view{});
        SLUICE_FUZZ_CHECK(after.error == scram_error::malformed);
        SLUICE_FUZZ_CHECK(!server.authenticated());
        return 0;
    }
    SLUICE_FUZZ_CHECK(first.message.starts_with("r="));
    SLUICE_FUZZ_CHECK(first.message.find(rfc::server_nonce_part) != std::string::npos);
    SLUICE_FUZZ_CHECK(first.message.ends_with(std::string(",s=") + std::string(rfc::salt) + ",i=4096"));
    if (parts.size() < 2) {
        return 0;
    }
    const auto final_result = server.on_client_final(parts[1]);
    if (!final_result.ok()) {
        SLUICE_FUZZ_CHECK(final_result.error == scram_error::malformed ||
                          final_result.error == scram_error::invalid_proof);
        SLUICE_FUZZ_CHECK(!server.authenticated() && final_result.message.empty());
        return 0;
    }
    // Only the owner of the password's keys gets here; the key recovered from the proof must be the RFC's.
    SLUICE_FUZZ_CHECK(server.authenticated());
    SLUICE_FUZZ_CHECK(final_result.message.starts_with("v=") && final_result.message.size() == 2 + 44);
    SLUICE_FUZZ_CHECK(server.client_key() == rfc_client_key());
    // A second final message is out of sequence.
    SLUICE_FUZZ_CHECK(server.on_client_final(parts[1]).error == scram_error::malformed);
    return 0;
}
