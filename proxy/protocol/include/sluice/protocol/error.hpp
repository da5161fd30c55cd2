#pragma once
// ErrorResponse / NoticeResponse fields (protocol-error-fields.html) and the SQLSTATEs Sluice itself raises
// (errcodes-appendix.html).

#include <string>
#include <string_view>

#include "sluice/protocol/frame.hpp"

namespace sluice::protocol {

namespace sqlstate {
inline constexpr std::string_view protocol_violation = "08P01";
inline constexpr std::string_view connection_failure = "08006";
inline constexpr std::string_view connection_exception = "08000";
inline constexpr std::string_view sqlclient_unable_to_establish_sqlconnection = "08001";
inline constexpr std::string_view invalid_authorization_specification = "28000";
inline constexpr std::string_view invalid_password = "28P01";
inline constexpr std::string_view invalid_catalog_name = "3D000";
inline constexpr std::string_view too_many_connections = "53300";
inline constexpr std::string_view query_canceled = "57014";
inline constexpr std::string_view admin_shutdown = "57P01";
inline constexpr std::string_view cannot_connect_now = "57P03";
inline constexpr std::string_view feature_not_supported = "0A000";
inline constexpr std::string_view insufficient_privilege = "42501";
inline constexpr std::string_view syntax_error = "42601";
inline constexpr std::string_view duplicate_prepared_statement = "42P05";
inline constexpr std::string_view invalid_sql_statement_name = "26000";
inline constexpr std::string_view program_limit_exceeded = "54000";
inline constexpr std::string_view out_of_memory = "53200";
inline constexpr std::string_view idle_in_transaction_session_timeout = "25P03";
inline constexpr std::string_view transaction_timeout = "25P04";  // PostgreSQL 17's transaction_timeout
inline constexpr std::string_view idle_session_timeout = "57P05";
inline constexpr std::string_view internal_error = "XX000";
}  // namespace sqlstate

enum class severity { error, fatal, notice, warning, log };

struct error_fields {
    std::string_view severity;  // localized 'S' or the non-localized 'V' when present
    std::string_view sqlstate;  // 'C'
    std::string_view message;   // 'M'
    std::string_view detail;    // 'D'
    std::string_view hint;      // 'H'
};

// Parses the body of an ErrorResponse or NoticeResponse. Views point into `body`. Malformed bodies yield whatever
// fields were complete; never reads outside the span.
[[nodiscard]] error_fields parse_error_fields(std::span<const char> body) noexcept;

// Appends an ErrorResponse ('E'), or a NoticeResponse ('N') for severities notice/warning/log.
void write_error(std::string& out, severity sev, std::string_view code, std::string_view message,
                 std::string_view detail = {}, std::string_view hint = {});

[[nodiscard]] std::string_view severity_name(severity sev) noexcept;

}  // namespace sluice::protocol
