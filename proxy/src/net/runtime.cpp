#include "net/runtime.hpp"

#include <algorithm>

#include "auth/random.hpp"
#include "net/client_connection.hpp"
#include "net/pool.hpp"
#include "net/tls.hpp"
#include "net/worker.hpp"
#include "sluice/bridge/thread_pool.hpp"
#include "sluice/protocol/error.hpp"
#include "util/log.hpp"

namespace sluice::net {

credential_store::credential_store(auth::userlist users, int scram_iterations)
    : users_(std::move(users)), scram_iterations_(scram_iterations) {}

std::optional<credential> credential_store::find(std::string_view user) const {
    const auth::secret* stored = users_.find(user);
    if (!stored)
        return std::nullopt;
    credential c{*stored, *stored};
    if (stored->type == auth::secret::kind::plain && !stored->stored.empty()) {
        std::lock_guard lock(mutex_);
        if (auto it = derived_.find(user); it != derived_.end())
            c.scram = it->second;
    }
    return c;
}

std::optional<credential> credential_store::derive(std::string_view user) const {
    auto c = find(user);
    if (!c || !c->needs_derivation())
        return c;
    // One derivation at a time: a second login of the same user waits here and then finds the first one's result.
    std::lock_guard serial(derive_mutex_);
    if (auto again = find(user); again && !again->needs_derivation())
        return again;
    auto parsed = auth::parse_secret(auth::make_scram_secret(c->stored.stored, scram_iterations_));
    {
        std::lock_guard lock(mutex_);
        derived_.insert_or_assign(std::string(user), *parsed);
    }
    c->scram = std::move(*parsed);
    return c;
}

cancel_registry::cancel_registry() = default;
cancel_registry::~cancel_registry() = default;

const cancel_registry::key& cancel_registry::key_of_client::operator()(const client_connection& client) const noexcept {
    return client.cancel_key_;
}

void cancel_registry::add(client_connection& client) {
    std::lock_guard lock(mutex_);
    for (;;) {
        key k{auth::random_u32(), auth::random_u32()};
        if (k.process_id == 0 || clients_.find(k) != clients_.end())
            continue;
        client.cancel_key_ = k;
        clients_.insert_unique(client);
        return;
    }
}

void cancel_registry::remove(client_connection& client) {
    std::lock_guard lock(mutex_);
    clients_.erase(clients_.iterator_to(client));
}

std::shared_ptr<client_connection> cancel_registry::find(key k) const {
    std::lock_guard lock(mutex_);
    auto it = clients_.find(k);
    // A client whose last owner is gone is still here until its destructor removes it: lock() then yields null.
    return it == clients_.end() ? nullptr : std::const_pointer_cast<client_connection>(it->weak_from_this().lock());
}

namespace {
std::int64_t unix_now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}
const char* mode_name(config::pool_mode m) {
    switch (m) {
        case config::pool_mode::session:
            return "session";
        case config::pool_mode::transaction:
            return "transaction";
        case config::pool_mode::statement:
            return "statement";
    }
    return "transaction";
}
}  // namespace

void runtime::async_snapshot(worker& requester, std::function<void(std::shared_ptr<stats::snapshot>)> done) {
    struct gather {
        std::mutex mutex;
        std::shared_ptr<stats::snapshot> snap = std::make_shared<stats::snapshot>();
        std::map<std::pair<std::string, std::string>, std::size_t> index;
        std::size_t remaining = 0;
        std::function<void(std::shared_ptr<stats::snapshot>)> done;
    };
    auto g = std::make_shared<gather>();
    g->done = std::move(done);
    g->remaining = workers_.size();
    const auto cfg = config();
    g->snap->taken_unix_us = unix_now_us();
    g->snap->started_unix_us = started_unix_us_;
    g->snap->max_client_conn = cfg->settings.max_client_conn;
    g->snap->total_clients = client_count.load(std::memory_order_relaxed);
    logins.fill(*g->snap);
    const auto pools = pools_snapshot();
    for (auto& wp : workers_) {
        worker* w = wp.get();
        w->post([this, g, w, pools, &requester] {
            std::vector<stats::pool_row> rows;
            std::vector<stats::connection_row> servers;
            std::map<const pool*, std::size_t> by_pool;
            for (const auto& p : pools) {
                stats::pool_row row;
                row.database = p->cfg().database;
                row.user = p->cfg().user;
                row.pool_mode = mode_name(p->cfg().mode);
                row.pool_size = p->cfg().pool_size;
                p->shard(w->index()).fill_snapshot(row, servers);
                by_pool[p.get()] = rows.size();
                rows.push_back(std::move(row));
            }
            std::vector<stats::connection_row> clients;
            const auto now = steady_clock::now();
            for (const auto& c : w->clients()) {
                stats::connection_row r;
                c.fill_snapshot(r);
                clients.push_back(std::move(r));
                if (!c.pool_ptr())
                    continue;
                auto it = by_pool.find(c.pool_ptr().get());
                if (it == by_pool.end())
                    continue;
                auto& row = rows[it->second];
                switch (c.state()) {
                    case client_state::active:
                        ++row.cl_active;
                        break;
                    case client_state::idle:
                        ++row.cl_active;
                        ++row.cl_idle;
                        break;
                    default:
                        break;  // waiting clients are counted by the shard; login/closed are not in pools
                }
                if (c.pinned())
                    ++row.cl_pinned;
                if (c.listening())
                    ++row.cl_listening;
                if (c.in_transaction()) {
                    const auto age = std::chrono::duration_cast<std::chrono::microseconds>(now - c.transaction_start());
                    row.oldest_xact_us = std::max<std::int64_t>(row.oldest_xact_us, age.count());
                    if (c.idle_in_transaction()) {
                        row.oldest_idle_in_xact_us = std::max<std::int64_t>(row.oldest_idle_in_xact_us, age.count());
                    }
                }
            }
            std::lock_guard lock(g->mutex);
            auto& snap = *g->snap;
            for (auto& row : rows) {
                auto key = std::make_pair(row.database, row.user);
                auto [it, inserted] = g->index.try_emplace(key, snap.pools.size());
                if (inserted) {
                    snap.pools.push_back(std::move(row));
                } else {
                    stats::merge_pool_row(snap.pools[it->second], row);
                }
            }
            for (auto& r : clients)
                snap.clients.push_back(std::move(r));
            for (auto& r : servers)
                snap.servers.push_back(std::move(r));
            if (--g->remaining == 0) {
                requester.post([g] { g->done(g->snap); });
            }
        });
    }
}

runtime::runtime(std::shared_ptr<const config::config> cfg) : config_(std::move(cfg)), started_unix_us_(unix_now_us()) {
    statements_.set_max_bytes(config_->settings.max_prepared_statement_bytes);
    unsigned n = static_cast<unsigned>(config_->settings.workers);
    if (n == 0)
        n = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i)
        workers_.push_back(std::make_unique<worker>(*this, i));
    // Four threads: a stalled auth server can hold at most three (auth_query_service's per-target slots).
    auth_pool_ = std::make_unique<bridge::thread_pool>(
        bridge::pool_options{.name = "auth_query", .threads = 4, .max_queue = 64});
    const auto& s = config_->settings;
    auth_queries_ = std::make_unique<auth_query_service>(
        *auth_pool_,
        auth_query_options{.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(s.auth_query_timeout),
                           .positive_ttl = std::chrono::seconds(30),
                           .negative_ttl = std::chrono::seconds(5),
                           .scram_iterations = s.scram_iterations});
}

runtime::~runtime() {
    for (auto& w : workers_)
        w->stop_and_join();
    // The worker threads are gone: this thread may touch what they owned. Break the reference cycles that would
    // otherwise outlive the runtime: a waiting client holds itself (relay_state::keep_alive) until it is closed, and a
    // pool's shards own its servers, which own the pool. Handlers still queued in the stopped io_contexts (a server's
    // idle read-wait, a reset query) hold references too; the io_contexts destroy them with the workers.
    for (auto& w : workers_) {
        auto& clients = w->clients();
        while (!clients.empty()) {
            auto client = clients.front().shared_from_this();
            // Clients still logging in, or left by a worker that did not answer app::run's notice in time.
            client->kill(protocol::sqlstate::admin_shutdown, "pooler is shutting down");
            if (!clients.empty() && &clients.front() == client.get())
                clients.pop_front();  // closed but still linked: never loop on it
        }
    }
    decltype(pools_) pools;
    {
        std::lock_guard lock(pools_mutex_);
        pools.swap(pools_);
    }
    for (auto& [key, p] : pools)
        p->shutdown();
}

std::shared_ptr<const config::config> runtime::config() const {
    std::lock_guard lock(config_mutex_);
    return config_;
}

std::shared_ptr<const credential_store> runtime::credentials() const {
    std::lock_guard lock(config_mutex_);
    return credentials_;
}

void runtime::set_config(std::shared_ptr<const config::config> cfg, std::shared_ptr<const credential_store> creds) {
    // TLS contexts are built outside the lock (reading certificate files must not stall logins).
    std::string client_error;
    std::string server_error;
    auto client = tls_context::build(tls_context::role::accept, cfg->settings, client_error);
    auto server = tls_context::build(tls_context::role::connect, cfg->settings, server_error);
    std::string tls_error = client_error;
    if (!server_error.empty())
        tls_error += (tls_error.empty() ? "" : "; ") + server_error;
    if (!tls_error.empty())
        SLUICE_LOG(error, "TLS configuration not applied, keeping the previous one: " << tls_error);
    statements_.set_max_bytes(cfg->settings.max_prepared_statement_bytes);
    {
        std::lock_guard lock(config_mutex_);
        config_ = cfg;
        credentials_ = creds;
        if (client)
            client_tls_ = std::move(client);
        if (server)
            server_tls_ = std::move(server);
        tls_error_ = std::move(tls_error);
    }
    // Before the first start() there are no pools; afterwards each pool gets its part of the new configuration.
    apply_config_to_pools(*cfg, creds.get());
}

std::shared_ptr<const tls_context> runtime::client_tls() const {
    std::lock_guard lock(config_mutex_);
    return client_tls_;
}

std::shared_ptr<const tls_context> runtime::server_tls() const {
    std::lock_guard lock(config_mutex_);
    return server_tls_;
}

std::string runtime::tls_error() const {
    std::lock_guard lock(config_mutex_);
    return tls_error_;
}

std::vector<std::shared_ptr<pool>> runtime::pools_snapshot() const {
    std::lock_guard lock(pools_mutex_);
    std::vector<std::shared_ptr<pool>> out;
    out.reserve(pools_.size());
    for (const auto& [k, p] : pools_)
        out.push_back(p);
    return out;
}

void runtime::set_disabled(const std::string& database, bool on) {
    std::lock_guard lock(pools_mutex_);
    std::erase(disabled_, database);
    if (on)
        disabled_.push_back(database);
}

bool runtime::disabled(const std::string& database) const {
    std::lock_guard lock(pools_mutex_);
    return std::find(disabled_.begin(), disabled_.end(), database) != disabled_.end();
}

void runtime::set_database_paused(const std::string& database, bool on) {
    std::lock_guard lock(pools_mutex_);
    std::erase(paused_, database);
    if (on)
        paused_.push_back(database);
}

bool runtime::database_paused(const std::string& database) const {
    std::lock_guard lock(pools_mutex_);
    return std::find(paused_.begin(), paused_.end(), database) != paused_.end();
}

pool_config runtime::make_pool_config(const config::config& cfg, const credential_store* creds,
                                      const config::database_entry& db, std::string_view database,
                                      std::string_view user, const auth::secret* looked_up,
                                      const pool_config* previous) const {
    const auto& s = cfg.settings;
    const auto* user_entry = config::find_user(cfg, user);

    pool_config pc;
    pc.database = std::string(database);
    pc.user = std::string(user);
    pc.server_dbname = db.dbname.value_or(pc.database);
    pc.server_user = db.user.value_or(pc.user);
    if (db.password) {
        pc.server_password = db.password;
    } else if (creds) {
        if (auto c = creds->find(pc.server_user); c && c->stored.type != auth::secret::kind::scram_sha_256) {
            pc.server_password = c->stored.stored;
        }
    }
    if (!pc.server_password && looked_up && pc.server_user == pc.user &&
        looked_up->type != auth::secret::kind::scram_sha_256) {
        pc.server_password = looked_up->stored;  // md5 secret or password from auth_query (SCRAM uses client keys)
    }
    if (!pc.server_password && previous && previous->server_user == pc.server_user)
        pc.server_password = previous->server_password;  // found by auth_query at the pool's creation
    pc.host = db.hosts.empty() ? s.unix_socket_dir : db.hosts.front();
    pc.port = db.port;
    pc.pool_size =
        user_entry && user_entry->pool_size ? *user_entry->pool_size : db.pool_size.value_or(s.default_pool_size);
    pc.mode = user_entry && user_entry->pool_mode ? *user_entry->pool_mode : db.pool_mode.value_or(s.pool_mode);
    pc.reset_query = s.server_reset_query;
    pc.reset_query_always = s.server_reset_query_always;
    if (db.client_encoding)
        pc.startup_parameters.emplace_back("client_encoding", *db.client_encoding);
    if (db.datestyle)
        pc.startup_parameters.emplace_back("datestyle", *db.datestyle);
    if (db.timezone)
        pc.startup_parameters.emplace_back("timezone", *db.timezone);
    if (db.application_name)
        pc.startup_parameters.emplace_back("application_name", *db.application_name);
    pc.connect_timeout = s.server_connect_timeout;
    pc.query_wait_timeout = user_entry && user_entry->query_wait_timeout
                                ? *user_entry->query_wait_timeout
                                : db.query_wait_timeout.value_or(s.query_wait_timeout);
    pc.server_lifetime = db.server_lifetime.value_or(s.server_lifetime);
    pc.server_idle_timeout = s.server_idle_timeout;
    pc.max_packet_size = s.max_packet_size;
    pc.min_pool_size = db.min_pool_size.value_or(s.min_pool_size);
    pc.reserve_pool_size = user_entry && user_entry->reserve_pool_size
                               ? *user_entry->reserve_pool_size
                               : db.reserve_pool_size.value_or(s.reserve_pool_size);
    pc.reserve_pool_timeout = s.reserve_pool_timeout;
    pc.server_lifetime_jitter = s.server_lifetime_jitter;
    pc.server_login_retry = s.server_login_retry;
    pc.server_check_query = s.server_check_query;
    pc.server_check_delay = s.server_check_delay;
    pc.query_wait_notify = s.query_wait_notify;
    pc.max_db_connections = db.max_db_connections.value_or(s.max_db_connections);
    pc.max_user_connections =
        user_entry && user_entry->max_user_connections ? *user_entry->max_user_connections : s.max_user_connections;
    pc.max_db_client_connections = db.max_db_client_connections.value_or(s.max_db_client_connections);
    pc.max_user_client_connections = user_entry && user_entry->max_user_client_connections
                                         ? *user_entry->max_user_client_connections
                                         : s.max_user_client_connections;
    return pc;
}

std::shared_ptr<shared_limit> runtime::limit_locked(bool database, const std::string& name, int max, int client_max) {
    auto& map = database ? db_limits_ : user_limits_;
    auto& slot = map[name];
    if (!slot)
        slot = std::make_shared<shared_limit>(database ? shared_limit::kind::database : shared_limit::kind::user, name);
    slot->set_max(max);
    slot->set_client_max(client_max);
    return slot;
}

void runtime::apply_config_to_pools(const config::config& cfg, const credential_store* creds) {
    std::vector<std::pair<std::shared_ptr<pool>, pool_config>> updates;
    {
        std::lock_guard lock(pools_mutex_);
        for (const auto& [key, p] : pools_) {
            auto entry = config::resolve_database(cfg, key.first);
            if (!entry)
                continue;  // no longer routed: new logins fail, the pool serves its clients as it was
            auto next = make_pool_config(cfg, creds, *entry, key.first, key.second, nullptr, &p->cfg());
            limit_locked(true, key.first, next.max_db_connections, next.max_db_client_connections);
            limit_locked(false, key.second, next.max_user_connections, next.max_user_client_connections);
            updates.emplace_back(p, std::move(next));
        }
    }
    for (auto& [p, next] : updates)
        p->update_config(std::move(next));
}

std::shared_ptr<pool> runtime::get_pool(const config::database_entry& db, std::string_view database,
                                        std::string_view user, const auth::secret* looked_up) {
    std::pair<std::string, std::string> key{std::string(database), std::string(user)};
    {
        std::lock_guard lock(pools_mutex_);
        if (auto it = pools_.find(key); it != pools_.end())
            return it->second;
    }
    const auto cfg = config();
    const auto creds = credentials();
    auto pc = make_pool_config(*cfg, creds.get(), db, database, user, looked_up, nullptr);

    std::lock_guard lock(pools_mutex_);
    auto [it, inserted] = pools_.try_emplace(key, nullptr);
    if (inserted) {
        auto db_limit = limit_locked(true, key.first, pc.max_db_connections, pc.max_db_client_connections);
        auto user_limit = limit_locked(false, key.second, pc.max_user_connections, pc.max_user_client_connections);
        it->second = std::make_shared<pool>(*this, std::move(pc));
        it->second->set_limits(std::move(db_limit), std::move(user_limit));
        const bool paused = pause_state.load(std::memory_order_relaxed) != 0 ||
                            std::find(paused_.begin(), paused_.end(), key.first) != paused_.end();
        it->second->set_paused(paused);
        SLUICE_LOG(info, "pool " << key.first << "/" << key.second << " created: server " << it->second->cfg().host
                                 << ":" << it->second->cfg().port << " dbname=" << it->second->cfg().server_dbname
                                 << " pool_size=" << it->second->cfg().pool_size);
    }
    return it->second;
}

}  // namespace sluice::net
