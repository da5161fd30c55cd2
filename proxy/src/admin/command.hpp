#pragma once
// The admin console's command language: what a client of the virtual database `pgbouncer` (or `sluice`) may send
// with the Simple Query protocol. Parsing only; executing a command is the net layer's job.
//
// Grammar (PgBouncer's admin.c, kept so that scripts written for PgBouncer parse the same way):
//   command  = ws* word [ws+ word] ws* [";" ws*]
//   set      = ws* "set" ws+ word ws* ("=" | "to") ws* (word | string) ws* [";" ws*]
//   word     = [A-Za-z0-9_]+ | '"' ( [^"] | '""' )* '"'        -- a quoted word may hold any character
//   string   = "'" ( [^'] | "''" )* "'"
//   ws       = space, tab, CR or LF
// Keywords are case-insensitive; database names keep their case. A database name with other characters than
// letters, digits and '_' must be double-quoted, as in PgBouncer.
// Deviation: an empty query (only whitespace and at most one ';') parses as command_kind::empty, so that a driver's
// ping (lib/pq sends ";") gets an EmptyQueryResponse; PgBouncer answers it with "invalid command".

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::admin {

enum class command_kind {
    empty,        // nothing but whitespace and ';'
    show,         // SHOW <subject> (also spelled SELECT <subject>, as PgBouncer allows)
    pause,        // PAUSE [db]
    resume,       // RESUME [db]
    reconnect,    // RECONNECT [db]
    kill,         // KILL [db] (no database: every database, PgBouncer 1.25)
    kill_client,  // KILL_CLIENT id
    suspend,      // SUSPEND
    reload,       // RELOAD
    shutdown,     // SHUTDOWN [WAIT_FOR_SERVERS | WAIT_FOR_CLIENTS]
    wait_close,   // WAIT_CLOSE [db]
    set,          // SET key = value
    enable,       // ENABLE db
    disable,      // DISABLE db
};

enum class shutdown_mode { immediate, wait_for_servers, wait_for_clients };

struct command {
    command_kind kind = command_kind::empty;
    // show: the subject in lower case, one is_show_subject() accepts (e.g. "pools", "stats_totals", "help").
    std::string subject;
    // pause, resume, reconnect, kill, wait_close: the database, empty for "all databases".
    // enable, disable: the database, never empty.
    std::string database;
    std::uint64_t client_id = 0;  // kill_client: the id column of SHOW CLIENTS
    shutdown_mode shutdown = shutdown_mode::immediate;
    std::string key;    // set: the setting name as written (unquoted)
    std::string value;  // set: the value, unquoted ('it''s' -> it's)

    friend bool operator==(const command&, const command&) = default;
};

// A command, or the error to send back: an ErrorResponse with `sqlstate` and `message`, then ReadyForQuery.
struct parse_result {
    std::optional<command> cmd;
    std::string_view sqlstate;  // set on failure: 42601 (syntax_error)
    std::string error;          // set on failure: the message, in PgBouncer's words

    [[nodiscard]] bool ok() const { return cmd.has_value(); }
};

// Parses one query string (the body of a Query message, without its terminating NUL). Never throws on any input.
// Errors use PgBouncer's messages ("invalid command '<query>', use SHOW HELP;", "a database is required",
// "invalid client pointer supplied", "bad arguments") with SQLSTATE 42601. PgBouncer itself sends 08P01, a class
// some drivers treat as "connection broken"; Sluice reports a syntax error as one.
[[nodiscard]] parse_result parse_command(std::string_view sql);

// True when only admin_users may run `cmd`; stats_users may run the rest. Everything but SHOW needs admin, except:
// SHOW FDS needs admin (it shows cancel keys; PgBouncer checks this too), and SET of a parameter PgBouncer fakes
// for drivers (is_ignored_parameter) is allowed to everyone because it changes nothing.
[[nodiscard]] bool command_needs_admin(const command& cmd);

// The CommandComplete tag PgBouncer sends on success: "SHOW", "PAUSE", "KILL_CLIENT", "SET key=value", ...
// (empty for command_kind::empty, which gets an EmptyQueryResponse instead).
[[nodiscard]] std::string command_tag(const command& cmd);

// Session parameters some drivers SHOW or SET on connect (client_encoding, datestyle, timezone, ...). PgBouncer
// answers SHOW with a fixed value (see render_show) and SET with a NOTICE "SET ignored" and tag "SET".
// Case-insensitive.
[[nodiscard]] bool is_ignored_parameter(std::string_view name);

// Every subject SHOW accepts, lower case: PgBouncer 1.25's list plus "help" and the ignored parameters.
[[nodiscard]] bool is_show_subject(std::string_view lower_case_subject);

}  // namespace sluice::admin
