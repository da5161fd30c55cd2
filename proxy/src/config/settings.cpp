#include "config/settings.hpp"

#include <algorithm>
#include <array>
#include <filesystem>

namespace sluice::config {

namespace {

constexpr std::array<enum_name<pool_mode>, 3> pool_mode_names{{
    {"session", pool_mode::session},
    {"transaction", pool_mode::transaction},
    {"statement", pool_mode::statement},
}};

constexpr std::array<enum_name<auth_type>, 7> auth_type_names{{
    {"scram-sha-256", auth_type::scram_sha_256},
    {"md5", auth_type::md5},
    {"plain", auth_type::plain},
    {"trust", auth_type::trust},
    {"cert", auth_type::cert},
    {"hba", auth_type::hba},
    {"any", auth_type::any},
}};

constexpr std::array<enum_name<ssl_mode>, 6> ssl_mode_names{{
    {"disable", ssl_mode::disable},
    {"allow", ssl_mode::allow},
    {"prefer", ssl_mode::prefer},
    {"require", ssl_mode::require},
    {"verify-ca", ssl_mode::verify_ca},
    {"verify-full", ssl_mode::verify_full},
}};

constexpr std::array<enum_name<session_state_pinning>, 2> session_state_pinning_names{{
    {"pin", session_state_pinning::pin},
    {"refuse", session_state_pinning::refuse},
}};

}  // namespace

std::string_view to_string(pool_mode value) {
    return enum_to_string<pool_mode>(value, pool_mode_names);
}
std::string_view to_string(auth_type value) {
    return enum_to_string<auth_type>(value, auth_type_names);
}
std::string_view to_string(ssl_mode value) {
    return enum_to_string<ssl_mode>(value, ssl_mode_names);
}

std::string_view to_string(session_state_pinning value) {
    return enum_to_string<session_state_pinning>(value, session_state_pinning_names);
}
parsed<session_state_pinning> parse_session_state_pinning(std::string_view text) {
    return parse_enum<session_state_pinning>(text, session_state_pinning_names);
}

parsed<pool_mode> parse_pool_mode(std::string_view text) {
    return parse_enum<pool_mode>(text, pool_mode_names);
}
parsed<ssl_mode> parse_ssl_mode(std::string_view text) {
    return parse_enum<ssl_mode>(text, ssl_mode_names);
}

parsed<auth_type> parse_auth_type(std::string_view text) {
    auto result = parse_enum<auth_type>(text, auth_type_names);
    if (!result.ok() && (text::iequals(text, "pam") || text::iequals(text, "ldap"))) {
        result.error = text::quoted(text) + " is a PgBouncer method that Sluice does not support";
    }
    return result;
}

namespace {

// Value parsers named in the SLUICE_SETTINGS table. Each has a `unit` for the docs, `assign`, which parses
// into a field and returns an error phrase on failure, and `format`, its inverse.
using error_phrase = std::optional<std::string>;

struct integer {
    constexpr integer(std::int64_t min_value, std::int64_t max_value) : min(min_value), max(max_value) {}

    std::int64_t min;
    std::int64_t max;
    static constexpr std::string_view unit = "";

    template <class T>
    error_phrase assign(T& field, std::string_view value, const std::string& /*base_dir*/) const {
        const auto result = parse_integer(value, min, max);
        if (!result.ok()) {
            return result.error;
        }
        field = static_cast<T>(result.value);
        return std::nullopt;
    }
    template <class T>
    std::string format(const T& field) const {
        return std::to_string(field);
    }
};

struct bytes : integer {
    using integer::integer;
    static constexpr std::string_view unit = "bytes";
};

struct boolean {
    static constexpr std::string_view unit = "";

    error_phrase assign(bool& field, std::string_view value, const std::string& /*base_dir*/) const {
        const auto result = parse_bool(value);
        if (!result.ok()) {
            return result.error;
        }
        field = result.value;
        return std::nullopt;
    }
    std::string format(bool field) const { return field ? "1" : "0"; }
};

struct plain_text {
    static constexpr std::string_view unit = "";

    error_phrase assign(std::string& field, std::string_view value, const std::string& /*base_dir*/) const {
        field = std::string(value);
        return std::nullopt;
    }
    std::string format(const std::string& field) const { return field; }
};

struct optional_text {
    static constexpr std::string_view unit = "";

    error_phrase assign(std::optional<std::string>& field, std::string_view value,
                        const std::string& /*base_dir*/) const {
        field = value.empty() ? std::nullopt : std::optional<std::string>(value);
        return std::nullopt;
    }
    std::string format(const std::optional<std::string>& field) const { return field.value_or(""); }
};

struct path {
    static constexpr std::string_view unit = "path";

    error_phrase assign(std::optional<std::string>& field, std::string_view value, const std::string& base_dir) const {
        if (value.empty()) {
            field.reset();
            return std::nullopt;
        }
        std::filesystem::path resolved(value);
        if (resolved.is_relative() && !base_dir.empty()) {
            resolved = (std::filesystem::path(base_dir) / resolved).lexically_normal();
        }
        field = resolved.string();
        return std::nullopt;
    }
    std::string format(const std::optional<std::string>& field) const { return field.value_or(""); }
};

struct list {
    static constexpr std::string_view unit = "list";

    error_phrase assign(std::vector<std::string>& field, std::string_view value,
                        const std::string& /*base_dir*/) const {
        field = text::split_list(value);
        return std::nullopt;
    }
    std::string format(const std::vector<std::string>& field) const {
        std::string out;
        for (const auto& item : field) {
            out += (out.empty() ? "" : ",") + item;
        }
        return out;
    }
};

struct octal_mode {
    static constexpr std::string_view unit = "octal";

    error_phrase assign(int& field, std::string_view value, const std::string& /*base_dir*/) const {
        int mode = 0;
        const bool digits_ok = !value.empty() && value.size() <= 5 &&
                               std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '7'; });
        if (digits_ok) {
            for (char c : value) {
                mode = mode * 8 + (c - '0');
            }
        }
        if (!digits_ok || mode > 07777) {
            return "expected an octal file mode such as 0777, got " + text::quoted(value);
        }
        field = mode;
        return std::nullopt;
    }
    std::string format(int field) const {
        std::string digits;
        do {
            digits.insert(digits.begin(), static_cast<char>('0' + field % 8));
            field /= 8;
        } while (field != 0);
        return '0' + digits;
    }
};

struct seconds {
    static constexpr std::string_view unit = "seconds";

    error_phrase assign(std::chrono::microseconds& field, std::string_view value,
                        const std::string& /*base_dir*/) const {
        const auto result = parse_seconds(value);
        if (!result.ok()) {
            return result.error;
        }
        field = result.value;
        return std::nullopt;
    }
    std::string format(std::chrono::microseconds field) const { return format_seconds(field); }
};

// Whole-number durations for socket options that take integers (TCP_KEEPIDLE, TCP_USER_TIMEOUT).
template <class Duration>
struct whole_duration {
    error_phrase assign(Duration& field, std::string_view value, const std::string& /*base_dir*/) const {
        const auto result = parse_integer(value, 0, INT32_MAX);
        if (!result.ok()) {
            return result.error;
        }
        field = Duration(result.value);
        return std::nullopt;
    }
    std::string format(Duration field) const { return std::to_string(field.count()); }
};

struct whole_seconds : whole_duration<std::chrono::seconds> {
    static constexpr std::string_view unit = "seconds";
};

struct milliseconds : whole_duration<std::chrono::milliseconds> {
    static constexpr std::string_view unit = "milliseconds";
};

parsed<pool_mode> parse_keyword(std::string_view value, pool_mode /*tag*/) {
    return parse_pool_mode(value);
}
parsed<auth_type> parse_keyword(std::string_view value, auth_type /*tag*/) {
    return parse_auth_type(value);
}
parsed<ssl_mode> parse_keyword(std::string_view value, ssl_mode /*tag*/) {
    return parse_ssl_mode(value);
}
parsed<session_state_pinning> parse_keyword(std::string_view value, session_state_pinning /*tag*/) {
    return parse_session_state_pinning(value);
}

struct enumeration {
    static constexpr std::string_view unit = "";

    template <class E>
    error_phrase assign(E& field, std::string_view value, const std::string& /*base_dir*/) const {
        const auto result = parse_keyword(value, E{});
        if (!result.ok()) {
            return result.error;
        }
        field = result.value;
        return std::nullopt;
    }
    template <class E>
    std::string format(E field) const {
        return std::string(to_string(field));
    }
};

constexpr tls_protocols all_tls_protocols{true, true, true, true};

struct protocols {
    static constexpr std::string_view unit = "list";

    error_phrase assign(tls_protocols& field, std::string_view value, const std::string& /*base_dir*/) const {
        tls_protocols result{false, false, false, false};
        for (const auto& item : text::split_list(value)) {
            if (text::iequals(item, "all") || text::iequals(item, "legacy")) {
                result = all_tls_protocols;
            } else if (text::iequals(item, "secure")) {
                result.tls_1_2 = result.tls_1_3 = true;
            } else if (text::iequals(item, "tlsv1.0")) {
                result.tls_1_0 = true;
            } else if (text::iequals(item, "tlsv1.1")) {
                result.tls_1_1 = true;
            } else if (text::iequals(item, "tlsv1.2")) {
                result.tls_1_2 = true;
            } else if (text::iequals(item, "tlsv1.3")) {
                result.tls_1_3 = true;
            } else {
                return "expected a comma-separated list of tlsv1.0, tlsv1.1, tlsv1.2, tlsv1.3, all, secure, "
                       "legacy, got " +
                       text::quoted(item);
            }
        }
        if (result == tls_protocols{false, false, false, false}) {
            return "expected at least one TLS protocol version, got " + text::quoted(value);
        }
        field = result;
        return std::nullopt;
    }
    std::string format(const tls_protocols& field) const {
        if (field == tls_protocols{}) {
            return "secure";
        }
        if (field == all_tls_protocols) {
            return "all";
        }
        std::string out;
        const std::pair<bool, std::string_view> versions[] = {{field.tls_1_0, "tlsv1.0"},
                                                              {field.tls_1_1, "tlsv1.1"},
                                                              {field.tls_1_2, "tlsv1.2"},
                                                              {field.tls_1_3, "tlsv1.3"}};
        for (const auto& [enabled, name] : versions) {
            if (enabled) {
                out += (out.empty() ? "" : ",") + std::string(name);
            }
        }
        return out;
    }
};

// PgBouncer's server_check_query: an empty value disables the check, the literal <empty> sends an empty
// query. Stored as nullopt and "" respectively.
struct check_query {
    static constexpr std::string_view unit = "";
    static constexpr std::string_view empty_query = "<empty>";

    error_phrase assign(std::optional<std::string>& field, std::string_view value,
                        const std::string& /*base_dir*/) const {
        if (value.empty()) {
            field.reset();
        } else if (text::iequals(value, empty_query)) {
            field = std::string();
        } else {
            field = std::string(value);
        }
        return std::nullopt;
    }
    std::string format(const std::optional<std::string>& field) const {
        if (!field) {
            return {};
        }
        return field->empty() ? std::string(empty_query) : *field;
    }
};

#define SLUICE_SETTINGS_ROW(name_, type_, default_value_, parser_, applies_, origin_, description_)               \
    setting_def{                                                                                                  \
        #name_,                                                                                                   \
        applies_on::applies_,                                                                                     \
        setting_origin::origin_,                                                                                  \
        decltype(parser_)::unit,                                                                                  \
        description_,                                                                                             \
        [](settings& target, std::string_view value, const std::string& base_dir) -> std::optional<std::string> { \
            return (parser_).assign(target.name_, value, base_dir);                                               \
        },                                                                                                        \
        [](const settings& source) -> std::string { return (parser_).format(source.name_); },                     \
    },

constexpr setting_def setting_table[] = {SLUICE_SETTINGS(SLUICE_SETTINGS_ROW)};

#undef SLUICE_SETTINGS_ROW

// PgBouncer settings that load without effect. Keeping them accepted lets a PgBouncer file drop in; the
// warning tells the operator the setting does nothing here.
constexpr unused_setting unused_table[] = {
    {"syslog", "Sluice logs to stderr and logfile only"},
    {"syslog_ident", "Sluice logs to stderr and logfile only"},
    {"syslog_facility", "Sluice logs to stderr and logfile only"},
    {"conffile", "the config file is the one given on the command line"},
    {"service_name", "Windows service registration does not apply"},
    {"job_name", "Windows service registration does not apply"},
    {"peer_id", "Sluice does not implement [peers] cancel forwarding"},
    {"auth_ident_file", "ident maps are not implemented"},
    {"auth_ldap_options", "LDAP authentication is not implemented"},
    {"dns_nxdomain_ttl", "DNS failures are not cached"},
    {"dns_zone_check_period", "DNS zone serial checks are not implemented"},
    {"resolv_conf", "Sluice uses the system resolver"},
    {"login_notify_message", "not implemented"},
    {"client_tls_ecdhcurve", "OpenSSL defaults are used"},
    {"client_tls_dheparams", "OpenSSL defaults are used"},
    {"tcp_defer_accept", "not implemented"},
    {"tcp_socket_buffer", "kernel socket buffer defaults are used"},
    {"pool_idle_timeout", "empty pools are not freed individually"},
};

}  // namespace

std::span<const setting_def> all_settings() {
    return setting_table;
}

const setting_def* find_setting(std::string_view name) {
    for (const auto& def : setting_table) {
        if (text::iequals(def.name, name)) {
            return &def;
        }
    }
    return nullptr;
}

std::span<const unused_setting> accepted_unused_settings() {
    return unused_table;
}

const unused_setting* find_unused_setting(std::string_view name) {
    for (const auto& unused : unused_table) {
        if (text::iequals(unused.name, name)) {
            return &unused;
        }
    }
    return nullptr;
}

std::vector<setting_change> diff_settings(const settings& before, const settings& after) {
    std::vector<setting_change> changes;
    for (const auto& def : setting_table) {
        auto old_value = def.format(before);
        auto new_value = def.format(after);
        if (old_value != new_value) {
            changes.push_back({def.name, def.applies, std::move(old_value), std::move(new_value)});
        }
    }
    return changes;
}

}  // namespace sluice::config
