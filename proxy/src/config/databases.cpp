#include "config/databases.hpp"

#include <algorithm>
#include <array>
#include <span>

namespace sluice::config {

namespace {

constexpr std::array<enum_name<load_balance_hosts>, 2> load_balance_hosts_names{{
    {"round-robin", load_balance_hosts::round_robin},
    {"disable", load_balance_hosts::disable},
}};

}  // namespace

std::string_view to_string(load_balance_hosts value) {
    return enum_to_string<load_balance_hosts>(value, load_balance_hosts_names);
}

connstring_result parse_connstring(std::string_view text) {
    connstring_result result;
    std::size_t i = 0;
    const auto skip_spaces = [&] {
        while (i < text.size() && text::is_space(text[i])) {
            ++i;
        }
    };
    while (true) {
        skip_spaces();
        if (i == text.size()) {
            return result;
        }
        const auto key_start = i;
        while (i < text.size() && text[i] != '=' && !text::is_space(text[i])) {
            ++i;
        }
        const auto key = text.substr(key_start, i - key_start);
        if (key.empty()) {
            result.error = "missing parameter name before '='";
            return result;
        }
        skip_spaces();
        if (i == text.size() || text[i] != '=') {
            result.error = "expected '=' after " + text::quoted(key);
            return result;
        }
        ++i;
        skip_spaces();
        std::string value;
        if (i < text.size() && text[i] == '\'') {
            ++i;
            bool closed = false;
            while (i < text.size()) {
                if (text[i] == '\'') {
                    if (i + 1 < text.size() && text[i + 1] == '\'') {
                        value += '\'';
                        i += 2;
                        continue;
                    }
                    closed = true;
                    ++i;
                    break;
                }
                value += text[i++];
            }
            if (!closed) {
                result.error = "unterminated quoted value for " + text::quoted(key);
                return result;
            }
            if (i < text.size() && !text::is_space(text[i])) {
                result.error = "expected whitespace after the quoted value of " + text::quoted(key);
                return result;
            }
        } else {
            const auto value_start = i;
            while (i < text.size() && !text::is_space(text[i])) {
                ++i;
            }
            value = text.substr(value_start, i - value_start);
        }
        result.pairs.push_back({text::to_lower(key), std::move(value)});
    }
}

namespace {

using error_phrase = std::optional<std::string>;

error_phrase set_text(std::optional<std::string>& field, std::string_view value) {
    field = value.empty() ? std::nullopt : std::optional<std::string>(value);
    return std::nullopt;
}

error_phrase set_count(std::optional<int>& field, std::string_view value) {
    const auto result = parse_integer(value, 0, INT32_MAX);
    if (!result.ok()) {
        return result.error;
    }
    field = static_cast<int>(result.value);
    return std::nullopt;
}

error_phrase set_seconds(std::optional<std::chrono::microseconds>& field, std::string_view value) {
    const auto result = parse_seconds(value);
    if (!result.ok()) {
        return result.error;
    }
    field = result.value;
    return std::nullopt;
}

// PgBouncer: "-1 means this value is not set" for the per-database and per-user query_wait_timeout.
error_phrase set_seconds_or_unset(std::optional<std::chrono::microseconds>& field, std::string_view value) {
    if (value == "-1") {
        field.reset();
        return std::nullopt;
    }
    return set_seconds(field, value);
}

error_phrase set_pool_mode(std::optional<pool_mode>& field, std::string_view value) {
    const auto result = parse_pool_mode(value);
    if (!result.ok()) {
        return result.error;
    }
    field = result.value;
    return std::nullopt;
}

template <class Entry>
struct entry_key {
    std::string_view name;
    error_phrase (*apply)(Entry& entry, std::string_view value);
};

// Keys PgBouncer documents for [databases], plus application_name.
constexpr entry_key<database_entry> database_keys[] = {
    {"host",
     [](database_entry& e, std::string_view v) -> error_phrase {
         e.hosts = text::split_list(v);
         return std::nullopt;
     }},
    {"port",
     [](database_entry& e, std::string_view v) -> error_phrase {
         const auto result = parse_integer(v, 1, 65535);
         if (!result.ok()) {
             return result.error;
         }
         e.port = static_cast<int>(result.value);
         return std::nullopt;
     }},
    {"dbname", [](database_entry& e, std::string_view v) { return set_text(e.dbname, v); }},
    {"user", [](database_entry& e, std::string_view v) { return set_text(e.user, v); }},
    {"password", [](database_entry& e, std::string_view v) { return set_text(e.password, v); }},
    {"auth_user", [](database_entry& e, std::string_view v) { return set_text(e.auth_user, v); }},
    {"auth_query", [](database_entry& e, std::string_view v) { return set_text(e.auth_query, v); }},
    {"auth_dbname", [](database_entry& e, std::string_view v) { return set_text(e.auth_dbname, v); }},
    {"pool_size", [](database_entry& e, std::string_view v) { return set_count(e.pool_size, v); }},
    {"min_pool_size", [](database_entry& e, std::string_view v) { return set_count(e.min_pool_size, v); }},
    {"reserve_pool_size", [](database_entry& e, std::string_view v) { return set_count(e.reserve_pool_size, v); }},
    {"reserve_pool", [](database_entry& e, std::string_view v) { return set_count(e.reserve_pool_size, v); }},
    {"max_db_connections", [](database_entry& e, std::string_view v) { return set_count(e.max_db_connections, v); }},
    {"max_db_client_connections",
     [](database_entry& e, std::string_view v) { return set_count(e.max_db_client_connections, v); }},
    {"connect_query", [](database_entry& e, std::string_view v) { return set_text(e.connect_query, v); }},
    {"pool_mode", [](database_entry& e, std::string_view v) { return set_pool_mode(e.pool_mode, v); }},
    {"server_lifetime", [](database_entry& e, std::string_view v) { return set_seconds(e.server_lifetime, v); }},
    {"query_wait_timeout",
     [](database_entry& e, std::string_view v) { return set_seconds_or_unset(e.query_wait_timeout, v); }},
    {"client_encoding", [](database_entry& e, std::string_view v) { return set_text(e.client_encoding, v); }},
    {"datestyle", [](database_entry& e, std::string_view v) { return set_text(e.datestyle, v); }},
    {"timezone", [](database_entry& e, std::string_view v) { return set_text(e.timezone, v); }},
    {"application_name", [](database_entry& e, std::string_view v) { return set_text(e.application_name, v); }},
    {"load_balance_hosts",
     [](database_entry& e, std::string_view v) -> error_phrase {
         const auto result = parse_enum<load_balance_hosts>(v, load_balance_hosts_names);
         if (!result.ok()) {
             return result.error;
         }
         e.load_balance_hosts = result.value;
         return std::nullopt;
     }},
};

// Documented [databases] keys that load without effect.
constexpr std::string_view unused_database_keys[] = {"target_session_attrs"};

constexpr entry_key<user_entry> user_keys[] = {
    {"pool_mode", [](user_entry& e, std::string_view v) { return set_pool_mode(e.pool_mode, v); }},
    {"pool_size", [](user_entry& e, std::string_view v) { return set_count(e.pool_size, v); }},
    {"reserve_pool_size", [](user_entry& e, std::string_view v) { return set_count(e.reserve_pool_size, v); }},
    {"max_user_connections", [](user_entry& e, std::string_view v) { return set_count(e.max_user_connections, v); }},
    {"max_user_client_connections",
     [](user_entry& e, std::string_view v) { return set_count(e.max_user_client_connections, v); }},
    {"query_timeout", [](user_entry& e, std::string_view v) { return set_seconds(e.query_timeout, v); }},
    {"query_wait_timeout",
     [](user_entry& e, std::string_view v) { return set_seconds_or_unset(e.query_wait_timeout, v); }},
    {"idle_transaction_timeout",
     [](user_entry& e, std::string_view v) { return set_seconds(e.idle_transaction_timeout, v); }},
    {"transaction_timeout", [](user_entry& e, std::string_view v) { return set_seconds(e.transaction_timeout, v); }},
    {"client_idle_timeout", [](user_entry& e, std::string_view v) { return set_seconds(e.client_idle_timeout, v); }},
};

template <class Entry>
entry_result<Entry> parse_entry(std::string_view name, std::string_view connstring, const source_location& where,
                                std::span<const entry_key<Entry>> keys, std::span<const std::string_view> unused_keys,
                                std::string_view section) {
    entry_result<Entry> result;
    const auto report = [&](std::vector<diagnostic>& into, std::string message) {
        into.push_back({where.file, where.line, std::string(name), std::move(message)});
    };
    const auto pairs = parse_connstring(connstring);
    if (!pairs.ok()) {
        report(result.errors, pairs.error);
        return result;
    }
    Entry entry;
    entry.name = std::string(name);
    entry.defined_at = where;
    for (const auto& [key, value] : pairs.pairs) {
        const entry_key<Entry>* handler = nullptr;
        for (const auto& candidate : keys) {
            if (candidate.name == key) {
                handler = &candidate;
            }
        }
        if (handler != nullptr) {
            if (auto error = handler->apply(entry, value)) {
                report(result.errors, key + ": " + *error);
            }
        } else if (std::find(unused_keys.begin(), unused_keys.end(), key) != unused_keys.end()) {
            report(result.warnings, key + ": accepted, not used by Sluice");
        } else {
            report(result.errors, key + ": unknown " + std::string(section) + " parameter");
        }
    }
    if (result.errors.empty()) {
        result.entry = std::move(entry);
    }
    return result;
}

}  // namespace

entry_result<database_entry> parse_database_entry(std::string_view name, std::string_view connstring,
                                                  const source_location& where) {
    return parse_entry<database_entry>(name, connstring, where, database_keys, unused_database_keys, "[databases]");
}

entry_result<user_entry> parse_user_entry(std::string_view name, std::string_view connstring,
                                          const source_location& where) {
    return parse_entry<user_entry>(name, connstring, where, user_keys, {}, "[users]");
}

}  // namespace sluice::config
