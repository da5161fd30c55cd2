#include "net/runtime.hpp"

#include "auth/random.hpp"
#include "net/pool.hpp"
#include "net/worker.hpp"
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

runtime::runtime(std::shared_ptr<const config::config> cfg) : config_(std::move(cfg)) {
    unsigned n = static_cast<unsigned>(config_->settings.workers);
    if (n == 0)
        n = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i)
        workers_.push_back(std::make_unique<worker>(*this, i));
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
                                        std::string_view user) {
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
