#pragma once
// Builders that append protocol messages to an output buffer. The buffer is a std::string owned by the caller and
// reused across messages, so steady-state appends do not allocate.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/message_types.hpp"

namespace sluice::protocol {

// Appends one message: construct with the type byte (or none for the startup family), add fields, then finish()
// patches the length. Fields appended after finish() are a bug.
class message_writer {
  public:
    message_writer(std::string& out, char type) : out_(out), start_(out.size()) {
        out_.push_back(type);
        length_at_ = out_.size();
        out_.append(4, '\0');
    }
    // Startup-family message: no type byte.
    explicit message_writer(std::string& out) : out_(out), start_(out.size()), length_at_(out.size()) {
        out_.append(4, '\0');
    }
    message_writer(const message_writer&) = delete;
    message_writer& operator=(const message_writer&) = delete;

    message_writer& u8(std::uint8_t v) {
        out_.push_back(static_cast<char>(v));
        return *this;
    }
    message_writer& i16(std::int16_t v) {
        char b[2];
        store_u16(b, static_cast<std::uint16_t>(v));
        out_.append(b, 2);
        return *this;
    }
    message_writer& i32(std::int32_t v) {
        char b[4];
        store_u32(b, static_cast<std::uint32_t>(v));
        out_.append(b, 4);
        return *this;
    }
    message_writer& cstring(std::string_view s) {
        out_.append(s);
        out_.push_back('\0');
        return *this;
    }
    message_writer& bytes(std::string_view s) {
        out_.append(s);
        return *this;
    }
    // std::string converts to both string_view and span: this overload removes the ambiguity.
    message_writer& bytes(const std::string& s) { return bytes(std::string_view(s)); }
    message_writer& bytes(std::span<const char> s) {
        out_.append(s.data(), s.size());
        return *this;
    }
    void finish() { store_u32(out_.data() + length_at_, static_cast<std::uint32_t>(out_.size() - length_at_)); }

    [[nodiscard]] std::size_t start() const noexcept { return start_; }

  private:
    std::string& out_;
    std::size_t start_;
    std::size_t length_at_;
};

// --- Backend messages (Sluice acting as the server towards clients) ---

void write_authentication_ok(std::string& out);
void write_authentication_cleartext(std::string& out);
void write_authentication_md5(std::string& out, std::span<const std::uint8_t, 4> salt);
void write_authentication_sasl(std::string& out, std::initializer_list<std::string_view> mechanisms);
void write_authentication_sasl_continue(std::string& out, std::string_view data);
void write_authentication_sasl_final(std::string& out, std::string_view data);
void write_parameter_status(std::string& out, std::string_view name, std::string_view value);
void write_backend_key_data(std::string& out, std::uint32_t process_id, std::uint32_t secret_key);
void write_ready_for_query(std::string& out, transaction_status status);
void write_command_complete(std::string& out, std::string_view tag);
void write_empty_query_response(std::string& out);
void write_parse_complete(std::string& out);
void write_close_complete(std::string& out);
void write_bind_complete(std::string& out);
void write_no_data(std::string& out);
// NegotiateProtocolVersion: the newest minor version we support and the protocol options we did not recognise.
void write_negotiate_protocol_version(std::string& out, std::int32_t newest_minor,
                                      std::span<const std::string> unrecognized_options);

// Column description for write_row_description: text format, as the admin console sends.
struct column {
    std::string_view name;
    std::uint32_t type_oid;  // e.g. 25 text, 20 int8, 23 int4, 1700 numeric
    std::int16_t type_size;  // -1 for varlena
};
inline constexpr std::uint32_t oid_text = 25;
inline constexpr std::uint32_t oid_int4 = 23;
inline constexpr std::uint32_t oid_int8 = 20;
inline constexpr std::uint32_t oid_numeric = 1700;
inline constexpr std::uint32_t oid_timestamptz = 1184;
void write_row_description(std::string& out, std::span<const column> columns);
// DataRow with text values; std::nullopt is SQL NULL.
void write_data_row(std::string& out, std::span<const std::optional<std::string>> values);

// --- Frontend messages (Sluice acting as the client towards PostgreSQL servers) ---

inline constexpr std::int32_t protocol_version_3_0 = 196608;  // (3 << 16) | 0
inline constexpr std::int32_t cancel_request_code = 80877102;
inline constexpr std::int32_t ssl_request_code = 80877103;
inline constexpr std::int32_t gssenc_request_code = 80877104;

void write_startup_message(std::string& out, std::span<const std::pair<std::string, std::string>> parameters);
void write_ssl_request(std::string& out);
void write_cancel_request(std::string& out, std::uint32_t process_id, std::uint32_t secret_key);
void write_password_message(std::string& out, std::string_view password);
void write_sasl_initial_response(std::string& out, std::string_view mechanism, std::string_view data);
void write_sasl_response(std::string& out, std::string_view data);
void write_query(std::string& out, std::string_view sql);
void write_sync(std::string& out);
void write_flush(std::string& out);
void write_terminate(std::string& out);
void write_parse(std::string& out, std::string_view statement, std::string_view query,
                 std::span<const std::uint32_t> param_types);
void write_close_statement(std::string& out, std::string_view statement);

}  // namespace sluice::protocol
