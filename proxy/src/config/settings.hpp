#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/values.hpp"

namespace sluice::config {

enum class pool_mode { session, transaction, statement };

// PgBouncer's keywords, spelled scram-sha-256 etc. in the file. PgBouncer also has ldap and pam, which Sluice
// rejects as unsupported.
enum class auth_type { scram_sha_256, md5, plain, trust, cert, hba, any };

// client_tls_sslmode / server_tls_sslmode; keywords disable, allow, prefer, require, verify-ca, verify-full.
enum class ssl_mode { disable, allow, prefer, require, verify_ca, verify_full };

// session_state_pinning: what transaction pooling does with session state that cannot move between servers (session
// advisory locks, temporary tables, WITH HOLD cursors, SQL PREPARE): keep the client on its server, or refuse it.
enum class session_state_pinning { pin, refuse };

// client_tls_protocols / server_tls_protocols. Keywords: tlsv1.0 tlsv1.1 tlsv1.2 tlsv1.3, and the shortcuts
// all (every version), secure (1.2 and 1.3, the default) and legacy (= all), comma-separated.
struct tls_protocols {
    bool tls_1_0 = false;
    bool tls_1_1 = false;
    bool tls_1_2 = true;
    bool tls_1_3 = true;

    friend bool operator==(const tls_protocols&, const tls_protocols&) = default;
};

[[nodiscard]] std::string_view to_string(pool_mode value);
[[nodiscard]] std::string_view to_string(auth_type value);
[[nodiscard]] std::string_view to_string(ssl_mode value);
[[nodiscard]] std::string_view to_string(session_state_pinning value);
[[nodiscard]] parsed<pool_mode> parse_pool_mode(std::string_view text);
[[nodiscard]] parsed<auth_type> parse_auth_type(std::string_view text);
[[nodiscard]] parsed<ssl_mode> parse_ssl_mode(std::string_view text);
[[nodiscard]] parsed<session_state_pinning> parse_session_state_pinning(std::string_view text);

// Every [pgbouncer] / [sluice] setting Sluice reads, declared once. Each row produces a field of `settings`
// with its default, and (in settings.cpp) the parser, the SHOW CONFIG formatter, the reload rule and the
// description used by the docs. Columns:
//   name     the key in the file and the field name
//   type     field type; times are std::chrono::microseconds parsed from fractional seconds
//   default  PgBouncer's default unless noted in the description
//   parser   how the value text is read (see settings.cpp): integer(min, max), seconds(), path(), ...
//   applies  reload: a RELOAD applies the new value; restart: a change is ignored until restart
//   origin   pgbouncer: a PgBouncer setting; sluice: a Sluice extension (PgBouncer rejects the key)
//   description  one line for docs/settings.md and SHOW CONFIG help
// Fields of type std::optional are "not set" when absent or given an empty value. Relative paths (parser
// path()) are resolved against the directory of the file the line is in (Sluice choice; PgBouncer uses its
// working directory).
// clang-format off
#define SLUICE_SETTINGS(X)                                                                                             \
    /* Generic settings */                                                                                             \
    X(logfile, std::optional<std::string>, std::nullopt, path(), reload, pgbouncer,                                    \
      "Log file, written in addition to stderr; reopened on RELOAD")                                                   \
    X(pidfile, std::optional<std::string>, std::nullopt, path(), restart, pgbouncer,                                   \
      "File the process id is written to at startup")                                                                  \
    X(listen_addr, std::vector<std::string>, {}, list(), restart, pgbouncer,                                           \
      "Comma-separated TCP addresses to listen on; * means all; empty means Unix socket only")                         \
    X(listen_port, int, 6432, integer(1, 65535), restart, pgbouncer,                                                   \
      "Port for TCP and for the Unix socket name (.s.PGSQL.<port>)")                                                   \
    X(unix_socket_dir, std::string, "/tmp", plain_text(), restart, pgbouncer,                                          \
      "Directory of the listening Unix socket, also used for servers without host=; empty disables")                   \
    X(unix_socket_mode, int, 0777, octal_mode(), restart, pgbouncer,                                                   \
      "File mode of the Unix socket")                                                                                  \
    X(unix_socket_group, std::optional<std::string>, std::nullopt, optional_text(), restart, pgbouncer,                \
      "Group owning the Unix socket")                                                                                  \
    X(listen_backlog, int, 128, integer(0, INT32_MAX), restart, pgbouncer,                                             \
      "Backlog argument of listen(2)")                                                                                 \
    X(so_reuseport, bool, false, boolean(), restart, pgbouncer,                                                        \
      "Set SO_REUSEPORT on TCP listening sockets")                                                                     \
    X(user, std::optional<std::string>, std::nullopt, optional_text(), restart, pgbouncer,                             \
      "Unix user to switch to after startup (only when started as root)")                                              \
    X(workers, int, 0, integer(0, 1024), restart, sluice,                                                              \
      "Worker threads, each with its own event loop; 0 means one per CPU core")                                        \
    X(pool_mode, ::sluice::config::pool_mode, ::sluice::config::pool_mode::transaction, enumeration(), reload,         \
      pgbouncer, "When a server returns to the pool: session, transaction or statement (PgBouncer: session)")          \
    X(max_client_conn, int, 100, integer(1, INT32_MAX), reload, pgbouncer,                                             \
      "Maximum number of client connections")                                                                          \
    X(default_pool_size, int, 20, integer(0, INT32_MAX), reload, pgbouncer,                                            \
      "Server connections per user/database pair, unless pool_size overrides it")                                      \
    X(min_pool_size, int, 0, integer(0, INT32_MAX), reload, pgbouncer,                                                 \
      "Open server connections until a pool has this many; 0 disables")                                                \
    X(reserve_pool_size, int, 0, integer(0, INT32_MAX), reload, pgbouncer,                                             \
      "Extra connections a pool may open once a client waited reserve_pool_timeout; 0 disables")                       \
    X(reserve_pool_timeout, std::chrono::microseconds, std::chrono::seconds(5), seconds(), reload, pgbouncer,          \
      "How long a client waits before the reserve pool is used; 0 disables")                                           \
    X(max_db_connections, int, 0, integer(0, INT32_MAX), reload, pgbouncer,                                            \
      "Server connections per database across all users; 0 means unlimited")                                           \
    X(max_db_client_connections, int, 0, integer(0, INT32_MAX), reload, pgbouncer,                                     \
      "Client connections per database; 0 means unlimited")                                                            \
    X(max_user_connections, int, 0, integer(0, INT32_MAX), reload, pgbouncer,                                          \
      "Server connections per user across all databases; 0 means unlimited")                                           \
    X(max_user_client_connections, int, 0, integer(0, INT32_MAX), reload, pgbouncer,                                   \
      "Client connections per user; 0 means unlimited")                                                                \
    X(server_round_robin, bool, false, boolean(), reload, pgbouncer,                                                   \
      "Reuse idle server connections round-robin instead of last-in first-out")                                        \
    X(track_extra_parameters, std::vector<std::string>, {"IntervalStyle"}, list(), reload, pgbouncer,                  \
      "Reported parameters tracked per client besides client_encoding, datestyle, timezone, "                          \
      "standard_conforming_strings and application_name")                                                              \
    X(ignore_startup_parameters, std::vector<std::string>, {}, list(), reload, pgbouncer,                              \
      "Startup parameters accepted and ignored instead of refused")                                                    \
    X(disable_pqexec, bool, false, boolean(), restart, pgbouncer,                                                      \
      "Refuse the Simple Query protocol")                                                                              \
    X(application_name_add_host, bool, false, boolean(), reload, pgbouncer,                                            \
      "Append the client's address and port to application_name at connection start")                                  \
    X(stats_period, std::chrono::microseconds, std::chrono::seconds(60), seconds(), reload, pgbouncer,                 \
      "How often averages are updated and statistics are logged")                                                      \
    X(max_prepared_statements, int, 200, integer(0, INT32_MAX), reload, pgbouncer,                                     \
      "Protocol-level prepared statements kept per server connection in transaction/statement pooling; "               \
      "0 disables tracking")                                                                                           \
    X(max_prepared_statement_bytes_per_client, std::size_t, std::size_t{16} << 20, bytes(1024, INT64_MAX), reload,      \
      sluice, "Prepared statement text one client may hold; a Parse beyond it gets 54000")                            \
    X(max_prepared_statement_bytes, std::size_t, std::size_t{512} << 20, bytes(1024, INT64_MAX), reload, sluice,        \
      "Prepared statement text held by the whole pooler (shared between clients); a Parse beyond it gets 54000")      \
    X(track_session_state, bool, true, boolean(), reload, sluice,                                                      \
      "Restore each client's session state (its SETs) on whichever server it is given in transaction pooling")       \
    X(session_state_pinning, ::sluice::config::session_state_pinning, ::sluice::config::session_state_pinning::pin,     \
      enumeration(), reload, sluice,                                                                                   \
      "Transaction pooling with state that cannot move between servers (session advisory locks, temporary tables, "   \
      "WITH HOLD cursors, SQL PREPARE): pin keeps the client on its server, refuse answers 0A000")                    \
    X(listen_relay, bool, true, boolean(), reload, sluice,                                                             \
      "Transaction pooling: deliver the notifications of a client's LISTEN through a server connection of Sluice's "   \
      "own while the client holds no server; off answers LISTEN with 0A000")                                          \
    X(scram_iterations, int, 4096, integer(1, INT32_MAX), reload, pgbouncer,                                           \
      "PBKDF2 iterations when Sluice derives a SCRAM secret from a plain-text password")                               \
    /* Authentication */                                                                                               \
    X(auth_type, ::sluice::config::auth_type, ::sluice::config::auth_type::scram_sha_256, enumeration(), reload,       \
      pgbouncer, "Client authentication: scram-sha-256, md5, plain, trust, cert, hba or any (PgBouncer: md5)")         \
    X(auth_file, std::optional<std::string>, std::nullopt, path(), reload, pgbouncer,                                  \
      "File of \"user\" \"password-or-secret\" lines")                                                                 \
    X(auth_hba_file, std::optional<std::string>, std::nullopt, path(), reload, pgbouncer,                              \
      "pg_hba.conf-style file used when auth_type is hba")                                                             \
    X(auth_user, std::optional<std::string>, std::nullopt, optional_text(), reload, pgbouncer,                         \
      "User that runs auth_query for users missing from auth_file")                                                    \
    X(auth_query, std::string,                                                                                         \
      "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid "                 \
      "WHERE rolname=$1 AND rolcanlogin",                                                                              \
      plain_text(), reload, pgbouncer, "Query returning (user name, password or secret) for $1")                       \
    X(auth_dbname, std::optional<std::string>, std::nullopt, optional_text(), reload, pgbouncer,                       \
      "[databases] entry auth_query runs in; unset: the client's database")                                            \
    X(auth_query_timeout, std::chrono::microseconds, std::chrono::seconds(5), seconds(), restart, sluice,              \
      "How long a login waits for auth_query (connection included) before failing with 08006")                        \
    /* Logging */                                                                                                      \
    X(log_connections, bool, true, boolean(), reload, pgbouncer, "Log successful logins")                              \
    X(log_disconnections, bool, true, boolean(), reload, pgbouncer, "Log disconnections with reasons")                 \
    X(log_pooler_errors, bool, true, boolean(), reload, pgbouncer, "Log errors the pooler sends to clients")           \
    X(log_stats, bool, true, boolean(), reload, pgbouncer, "Log aggregated statistics every stats_period")             \
    X(verbose, int, 0, integer(0, INT32_MAX), reload, pgbouncer, "Log verbosity; 3 is the highest level")              \
    /* Console access */                                                                                               \
    X(admin_users, std::vector<std::string>, {}, list(), reload, pgbouncer,                                            \
      "Users allowed every admin console command")                                                                     \
    X(stats_users, std::vector<std::string>, {}, list(), reload, pgbouncer,                                            \
      "Users allowed read-only (SHOW) admin console commands")                                                         \
    /* Connection sanity checks and timeouts */                                                                        \
    X(server_reset_query, std::string, "DISCARD ALL", plain_text(), reload, pgbouncer,                                 \
      "Query run on a server released by a session-pooled client")                                                     \
    X(server_reset_query_always, bool, false, boolean(), reload, pgbouncer,                                            \
      "Run server_reset_query in every pool mode")                                                                     \
    X(server_check_delay, std::chrono::microseconds, std::chrono::seconds(30), seconds(), reload, pgbouncer,           \
      "A server idle longer than this is checked with server_check_query before reuse; 0 always checks")               \
    X(server_check_query, std::optional<std::string>, std::string(), check_query(), reload, pgbouncer,                 \
      "Liveness check query; <empty> (default) sends an empty query, an empty value disables checks")                  \
    X(server_fast_close, bool, false, boolean(), reload, pgbouncer,                                                    \
      "In session pooling, close servers marked for reconnect at the end of the transaction")                          \
    X(server_lifetime, std::chrono::microseconds, std::chrono::seconds(3600), seconds(), reload, pgbouncer,            \
      "Close an unused server connection older than this; 0 means use once")                                           \
    X(server_lifetime_jitter, std::chrono::microseconds, std::chrono::seconds(0), seconds(), reload, sluice,           \
      "Randomize each server's lifetime by up to plus or minus this, so servers opened together do not all "           \
      "close together")                                                                                                \
    X(server_idle_timeout, std::chrono::microseconds, std::chrono::seconds(600), seconds(), reload, pgbouncer,         \
      "Close a server connection idle longer than this; 0 disables")                                                   \
    X(server_connect_timeout, std::chrono::microseconds, std::chrono::seconds(15), seconds(), reload, pgbouncer,       \
      "Limit for connecting and logging in to a server")                                                               \
    X(server_login_retry, std::chrono::microseconds, std::chrono::seconds(15), seconds(), reload, pgbouncer,           \
      "After a failed server login, wait this long before trying again (clients fail fast meanwhile)")                 \
    X(client_login_timeout, std::chrono::microseconds, std::chrono::seconds(60), seconds(), reload, pgbouncer,         \
      "Disconnect a client that has not logged in within this time")                                                   \
    X(autodb_idle_timeout, std::chrono::microseconds, std::chrono::seconds(3600), seconds(), reload, pgbouncer,        \
      "Free pools of databases created from * after this long unused")                                                 \
    X(dns_max_ttl, std::chrono::microseconds, std::chrono::seconds(15), seconds(), reload, pgbouncer,                  \
      "How long DNS results are cached")                                                                               \
    X(query_wait_notify, std::chrono::microseconds, std::chrono::seconds(5), seconds(), reload, pgbouncer,             \
      "Send a waiting client a notice after this long in the queue; 0 disables")                                       \
    X(shutdown_timeout, std::chrono::microseconds, std::chrono::seconds(30), seconds(), reload, sluice,                \
      "On shutdown, how long clients get to finish before they are disconnected")                                      \
    /* Dangerous timeouts */                                                                                           \
    X(query_timeout, std::chrono::microseconds, std::chrono::seconds(0), seconds(), reload, pgbouncer,                 \
      "Cancel queries running longer than this; 0 disables")                                                           \
    X(query_wait_timeout, std::chrono::microseconds, std::chrono::seconds(120), seconds(), reload, pgbouncer,          \
      "Disconnect a client waiting longer than this for a server; 0 waits forever")                                    \
    X(cancel_wait_timeout, std::chrono::microseconds, std::chrono::seconds(10), seconds(), reload, pgbouncer,          \
      "Drop a cancel request waiting longer than this for a server; 0 waits forever")                                  \
    X(client_idle_timeout, std::chrono::microseconds, std::chrono::seconds(0), seconds(), reload, pgbouncer,           \
      "Disconnect clients idle longer than this; 0 disables")                                                          \
    X(idle_transaction_timeout, std::chrono::microseconds, std::chrono::seconds(0), seconds(), reload, pgbouncer,      \
      "Disconnect clients idle in a transaction longer than this; 0 disables")                                         \
    X(transaction_timeout, std::chrono::microseconds, std::chrono::seconds(0), seconds(), reload, pgbouncer,           \
      "Disconnect clients whose transaction lasts longer than this; 0 disables")                                       \
    X(suspend_timeout, std::chrono::microseconds, std::chrono::seconds(10), seconds(), reload, pgbouncer,              \
      "How long SUSPEND waits for buffers to flush")                                                                   \
    /* TLS */                                                                                                          \
    X(client_tls_sslmode, ::sluice::config::ssl_mode, ::sluice::config::ssl_mode::disable, enumeration(),              \
      reload, pgbouncer, "TLS for client connections")                                                                 \
    X(client_tls_key_file, std::optional<std::string>, std::nullopt, path(), reload, pgbouncer,                        \
      "Private key presented to clients")                                                                              \
    X(client_tls_cert_file, std::optional<std::string>, std::nullopt, path(), reload, pgbouncer,                       \
      "Certificate presented to clients")                                                                              \
    X(client_tls_ca_file, std::optional<std::string>, std::nullopt, path(), reload, pgbouncer,                         \
      "CA certificates that validate client certificates")                                                             \
    X(client_tls_protocols, ::sluice::config::tls_protocols, {}, protocols(), reload, pgbouncer,                       \
      "TLS versions allowed for clients")                                                                              \
    X(client_tls_ciphers, std::string, "default", plain_text(), reload, pgbouncer,                                     \
      "OpenSSL cipher list for client TLS 1.2 and lower")                                                              \
    X(client_tls13_ciphers, std::string, "", plain_text(), reload, pgbouncer,                                          \
      "TLS 1.3 cipher suites for clients; empty uses client_tls_ciphers")                                              \
    X(server_tls_sslmode, ::sluice::config::ssl_mode, ::sluice::config::ssl_mode::prefer, enumeration(),               \
      reload, pgbouncer, "TLS for server connections (older PgBouncer releases: disable)")                             \
    X(server_tls_key_file, std::optional<std::string>, std::nullopt, path(), reload, pgbouncer,                        \
      "Private key presented to servers")                                                                              \
    X(server_tls_cert_file, std::optional<std::string>, std::nullopt, path(), reload, pgbouncer,                       \
      "Certificate presented to servers")                                                                              \
    X(server_tls_ca_file, std::optional<std::string>, std::nullopt, path(), reload, pgbouncer,                         \
      "CA certificates that validate server certificates")                                                             \
    X(server_tls_protocols, ::sluice::config::tls_protocols, {}, protocols(), reload, pgbouncer,                       \
      "TLS versions allowed for servers")                                                                              \
    X(server_tls_ciphers, std::string, "default", plain_text(), reload, pgbouncer,                                     \
      "OpenSSL cipher list for server TLS 1.2 and lower")                                                              \
    X(server_tls13_ciphers, std::string, "", plain_text(), reload, pgbouncer,                                          \
      "TLS 1.3 cipher suites for servers; empty uses server_tls_ciphers")                                              \
    /* Low-level network settings */                                                                                   \
    X(pkt_buf, std::size_t, 4096, bytes(512, INT32_MAX), restart, pgbouncer,                                           \
      "Size of the per-connection packet buffer")                                                                      \
    X(max_packet_size, std::size_t, 2147483647, bytes(5, INT32_MAX), reload, pgbouncer,                                \
      "Largest protocol message let through")                                                                          \
    X(sbuf_loopcnt, int, 5, integer(0, INT32_MAX), reload, pgbouncer,                                                  \
      "Buffers processed for one connection before serving others; 0 means no limit")                                  \
    X(tcp_keepalive, bool, true, boolean(), reload, pgbouncer, "Enable TCP keepalive")                                 \
    X(tcp_keepidle, std::chrono::seconds, std::chrono::seconds(0), whole_seconds(), reload, pgbouncer,                 \
      "TCP_KEEPIDLE; 0 keeps the OS default")                                                                          \
    X(tcp_keepintvl, std::chrono::seconds, std::chrono::seconds(0), whole_seconds(), reload, pgbouncer,                \
      "TCP_KEEPINTVL; 0 keeps the OS default")                                                                         \
    X(tcp_keepcnt, int, 0, integer(0, INT32_MAX), reload, pgbouncer, "TCP_KEEPCNT; 0 keeps the OS default")            \
    X(tcp_user_timeout, std::chrono::milliseconds, std::chrono::milliseconds(0), milliseconds(), reload,               \
      pgbouncer, "TCP_USER_TIMEOUT; 0 keeps the OS default")                                                           \
    /* Metrics (Sluice) */                                                                                             \
    X(metrics_addr, std::string, "127.0.0.1", plain_text(), restart, sluice,                                           \
      "Address of the Prometheus /metrics endpoint")                                                                   \
    X(metrics_port, int, 9127, integer(0, 65535), restart, sluice,                                                     \
      "Port of the Prometheus /metrics endpoint; 0 turns it off")
// clang-format on

struct settings {
#define SLUICE_SETTINGS_FIELD(name, type, default_value, parser, applies, origin, description) \
    type name = default_value;
    SLUICE_SETTINGS(SLUICE_SETTINGS_FIELD)
#undef SLUICE_SETTINGS_FIELD

    friend bool operator==(const settings&, const settings&) = default;
};

enum class applies_on { reload, restart };
enum class setting_origin { pgbouncer, sluice };

// One row of the settings table. The function pointers operate on the field the row describes.
struct setting_def {
    std::string_view name;
    applies_on applies;
    setting_origin origin;
    std::string_view unit;  // "seconds", "milliseconds", "bytes", "path", "octal", "list", or empty
    std::string_view description;
    // Parses `value` into the field. `base_dir` resolves relative paths (empty: leave them relative).
    // Returns an error phrase (see values.hpp) and leaves `target` unchanged on failure.
    std::optional<std::string> (*assign)(settings& target, std::string_view value, const std::string& base_dir);
    // The value in the syntax the file uses, as SHOW CONFIG prints it; parsing it again gives the same value.
    std::string (*format)(const settings& source);
};

// All rows, in declaration order.
[[nodiscard]] std::span<const setting_def> all_settings();

// Case-insensitive lookup; nullptr for names that are not typed settings.
[[nodiscard]] const setting_def* find_setting(std::string_view name);

// PgBouncer settings Sluice accepts so that a PgBouncer file loads, but does not act on.
struct unused_setting {
    std::string_view name;
    std::string_view reason;
};
[[nodiscard]] std::span<const unused_setting> accepted_unused_settings();
[[nodiscard]] const unused_setting* find_unused_setting(std::string_view name);

// What changed between two configurations, for RELOAD: each changed setting and whether it needs a restart.
struct setting_change {
    std::string_view name;
    applies_on applies;
    std::string old_value;
    std::string new_value;
};
[[nodiscard]] std::vector<setting_change> diff_settings(const settings& before, const settings& after);

}  // namespace sluice::config
