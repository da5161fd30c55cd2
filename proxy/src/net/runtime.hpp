#pragma once
// Process-wide state of the proxy and its workers.
//
// Threading: `workers` threads each run one io_context. A client connection and the server it is attached to always
// live on the same worker, so the relay between them runs on one thread with no locks. A pool is shared by all
// workers; its per-worker part (pool_shard) is touched only by its worker's thread, and the shared part holds only
// atomics and data behind short locks that are never held across I/O. Servers move between workers when one
// worker's clients wait while another's servers idle (see pool.hpp).

#include <atomic>
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
#include "stats/snapshot.hpp"

namespace sluice::net {

class worker;
class pool;
class client_connection;

// Credentials as loaded from auth_file, with plaintext passwords pre-derived into SCRAM secrets once so that no
// client login pays for PBKDF2.
struct credential {
    auth::secret stored;  // as in the auth_file
    auth::secret scram;   // what verifies a SCRAM login: `stored` itself, or a SCRAM secret derived from a plain one
};

class credential_store {
  public:
    credential_store(auth::userlist users, int scram_iterations);
    // The user's credential, with a SCRAM form derived on first use for plaintext passwords (PBKDF2 once per user,
    // not per login). nullopt for unknown users. Thread-safe.
    [[nodiscard]] std::optional<credential> find(std::string_view user) const;

  private:
    auth::userlist users_;
    int scram_iterations_;
    mutable std::mutex mutex_;
    mutable std::unordered_map<std::string, auth::secret> derived_;
};

// Cancel keys handed to clients in BackendKeyData. Keys come from a CSPRNG; the registry maps them to the client so a
// CancelRequest arriving on another connection (and another worker) finds it.
class cancel_registry {
  public:
    struct key {
        std::uint32_t process_id;
        std::uint32_t secret_key;
        friend bool operator<(const key& a, const key& b) noexcept {
            return a.process_id != b.process_id ? a.process_id < b.process_id : a.secret_key < b.secret_key;
        }
    };
    // Allocates an unused random key for `client`.
    [[nodiscard]] key add(const std::shared_ptr<client_connection>& client);
    void remove(key k);
    [[nodiscard]] std::shared_ptr<client_connection> find(key k) const;

  private:
    mutable std::mutex mutex_;
    std::map<key, std::weak_ptr<client_connection>> clients_;
};

class runtime {
  public:
    explicit runtime(std::shared_ptr<const config::config> cfg);
    ~runtime();

    [[nodiscard]] std::shared_ptr<const config::config> config() const;
    [[nodiscard]] std::shared_ptr<const credential_store> credentials() const;
    // Installs a new configuration (RELOAD/SIGHUP); existing pools keep theirs until replaced.
    void set_config(std::shared_ptr<const config::config> cfg, std::shared_ptr<const credential_store> creds);

    // The pool of (database, user), created on first use from the database entry. `looked_up` is the user's secret
    // from auth_query, if that is where it came from: an md5 or plain one logs the pool into the server.
    [[nodiscard]] std::shared_ptr<pool> get_pool(const config::database_entry& db, std::string_view database,
                                                 std::string_view user, const auth::secret* looked_up = nullptr);

    // Secrets of users missing from auth_file (auth_user / auth_query), looked up on the auth bridge pool.
    [[nodiscard]] auth_query_service& auth_queries() noexcept { return *auth_queries_; }
    // The bridge pool running auth_query lookups, for its metrics.
    [[nodiscard]] const bridge::thread_pool& auth_pool() const noexcept { return *auth_pool_; }

    std::vector<std::unique_ptr<worker>>& workers() noexcept { return workers_; }
    [[nodiscard]] worker& worker_at(std::size_t i) { return *workers_[i]; }
    [[nodiscard]] std::size_t worker_count() const noexcept { return workers_.size(); }
    [[nodiscard]] std::vector<std::shared_ptr<pool>> pools_snapshot() const;

    // Gathers a snapshot from every worker (each fills its part on its own thread) and calls `done` on `requester`'s
    // thread. Never blocks a worker.
    void async_snapshot(worker& requester, std::function<void(std::shared_ptr<stats::snapshot>)> done);

    cancel_registry& cancels() noexcept { return cancels_; }
    [[nodiscard]] std::int64_t started_unix_us() const noexcept { return started_unix_us_; }
    [[nodiscard]] std::uint64_t next_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }

    // Clients logged in or logging in, for max_client_conn.
    std::atomic<int> client_count{0};
    // Clients attached to a server right now (in a transaction or a query): graceful shutdown waits for zero.
    std::atomic<int> active_clients{0};
    // Set by SIGTERM: no new transactions start; clients are told the pooler is shutting down.
    std::atomic<bool> shutting_down{false};
    // Listeners are open and accepting (readiness).
    std::atomic<bool> accepting{false};
    // Some server login succeeded within the last minute, or no pool was tried yet (readiness: a backend reachable).
    std::atomic<std::int64_t> last_server_login_ok_unix_s{0};
    std::atomic<std::int64_t> last_server_login_failed_unix_s{0};

  private:
    mutable std::mutex config_mutex_;
    std::shared_ptr<const config::config> config_;
    std::shared_ptr<const credential_store> credentials_;

    mutable std::mutex pools_mutex_;
    std::map<std::pair<std::string, std::string>, std::shared_ptr<pool>> pools_;

    std::vector<std::unique_ptr<worker>> workers_;
    // Declared after workers_, so destroyed before their io_contexts and after ~runtime() stopped them: the bridge's
    // rule (a pool goes after the event loops that await it stop, before their io_contexts are destroyed).
    std::unique_ptr<bridge::thread_pool> auth_pool_;
    std::unique_ptr<auth_query_service> auth_queries_;
    cancel_registry cancels_;
    std::atomic<std::uint64_t> next_id_{1};
    std::int64_t started_unix_us_ = 0;
};

}  // namespace sluice::net
