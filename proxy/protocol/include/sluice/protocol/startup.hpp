#pragma once
// The untyped first packet of a connection: StartupMessage, SSLRequest, GSSENCRequest or CancelRequest
// (protocol-message-formats.html). Parsing is separate from reading so it can be unit-tested byte for byte.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::protocol {

enum class startup_kind { startup, ssl_request, gssenc_request, cancel_request };

enum class startup_error {
    none,
    bad_length,           // shorter than 8 bytes or longer than max_startup_length
    unsupported_version,  // major version other than 3 (SQLSTATE 0A000 as PostgreSQL answers)
    malformed,            // parameter list not NUL-terminated pairs, or missing "user"
};

struct startup_packet {
    startup_kind kind = startup_kind::startup;
    std::uint16_t major = 0;
    std::uint16_t minor = 0;
    // StartupMessage parameters in wire order; "user" is guaranteed present on success.
    std::vector<std::pair<std::string, std::string>> parameters;
    // Options named "_pq_.*": protocol extensions we must list in NegotiateProtocolVersion.
    std::vector<std::string> protocol_options;
    // CancelRequest payload.
    std::uint32_t process_id = 0;
    std::uint32_t secret_key = 0;

    [[nodiscard]] std::optional<std::string_view> parameter(std::string_view name) const noexcept;
};

struct startup_result {
    startup_error error = startup_error::none;
    std::string_view reason;  // static text for logs and the ErrorResponse
    startup_packet packet;
};

// Parses a whole startup-family packet, including its leading Int32 length.
[[nodiscard]] startup_result parse_startup_packet(std::span<const char> packet);

}  // namespace sluice::protocol
