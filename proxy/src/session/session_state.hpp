#pragma once
// Session state a client leaves on a server under transaction pooling beyond the reported parameters of
// parameters.hpp: its own SET/RESET/set_config of other settings, remembered and replayed on whichever server it gets
// next, and state that cannot move between servers (session advisory locks, temporary tables, WITH HOLD cursors,
// SQL-level PREPARE), which pins the client to its server. No I/O: the relay hands it the SQL text of Query and Parse
// messages, the server's CommandComplete tags, ErrorResponses and ReadyForQuery, and sends the SQL it returns.
//
// Flow: scan() of a Query/Parse records the changes its statements make as pending, each numbered with the
// ReadyForQuery that ends it (the relay counts every ReadyForQuery, Sluice's own included). A SET/RESET is confirmed by
// its CommandComplete tag (on_set_tag). At that ReadyForQuery confirmed changes join the transaction's uncommitted
// ones, or are dropped after an ErrorResponse; at ReadyForQuery 'I' the uncommitted changes take effect unless the
// transaction failed or rolled back: PostgreSQL undoes a SET whose transaction aborts (sql-set.html), and SET LOCAL
// ends with its transaction. Pins are conservative: they take effect at their ReadyForQuery whatever happened;
// releases (pg_advisory_unlock_all, DISCARD ALL/TEMP, DEALLOCATE ALL, CLOSE ALL) only without an error. A partial
// release (pg_advisory_unlock, DROP, CLOSE name, DEALLOCATE name) cannot be judged from the text: at the end of its
// transaction the relay asks the server (pin_check_query) and the pin ends when nothing is left.
//
// LISTEN/UNLISTEN are changes like SET: committed channels are channels(), which the relay hands to its pool's
// listen_relay (net/listen_relay.hpp).
//
// Only what is recognised is remembered; a SET Sluice cannot parse (or a value past the memory bounds) leaves the
// server dirty as before (it is reset before the next client) and the client loses that value at its next server.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/protocol/message_types.hpp"

namespace sluice::session {

// Kinds of state that pin a client to its server (bit flags).
enum pin_kind : std::uint8_t {
    pin_advisory_lock = 1,
    pin_temp_table = 2,
    pin_hold_cursor = 4,
    pin_prepared = 8,
    pin_all = 15,
};
// "advisory lock, temporary table" for logs.
[[nodiscard]] std::string describe_pins(std::uint8_t pins);

// What scanning one SQL text found that the relay acts on.
struct scan_result {
    std::uint8_t pins = 0;    // pin kinds its statements take
    std::uint8_t unpins = 0;  // pin kinds its statements release entirely
    // Pin kinds its statements may have released in part (pg_advisory_unlock, DROP, CLOSE name, DEALLOCATE name):
    // whether anything is left is asked of the server at transaction end (pin_check_query).
    std::uint8_t may_unpin = 0;
    bool listen = false;  // a LISTEN or UNLISTEN (recorded as a change: the relay delivers notifications)
    // Why a LISTEN or UNLISTEN must be refused (a channel Sluice cannot read, such as U&"...", or too many channels);
    // empty when none is.
    std::string_view listen_refusal;
    bool server_dirty = false;  // changes settings without a SET tag (set_config): reset the server before reuse
    // Channels its LISTENs name, so that the relay can start listening before the client's own LISTEN commits.
    std::vector<std::string> listen_channels;
};

// PostgreSQL's form of a LISTEN/UNLISTEN channel name: `identifier` folded to lower case unless double-quoted, and
// cut to 63 bytes (NAMEDATALEN - 1) on a UTF-8 character boundary. nullopt when it is not a plain or quoted name.
[[nodiscard]] std::optional<std::string> channel_name(std::string_view identifier);

class session_state {
  public:
    static constexpr std::size_t max_values = 64;         // settings remembered per client
    static constexpr std::size_t max_value_bytes = 4096;  // longest value remembered
    static constexpr std::size_t max_pending = 256;       // changes awaiting their ReadyForQuery
    static constexpr std::size_t max_channels = 1024;     // LISTEN channels per client

    // Scans the SQL text of one Query or Parse. Setting changes are recorded in `state` (allocated on the first one)
    // as pending until ReadyForQuery number `ready`. `sql` need not be NUL-terminated.
    static scan_result scan(std::string_view sql, std::uint64_t ready, std::unique_ptr<session_state>& state);
    // Records pins and releases scan() found, when the pooler honours them (session_state_pinning = pin).
    static void expect_pins(std::uint8_t pins, std::uint8_t unpins, std::uint8_t may_unpin, std::uint64_t ready,
                            std::unique_ptr<session_state>& state);

    // A query whose CommandComplete tag "SELECT n" counts what still pins the session on its server: session advisory
    // locks, temporary relations, holdable cursors and SQL prepared statements. n = 0 means none.
    static constexpr std::string_view pin_check_query =
        "SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid() "
        "UNION ALL SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema() "
        "UNION ALL SELECT 1 FROM pg_catalog.pg_cursors WHERE is_holdable "
        "UNION ALL SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE from_sql";
    // True after a transaction that may have released the last pin ended (ReadyForQuery 'I') with pins left: the
    // relay should run pin_check_query when it can.
    [[nodiscard]] bool pin_check_due() const noexcept { return pin_check_due_; }
    // The relay sent pin_check_query, which ReadyForQuery number `ready` ends.
    void pin_check_sent(std::uint64_t ready) noexcept {
        pin_check_due_ = false;
        pin_check_ready_ = ready;
    }
    // A CommandComplete tag before ReadyForQuery number `ready`: if it answers pin_check_query, takes the count.
    // Returns true when that released every pin.
    bool on_pin_check_tag(std::uint64_t ready, std::string_view tag) noexcept;

    // CommandComplete "SET"/"RESET" before ReadyForQuery `ready`: false when no scanned statement accounts for it (the
    // caller then treats the server as holding state it cannot restore).
    [[nodiscard]] bool on_set_tag(std::uint64_t ready) noexcept;
    // CommandComplete "ROLLBACK" (ROLLBACK, a COMMIT of a failed transaction, ROLLBACK TO SAVEPOINT: the last drops
    // more than PostgreSQL does, so a SET before the savepoint is lost at the next server).
    void on_rollback_tag() noexcept { uncommitted_.clear(); }
    void on_error() noexcept { error_ = true; }
    // ReadyForQuery number `ready` with `status`. Returns true when the pins changed.
    bool on_ready(std::uint64_t ready, protocol::transaction_status status);

    // The channels the client listens on (committed LISTENs minus UNLISTENs), sorted.
    [[nodiscard]] const std::vector<std::string>& channels() const noexcept { return channels_; }
    // True once after on_ready committed a change to channels().
    [[nodiscard]] bool take_channels_changed() noexcept { return std::exchange(channels_changed_, false); }

    // Appends the statements that give a reset server this client's settings. Returns true if it appended any.
    bool append_restore(std::string& sql) const;
    [[nodiscard]] bool has_values() const noexcept { return !values_.empty(); }
    [[nodiscard]] std::uint8_t pins() const noexcept { return pins_; }
    // The remembered value of `name` (lower case) as it will be replayed, for tests and logs.
    [[nodiscard]] std::optional<std::string_view> value(std::string_view name) const noexcept;

    // Internal: a change a statement makes once confirmed (public for the scanner in session_state.cpp).
    struct change {
        enum class op : std::uint8_t {
            none,
            set_sql,
            set_string,
            reset,
            reset_all,
            discard_all,
            pin,
            unpin,
            may_unpin,     // pins: the kinds that may have been released in part
            listen,        // name: the channel
            unlisten,      // name: the channel
            unlisten_all,  // UNLISTEN *
        };
        op what = op::none;
        std::uint8_t pins = 0;
        bool expects_tag = false;  // a SET or RESET, answered by CommandComplete "SET"/"RESET"
        bool tag_seen = false;
        std::uint64_t ready = 0;
        std::string name;
        std::string value;
    };
    void add_pending(change c);

  private:
    struct setting {
        std::string name;
        std::string value;
        bool string_literal = false;  // from set_config: replayed through set_config, else through SET
    };
    void apply(const change& c);

    std::vector<change> pending_;
    std::vector<change> uncommitted_;
    std::vector<setting> values_;
    std::vector<std::string> channels_;
    std::uint8_t pins_ = 0;
    bool error_ = false;
    bool channels_changed_ = false;
    bool pin_check_wanted_ = false;  // a statement of the current transaction may have released a pin
    bool pin_check_due_ = false;
    std::uint64_t pin_check_ready_ = 0;  // the ReadyForQuery ending the pin check in flight; 0: none
};

}  // namespace sluice::session
