#include "sluice/protocol/startup.hpp"

#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/reader.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::protocol {

std::optional<std::string_view> startup_packet::parameter(std::string_view name) const noexcept {
    for (const auto& [k, v] : parameters) {
        if (k == name)
            return std::string_view(v);
    }
    return std::nullopt;
}

startup_result parse_startup_packet(std::span<const char> packet) {
    startup_result result;
    if (packet.size() < startup_header_size || packet.size() > max_startup_length ||
        load_u32(packet.data()) != packet.size()) {
        result.error = startup_error::bad_length;
        result.reason = "invalid length of startup packet";
        return result;
    }
    message_reader r(packet.subspan(4));
    const auto code = r.i32();
    auto& p = result.packet;
    switch (code) {
        case ssl_request_code:
            p.kind = startup_kind::ssl_request;
            if (!r.at_end()) {
                result.error = startup_error::bad_length;
                result.reason = "invalid length of SSLRequest";
            }
            return result;
        case gssenc_request_code:
            p.kind = startup_kind::gssenc_request;
            if (!r.at_end()) {
                result.error = startup_error::bad_length;
                result.reason = "invalid length of GSSENCRequest";
            }
            return result;
        case cancel_request_code:
            p.kind = startup_kind::cancel_request;
            p.process_id = static_cast<std::uint32_t>(r.i32());
            p.secret_key = static_cast<std::uint32_t>(r.i32());
            if (!r.ok() || !r.at_end()) {
                result.error = startup_error::bad_length;
                result.reason = "invalid length of CancelRequest";
            }
            return result;
        default:
            break;
    }
    p.kind = startup_kind::startup;
    p.major = static_cast<std::uint16_t>(static_cast<std::uint32_t>(code) >> 16);
    p.minor = static_cast<std::uint16_t>(static_cast<std::uint32_t>(code) & 0xffff);
    if (p.major != 3) {
        result.error = startup_error::unsupported_version;
        result.reason = "unsupported frontend protocol";
        return result;
    }
    // Parameters: name/value String pairs terminated by a lone NUL (the terminator is required).
    bool terminated = false;
    while (r.ok() && !r.at_end()) {
        auto name = r.cstring();
        if (!r.ok())
            break;
        if (name.empty()) {
            terminated = r.at_end();
            break;
        }
        auto value = r.cstring();
        if (!r.ok())
            break;
        if (name.starts_with("_pq_.")) {
            p.protocol_options.emplace_back(name);
        } else {
            p.parameters.emplace_back(std::string(name), std::string(value));
        }
    }
    if (!terminated) {
        result.error = startup_error::malformed;
        result.reason = "invalid startup packet layout: expected terminator as last byte";
        return result;
    }
    if (!p.parameter("user") || p.parameter("user")->empty()) {
        result.error = startup_error::malformed;
        result.reason = "no PostgreSQL user name specified in startup packet";
        return result;
    }
    return result;
}

}  // namespace sluice::protocol
