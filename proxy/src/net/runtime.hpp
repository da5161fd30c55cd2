#pragma once
// Process-wide state of the proxy and its workers.
//
// Threading: `workers` threads each run one io_context. A client connection and the server it is attached to always
// live on the same worker, so the relay between them runs on one thread with no locks. A pool is shared by all
// workers; its per-worker part (pool_shard) is touched only by its worker's thread, and the shared part holds only
// atomics and data behind short locks that are never held across I/O. Servers move between workers when one
// worker's clients wait while another's servers idle (see pool.hpp).

#include <atomic>
#include <boost/intrusive/set.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "auth/secret.hpp"
#include "auth/userlist.hpp"
#include "config/config.hpp"
#include "net/asio_fwd.hpp"
#include "net/auth_query.hpp"
#include "session/prepared_statements.hpp"
#include "stats/login_counters.hpp"
#include "stats/snapshot.hpp"

namespace sluice::net {

class worker;
class pool;
class shared_limit;
class client_connection;
class tls_context;
struct pool_config;

// Credentials as loaded from auth_file. A plaintext password is turned into a SCRAM secret once per user (PBKDF2, not
// per login), off the event loop: see credential_store::derive().
struct credential {
    auth::secret stored;  // as in the auth_file
    auth::secret scram;   // what verifies a SCRAM login: `stored` itself, or a SCRAM secret derived from a plain one

    // A plaintext password whose SCRAM secret is not derived yet: `scram` is still the plain password, and a SCRAM
    // login needs credential_store::derive() first (scram_server_fsm would otherwise run PBKDF2 per login).
    [[nodiscard]] bool needs_derivation() const noexcept {
        return scram.type == auth::secret::kind::plain && !scram.stored.empty();
    }
};

class credential_store {
  public:
    credential_store(auth::userlist users, int scram_iterations);
    // The user's credential, without deriving anything: for a plaintext password, `scram` is the SCRAM secret if
    // derive() already ran for this user, else the plain password (needs_derivation()). nullopt for unknown users.
    // Thread-safe; cheap enough for the event loop.
    [[nodiscard]] std::optional<credential> find(std::string_view user) const;
    // find(), with the SCRAM secret of a plaintext password derived and cached on first use: PBKDF2 (milliseconds of
    // CPU), so call it on a bridge thread, never on an event loop. Concurrent first calls derive once.
    [[nodiscard]] std::optional<credential> derive(std::string_view user) const;

  private:
    struct name_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view name) const noexcept { return std::hash<std::string_view>{}(name); }
    };
    auth::userlist users_;
    int scram_iterations_;
    mutable std::mutex derive_mutex_;  // serialises derivations (bridge threads only), so that none repeats
    mutable std::mutex mutex_;         // guards derived_; held only for a lookup or an insert
    mutable std::unordered_map<std::string, auth::secret, name_hash, std::equal_to<>> derived_;
};

struct cancel_registry_tag;
// A client's place in the cancel registry. Its links change only under the registry's mutex (any thread).
using cancel_registry_hook =
    boost::intrusive::set_base_hook<boost::intrusive::tag<cancel_registry_tag>, boost::intrusive::optimize_size<true>>;

// Cancel keys handed to clients in BackendKeyData. Keys come from a CSPRNG; the registry maps them to the client so a
// CancelRequest arriving on another connection (and another worker) finds it. Intrusive (the client holds its key and
// its links), so that a registered client costs no allocation (idle memory per client).
class cancel_registry {
  public:
    struct key {
        std::uint32_t process_id;
        std::uint32_t secret_key;
        friend bool operator<(const key& a, const key& b) noexcept {
            return a.process_id != b.process_id ? a.process_id < b.process_id : a.secret_key < b.secret_key;
        }
    };
    cancel_registry();
    cancel_registry(const cancel_registry&) = delete;
    cancel_registry& operator=(const cancel_registry&) = delete;
    ~cancel_registry();

    // Gives `client` an unused random key (client_connection::cancel_key()) and registers it. The client must be
    // removed before it is destroyed.
    void add(client_connection& client);
    void remove(client_connection& client);
    // The registered client with key `k`, unless it is gone or being destroyed.
    [[nodiscard]] std::shared_ptr<client_connection> find(key k) const;

  private:
    struct key_of_client {
        using type = key;
        const key& operator()(const client_connection& client) const noexcept;
    };
    using client_set = boost::intrusive::set<client_connection, boost::intrusive::base_hook<cancel_registry_hook>,
                                             boost::intrusive::key_of_value<key_of_client>,
                                             boost::intrusive::constant_time_size<false>>;

    mutable std::mutex mutex_;
    client_set clients_;
};

class runtime {
  public:
    explicit runtime(std::shared_ptr<const config::config> cfg);
    ~runtime();

    [[nodiscard]] std::shared_ptr<const config::config> config() const;
    [[nodiscard]] std::shared_ptr<const credential_store> credentials() const;
    // Installs a new configuration (RELOAD/SIGHUP) and applies it to the existing pools: sizes, limits and timeouts
    // at once (a bigger pool serves its queue, a smaller one closes idle surplus); servers whose connection settings
    // (host, port, dbname, user, password) changed are replaced after their current transaction.
    // Also rebuilds the TLS contexts from `cfg` (certificate files are read again); a side whose context cannot be
    // built keeps its previous one, and the error is logged and kept in tls_error().
    void set_config(std::shared_ptr<const config::config> cfg, std::shared_ptr<const credential_store> creds);
    // TLS for new client connections (client_tls_*) and new server connections (server_tls_*); null until a
    // configuration built one. Connections keep the context they started with.
    [[nodiscard]] std::shared_ptr<const tls_context> client_tls() const;
    [[nodiscard]] std::shared_ptr<const tls_context> server_tls() const;
    // Why the last set_config could not build a TLS context; empty when both were built.
    [[nodiscard]] std::string tls_error() const;

    // DISABLE/ENABLE db: new logins to a disabled database are refused. Thread-safe.
    void set_disabled(const std::string& database, bool on);
    [[nodiscard]] bool disabled(const std::string& database) const;
    // PAUSE db / KILL db: pools of the database created later start paused too. Thread-safe.
    void set_database_paused(const std::string& database, bool on);
    [[nodiscard]] bool database_paused(const std::string& database) const;

    // SHOW STATE: 0 active, 1 paused (PAUSE without a database), 2 suspended (SUSPEND).
    std::atomic<int> pause_state{0};

    // The pool of (database, user), created on first use from the database entry. `looked_up` is the user's secret
    // from auth_query, if that is where it came from: an md5 or plain one logs the pool into the server.
    [[nodiscard]] std::shared_ptr<pool> get_pool(const config::database_entry& db, std::string_view database,
                                                 std::string_view user, const auth::secret* looked_up = nullptr);

    // Secrets of users missing from auth_file (auth_user / auth_query), looked up on the auth bridge pool.
    [[nodiscard]] auth_query_service& auth_queries() noexcept { return *auth_queries_; }
    // The bridge pool running auth_query lookups, for its metrics.
    [[nodiscard]] const bridge::thread_pool& auth_pool() const noexcept { return *auth_pool_; }
    // The same pool, for CPU work kept off the event loop (SCRAM key derivation of plaintext auth_file passwords).
    [[nodiscard]] bridge::thread_pool& auth_pool() noexcept { return *auth_pool_; }

    std::vector<std::unique_ptr<worker>>& workers() noexcept { return workers_; }
    [[nodiscard]] worker& worker_at(std::size_t i) { return *workers_[i]; }
    [[nodiscard]] std::size_t worker_count() const noexcept { return workers_.size(); }
    [[nodiscard]] std::vector<std::shared_ptr<pool>> pools_snapshot() const;

    // Gathers a snapshot from every worker (each fills its part on its own thread) and calls `done` on `requester`'s
    // thread. Never blocks a worker.
    void async_snapshot(worker& requester, std::function<void(std::shared_ptr<stats::snapshot>)> done);

    cancel_registry& cancels() noexcept { return cancels_; }
    // Named prepared statements interned across clients (transaction pooling).
    session::statement_registry& statements() noexcept { return statements_; }
    [[nodiscard]] std::int64_t started_unix_us() const noexcept { return started_unix_us_; }
    [[nodiscard]] std::uint64_t next_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }

    // Clients logged in or logging in, for max_client_conn.
    std::atomic<int> client_count{0};
    // Logins that ended before the client had a pool (refused, timed out, failed).
    stats::login_counters logins;
    // Clients attached to a server right now (in a transaction or a query): graceful shutdown waits for zero.
    std::atomic<int> active_clients{0};
    // Set by SIGTERM: no new transactions start; clients are told the pooler is shutting down.
    std::atomic<bool> shutting_down{false};
    // When the drain began (steady_clock ticks; set before shutting_down). Each client may still finish the
    // transaction it is in or the next one it starts (a client accepted during the drain gets its first), and is
    // closed at its first idle moment after that, or after drain_idle_grace without a request.
    std::atomic<std::int64_t> drain_started_ticks{0};
    static constexpr std::chrono::seconds drain_idle_grace{1};
    // Listeners are open and accepting (readiness).
    std::atomic<bool> accepting{false};
    // Some server login succeeded within the last minute, or no pool was tried yet (readiness: a backend reachable).
    std::atomic<std::int64_t> last_server_login_ok_unix_s{0};
    std::atomic<std::int64_t> last_server_login_failed_unix_s{0};

  private:
    // First, so destroyed last: it links the clients themselves, and a client leaves it when destroyed.
    cancel_registry cancels_;
    session::statement_registry statements_;
    mutable std::mutex config_mutex_;
    std::shared_ptr<const config::config> config_;
    std::shared_ptr<const credential_store> credentials_;
    std::shared_ptr<const tls_context> client_tls_;
    std::shared_ptr<const tls_context> server_tls_;
    std::string tls_error_;

    // What a pool of (database, user) gets from `cfg`; `previous` keeps an auth_query password across reloads.
    [[nodiscard]] pool_config make_pool_config(const config::config& cfg, const credential_store* creds,
                                               const config::database_entry& db, std::string_view database,
                                               std::string_view user, const auth::secret* looked_up,
                                               const pool_config* previous) const;
    // The shared limits of a database / user, created on first use; max set from `cfg`. Under pools_mutex_.
    std::shared_ptr<shared_limit> limit_locked(bool database, const std::string& name, int max, int client_max);
    void apply_config_to_pools(const config::config& cfg, const credential_store* creds);

    mutable std::mutex pools_mutex_;
    std::map<std::pair<std::string, std::string>, std::shared_ptr<pool>> pools_;
    std::map<std::string, std::shared_ptr<shared_limit>> db_limits_;
    std::map<std::string, std::shared_ptr<shared_limit>> user_limits_;
    std::vector<std::string> disabled_;
    std::vector<std::string> paused_;

    std::vector<std::unique_ptr<worker>> workers_;
    // Declared after workers_, so destroyed before their io_contexts and after ~runtime() stopped them: the bridge's
    // rule (a pool goes after the event loops that await it stop, before their io_contexts are destroyed).
    std::unique_ptr<bridge::thread_pool> auth_pool_;
    std::unique_ptr<auth_query_service> auth_queries_;
    std::atomic<std::uint64_t> next_id_{1};
    std::int64_t started_unix_us_ = 0;
};

}  // namespace sluice::net
