#pragma once
// Server pools, one per (database, user), shared by all workers.
//
// Each worker owns a pool_shard: its idle servers, its active servers and its waiting clients, touched only on that
// worker's thread. The pool itself holds what must be global: the server count that enforces pool_size across all
// workers (an atomic compare-and-increment), per-shard idle/waiting counts and oldest-wait times that other workers
// read to balance, and the "welcome" parameters a new client is shown at login.
//
// Balancing: a server released on worker B goes to B's longest waiter, unless another worker's head waiter queued
// more than 20 ms earlier, or B has none: then the server migrates there (its descriptor is re-registered with that
// worker's io_context). A client on A that finds no idle server and no room to connect queues, and asks a worker with
// idle servers to send one. Waiting is FIFO within a worker and, within that slack, across workers.
//
// Pool control (pool_shard::tick, every 100 ms per worker): query_wait_timeout and query_wait_notify for waiters,
// server_idle_timeout and server_lifetime for idle servers, the reserve pool for a head waiter older than
// reserve_pool_timeout, min_pool_size (worker 0). A server is closed instead of reused when its lifetime is over, its
// pool's server settings changed or RECONNECT marked it, the pool shrank, or a poorer pool sharing a limit is starved
// (must_close); idle servers older than server_check_delay run server_check_query first.

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
#include "session/parameters.hpp"
#include "stats/pool_counters.hpp"
#include "stats/snapshot.hpp"

namespace sluice::net {

class runtime;
class worker;
class client_connection;
class listen_relay;

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
    int min_pool_size = 0;
    int reserve_pool_size = 0;
    std::chrono::microseconds reserve_pool_timeout{};
    std::chrono::microseconds server_lifetime_jitter{};
    std::chrono::microseconds server_login_retry{};
    std::optional<std::string> server_check_query;  // nullopt: no checks; empty: an empty query
    std::chrono::microseconds server_check_delay{};
    std::chrono::microseconds query_wait_notify{};
    int max_db_connections = 0;    // 0: unlimited
    int max_user_connections = 0;  // 0: unlimited
    int max_db_client_connections = 0;
    int max_user_client_connections = 0;
};

// True when servers logged in under `a` must be replaced under `b`: where and as whom the server is reached.
[[nodiscard]] bool same_server_target(const pool_config& a, const pool_config& b) noexcept;

// A limit shared by several pools: max_db_connections (the pools of one database) or max_user_connections (the pools
// of one user). `count` is the number of servers (open or connecting) of those pools. Taking a slot is a lock-free
// compare-and-increment; the mutex is taken only when the limit is full and some pool is starved.
//
// Fair share: a pool refused a slot marks itself starved on the limit. A slot freed while pools are starved is handed
// to the starved pool with the fewest servers (it never becomes free for a richer pool to grab), and a pool releasing
// a server while a starved pool has at least two servers fewer closes that server instead of reusing it.
class shared_limit {
  public:
    enum class kind { database, user };
    shared_limit(kind k, std::string name) : kind_(k), name_(std::move(name)) {}

    [[nodiscard]] kind which() const noexcept { return kind_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] int count() const noexcept { return count_.load(std::memory_order_relaxed); }
    [[nodiscard]] int max() const noexcept { return max_.load(std::memory_order_relaxed); }
    void set_max(int m) noexcept { max_.store(m, std::memory_order_relaxed); }

    void add_pool(const std::shared_ptr<pool>& p);
    // One more server; false when the limit is reached.
    [[nodiscard]] bool try_take() noexcept;
    // A server of `from` closed: hand its slot to the poorest starved pool, or free it.
    void release();
    // Frees a slot without handing it on (undoing a try_take).
    void give_back() noexcept { count_.fetch_sub(1, std::memory_order_acq_rel); }
    // `p` was refused a slot and has waiting clients.
    void mark_starved(pool& p);
    // A starved pool of this limit with more than `margin` servers fewer than `p` exists: a server of `p` should be
    // closed rather than reused (margin 1) or kept idle (margin 0). Lock-free unless some pool is starved.
    [[nodiscard]] bool poorer_pool_starved(const pool& p, int margin) const;
    // Closes one idle server of another pool of this limit (the one with most servers), at most one at a time.
    void evict_idle_for(const pool& starved);
    void eviction_done() noexcept { evicting_.store(false, std::memory_order_relaxed); }

    // Clients of the database / user (max_db_client_connections, max_user_client_connections).
    void set_client_max(int m) noexcept { client_max_.store(m, std::memory_order_relaxed); }
    [[nodiscard]] bool try_add_client() noexcept;
    void remove_client() noexcept { clients_.fetch_sub(1, std::memory_order_acq_rel); }

  private:
    [[nodiscard]] std::shared_ptr<pool> poorest_starved_locked();

    kind kind_;
    std::string name_;
    std::atomic<int> count_{0};
    std::atomic<int> max_{0};
    std::atomic<int> starved_hint_{0};  // some pool may be starved: look under the mutex
    std::atomic<bool> evicting_{false};
    std::atomic<int> clients_{0};
    std::atomic<int> client_max_{0};
    mutable std::mutex mutex_;
    std::vector<std::weak_ptr<pool>> pools_;
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
    // After RELOAD or RECONNECT: serve waiters if the pool grew, close idle surplus and servers to be replaced.
    void apply_config();
    // A shared limit handed this pool a slot (already counted in `held`): connect for the head waiter, or give the
    // slot back.
    void use_handed_slot(shared_limit& held);
    // Closes the least recently used idle server (shared-limit eviction); false when there is none.
    bool evict_one_idle();
    // KILL: closes every server of this shard at once (active ones too; their clients are closed by the caller).
    void close_all(close_reason why);
    // At exit, once the worker's thread has stopped: closes every server and drops the shard's references to them
    // (each server holds its pool: left in place, the pair would never be freed).
    void shutdown();
    // Servers of this shard still to be replaced (RECONNECT/RELOAD) or open at all, for WAIT_CLOSE.
    [[nodiscard]] int servers_needing_close() const noexcept;
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

    // Removes the most recently used idle server from the idle list; its idle read-wait may stay pending (see
    // arm_idle_wait), so whoever cancels the server's socket operations clears server_connection::idle_wait_armed.
    // A server with no read-wait is first checked with a peek at its socket: one found closed (or with something to
    // say, a FATAL before closing) is discarded and null returned, so that a client never gets a dead server.
    [[nodiscard]] std::shared_ptr<server_connection> take_idle_front();
    // Whether a server idle without a read-wait is still fit to hand on (see take_idle_front).
    [[nodiscard]] bool idle_server_alive(server_connection& server);
    // An idle server found closed by its peer (or saying something, a FATAL before closing): logged and discarded.
    void discard_closed_idle(server_connection& server);
    void give_to_waiter_or_idle(std::shared_ptr<server_connection> server);
    // Whether `server` must be closed instead of used now: lifetime over, settings changed, or a fair share owed.
    // `margin`: how many servers fewer a starved pool must have for this one to give one up (see shared_limit).
    [[nodiscard]] std::optional<close_reason> must_close(const server_connection& server, int margin) const;
    // False during server_login_retry after a failed login.
    [[nodiscard]] bool may_connect(steady_clock::time_point now) const noexcept;
    // Runs server_check_query on an idle server before handing it on.
    [[nodiscard]] bool needs_check(const server_connection& server, steady_clock::time_point now) const;
    void check_then_give(std::shared_ptr<server_connection> server);
    // false when the pool is at its limit (the waiters wait for a server to be released).
    bool try_connect_for_waiters(bool use_reserve);
    void notify_waiters(steady_clock::time_point now);
    void fail_waiters(const server_error& err);
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

    // The current settings. The reference stays valid for the pool's lifetime (configurations are never freed
    // before the pool), but a RELOAD may install newer ones: read again rather than keep it across events.
    [[nodiscard]] const pool_config& cfg() const noexcept { return *cfg_.load(std::memory_order_acquire); }
    [[nodiscard]] runtime& rt() noexcept { return rt_; }
    [[nodiscard]] pool_shard& shard(std::size_t worker_index) { return *shards_[worker_index]; }
    [[nodiscard]] std::size_t shard_count() const noexcept { return shards_.size(); }

    // Reserves room for one more server; false when pool_size (plus reserve_pool_size if `use_reserve`) servers exist
    // or are being connected, or a shared limit (max_db_connections, max_user_connections) is reached; then the pool
    // is marked starved on that limit. `held`: a slot of that limit already taken for this pool (a hand-off).
    [[nodiscard]] bool try_reserve_server(bool use_reserve = false, shared_limit* held = nullptr);
    void unreserve_server();
    [[nodiscard]] int server_count() const noexcept { return server_count_.load(std::memory_order_relaxed); }
    // Waiting clients and idle servers across all shards (read from the shards' shared counts).
    [[nodiscard]] int waiting_total() const noexcept;
    [[nodiscard]] int idle_total() const noexcept;
    // The message of the last failed server login, for clients refused during server_login_retry.
    void set_last_login_error(std::string message);
    [[nodiscard]] std::string last_login_error() const;
    [[nodiscard]] bool starved_on(const shared_limit& l) const noexcept {
        return (l.which() == shared_limit::kind::database ? starved_db_ : starved_user_)
            .load(std::memory_order_relaxed);
    }
    void set_starved(const shared_limit& l, bool on) noexcept {
        (l.which() == shared_limit::kind::database ? starved_db_ : starved_user_).store(on, std::memory_order_relaxed);
    }
    void set_limits(std::shared_ptr<shared_limit> db, std::shared_ptr<shared_limit> user);
    [[nodiscard]] shared_limit& db_limit() noexcept { return *db_limit_; }
    [[nodiscard]] shared_limit& user_limit() noexcept { return *user_limit_; }
    // Counts a logged-in client against max_db_client_connections and max_user_client_connections; false when one is
    // reached (the message names which). A client counted gives its place back with remove_client(), which it can do
    // through its shared_ptr to the pool: the limits are set once, at the pool's creation (no token per client, idle
    // memory per client).
    [[nodiscard]] bool try_add_client(std::string& refused);
    void remove_client() noexcept;
    // At exit, once every worker's thread has stopped: closes the servers of every shard (see pool_shard::shutdown).
    void shutdown();
    // A limit handed this pool one of its slots: pass it to the shard whose head client waited longest.
    void receive_slot(shared_limit& held);

    // Installs new settings (RELOAD). When the server target changed, servers are replaced after their transaction.
    // Any thread; the previous configurations stay alive, so references from cfg() stay valid.
    void update_config(pool_config cfg);
    // RECONNECT: every current server is replaced after its transaction (PgBouncer's close_needed).
    void mark_reconnect() noexcept { target_generation_.fetch_add(1, std::memory_order_acq_rel); }
    [[nodiscard]] std::uint64_t target_generation() const noexcept {
        return target_generation_.load(std::memory_order_acquire);
    }
    // server_login_retry: after a failed login no new connection is tried until this time (steady ticks, 0: none).
    std::atomic<std::int64_t> login_retry_after{0};
    std::atomic<std::int64_t> last_min_pool_fill{0};

    // PAUSE/RESUME from the admin console: while paused no server is assigned; clients queue.
    [[nodiscard]] bool paused() const noexcept { return paused_.load(std::memory_order_acquire); }
    void set_paused(bool on) noexcept { paused_.store(on, std::memory_order_release); }

    // ParameterStatus values of the first server login, shown to clients at login; null before it. Shared rather
    // than copied: every login reads them.
    using welcome_parameters = std::vector<std::pair<std::string, std::string>>;
    [[nodiscard]] std::shared_ptr<const welcome_parameters> welcome() const;
    void set_welcome(const welcome_parameters& params);
    // A client's parameters once it is logged in: they take the block of an equal set the previous login had, so that
    // clients that send the same startup parameters share one block (idle memory per client). Any thread.
    void share_login_parameters(session::parameter_set& parameters);

    // Keys a SCRAM-authenticated client proved, usable to log into the server without a plaintext password.
    void remember_client_keys(const auth::scram_client_keys& keys);
    [[nodiscard]] std::optional<auth::scram_client_keys> client_keys() const;
    // PBKDF2 results for the server's salt, so that repeated server logins with a password skip the derivation.
    void remember_derived_keys(const auth::scram_derived_keys& keys);
    [[nodiscard]] std::optional<auth::scram_derived_keys> derived_keys() const;

    // LISTEN/NOTIFY under transaction pooling (listen_relay.hpp), created at first use. Any thread.
    [[nodiscard]] std::shared_ptr<listen_relay> listen_relay_instance();
    // The relay if one was created (for shutdown and metrics), else null. Any thread.
    [[nodiscard]] std::shared_ptr<listen_relay> existing_listen_relay() const;

    // The shard whose head waiter has waited longest, other than `except`; nullptr when no other shard has waiters.
    [[nodiscard]] pool_shard* longest_waiting_shard(const pool_shard* except) noexcept;
    // A shard other than `except` with idle servers, or nullptr.
    [[nodiscard]] pool_shard* shard_with_idle(const pool_shard* except) noexcept;

  private:
    runtime& rt_;
    std::atomic<const pool_config*> cfg_;
    std::vector<std::unique_ptr<const pool_config>> configs_;  // every configuration installed; guarded by mutex_
    std::vector<std::unique_ptr<pool_shard>> shards_;
    std::atomic<int> server_count_{0};
    std::atomic<bool> paused_{false};
    std::atomic<std::uint64_t> target_generation_{0};
    std::atomic<bool> starved_db_{false};
    std::atomic<bool> starved_user_{false};
    std::shared_ptr<shared_limit> db_limit_;
    std::shared_ptr<shared_limit> user_limit_;

    mutable std::mutex mutex_;  // guards the members below; never held across I/O
    std::shared_ptr<const welcome_parameters> welcome_;
    std::optional<auth::scram_client_keys> client_keys_;
    std::optional<auth::scram_derived_keys> derived_keys_;
    session::parameter_set login_parameters_;  // those of the last client that logged in
    std::string last_login_error_;
    std::shared_ptr<listen_relay> listen_relay_;
};

}  // namespace sluice::net
