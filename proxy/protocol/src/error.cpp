#include "sluice/protocol/error.hpp"

#include "sluice/protocol/message_types.hpp"
#include "sluice/protocol/reader.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::protocol {

error_fields parse_error_fields(std::span<const char> body) noexcept {
    error_fields f;
    message_reader r(body);
    std::string_view localized_severity;
    while (r.ok() && !r.at_end()) {
        const char code = static_cast<char>(r.u8());
        if (code == '\0')
            break;
        const auto value = r.cstring();
        if (!r.ok())
            break;
        switch (code) {
            case 'S':
                localized_severity = value;
                break;
            case 'V':
                f.severity = value;
                break;
            case 'C':
                f.sqlstate = value;
                break;
            case 'M':
                f.message = value;
                break;
            case 'D':
                f.detail = value;
                break;
            case 'H':
                f.hint = value;
                break;
            default:
                break;
        }
    }
    if (f.severity.empty())
        f.severity = localized_severity;
    return f;
}

std::string_view severity_name(severity sev) noexcept {
    switch (sev) {
        case severity::error:
            return "ERROR";
        case severity::fatal:
            return "FATAL";
        case severity::notice:
            return "NOTICE";
        case severity::warning:
            return "WARNING";
        case severity::log:
            return "LOG";
    }
    return "ERROR";
}

void write_error(std::string& out, severity sev, std::string_view code, std::string_view message,
                 std::string_view detail, std::string_view hint) {
    const bool is_error = sev == severity::error || sev == severity::fatal;
    message_writer w(out, is_error ? to_char(backend::error_response) : to_char(backend::notice_response));
    const auto name = severity_name(sev);
    w.u8('S').cstring(name).u8('V').cstring(name).u8('C').cstring(code).u8('M').cstring(message);
    if (!detail.empty())
        w.u8('D').cstring(detail);
    if (!hint.empty())
        w.u8('H').cstring(hint);
    w.u8(0);
    w.finish();
}

}  // namespace sluice::protocol
