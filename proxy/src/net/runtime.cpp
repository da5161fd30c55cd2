#include "net/runtime.hpp"

#include "auth/random.hpp"
#include "net/client_connection.hpp"
#include "net/pool.hpp"
#include "net/worker.hpp"
#include "sluice/bridge/thread_pool.hpp"
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
        auto it = derived_.find(std::string(user));
        if (it == derived_.end()) {
            auto parsed = auth::parse_secret(auth::make_scram_secret(stored->stored, scram_iterations_));
            it = derived_.emplace(std::string(user), *parsed).first;
        }
        c.scram = it->second;
    }
    return c;
}

cancel_registry::key cancel_registry::add(const std::shared_ptr<client_connection>& client) {
    std::lock_guard lock(mutex_);
    for (;;) {
        key k{auth::random_u32(), auth::random_u32()};
        if (k.process_id == 0 || clients_.contains(k))
            continue;
        clients_.emplace(k, client);
        return k;
    }
}

void cancel_registry::remove(key k) {
    std::lock_guard lock(mutex_);
    clients_.erase(k);
}

std::shared_ptr<client_connection> cancel_registry::find(key k) const {
    std::lock_guard lock(mutex_);
    auto it = clients_.find(k);
    return it == clients_.end() ? nullptr : it->second.lock();
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
    std::lock_guard lock(pools_mutex_);
    pools_.clear();
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
    std::lock_guard lock(config_mutex_);
    config_ = std::move(cfg);
    credentials_ = std::move(creds);
}

std::vector<std::shared_ptr<pool>> runtime::pools_snapshot() const {
    std::lock_guard lock(pools_mutex_);
    std::vector<std::shared_ptr<pool>> out;
    out.reserve(pools_.size());
    for (const auto& [k, p] : pools_)
        out.push_back(p);
    return out;
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
    const auto& s = cfg->settings;
    const auto* user_entry = config::find_user(*cfg, user);

    pool_config pc;
    pc.database = key.first;
    pc.user = key.second;
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
    pc.query_wait_timeout = db.query_wait_timeout.value_or(s.query_wait_timeout);
    pc.server_lifetime = db.server_lifetime.value_or(s.server_lifetime);
    pc.server_idle_timeout = s.server_idle_timeout;
    pc.max_packet_size = s.max_packet_size;

    std::lock_guard lock(pools_mutex_);
    auto [it, inserted] = pools_.try_emplace(key, nullptr);
    if (inserted) {
        it->second = std::make_shared<pool>(*this, std::move(pc));
        SLUICE_LOG(info, "pool " << key.first << "/" << key.second << " created: server " << it->second->cfg().host
                                 << ":" << it->second->cfg().port << " dbname=" << it->second->cfg().server_dbname
                                 << " pool_size=" << it->second->cfg().pool_size);
    }
    return it->second;
}

}  // namespace sluice::net
