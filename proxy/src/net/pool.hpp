#pragma once
// Server pools, one per (database, user), shared by all workers.
//
// Each worker owns a pool_shard: its idle servers, its active servers and its waiting clients, touched only on that
// worker's thread. The pool itself holds what must be global: the server count that enforces pool_size across all
// workers (an atomic compare-and-increment), per-shard idle/waiting counts and oldest-wait times that other workers
// read to balance, and the "welcome" parameters a new client is shown at login.
//
// Balancing: a server released on worker B goes to B's longest waiter; if B has none but another worker has waiters,
// the server migrates there (its descriptor is re-registered with that worker's io_context). A client on A that finds
// no idle server and no room to connect queues, and asks a worker with idle servers to send one. Waiting is FIFO
// within a worker; across workers a released server goes to the worker whose head waiter has waited longest.

#include <atomic>
#include <boost/intrusive/list.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "auth/scram.hpp"
#include "config/config.hpp"
#include "net/asio_fwd.hpp"
#include "net/server_connection.hpp"
#include "stats/pool_counters.hpp"
#include "stats/snapshot.hpp"

namespace sluice::net {

class runtime;
class worker;
class client_connection;

// Everything a pool needs, resolved once from the database entry, the settings and the auth file.
struct pool_config {
    std::string database;  // as clients name it
    std::string user;      // as clients log in
    std::string server_dbname;
    std::string server_user;
    std::optional<std::string> server_password;  // plaintext or md5 secret for logging into the server
    std::string host;  // a host name/address, or a Unix socket directory if it starts with '/'
    int port = 5432;
    int pool_size = 20;
    config::pool_mode mode = config::pool_mode::transaction;
    std::string reset_query;
    bool reset_query_always = false;
    std::vector<std::pair<std::string, std::string>> startup_parameters;  // sent in the server's StartupMessage
    std::chrono::microseconds connect_timeout{};
    std::chrono::microseconds query_wait_timeout{};
    std::chrono::microseconds server_lifetime{};
    std::chrono::microseconds server_idle_timeout{};
    std::size_t max_packet_size = 0;
};

struct shard_client_tag;
using shard_client_hook = boost::intrusive::list_base_hook<boost::intrusive::tag<shard_client_tag>,
                                                           boost::intrusive::link_mode<boost::intrusive::safe_link>>;

class pool_shard {
  public:
    pool_shard(pool& owner, worker& w);
    ~pool_shard();

    // The client wants a server. Calls client.on_server_assigned() now or later (FIFO), or client.on_server_failed().
    // Precondition: on this shard's worker thread; the client is not already waiting.
    void acquire(client_connection& client);
    // The client stops waiting (disconnected or timed out).
    void cancel_wait(client_connection& client);
    // A client is done with its server and the server is clean (ReadyForQuery 'I', nothing outstanding).
    void release(std::shared_ptr<server_connection> server);
    // A server released while a cancel was in flight, now that PostgreSQL has taken the cancel.
    void finish_release_after_cancel(const std::shared_ptr<server_connection>& server);
    // Release after running Sluice's own statements, each as one Query (session pooling's server_reset_query, or a
    // rollback after a client vanished).
    void release_after(std::shared_ptr<server_connection> server, std::vector<std::string> statements);
    // The server is broken or dirty: close it.
    void discard(server_connection& server, close_reason why);
    // A server sent here by another worker.
    void adopt(std::shared_ptr<server_connection> server, int fd);
    // Another worker's clients wait: send it an idle server if there is one to spare.
    void lend_idle_server(pool_shard& to);
    // After RESUME: serve the queue from idle servers and new connections.
    void resume();
    // Timeouts for waiting clients and idle servers; called by the worker's tick.
    void tick(steady_clock::time_point now);

    pool& owner() noexcept { return pool_; }
    worker& home() noexcept { return worker_; }

    [[nodiscard]] std::size_t idle_count() const noexcept { return idle_.size(); }
    [[nodiscard]] std::size_t active_count() const noexcept { return active_.size(); }
    [[nodiscard]] std::size_t waiting_count() const noexcept { return waiting_.size(); }

    // This worker's part of the pool's rows in a snapshot (counts, connection rows). On this worker's thread.
    void fill_snapshot(stats::pool_row& row, std::vector<stats::connection_row>& servers) const;

    // Written on this worker's thread only, read by any thread (scrapes, SHOW STATS).
    stats::pool_counters counters;

    // Read by other workers.
    std::atomic<int> shared_idle{0};
    std::atomic<int> shared_waiting{0};
    std::atomic<std::int64_t> oldest_wait_start{0};  // steady_clock ticks of the head waiter; 0 when none

  private:
    using server_list = boost::intrusive::list<server_connection, boost::intrusive::base_hook<server_hook>,
                                               boost::intrusive::constant_time_size<true>>;
    using client_queue = boost::intrusive::list<client_connection, boost::intrusive::base_hook<shard_client_hook>,
                                                boost::intrusive::constant_time_size<true>>;

    // Removes the most recently used idle server from the idle list and cancels its idle read-wait.
    [[nodiscard]] std::shared_ptr<server_connection> take_idle_front();
    void give_to_waiter_or_idle(std::shared_ptr<server_connection> server);
    void assign(client_connection& client, std::shared_ptr<server_connection> server);
    void make_idle(std::shared_ptr<server_connection> server);
    void arm_idle_wait(const std::shared_ptr<server_connection>& server);
    void start_connect();
    void on_connect_failed(const server_error& err);
    void migrate(std::shared_ptr<server_connection> server, pool_shard& to);
    void ask_for_idle_server();
    void update_shared_counts();
    void unlink(server_connection& server);

    pool& pool_;
    worker& worker_;
    server_list idle_;    // most recently used first
    server_list active_;  // attached to a client
    server_list other_;   // connecting or running maintenance
    client_queue waiting_;
    // Strong references for servers in the lists (intrusive lists do not own).
    std::vector<std::shared_ptr<server_connection>> owned_;
};

class pool : public std::enable_shared_from_this<pool> {
  public:
    pool(runtime& rt, pool_config cfg);
    ~pool();

    [[nodiscard]] const pool_config& cfg() const noexcept { return cfg_; }
    [[nodiscard]] runtime& rt() noexcept { return rt_; }
    [[nodiscard]] pool_shard& shard(std::size_t worker_index) { return *shards_[worker_index]; }
    [[nodiscard]] std::size_t shard_count() const noexcept { return shards_.size(); }

    // Reserves room for one more server; false when pool_size servers exist or are being connected.
    [[nodiscard]] bool try_reserve_server() noexcept;
    void unreserve_server() noexcept;
    [[nodiscard]] int server_count() const noexcept { return server_count_.load(std::memory_order_relaxed); }

    // PAUSE/RESUME from the admin console: while paused no server is assigned; clients queue.
    [[nodiscard]] bool paused() const noexcept { return paused_.load(std::memory_order_acquire); }
    void set_paused(bool on) noexcept { paused_.store(on, std::memory_order_release); }

    // ParameterStatus values of the first server login, shown to clients at login.
    [[nodiscard]] std::optional<std::vector<std::pair<std::string, std::string>>> welcome() const;
    void set_welcome(const std::vector<std::pair<std::string, std::string>>& params);

    // Keys a SCRAM-authenticated client proved, usable to log into the server without a plaintext password.
    void remember_client_keys(const auth::scram_client_keys& keys);
    [[nodiscard]] std::optional<auth::scram_client_keys> client_keys() const;
    // PBKDF2 results for the server's salt, so that repeated server logins with a password skip the derivation.
    void remember_derived_keys(const auth::scram_derived_keys& keys);
    [[nodiscard]] std::optional<auth::scram_derived_keys> derived_keys() const;

    // The shard whose head waiter has waited longest, other than `except`; nullptr when no other shard has waiters.
    [[nodiscard]] pool_shard* longest_waiting_shard(const pool_shard* except) noexcept;
    // A shard other than `except` with idle servers, or nullptr.
    [[nodiscard]] pool_shard* shard_with_idle(const pool_shard* except) noexcept;

  private:
    runtime& rt_;
    pool_config cfg_;
    std::vector<std::unique_ptr<pool_shard>> shards_;
    std::atomic<int> server_count_{0};
    std::atomic<bool> paused_{false};

    mutable std::mutex mutex_;  // guards the members below; never held across I/O
    std::optional<std::vector<std::pair<std::string, std::string>>> welcome_;
    std::optional<auth::scram_client_keys> client_keys_;
    std::optional<auth::scram_derived_keys> derived_keys_;
};

}  // namespace sluice::net
