#pragma once
// A connection from Sluice to a PostgreSQL server.
//
// Flow: connecting -> (login) -> idle <-> active (attached to one client) ... -> closed. While idle it sits in its
// pool shard's idle list with a read-wait armed, so that a server that closes (restart, pg_terminate_backend) is
// noticed and dropped at once rather than handed to a client. While active, the attached client drives all I/O.
// Between states a server may run a short maintenance query of Sluice's own (reset, rollback, check) with no client.

#include <boost/intrusive/list.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "auth/scram.hpp"
#include "net/asio_fwd.hpp"
#include "net/tls.hpp"
#include "session/parameters.hpp"
#include "session/prepared_statements.hpp"

namespace sluice::net {

class pool;
class pool_shard;
class client_connection;

enum class server_state { connecting, idle, active, maintenance, closed };
[[nodiscard]] const char* to_string(server_state s) noexcept;

struct server_list_tag;
using server_hook = boost::intrusive::list_base_hook<boost::intrusive::tag<server_list_tag>,
                                                     boost::intrusive::link_mode<boost::intrusive::safe_link>>;

// Why a server connection was closed; exported as a metric label and logged.
enum class close_reason {
    error,
    client_dirty,
    lifetime,
    idle_timeout,
    reload,
    shutdown,
    login_failed,
    admin,
    evicted,
    check_failed
};
[[nodiscard]] const char* to_string(close_reason r) noexcept;

// The outcome of a server login or maintenance query, in terms a client can be told.
struct server_error {
    std::string sqlstate;  // e.g. 08006, or the server's own code (28P01, 3D000)
    std::string message;
    [[nodiscard]] bool ok() const noexcept { return sqlstate.empty(); }
};

// Connects `socket` to a PostgreSQL address: TCP host:port, or the Unix socket <dir>/.s.PGSQL.<port> when `host` is a
// directory (starts with '/'). Host names are resolved asynchronously. The connection runs on `socket`'s io_context.
[[nodiscard]] asio::awaitable<error_code> async_connect_stream(stream_socket& socket, const std::string& host,
                                                               int port);

// Sends a CancelRequest for backend (pid, key) on a new connection, as PostgreSQL requires, and waits until
// PostgreSQL has taken it (it closes the connection). `tls` (server_tls_*): the cancel connection negotiates TLS like a
// server connection does; null or disabled: plaintext. `timeout` (cancel_wait_timeout; 0: none) bounds the whole
// exchange, so that an unreachable or stalled server cannot hold the cancel, and the server connection waiting for it,
// forever. Returns true when the time ran out after the request was written: PostgreSQL may still execute it later.
[[nodiscard]] asio::awaitable<bool> async_send_cancel(asio::io_context& ctx, std::string host, int port,
                                                      std::uint32_t pid, std::uint32_t key,
                                                      std::shared_ptr<const tls_context> tls,
                                                      std::chrono::microseconds timeout);

class server_connection : public std::enable_shared_from_this<server_connection>, public server_hook {
  public:
    server_connection(std::shared_ptr<pool> owner, pool_shard& shard, std::uint64_t id);
    ~server_connection();

    // Connects and logs in on the current shard's worker. On success the server is ready for queries and
    // parameters()/backend key are known.
    [[nodiscard]] asio::awaitable<server_error> async_connect_and_login();

    // Runs one simple Query (Sluice's own: reset, rollback, check) and waits for its ReadyForQuery, discarding the
    // results. Precondition: no client attached; the server's read-wait is not armed.
    [[nodiscard]] asio::awaitable<server_error> async_run_query(const std::string& sql);

    // Reads one whole message (type, and its body into message()); false on EOF/error/oversize. For a server no client
    // drives (maintenance, the LISTEN relay).
    [[nodiscard]] asio::awaitable<bool> async_read_message(char& type);
    [[nodiscard]] const std::string& message() const noexcept { return message_; }
    [[nodiscard]] asio::awaitable<bool> async_write_all(const std::string& bytes);

    std::uint64_t id() const noexcept { return id_; }
    pool& owner() noexcept { return *pool_; }
    const std::shared_ptr<pool>& owner_ptr() const noexcept { return pool_; }
    pool_shard& shard() noexcept { return *shard_; }
    void set_shard(pool_shard& s) noexcept { shard_ = &s; }

    stream_socket& socket() noexcept { return *socket_; }
    // The TLS session on socket(), null for plaintext. It moves with the server between workers.
    tls_stream* tls() noexcept { return tls_.get(); }
    [[nodiscard]] bool uses_tls() const noexcept { return tls_ != nullptr; }
    [[nodiscard]] bool has_socket() const noexcept { return socket_.has_value() && socket_->is_open(); }
    // For migration to another worker: gives up the descriptor (deregistering it here) / adopts it there.
    [[nodiscard]] int release_descriptor();
    void adopt_descriptor(asio::io_context& ctx, int fd);
    void close_socket() noexcept;

    server_state state() const noexcept { return state_; }
    void set_state(server_state s) noexcept {
        state_ = s;
        ++generation_;
    }
    // Incremented on every state change: a completion handler compares it to know it is stale.
    std::uint64_t generation() const noexcept { return generation_; }

    session::parameter_set& parameters() noexcept { return parameters_; }
    const std::vector<std::pair<std::string, std::string>>& login_parameters() const noexcept { return login_params_; }
    std::uint32_t backend_pid() const noexcept { return backend_pid_; }
    std::uint32_t backend_key() const noexcept { return backend_key_; }
    // Where to send a CancelRequest for this server.
    const std::string& host() const noexcept { return host_; }
    int port() const noexcept { return port_; }

    steady_clock::time_point connected_at() const noexcept { return connected_at_; }
    steady_clock::time_point last_used() const noexcept { return last_used_; }
    void touch() noexcept { last_used_ = steady_clock::now(); }
    steady_clock::time_point lifetime_deadline() const noexcept { return lifetime_deadline_; }
    // The pool sets it after login: server_lifetime, randomized by server_lifetime_jitter.
    void set_lifetime_deadline(steady_clock::time_point t) noexcept { lifetime_deadline_ = t; }

    client_connection* client = nullptr;  // attached client, when active
    bool idle_wait_armed = false;         // the pool's idle read-wait is pending
    bool session_dirty = false;           // a client ran SET/RESET: reset before the next client
    bool listening = false;               // a client ran LISTEN: UNLISTEN * before the next client
    // Named prepared statements this server holds (transaction pooling; session/statement_relay.hpp).
    session::server_statement_cache prepared_statements;
    int cancels_in_flight = 0;            // CancelRequests sent for this backend and not yet taken by PostgreSQL
    bool release_after_cancel = false;    // released while a cancel was in flight: hand on once it is taken
    bool cancel_unconfirmed = false;      // a cancel hit cancel_wait_timeout after being sent: never hand on
    std::uint64_t target_generation = 0;  // the pool's target_generation() at connect: older means close_needed

  private:
    [[nodiscard]] asio::awaitable<server_error> async_connect();
    // SSLRequest and handshake per server_tls_sslmode (TCP only); leaves tls_ null for plaintext.
    [[nodiscard]] asio::awaitable<server_error> async_start_tls();
    [[nodiscard]] asio::awaitable<server_error> async_login();

    std::shared_ptr<pool> pool_;
    pool_shard* shard_;
    std::uint64_t id_;
    std::optional<stream_socket> socket_;
    std::unique_ptr<tls_stream> tls_;
    server_state state_ = server_state::connecting;
    std::uint64_t generation_ = 0;
    session::parameter_set parameters_;
    std::vector<std::pair<std::string, std::string>> login_params_;
    std::uint32_t backend_pid_ = 0;
    std::uint32_t backend_key_ = 0;
    std::string host_;
    int port_ = 0;
    steady_clock::time_point connected_at_{};
    steady_clock::time_point last_used_{};
    steady_clock::time_point lifetime_deadline_{};
    std::string message_;  // login/maintenance read buffer, freed once logged in
};

}  // namespace sluice::net
