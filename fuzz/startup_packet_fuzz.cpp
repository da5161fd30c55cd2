// Fuzz target for parse_startup_packet: the first packet of every client connection (StartupMessage, SSLRequest,
// GSSENCRequest, CancelRequest).
//
// Input: a startup-family packet. It is parsed as sent, and again with its Int32 length patched to the real size, so
// that mutations reach the parameter list instead of stopping at the length check. A parsed StartupMessage is
// written back with message_writer and must parse to the same parameters.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/startup.hpp"
#include "sluice/protocol/writer.hpp"

namespace {

using namespace sluice::protocol;

void check(std::span<const char> packet) {
    const auto result = parse_startup_packet(packet);
    const auto& p = result.packet;
    if (result.error != startup_error::none) {
        SLUICE_FUZZ_CHECK(!result.reason.empty());
        return;
    }
    SLUICE_FUZZ_CHECK(result.reason.empty());
    SLUICE_FUZZ_CHECK(packet.size() >= startup_header_size && packet.size() <= max_startup_length);
    SLUICE_FUZZ_CHECK(load_u32(packet.data()) == packet.size());
    switch (p.kind) {
        case startup_kind::ssl_request:
        case startup_kind::gssenc_request:
            SLUICE_FUZZ_CHECK(packet.size() == 8);
            return;
        case startup_kind::cancel_request:
            SLUICE_FUZZ_CHECK(packet.size() == 16);
            SLUICE_FUZZ_CHECK(p.process_id == load_u32(packet.data() + 8));
            SLUICE_FUZZ_CHECK(p.secret_key == load_u32(packet.data() + 12));
            return;
        case startup_kind::startup:
            break;
    }
    SLUICE_FUZZ_CHECK(p.major == 3);
    SLUICE_FUZZ_CHECK(packet.back() == '\0');
    const auto user = p.parameter("user");
    SLUICE_FUZZ_CHECK(user && !user->empty());
    std::size_t text_bytes = 0;
    for (const auto& [name, value] : p.parameters) {
        SLUICE_FUZZ_CHECK(!name.empty());
        SLUICE_FUZZ_CHECK(!name.starts_with("_pq_."));
        SLUICE_FUZZ_CHECK(name.find('\0') == std::string::npos && value.find('\0') == std::string::npos);
        text_bytes += name.size() + value.size() + 2;
    }
    for (const auto& option : p.protocol_options) {
        SLUICE_FUZZ_CHECK(option.starts_with("_pq_."));
        SLUICE_FUZZ_CHECK(option.find('\0') == std::string::npos);
        text_bytes += option.size() + 2;  // the option's value is dropped, so this is a lower bound
    }
    SLUICE_FUZZ_CHECK(text_bytes + startup_header_size + 1 <= packet.size());

    // Written back (options dropped, as Sluice does towards servers), the packet parses to the same parameters.
    std::string out;
    message_writer w(out);
    w.i32(static_cast<std::int32_t>(static_cast<std::uint32_t>(p.major) << 16U | p.minor));
    for (const auto& [name, value] : p.parameters) {
        w.cstring(name).cstring(value);
    }
    w.u8(0);
    w.finish();
    const auto again = parse_startup_packet(out);
    SLUICE_FUZZ_CHECK(again.error == startup_error::none);
    SLUICE_FUZZ_CHECK(again.packet.parameters == p.parameters);
    SLUICE_FUZZ_CHECK(again.packet.minor == p.minor);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const char> packet(reinterpret_cast<const char*>(data), size);
    check(packet);
    if (size >= 4 && size <= 0xffffffffU && load_u32(packet.data()) != size) {
        std::string patched(packet.data(), packet.size());
        store_u32(patched.data(), static_cast<std::uint32_t>(size));
        check(patched);
    }
    return 0;
}
