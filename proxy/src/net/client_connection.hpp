#pragma once
// A client connection: login, then the relay between the client and whichever server it holds.
//
// Flow: login (coroutine: startup packet, authentication, welcome) -> idle <-> waiting -> active -> idle ... -> closed.
// idle: no server; the client's socket has a read armed. A busy client keeps its relay block and buffers between
//   transactions (a receive straight into up.in, no allocation); one that rests for a second holds no buffer, only a
//   read-wait.
// waiting: the client sent a message and queues in its pool shard for a server.
// active: attached to a server. Two pumps move bytes, each from one socket's receive buffer straight to the other
//   socket (no copy for forwarded messages): `up` (client -> server) and `down` (server -> client). The relay reads
//   with non-blocking read_some until the socket is drained and writes a whole batch with one writev, so many messages
//   cost one syscall each way. In transaction mode the server is released at ReadyForQuery 'I' once nothing is
//   outstanding (session::transaction_tracker).
// All of it runs on the client's worker thread; the attached server is always on the same worker.

#include <boost/intrusive/list.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "auth/scram.hpp"
#include "net/asio_fwd.hpp"
#include "net/io_buffer.hpp"
#include "net/pool.hpp"
#include "net/runtime.hpp"
#include "net/tls.hpp"
#include "net/worker.hpp"
#include "session/parameters.hpp"
#include "session/session_state.hpp"
#include "session/statement_relay.hpp"
#include "session/transaction_tracker.hpp"
#include "sluice/protocol/splitter.hpp"

namespace sluice::net {

enum class client_state : std::uint8_t { login, idle, waiting, active, closed };
[[nodiscard]] const char* to_string(client_state s) noexcept;

// One direction of the relay: bytes read from a source socket, and the batch queued for the destination socket.
// A batch is a list of segments, each either a range of `in` (forwarded untouched) or a range of `injected` (bytes
// Sluice generated). Bytes of `in` that are scanned but not queued are dropped when the batch completes.
struct relay_pump {
    struct segment {
        std::size_t offset;
        std::size_t length;
        bool injected;
    };

    io_buffer in;
    std::string injected;
    std::vector<segment> batch;
    std::size_t batch_bytes = 0;
    std::size_t written = 0;  // bytes of the batch already written
    std::size_t scanned = 0;  // bytes of `in` (from its start) already scanned into the batch or dropped
    protocol::message_splitter splitter;
    bool write_waiting = false;  // a write-wait on the destination is pending

    // Inline: called for every message relayed. Adjacent ranges of `in` merge into one segment.
    void queue_in(std::size_t offset, std::size_t length) {
        if (length == 0)
            return;
        if (!batch.empty() && !batch.back().injected && batch.back().offset + batch.back().length == offset) {
            batch.back().length += length;
        } else {
            batch.push_back({offset, length, false});
        }
        batch_bytes += length;
    }
    void queue_injected(std::string_view bytes);
    [[nodiscard]] bool batch_pending() const noexcept { return written < batch_bytes; }
    // A write of the batch has started and not finished: the batch must not change any more.
    [[nodiscard]] bool writing() const noexcept { return write_waiting || (written > 0 && written < batch_bytes); }
    // After the whole batch is written: drops scanned input and resets the batch.
    void complete_batch() noexcept;
};

// The relay state a client needs only while it relays: from its first bytes after login (or a reply queued for it)
// until it has been idle with nothing pending. An idle client holds none of it (idle memory per client); busy clients
// keep it across transactions, so the hot path allocates nothing (client_connection::release_relay_if_idle).
struct relay_state {
    relay_pump up;    // client -> server
    relay_pump down;  // server -> client
    protocol::split_policy up_policy;
    session::transaction_tracker tracker;
    std::uint32_t swallow_ready = 0;  // ReadyForQuery of Sluice's own injected queries still to come
    bool up_needs_growth = false;     // a message that must be seen whole waits for the receive buffer to grow
    bool resume_up = false;           // statements_ stopped holding while the up batch was being written
    // Transaction and query timing for SHOW STATS and metrics.
    bool in_xact = false;
    bool in_query = false;
    bool query_timeout_cancel_sent = false;
    steady_clock::time_point xact_start{};
    steady_clock::time_point query_start{};
    std::string rewritten;  // bytes statements_ sends in place of (part of) a message; reused
    std::string scratch;    // reused for generated messages
    // While the client waits in a pool queue (which does not own its entries) nothing else may hold it. Here rather
    // than in client_connection because a waiting client always holds its relay block (idle memory per client).
    std::shared_ptr<client_connection> keep_alive;
    steady_clock::time_point wait_started{};  // when the current wait began (here for the same reason)
};

class client_connection : public std::enable_shared_from_this<client_connection>,
                          public worker_hook,
                          public shard_client_hook,
                          public cancel_registry_hook {
  public:
    client_connection(worker& w, stream_socket socket, std::string peer);
    ~client_connection();

    void start();

    // --- called by the pool shard, on this worker ---
    void on_server_assigned(std::shared_ptr<server_connection> server);
    void on_server_failed(const server_error& err);
    // --- called on this worker ---
    void forward_cancel();
    // Shutdown: `idle_only` closes the client only between transactions (SIGTERM drain), otherwise always; the client
    // is told 57P01 first.
    void shutdown_notice(bool idle_only);
    void tick(steady_clock::time_point now);
    // --- pool control (client_control.cpp), on this worker ---
    // query_wait_notify: sends `notice` (a whole NoticeResponse) to this waiting client, once per wait.
    void send_wait_notice(std::string_view notice);
    [[nodiscard]] bool wait_notified() const noexcept { return wait_notified_; }
    // KILL / DISABLE: tells the client `sqlstate` `message` (FATAL) and closes it, whatever its state.
    void kill(std::string_view sqlstate, std::string_view message);
    // A NotificationResponse (whole message) for a channel this client LISTENs on, from its pool's listen_relay. Sent
    // at once unless the client is inside a transaction, then after it, as PostgreSQL does.
    void deliver_notification(std::string_view message);
    // The listen_relay now listens on every channel this client committed: its held ReadyForQuery can go.
    void on_listen_confirmed();
    // SIGTERM drain: true once this client has had its last transaction (see runtime::drain_started_ticks).
    [[nodiscard]] bool drain_done(steady_clock::time_point now) const noexcept;

    [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
    [[nodiscard]] client_state state() const noexcept { return state_; }
    // While waiting for a server.
    [[nodiscard]] steady_clock::time_point wait_started() const noexcept {
        return relay_ ? relay_->wait_started : steady_clock::time_point{};
    }
    [[nodiscard]] std::string_view database() const noexcept { return {names_.data(), database_length_}; }
    [[nodiscard]] std::string_view user() const noexcept {
        return {names_.data() + database_length_, names_.size() - database_length_};
    }
    [[nodiscard]] const std::string& peer() const noexcept { return peer_; }
    // Adds this client's row to a snapshot and its counts to its pool's row. On this worker's thread.
    void fill_snapshot(stats::connection_row& row) const;
    [[nodiscard]] const std::shared_ptr<pool>& pool_ptr() const noexcept { return pool_; }
    [[nodiscard]] bool in_transaction() const noexcept { return relay_ && relay_->in_xact; }
    [[nodiscard]] steady_clock::time_point transaction_start() const noexcept {
        return relay_ ? relay_->xact_start : steady_clock::time_point{};
    }
    // Holds its server past transaction end for state that cannot move (session_state.hpp).
    [[nodiscard]] bool pinned() const noexcept { return session_state_ && session_state_->pins() != 0; }
    // Has LISTEN channels the pool's listen relay serves.
    [[nodiscard]] bool listening() const noexcept {
        return listen_ && listen_->relay && session_state_ && !session_state_->channels().empty();
    }
    [[nodiscard]] bool idle_in_transaction() const noexcept {
        return server_ && !tracker().awaiting_results() && tracker().status() != protocol::transaction_status::idle;
    }
    [[nodiscard]] const server_connection* server() const noexcept { return server_.get(); }
    [[nodiscard]] const session::parameter_set& parameters() const noexcept { return parameters_; }
    // Whether the relay block is allocated (tests: an idle client holds none).
    [[nodiscard]] bool holds_relay_state() const noexcept { return relay_ != nullptr; }

  private:
    friend class cancel_registry;  // sets and reads cancel_key_

    // Login (client_login.cpp).
    asio::awaitable<void> run_login();
    // Login reads go through login_'s buffer: one non-blocking read takes a whole small message (often several).
    asio::awaitable<bool> login_fill();
    asio::awaitable<bool> login_need(std::size_t bytes);
    asio::awaitable<bool> login_take(char* data, std::size_t size);
    asio::awaitable<bool> read_startup(std::string& packet);
    asio::awaitable<bool> read_message(char& type, std::string& body, std::size_t max_length);
    asio::awaitable<bool> write_all(std::string& bytes);
    // `db`: the client's database entry, for auth_query; nullptr (the admin console): auth_file only.
    asio::awaitable<bool> authenticate(const config::database_entry* db = nullptr);
    void finish_login();
    void send_welcome(const std::vector<std::pair<std::string, std::string>>& server_parameters);
    asio::awaitable<void> handle_cancel_request(std::uint32_t pid, std::uint32_t key);
    // Answers an SSLRequest with 'S' and runs the handshake (client_login_timeout still applies); false when the
    // client is gone or the handshake failed (the connection is then closed).
    asio::awaitable<bool> start_tls(const tls_context& ctx);
    // GCC 12 destroys class-type temporaries in a co_await expression twice: callers pass views of named strings.
    asio::awaitable<void> fail_login(std::string_view sqlstate, std::string_view message);
    // Admin console (admin_console.cpp): PgBouncer's SHOW/PAUSE/RELOAD... on the virtual database "pgbouncer".
    asio::awaitable<void> run_admin_console();
    asio::awaitable<std::shared_ptr<stats::snapshot>> async_snapshot();

    // Relay (client_relay.cpp).
    // The relay block, allocated on first use; the const accessors read an empty block instead of allocating one.
    // Inline: the relay calls these dozens of times per transaction (callgrind: ~1,000 instructions per transaction
    // as out-of-line calls).
    relay_state& relay() { return relay_ ? *relay_ : create_relay(); }
    [[nodiscard]] const relay_state& relay() const noexcept { return relay_ ? *relay_ : no_relay(); }
    relay_state& create_relay();
    [[nodiscard]] static const relay_state& no_relay() noexcept;
    relay_pump& up() { return relay().up; }
    relay_pump& down() { return relay().down; }
    [[nodiscard]] const relay_pump& up() const noexcept { return relay().up; }
    [[nodiscard]] const relay_pump& down() const noexcept { return relay().down; }
    session::transaction_tracker& tracker() { return relay().tracker; }
    [[nodiscard]] const session::transaction_tracker& tracker() const noexcept { return relay().tracker; }
    // How long an idle client keeps its relay block after its last activity (freed at the next tick after that).
    static constexpr std::chrono::seconds relay_keep_while_idle{1};
    // Frees the relay block of an idle client with nothing pending (no server, no bytes in flight, no write-wait).
    void release_relay_if_idle() noexcept;
    void start_relay();
    void arm_client_read();
    void arm_server_read();
    void on_client_readable(const error_code& ec);
    void on_client_received(const error_code& ec, std::size_t n);
    // Bytes are in up.in (`received` of them from a receive); `drain` reads the socket until it has no more.
    void on_client_data(std::size_t received, bool drain);
    void on_server_received(const error_code& ec, std::size_t n, std::uint64_t server_generation);
    // Bytes are in down.in (the server said EOF after them if `eof`); `drain` reads the socket until it has no more.
    void on_server_data(bool eof, bool drain);
    void on_server_readable(const error_code& ec, std::uint64_t server_generation);
    void process_up();
    void process_down();
    void flush_up();
    void flush_down();
    void maybe_release_server();
    // True when the transaction is over and nothing is outstanding: maybe_release_server would release the server.
    [[nodiscard]] bool server_release_due() const noexcept;
    void record_ready_for_query();
    void request_server();
    // A named Parse + Sync of a statement some server already accepted, answered without a server.
    bool answer_parse_without_server();
    void detach_server_from(const std::shared_ptr<server_connection>& server);
    // Adds what `sql` (run before the server is handed on) needs for the server's prepared statements, and forgets
    // them when `sql` drops them.
    static void add_statement_reset(server_connection& server, std::vector<std::string>& sql);
    // Named Parse/Describe/Close or a Bind head not complete in `pending`: false after a protocol violation.
    bool wait_for_inspected_message(std::span<const char> pending);
    // Moves the answers statements_ owes the client into the down batch.
    void queue_due_answers();
    // Session state in transaction pooling (session_state.hpp): scans a whole Query or Parse `message` the client
    // sends. True when it queued a replacement instead (a refused LISTEN or pin; only if `replaceable`, i.e. the
    // statement relay forwards the message untouched); the caller then skips the message.
    bool inspect_session_sql(char type, std::span<const char> message, bool replaceable);
    // The client's committed LISTEN channels changed (session_state::channels()): tell the pool's listen_relay.
    // A pinned client's transaction may have released its last pin (pg_advisory_unlock, DROP, ...): asks the server
    // (session_state::pin_check_query, swallowed) so that the pin ends without waiting for a disconnect.
    void send_pin_check();
    // False when the relay is not listening on all of them yet: the client's ReadyForQuery must wait.
    bool sync_listen_channels();
    // Sends the notifications waiting for this client if it is between transactions and its batch is free.
    void flush_notifications();
    void server_failed(std::string_view why);
    void protocol_violation(std::string_view why);
    void send_error_and_close(std::string_view sqlstate, std::string_view message);
    void close(std::string_view why);
    [[nodiscard]] bool has_complete_header() const noexcept;
    [[nodiscard]] std::string log_prefix() const;
    void set_names(std::string_view database, std::string_view user);

    // The runtime through worker_ rather than a member of its own (idle memory per client).
    [[nodiscard]] runtime& rt() const noexcept { return worker_.rt(); }

    worker& worker_;
    std::uint64_t id_;
    stream_socket socket_;
    // The TLS session on socket_ once the client negotiated TLS; null for plaintext (the relay's one branch).
    std::unique_ptr<tls_stream> tls_;
    std::string peer_;
    // The database and the user the client asked for, in one string (database first): one allocation at most, none
    // when both fit the string's inline buffer together (idle memory per client).
    std::string names_;
    std::shared_ptr<pool> pool_;
    pool_shard* shard_ = nullptr;                   // this worker's part of pool_
    std::shared_ptr<const config::config> config_;  // the config this client logged in under
    session::parameter_set parameters_;             // the client's view of the tracked parameters
    cancel_registry::key cancel_key_{};             // given by cancel_registry::add, with the client's place in it
    // Login-only state (client_login.cpp): the read-ahead buffer of login messages, the client_login_timeout deadline,
    // the keys a SCRAM login proved, the secret auth_query found. On the heap and freed when login ends, so that a
    // logged-in client does not carry it (idle memory per client).
    struct login_state;
    std::unique_ptr<login_state> login_;

    std::unique_ptr<relay_state> relay_;  // see relay_state; null while idle
    std::shared_ptr<server_connection> server_;
    std::uint64_t server_generation_ = 0;
    // Named prepared statements across servers (transaction pooling with max_prepared_statements > 0).
    // Created at the first server assignment that relays statements (or a Parse answered without a server), so that
    // a client that never prepares holds none of it; non-null whenever rewriting_statements_.
    std::unique_ptr<session::statement_relay> statements_;
    session::statement_relay& statements() {
        if (!statements_)
            statements_ = std::make_unique<session::statement_relay>(rt().statements());
        return *statements_;
    }
    // Only for clients that changed session state (SET, pins); null for the rest.
    std::unique_ptr<session::session_state> session_state_;
    // LISTEN under transaction pooling (listen_relay.hpp); null for clients that never sent LISTEN.
    struct listen_state {
        std::shared_ptr<listen_relay> relay;  // set once the client has channels
        std::string pending;                  // notifications waiting for the client's transaction to end
        // The ReadyForQuery that committed new channels waits (unscanned, already accounted for) in down_.in until
        // the relay listens on them.
        bool holding_ready = false;
        bool ready_accounted = false;
        bool held_forward = false;  // whether the held ReadyForQuery goes to the client (not Sluice's own)
    };
    std::unique_ptr<listen_state> listen_;
    std::uint64_t readies_ = 0;  // ReadyForQuery received (Sluice's own included): numbers session_state_'s changes
    // The small fields together, so that they share one word of padding (idle memory per client).
    client_state state_ = client_state::login;
    bool cancel_registered_ = false;
    bool counted_in_pool_ = false;  // holds a place under max_db/max_user_client_connections, given back when freed
    bool rewriting_statements_ = false;  // statements_ is attached to the current server
    bool client_read_armed_ = false;
    bool server_read_armed_ = false;
    bool relay_release_requested_ = false;  // release_relay_if_idle cancelled the client's receive into up.in
    bool client_eof_ = false;
    bool terminate_received_ = false;
    bool welcome_pending_ = false;       // waiting for a first server to learn the parameters to show at login
    bool wait_notified_ = true;          // the current wait was told query_wait_notify's notice
    std::uint32_t database_length_ = 0;  // database() is names_'s first database_length_ bytes

    steady_clock::time_point connect_time_{steady_clock::now()};
    steady_clock::time_point request_time_{};
    steady_clock::time_point last_activity_{steady_clock::now()};  // last bytes from the client
    steady_clock::time_point last_ready_{};                        // last ReadyForQuery forwarded
};

}  // namespace sluice::net
