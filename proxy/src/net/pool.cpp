#include "net/pool.hpp"

#include <algorithm>

#include "net/client_connection.hpp"
#include "net/runtime.hpp"
#include "net/worker.hpp"
#include "sluice/protocol/error.hpp"
#include "util/log.hpp"

namespace sluice::net {

namespace {
std::int64_t unix_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string server_prefix(const server_connection& s, const pool& p) {
    return "S-" + std::to_string(s.id()) + " " + p.cfg().database + "/" + p.cfg().user + "@" + p.cfg().host + ":" +
           std::to_string(p.cfg().port);
}
}  // namespace

pool_shard::pool_shard(pool& owner, worker& w) : pool_(owner), worker_(w) {}

pool_shard::~pool_shard() {
    idle_.clear();
    active_.clear();
    other_.clear();
    waiting_.clear();
}

void pool_shard::update_shared_counts() {
    shared_idle.store(static_cast<int>(idle_.size()), std::memory_order_seq_cst);
    shared_waiting.store(static_cast<int>(waiting_.size()), std::memory_order_seq_cst);
    oldest_wait_start.store(waiting_.empty() ? 0 : waiting_.front().wait_started().time_since_epoch().count(),
                            std::memory_order_relaxed);
}

void pool_shard::unlink(server_connection& server) {
    if (!server.is_linked())
        return;
    // State equals list: the server's state names the one list that holds it.
    auto& list = server.state() == server_state::idle     ? idle_
                 : server.state() == server_state::active ? active_
                                                          : other_;
    list.erase(list.iterator_to(server));
}

void pool_shard::acquire(client_connection& client) {
    if (pool_.paused()) {
        // PAUSE: queue without connecting; RESUME serves the queue in order.
        waiting_.push_back(client);
        update_shared_counts();
        return;
    }
    while (!idle_.empty()) {
        auto server = take_idle_front();
        if (steady_clock::now() >= server->lifetime_deadline()) {
            discard(*server, close_reason::lifetime);
            continue;
        }
        update_shared_counts();
        assign(client, std::move(server));
        return;
    }
    waiting_.push_back(client);
    update_shared_counts();
    if (pool_.try_reserve_server()) {
        start_connect();
    } else {
        counters.exhaustion_events.add();
        ask_for_idle_server();
    }
}

std::shared_ptr<server_connection> pool_shard::take_idle_front() {
    auto server = idle_.front().shared_from_this();
    idle_.pop_front();
    if (server->idle_wait_armed) {
        // The idle read-wait belongs to the pool; whoever takes the server now drives its socket.
        error_code ignored;
        server->socket().cancel(ignored);
        server->idle_wait_armed = false;
    }
    return server;
}

void pool_shard::cancel_wait(client_connection& client) {
    auto& hook = static_cast<shard_client_hook&>(client);
    if (hook.is_linked()) {
        waiting_.erase(waiting_.iterator_to(client));
        update_shared_counts();
    }
}

void pool_shard::assign(client_connection& client, std::shared_ptr<server_connection> server) {
    server->set_state(server_state::active);
    active_.push_back(*server);
    server->touch();
    client.on_server_assigned(std::move(server));
}

void pool_shard::release(std::shared_ptr<server_connection> server) {
    unlink(*server);
    server->touch();
    if (server->cancels_in_flight > 0) {
        server->set_state(server_state::maintenance);
        other_.push_back(*server);
        server->release_after_cancel = true;
        return;
    }
    if (steady_clock::now() >= server->lifetime_deadline()) {
        discard(*server, close_reason::lifetime);
        return;
    }
    give_to_waiter_or_idle(std::move(server));
}

void pool_shard::give_to_waiter_or_idle(std::shared_ptr<server_connection> server) {
    if (!waiting_.empty() && !pool_.paused()) {
        auto& client = waiting_.front();
        waiting_.pop_front();
        update_shared_counts();
        assign(client, std::move(server));
        return;
    }
    if (auto* other = pool_.longest_waiting_shard(this)) {
        migrate(std::move(server), *other);
        return;
    }
    make_idle(std::move(server));
    // A worker may have queued a client between our check and the idle count becoming visible: look again.
    if (auto* other = pool_.longest_waiting_shard(this))
        lend_idle_server(*other);
}

void pool_shard::make_idle(std::shared_ptr<server_connection> server) {
    server->set_state(server_state::idle);
    idle_.push_front(*server);
    update_shared_counts();
    arm_idle_wait(server);
}

void pool_shard::arm_idle_wait(const std::shared_ptr<server_connection>& server) {
    server->idle_wait_armed = true;
    server->socket().async_wait(stream_socket::wait_read,
                                [this, server, gen = server->generation()](const error_code& ec) {
                                    if (server->generation() != gen || server->state() != server_state::idle)
                                        return;
                                    server->idle_wait_armed = false;
                                    if (ec == asio::error::operation_aborted)
                                        return;
                                    // An idle server has nothing to say: readable means closed or a FATAL notice.
                                    SLUICE_LOG(info, server_prefix(*server, pool_) << ": idle server closed by peer");
                                    unlink(*server);
                                    update_shared_counts();
                                    discard(*server, close_reason::error);
                                });
}

void pool_shard::migrate(std::shared_ptr<server_connection> server, pool_shard& to) {
    unlink(*server);
    server->set_state(server_state::maintenance);
    const int fd = server->release_descriptor();
    std::erase(owned_, server);
    update_shared_counts();
    if (fd < 0) {
        pool_.unreserve_server();
        return;
    }
    to.home().post([&to, server = std::move(server), fd, keep = pool_.shared_from_this()]() mutable {
        to.adopt(std::move(server), fd);
    });
}

void pool_shard::adopt(std::shared_ptr<server_connection> server, int fd) {
    server->adopt_descriptor(worker_.context(), fd);
    server->set_shard(*this);
    owned_.push_back(server);
    if (!server->has_socket()) {
        discard(*server, close_reason::error);
        return;
    }
    give_to_waiter_or_idle(std::move(server));
}

void pool_shard::lend_idle_server(pool_shard& to) {
    if (idle_.empty() || !waiting_.empty())
        return;
    auto server = take_idle_front();
    migrate(std::move(server), to);
}

void pool_shard::ask_for_idle_server() {
    if (auto* other = pool_.shard_with_idle(this)) {
        other->home().post([other, this, keep = pool_.shared_from_this()] { other->lend_idle_server(*this); });
    }
}

void pool_shard::start_connect() {
    auto server = std::make_shared<server_connection>(pool_.shared_from_this(), *this, worker_.rt().next_id());
    other_.push_back(*server);
    owned_.push_back(server);
    asio::co_spawn(
        worker_.context(),
        [this, server]() -> asio::awaitable<void> {
            const auto started = steady_clock::now();
            auto err = co_await server->async_connect_and_login();
            unlink(*server);
            if (!err.ok()) {
                server->set_state(server_state::closed);
                server->close_socket();
                std::erase(owned_, server);
                pool_.unreserve_server();
                SLUICE_LOG(warning, server_prefix(*server, pool_) << ": " << err.message);
                counters.server_connect_failures.add();
                // Readiness tracks whether the backend can be reached, not whether a client named a database or
                // role that does not exist: only connection-class failures (SQLSTATE class 08) count.
                if (err.sqlstate.starts_with("08")) {
                    worker_.rt().last_server_login_failed_unix_s.store(unix_seconds(), std::memory_order_relaxed);
                }
                on_connect_failed(err);
                co_return;
            }
            const auto connect_us = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - started).count());
            counters.server_connects.add();
            counters.server_connect_time_us.add(connect_us);
            counters.connect_time.observe_microseconds(connect_us);
            worker_.rt().last_server_login_ok_unix_s.store(unix_seconds(), std::memory_order_relaxed);
            SLUICE_LOG(debug, server_prefix(*server, pool_) << ": new server connection in " << connect_us << " us");
            give_to_waiter_or_idle(server);
        },
        [server](std::exception_ptr e) {
            if (e)
                SLUICE_LOG(error, "server S-" << server->id() << ": internal error during login");
        });
}

void pool_shard::on_connect_failed(const server_error& err) {
    // With no server at all, waiting is pointless: tell the waiting clients now. Otherwise the existing servers
    // will serve them.
    if (pool_.server_count() > 0)
        return;
    while (!waiting_.empty()) {
        auto& client = waiting_.front();
        waiting_.pop_front();
        update_shared_counts();
        client.on_server_failed(err);
    }
}

void pool_shard::discard(server_connection& server, close_reason why) {
    auto keep = server.shared_from_this();
    unlink(server);
    const bool was_counted = server.state() != server_state::closed;
    server.set_state(server_state::closed);
    server.close_socket();
    std::erase(owned_, keep);
    update_shared_counts();
    if (was_counted)
        pool_.unreserve_server();
    SLUICE_LOG(info, server_prefix(server, pool_) << ": closing because: " << to_string(why));
    if (!waiting_.empty() && pool_.try_reserve_server())
        start_connect();
}

void pool_shard::finish_release_after_cancel(const std::shared_ptr<server_connection>& server) {
    if (server->state() != server_state::maintenance)
        return;  // discarded meanwhile
    unlink(*server);
    give_to_waiter_or_idle(server);
}

void pool_shard::release_after(std::shared_ptr<server_connection> server, std::vector<std::string> statements) {
    unlink(*server);
    server->set_state(server_state::maintenance);
    other_.push_back(*server);
    asio::co_spawn(
        worker_.context(),
        [this, server, statements = std::move(statements)]() -> asio::awaitable<void> {
            for (const auto& sql : statements) {
                auto err = co_await server->async_run_query(sql);
                if (!err.ok()) {
                    SLUICE_LOG(warning, server_prefix(*server, pool_)
                                            << ": reset failed: " << err.sqlstate << " " << err.message);
                    discard(*server, close_reason::error);
                    co_return;
                }
            }
            unlink(*server);
            server->touch();
            give_to_waiter_or_idle(server);
        },
        asio::detached);
}

void pool_shard::resume() {
    while (!waiting_.empty() && !idle_.empty() && !pool_.paused()) {
        auto server = take_idle_front();
        auto& client = waiting_.front();
        waiting_.pop_front();
        update_shared_counts();
        assign(client, std::move(server));
    }
    while (!waiting_.empty() && !pool_.paused() && pool_.try_reserve_server())
        start_connect();
}

void pool_shard::tick(steady_clock::time_point now) {
    const auto& cfg = pool_.cfg();
    if (cfg.query_wait_timeout.count() > 0) {
        const auto limit = std::chrono::duration_cast<steady_clock::duration>(cfg.query_wait_timeout);
        while (!waiting_.empty() && now - waiting_.front().wait_started() > limit) {
            auto& client = waiting_.front();
            waiting_.pop_front();
            update_shared_counts();
            SLUICE_LOG(warning,
                       "C-" << client.id() << " " << cfg.database << "/" << cfg.user << ": query_wait_timeout expired");
            counters.query_wait_timeouts.add();
            client.on_server_failed({std::string(protocol::sqlstate::protocol_violation), "query_wait_timeout"});
        }
    }
    // Idle servers past their lifetime or idle timeout, oldest first (the back of the list).
    const auto idle_limit = std::chrono::duration_cast<steady_clock::duration>(cfg.server_idle_timeout);
    while (!idle_.empty()) {
        auto& oldest = idle_.back();
        const bool expired = now >= oldest.lifetime_deadline();
        const bool idle_too_long = cfg.server_idle_timeout.count() > 0 && now - oldest.last_used() > idle_limit;
        if (!expired && !idle_too_long)
            break;
        auto server = oldest.shared_from_this();
        if (server->idle_wait_armed) {
            error_code ignored;
            server->socket().cancel(ignored);
            server->idle_wait_armed = false;
        }
        discard(*server, expired ? close_reason::lifetime : close_reason::idle_timeout);
    }
    // Backstop for a lost hand-off between workers (not while a connect of ours is under way for them, nor paused).
    const bool connecting = std::any_of(
        other_.begin(), other_.end(), [](const server_connection& s) { return s.state() == server_state::connecting; });
    if (!waiting_.empty() && idle_.empty() && !connecting && !pool_.paused()) {
        if (pool_.try_reserve_server()) {
            start_connect();
        } else {
            ask_for_idle_server();
        }
    }
}

void pool_shard::fill_snapshot(stats::pool_row& row, std::vector<stats::connection_row>& servers) const {
    row.sv_active += static_cast<int>(active_.size());
    row.sv_idle += static_cast<int>(idle_.size());
    for (const auto& s : other_) {
        if (s.state() == server_state::connecting) {
            ++row.sv_login;
        } else {
            ++row.sv_tested;
        }
    }
    row.cl_waiting += static_cast<int>(waiting_.size());
    const auto now = steady_clock::now();
    if (!waiting_.empty()) {
        const auto waited =
            std::chrono::duration_cast<std::chrono::microseconds>(now - waiting_.front().wait_started());
        row.maxwait_us = std::max<std::int64_t>(row.maxwait_us, waited.count());
    }
    row.totals.add(counters);
    row.wait_time.add(counters.wait_time);
    row.xact_time.add(counters.xact_time);
    row.query_time.add(counters.query_time);
    row.connect_time.add(counters.connect_time);
    const auto wall_now = std::chrono::system_clock::now();
    auto to_unix_us = [&](steady_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::microseconds>((wall_now - (now - t)).time_since_epoch()).count();
    };
    for (const auto* list : {&active_, &idle_, &other_}) {
        for (const auto& s : *list) {
            stats::connection_row r;
            r.is_server = true;
            r.id = s.id();
            r.user = pool_.cfg().user;
            r.database = pool_.cfg().database;
            r.state = s.state() == server_state::connecting    ? "login"
                      : s.state() == server_state::maintenance ? "tested"
                                                               : to_string(s.state());
            r.addr = s.host();
            r.port = s.port();
            r.connect_time_unix_us = to_unix_us(s.connected_at());
            r.request_time_unix_us = to_unix_us(s.last_used());
            r.remote_pid = s.backend_pid();
            r.worker = worker_.index();
            if (s.client)
                r.link_id = s.client->id();
            servers.push_back(std::move(r));
        }
    }
}

pool::pool(runtime& rt, pool_config cfg) : rt_(rt), cfg_(std::move(cfg)) {
    for (std::size_t i = 0; i < rt.worker_count(); ++i) {
        shards_.push_back(std::make_unique<pool_shard>(*this, rt.worker_at(i)));
    }
}

pool::~pool() = default;

bool pool::try_reserve_server() noexcept {
    int current = server_count_.load(std::memory_order_relaxed);
    while (current < cfg_.pool_size) {
        if (server_count_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel))
            return true;
    }
    return false;
}

void pool::unreserve_server() noexcept {
    server_count_.fetch_sub(1, std::memory_order_acq_rel);
}

std::optional<std::vector<std::pair<std::string, std::string>>> pool::welcome() const {
    std::lock_guard lock(mutex_);
    return welcome_;
}

void pool::set_welcome(const std::vector<std::pair<std::string, std::string>>& params) {
    std::lock_guard lock(mutex_);
    if (!welcome_)
        welcome_ = params;
}

void pool::remember_client_keys(const auth::scram_client_keys& keys) {
    std::lock_guard lock(mutex_);
    client_keys_ = keys;
}

std::optional<auth::scram_client_keys> pool::client_keys() const {
    std::lock_guard lock(mutex_);
    return client_keys_;
}

void pool::remember_derived_keys(const auth::scram_derived_keys& keys) {
    std::lock_guard lock(mutex_);
    derived_keys_ = keys;
}

std::optional<auth::scram_derived_keys> pool::derived_keys() const {
    std::lock_guard lock(mutex_);
    return derived_keys_;
}

pool_shard* pool::longest_waiting_shard(const pool_shard* except) noexcept {
    pool_shard* best = nullptr;
    std::int64_t best_start = 0;
    for (auto& s : shards_) {
        if (s.get() == except || s->shared_waiting.load(std::memory_order_seq_cst) == 0)
            continue;
        const auto start = s->oldest_wait_start.load(std::memory_order_relaxed);
        if (!best || start < best_start) {
            best = s.get();
            best_start = start;
        }
    }
    return best;
}

pool_shard* pool::shard_with_idle(const pool_shard* except) noexcept {
    for (auto& s : shards_) {
        if (s.get() != except && s->shared_idle.load(std::memory_order_seq_cst) > 0)
            return s.get();
    }
    return nullptr;
}

}  // namespace sluice::net
