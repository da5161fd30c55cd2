#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.hpp"
#include "config/settings.hpp"

namespace sluice::config {

// Where an entry was defined, for messages. Not part of an entry's identity: it always compares equal, so
// that == on entries answers "does this entry route and limit the same way" across a RELOAD that only
// moved lines.
struct source_location {
    std::string file;
    int line = 0;

    friend bool operator==(const source_location&, const source_location&) { return true; }
};

// [databases] load_balance_hosts: how a host list is walked.
enum class load_balance_hosts { round_robin, disable };
[[nodiscard]] std::string_view to_string(load_balance_hosts value);

// One [databases] line: `name = key=value ...` (PgBouncer docs, "Section [databases]"). Unset optionals
// fall back to the [pgbouncer] setting of the same meaning.
struct database_entry {
    std::string name;                   // the name clients connect to; "*" for the fallback entry
    std::vector<std::string> hosts;     // host=, comma-separated; empty: Unix socket in unix_socket_dir.
                                        // A host starting with '/' is a socket directory, '@' an abstract socket
    int port = 5432;                    // also names the Unix socket (.s.PGSQL.<port>)
    std::optional<std::string> dbname;  // unset: the database name the client asked for
    std::optional<std::string> user;    // forced server user: all clients share one pool per database
    std::optional<std::string> password;
    std::optional<std::string> auth_user;
    std::optional<std::string> auth_query;
    std::optional<std::string> auth_dbname;
    std::optional<int> pool_size;
    std::optional<int> min_pool_size;
    std::optional<int> reserve_pool_size;  // also spelled reserve_pool
    std::optional<int> max_db_connections;
    std::optional<int> max_db_client_connections;
    std::optional<std::string> connect_query;
    std::optional<::sluice::config::pool_mode> pool_mode;
    std::optional<std::chrono::microseconds> server_lifetime;
    std::optional<std::chrono::microseconds> query_wait_timeout;  // -1 in the file means unset
    std::optional<std::string> client_encoding;
    std::optional<std::string> datestyle;
    std::optional<std::string> timezone;
    std::optional<std::string> application_name;  // Sluice extension: PgBouncer does not document it
    std::optional<::sluice::config::load_balance_hosts> load_balance_hosts;
    source_location defined_at;

    friend bool operator==(const database_entry&, const database_entry&) = default;
};

// One [users] line: `name = key=value ...` (PgBouncer docs, "Section [users]"). Unset optionals fall back to
// the database entry, then to the [pgbouncer] setting.
struct user_entry {
    std::string name;
    std::optional<::sluice::config::pool_mode> pool_mode;
    std::optional<int> pool_size;
    std::optional<int> reserve_pool_size;
    std::optional<int> max_user_connections;
    std::optional<int> max_user_client_connections;
    std::optional<std::chrono::microseconds> query_timeout;
    std::optional<std::chrono::microseconds> query_wait_timeout;  // -1 in the file means unset
    std::optional<std::chrono::microseconds> idle_transaction_timeout;
    std::optional<std::chrono::microseconds> transaction_timeout;
    std::optional<std::chrono::microseconds> client_idle_timeout;
    source_location defined_at;

    friend bool operator==(const user_entry&, const user_entry&) = default;
};

// PgBouncer's connection-string syntax: whitespace-separated `key=value` pairs, optional spaces around '=',
// a value either runs to the next whitespace or is single-quoted with '' standing for one quote. Keys are
// lower-cased. The pairs come back in order, duplicates included.
struct connstring_pair {
    std::string key;
    std::string value;
};
struct connstring_result {
    std::vector<connstring_pair> pairs;
    std::string error;  // empty on success

    [[nodiscard]] bool ok() const { return error.empty(); }
};
[[nodiscard]] connstring_result parse_connstring(std::string_view text);

// An entry, or why not. Diagnostics name `where` and use the entry name as key; the message starts with the
// connection-string key it concerns. Warnings (keys accepted but not used) do not prevent the entry.
template <class Entry>
struct entry_result {
    std::optional<Entry> entry;
    std::vector<diagnostic> errors;
    std::vector<diagnostic> warnings;
};

[[nodiscard]] entry_result<database_entry> parse_database_entry(std::string_view name, std::string_view connstring,
                                                                const source_location& where);
[[nodiscard]] entry_result<user_entry> parse_user_entry(std::string_view name, std::string_view connstring,
                                                        const source_location& where);

}  // namespace sluice::config
