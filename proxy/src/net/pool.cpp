#include "net/pool.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <random>

#include "net/client_connection.hpp"
#include "net/listen_relay.hpp"
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

// How much earlier a client on another worker must have queued for a released server to move there instead of
// serving this worker's head: strict FIFO across workers would move a server on almost every release.
constexpr std::chrono::milliseconds cross_worker_fifo_slack{20};

steady_clock::duration to_steady(std::chrono::microseconds us) {
    return std::chrono::duration_cast<steady_clock::duration>(us);
}

// server_lifetime randomized by up to +/- server_lifetime_jitter, never before `connected`. Spreading the deadlines
// keeps a pool whose servers were opened together (a restart, a burst) from reconnecting all at once.
steady_clock::time_point lifetime_deadline(const pool_config& cfg, steady_clock::time_point connected) {
    if (cfg.server_lifetime.count() <= 0)
        return connected;  // 0: use once (PgBouncer), closed when first released
    auto lifetime = cfg.server_lifetime;
    if (const auto jitter = cfg.server_lifetime_jitter.count(); jitter > 0) {
        thread_local std::mt19937_64 rng{std::random_device{}()};
        std::uniform_int_distribution<std::int64_t> spread(-jitter, jitter);
        lifetime = std::max(std::chrono::microseconds(0), lifetime + std::chrono::microseconds(spread(rng)));
    }
    return connected + to_steady(lifetime);
}
}  // namespace

bool same_server_target(const pool_config& a, const pool_config& b) noexcept {
    return a.host == b.host && a.port == b.port && a.server_dbname == b.server_dbname &&
           a.server_user == b.server_user && a.server_password == b.server_password &&
           a.startup_parameters == b.startup_parameters;
}

// --- shared_limit ---

void shared_limit::add_pool(const std::shared_ptr<pool>& p) {
    std::lock_guard lock(mutex_);
    std::erase_if(pools_, [](const std::weak_ptr<pool>& w) { return w.expired(); });
    pools_.push_back(p);
}

bool shared_limit::try_take() noexcept {
    const int m = max_.load(std::memory_order_relaxed);
    if (m <= 0) {
        count_.fetch_add(1, std::memory_order_acq_rel);
        return true;
    }
    int current = count_.load(std::memory_order_relaxed);
    while (current < m) {
        if (count_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel))
            return true;
    }
    return false;
}

std::shared_ptr<pool> shared_limit::poorest_starved_locked() {
    std::shared_ptr<pool> best;
    bool any = false;
    for (const auto& w : pools_) {
        auto p = w.lock();
        if (!p || !p->starved_on(*this))
            continue;
        if (p->waiting_total() == 0) {
            p->set_starved(*this, false);
            continue;
        }
        any = true;
        if (!best || p->server_count() < best->server_count())
            best = std::move(p);
    }
    if (!any)
        starved_hint_.store(0, std::memory_order_relaxed);
    return best;
}

void shared_limit::release() {
    const int m = max_.load(std::memory_order_relaxed);
    if (m > 0 && starved_hint_.load(std::memory_order_acquire) != 0 && count_.load(std::memory_order_relaxed) <= m) {
        std::shared_ptr<pool> target;
        {
            std::lock_guard lock(mutex_);
            target = poorest_starved_locked();
            if (target)
                target->set_starved(*this, false);
        }
        if (target) {
            // The slot stays counted: it now belongs to the starved pool, which no richer pool can overtake.
            target->receive_slot(*this);
            return;
        }
    }
    count_.fetch_sub(1, std::memory_order_acq_rel);
}

bool shared_limit::try_add_client() noexcept {
    const int m = client_max_.load(std::memory_order_relaxed);
    int current = clients_.load(std::memory_order_relaxed);
    do {
        if (m > 0 && current >= m)
            return false;
    } while (!clients_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel));
    return true;
}

void shared_limit::mark_starved(pool& p) {
    p.set_starved(*this, true);
    starved_hint_.store(1, std::memory_order_release);
    evict_idle_for(p);
}

bool shared_limit::poorer_pool_starved(const pool& p, int margin) const {
    if (starved_hint_.load(std::memory_order_relaxed) == 0 || max_.load(std::memory_order_relaxed) <= 0)
        return false;
    const int mine = p.server_count();
    std::lock_guard lock(mutex_);
    for (const auto& w : pools_) {
        auto q = w.lock();
        if (q && q.get() != &p && q->starved_on(*this) && q->waiting_total() > 0 && q->server_count() + margin < mine)
            return true;
    }
    return false;
}

void shared_limit::evict_idle_for(const pool& starved) {
    if (evicting_.exchange(true, std::memory_order_acq_rel))
        return;
    std::shared_ptr<pool> donor;
    {
        std::lock_guard lock(mutex_);
        for (const auto& w : pools_) {
            auto q = w.lock();
            if (q && q.get() != &starved && q->idle_total() > 0 &&
                (!donor || q->server_count() > donor->server_count()))
                donor = std::move(q);
        }
    }
    if (donor) {
        for (std::size_t i = 0; i < donor->shard_count(); ++i) {
            auto& shard = donor->shard(i);
            if (shard.shared_idle.load(std::memory_order_relaxed) == 0)
                continue;
            shard.home().post([donor, &shard, this] {
                if (!shard.evict_one_idle())
                    eviction_done();
            });
            return;
        }
    }
    eviction_done();
}

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

bool pool_shard::may_connect(steady_clock::time_point now) const noexcept {
    const auto after = pool_.login_retry_after.load(std::memory_order_relaxed);
    return after == 0 || now.time_since_epoch().count() >= after;
}

bool pool_shard::try_connect_for_waiters(bool use_reserve) {
    if (waiting_.empty() || pool_.paused() || !may_connect(steady_clock::now()))
        return true;
    if (pool_.try_reserve_server(use_reserve)) {
        if (use_reserve && pool_.server_count() > pool_.cfg().pool_size) {
            SLUICE_LOG(info, "pool " << pool_.cfg().database << "/" << pool_.cfg().user
                                     << ": taking a connection from the reserve pool");
        }
        start_connect();
        return true;
    }
    ask_for_idle_server();
    return false;
}

void pool_shard::acquire(client_connection& client) {
    if (pool_.paused()) {
        // PAUSE: queue without connecting; RESUME serves the queue in order.
        waiting_.push_back(client);
        update_shared_counts();
        return;
    }
    const auto now = steady_clock::now();
    while (!idle_.empty()) {
        auto server = take_idle_front();
        if (!server)
            continue;
        if (const auto why = must_close(*server, /*margin=*/0)) {
            discard(*server, *why);
            continue;
        }
        if (needs_check(*server, now)) {
            // The checked server goes to the head of the queue, which this client joins: FIFO is kept.
            waiting_.push_back(client);
            update_shared_counts();
            check_then_give(std::move(server));
            return;
        }
        update_shared_counts();
        assign(client, std::move(server));
        return;
    }
    waiting_.push_back(client);
    update_shared_counts();
    if (!may_connect(now) && pool_.server_count() == 0) {
        // server_login_retry: with no server to wait for, say so at once (PgBouncer's wording).
        waiting_.erase(waiting_.iterator_to(client));
        update_shared_counts();
        const std::string message =
            "server login has been failing, cached error: " + pool_.last_login_error() + " (server_login_retry)";
        client.on_server_failed({std::string(protocol::sqlstate::protocol_violation), message});
        return;
    }
    // Counted here, once per client that queues at the limit, not at every retry of the tick's backstop.
    if (!try_connect_for_waiters(false))
        counters.exhaustion_events.add();
}

std::shared_ptr<server_connection> pool_shard::take_idle_front() {
    auto server = idle_.front().shared_from_this();
    idle_.pop_front();
    // The idle read-wait stays pending: cancelling it costs a cancelled handler per transaction, and re-arming one
    // on an empty queue an epoll_ctl. It completes at the server's next readiness, sees the server no longer idle and
    // only clears idle_wait_armed (arm_idle_wait); meanwhile the relay's own read-wait queues behind it for free.
    if (!server->idle_wait_armed && !server->tls() && !idle_server_alive(*server)) {
        discard_closed_idle(*server);
        return nullptr;
    }
    return server;
}

void pool_shard::discard_closed_idle(server_connection& server) {
    SLUICE_LOG(info, server_prefix(server, pool_) << ": idle server closed by peer");
    discard(server, close_reason::error);  // unlinks it and updates the shared counts
}

bool pool_shard::idle_server_alive(server_connection& server) {
    // A plaintext idle server has nothing to say: any byte (a FATAL before PostgreSQL closes, as
    // idle_session_timeout sends) or EOF means it is gone. One recv, where arming a read-wait would cost an
    // epoll_ctl and a completion.
    char byte;
    const ssize_t n = ::recv(server.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
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

std::optional<close_reason> pool_shard::must_close(const server_connection& server, int margin) const {
    // A cancel gave up waiting (cancel_wait_timeout) after it was sent: PostgreSQL may still run it later, and it
    // must not hit the next client's query.
    if (server.cancel_unconfirmed)
        return close_reason::error;
    if (steady_clock::now() >= server.lifetime_deadline())
        return close_reason::lifetime;
    if (server.target_generation != pool_.target_generation())
        return close_reason::reload;
    const auto& cfg = pool_.cfg();
    if (pool_.server_count() > cfg.pool_size + cfg.reserve_pool_size)
        return close_reason::reload;  // the pool shrank
    if (pool_.db_limit().poorer_pool_starved(pool_, margin) || pool_.user_limit().poorer_pool_starved(pool_, margin))
        return close_reason::evicted;  // fair share of max_db_connections / max_user_connections
    return std::nullopt;
}

bool pool_shard::needs_check(const server_connection& server, steady_clock::time_point now) const {
    const auto& cfg = pool_.cfg();
    return cfg.server_check_query.has_value() && now - server.last_used() >= to_steady(cfg.server_check_delay);
}

void pool_shard::check_then_give(std::shared_ptr<server_connection> server) {
    server->set_state(server_state::maintenance);
    other_.push_back(*server);
    asio::co_spawn(
        worker_.context(),
        [this, server]() -> asio::awaitable<void> {
            const std::string sql = pool_.cfg().server_check_query.value_or(std::string());
            auto err = co_await server->async_run_query(sql);
            if (server->state() != server_state::maintenance)
                co_return;  // closed meanwhile (KILL, shutdown)
            if (!err.ok()) {
                SLUICE_LOG(warning, server_prefix(*server, pool_)
                                        << ": server_check_query failed: " << err.sqlstate << " " << err.message);
                discard(*server, close_reason::check_failed);
                co_return;
            }
            unlink(*server);
            server->touch();
            give_to_waiter_or_idle(server);
        },
        asio::detached);
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
    give_to_waiter_or_idle(std::move(server));
}

void pool_shard::give_to_waiter_or_idle(std::shared_ptr<server_connection> server) {
    // A server that must go (lifetime, changed settings, RECONNECT, a shrunk pool, a poorer pool's fair share) is
    // closed here, between transactions; a waiter gets a new one.
    const bool has_waiter = !waiting_.empty() && !pool_.paused();
    if (const auto why = must_close(*server, has_waiter ? 1 : 0)) {
        server->set_state(server_state::maintenance);
        other_.push_back(*server);
        discard(*server, *why);
        return;
    }
    if (has_waiter) {
        // FIFO across the pool: a client queued on another worker noticeably earlier than ours gets the server.
        const auto local_start = waiting_.front().wait_started().time_since_epoch().count();
        if (auto* other = pool_.longest_waiting_shard(this)) {
            const auto other_start = other->oldest_wait_start.load(std::memory_order_relaxed);
            if (other_start != 0 &&
                other_start + std::chrono::duration_cast<steady_clock::duration>(cross_worker_fifo_slack).count() <
                    local_start) {
                migrate(std::move(server), *other);
                return;
            }
        }
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
    // A busy pool's servers are idle for microseconds: a read-wait armed at every release would cost an epoll_ctl
    // and a completion per transaction. Plaintext servers get theirs at the next tick if still idle (tick), and
    // take_idle_front peeks at those without one. TLS servers are watched at once: a peek cannot tell a TLS record
    // that carries nothing (a session ticket) from a FATAL.
    if (!server->idle_wait_armed && server->tls())
        arm_idle_wait(server);  // else the wait of an earlier idle period is still pending: it re-arms when stale
}

void pool_shard::arm_idle_wait(const std::shared_ptr<server_connection>& server) {
    server->idle_wait_armed = true;
    server->socket().async_wait(stream_socket::wait_read,
                                [this, server, gen = server->generation()](const error_code& ec) {
                                    // Whoever cancels clears idle_wait_armed (a migrated server is no longer ours).
                                    if (ec == asio::error::operation_aborted)
                                        return;
                                    server->idle_wait_armed = false;
                                    // Taken while the wait was pending: the relay or maintenance drives the socket.
                                    if (server->state() != server_state::idle)
                                        return;
                                    if (server->generation() != gen) {
                                        // Armed in an earlier idle period: the wake-up may have been an answer to
                                        // the client that held the server since. Watch this idle period afresh.
                                        arm_idle_wait(server);
                                        return;
                                    }
                                    // TLS: a wake-up that brings no application data (a session ticket, or a
                                    // readiness edge for bytes OpenSSL already read ahead during login) is not news.
                                    if (!ec && server->tls() && server->tls()->only_protocol_records()) {
                                        arm_idle_wait(server);
                                        return;
                                    }
                                    // An idle server has nothing to say: readable means closed or a FATAL notice.
                                    discard_closed_idle(*server);
                                });
}

void pool_shard::migrate(std::shared_ptr<server_connection> server, pool_shard& to) {
    if (server->idle_wait_armed) {
        // The pending idle read-wait must complete (aborted) before the server belongs to another thread.
        error_code ignored;
        server->socket().cancel(ignored);
        server->idle_wait_armed = false;
    }
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
    if (!waiting_.empty() && needs_check(*server, steady_clock::now())) {
        check_then_give(std::move(server));
        return;
    }
    give_to_waiter_or_idle(std::move(server));
}

void pool_shard::lend_idle_server(pool_shard& to) {
    while (!idle_.empty() && waiting_.empty()) {
        if (auto server = take_idle_front()) {
            migrate(std::move(server), to);
            return;
        }
    }
}

void pool_shard::ask_for_idle_server() {
    if (auto* other = pool_.shard_with_idle(this)) {
        other->home().post([other, this, keep = pool_.shared_from_this()] { other->lend_idle_server(*this); });
    }
}

void pool_shard::start_connect() {
    auto server = std::make_shared<server_connection>(pool_.shared_from_this(), *this, worker_.rt().next_id());
    server->target_generation = pool_.target_generation();
    other_.push_back(*server);
    owned_.push_back(server);
    asio::co_spawn(
        worker_.context(),
        [this, server]() -> asio::awaitable<void> {
            const auto started = steady_clock::now();
            auto err = co_await server->async_connect_and_login();
            if (server->state() == server_state::closed)
                co_return;  // KILL or shutdown closed it meanwhile (and gave back its slot)
            unlink(*server);
            if (!err.ok()) {
                server->set_state(server_state::closed);
                server->close_socket();
                std::erase(owned_, server);
                SLUICE_LOG(warning, server_prefix(*server, pool_) << ": " << err.message);
                counters.server_connect_failures.add();
                // Readiness tracks whether the backend can be reached, not whether a client named a database or
                // role that does not exist: only connection-class failures (SQLSTATE class 08) count.
                if (err.sqlstate.starts_with("08")) {
                    worker_.rt().last_server_login_failed_unix_s.store(unix_seconds(), std::memory_order_relaxed);
                }
                // server_login_retry: no new login until it passes.
                pool_.set_last_login_error(err.message);
                const auto retry = pool_.cfg().server_login_retry;
                if (retry.count() > 0) {
                    pool_.login_retry_after.store((steady_clock::now() + to_steady(retry)).time_since_epoch().count(),
                                                  std::memory_order_relaxed);
                }
                pool_.unreserve_server();
                on_connect_failed(err);
                co_return;
            }
            pool_.login_retry_after.store(0, std::memory_order_relaxed);
            server->set_lifetime_deadline(lifetime_deadline(pool_.cfg(), steady_clock::now()));
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

void pool_shard::fail_waiters(const server_error& err) {
    while (!waiting_.empty()) {
        auto& client = waiting_.front();
        waiting_.pop_front();
        update_shared_counts();
        client.on_server_failed(err);
    }
}

void pool_shard::on_connect_failed(const server_error& err) {
    // With no server at all, waiting is pointless: tell the waiting clients now. Otherwise the existing servers
    // will serve them.
    if (pool_.server_count() > 0)
        return;
    fail_waiters(err);
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
    if (!waiting_.empty())
        try_connect_for_waiters(false);
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
                if (server->state() != server_state::maintenance)
                    co_return;  // closed meanwhile (KILL, shutdown)
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
    const auto now = steady_clock::now();
    while (!waiting_.empty() && !idle_.empty() && !pool_.paused()) {
        auto server = take_idle_front();
        if (!server)
            continue;
        if (const auto why = must_close(*server, 0)) {
            discard(*server, *why);
            continue;
        }
        if (needs_check(*server, now)) {
            check_then_give(std::move(server));
            continue;
        }
        auto& client = waiting_.front();
        waiting_.pop_front();
        update_shared_counts();
        assign(client, std::move(server));
    }
    // One connection per waiter at most (the pool size bounds it too).
    std::size_t connecting = static_cast<std::size_t>(std::count_if(
        other_.begin(), other_.end(), [](const server_connection& s) { return s.state() != server_state::idle; }));
    while (connecting < waiting_.size() && !pool_.paused() && may_connect(now) && pool_.try_reserve_server()) {
        start_connect();
        ++connecting;
    }
}

void pool_shard::apply_config() {
    // Idle servers that must go (changed settings, RECONNECT, a smaller pool) close now; busy ones on release.
    for (auto it = idle_.begin(); it != idle_.end();) {
        auto& s = *it++;
        if (must_close(s, 0)) {
            auto server = s.shared_from_this();
            if (server->idle_wait_armed) {
                error_code ignored;
                server->socket().cancel(ignored);
                server->idle_wait_armed = false;
            }
            discard(*server, close_reason::reload);
        }
    }
    // A bigger pool serves its queue at once.
    resume();
}

void pool_shard::use_handed_slot(shared_limit& held) {
    if (waiting_.empty() || pool_.paused() || !may_connect(steady_clock::now())) {
        held.release();
        return;
    }
    if (pool_.try_reserve_server(false, &held))
        start_connect();
}

bool pool_shard::evict_one_idle() {
    if (idle_.empty())
        return false;
    auto server = idle_.back().shared_from_this();
    if (server->idle_wait_armed) {
        error_code ignored;
        server->socket().cancel(ignored);
        server->idle_wait_armed = false;
    }
    discard(*server, close_reason::evicted);
    pool_.db_limit().eviction_done();
    pool_.user_limit().eviction_done();
    return true;
}

void pool_shard::close_all(close_reason why) {
    for (auto* list : {&idle_, &active_, &other_}) {
        while (!list->empty()) {
            auto server = list->front().shared_from_this();
            if (server->idle_wait_armed) {
                error_code ignored;
                server->socket().cancel(ignored);
                server->idle_wait_armed = false;
            }
            const bool was_counted = server->state() != server_state::closed;
            list->pop_front();
            server->set_state(server_state::closed);
            server->close_socket();
            std::erase(owned_, server);
            if (was_counted)
                pool_.unreserve_server();
            SLUICE_LOG(info, server_prefix(*server, pool_) << ": closing because: " << to_string(why));
        }
    }
    update_shared_counts();
}

void pool_shard::shutdown() {
    close_all(close_reason::shutdown);
    // Servers in no list (none are expected) and waiters (closed clients leave the queue) must not keep references.
    owned_.clear();
    waiting_.clear();
    update_shared_counts();
}

int pool_shard::servers_needing_close() const noexcept {
    const auto generation = pool_.target_generation();
    int n = 0;
    for (const auto* list : {&idle_, &active_, &other_}) {
        for (const auto& s : *list) {
            if (s.target_generation != generation)
                ++n;
        }
    }
    return n;
}

void pool_shard::notify_waiters(steady_clock::time_point now) {
    const auto& cfg = pool_.cfg();
    if (cfg.query_wait_notify.count() <= 0)
        return;
    const auto limit = to_steady(cfg.query_wait_notify);
    std::size_t position = 0;
    for (auto& client : waiting_) {
        ++position;
        const auto waited = now - client.wait_started();
        if (waited < limit)
            break;  // FIFO: everyone behind waited less
        if (client.wait_notified())
            continue;
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
        std::string notice;
        const std::string detail = "pool " + cfg.database + "/" + cfg.user + ": position " + std::to_string(position) +
                                   " in the queue, waiting " + std::to_string(ms / 1000) + "." +
                                   std::to_string(ms % 1000 / 100) + " s; still waiting (query_wait_timeout " +
                                   std::to_string(cfg.query_wait_timeout.count() / 1'000'000) + " s)";
        protocol::write_error(notice, protocol::severity::notice, "00000",
                              "No server connection available in postgres backend, client being queued", detail);
        client.send_wait_notice(notice);
    }
}

void pool_shard::tick(steady_clock::time_point now) {
    const auto& cfg = pool_.cfg();
    if (cfg.query_wait_timeout.count() > 0) {
        const auto limit = to_steady(cfg.query_wait_timeout);
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
    notify_waiters(now);
    // Idle servers past their lifetime or idle timeout. Every idle server is looked at: with server_lifetime_jitter
    // the deadlines are not in the order of the list (least recently used at the back). Those that stay get the
    // read-wait make_idle left out, so that a server closed while idle is seen within a tick.
    const auto idle_limit = to_steady(cfg.server_idle_timeout);
    for (auto it = idle_.begin(); it != idle_.end();) {
        auto& candidate = *it++;
        const bool expired = now >= candidate.lifetime_deadline();
        const bool idle_too_long = cfg.server_idle_timeout.count() > 0 && now - candidate.last_used() > idle_limit &&
                                   pool_.server_count() > cfg.min_pool_size;
        if (!expired && !idle_too_long) {
            if (!candidate.idle_wait_armed)
                arm_idle_wait(candidate.shared_from_this());
            continue;
        }
        auto server = candidate.shared_from_this();
        if (server->idle_wait_armed) {
            error_code ignored;
            server->socket().cancel(ignored);
            server->idle_wait_armed = false;
        }
        discard(*server, expired ? close_reason::lifetime : close_reason::idle_timeout);
    }
    if (pool_.paused())
        return;
    const bool connecting = std::any_of(
        other_.begin(), other_.end(), [](const server_connection& s) { return s.state() == server_state::connecting; });
    // reserve_pool_size: a client waited reserve_pool_timeout, so the pool may grow past pool_size.
    if (!waiting_.empty() && !connecting && cfg.reserve_pool_size > 0 && cfg.reserve_pool_timeout.count() > 0 &&
        now - waiting_.front().wait_started() > to_steady(cfg.reserve_pool_timeout)) {
        try_connect_for_waiters(true);
        return;
    }
    // Backstop for a lost hand-off between workers (not while a connect of ours is under way for them).
    if (!waiting_.empty() && idle_.empty() && !connecting)
        try_connect_for_waiters(false);
    // min_pool_size: worker 0 keeps the pool warm (at most one login in flight).
    if (worker_.index() == 0 && !connecting && pool_.server_count() < cfg.min_pool_size && may_connect(now) &&
        !worker_.rt().shutting_down.load(std::memory_order_relaxed) && pool_.try_reserve_server()) {
        start_connect();
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
            r.tls = s.uses_tls();
            r.close_needed = s.target_generation != pool_.target_generation();
            r.worker = worker_.index();
            if (s.client)
                r.link_id = s.client->id();
            servers.push_back(std::move(r));
        }
    }
}

pool::pool(runtime& rt, pool_config cfg) : rt_(rt) {
    configs_.push_back(std::make_unique<const pool_config>(std::move(cfg)));
    cfg_.store(configs_.back().get(), std::memory_order_release);
    for (std::size_t i = 0; i < rt.worker_count(); ++i) {
        shards_.push_back(std::make_unique<pool_shard>(*this, rt.worker_at(i)));
    }
}

pool::~pool() = default;

void pool::shutdown() {
    for (auto& shard : shards_)
        shard->shutdown();
}

void pool::set_limits(std::shared_ptr<shared_limit> db, std::shared_ptr<shared_limit> user) {
    db_limit_ = std::move(db);
    user_limit_ = std::move(user);
    db_limit_->add_pool(shared_from_this());
    user_limit_->add_pool(shared_from_this());
}

void pool::update_config(pool_config next) {
    bool replace = false;
    {
        std::lock_guard lock(mutex_);
        replace = !same_server_target(*cfg_.load(std::memory_order_acquire), next);
        configs_.push_back(std::make_unique<const pool_config>(std::move(next)));
        cfg_.store(configs_.back().get(), std::memory_order_release);
    }
    if (replace) {
        SLUICE_LOG(info, "pool " << cfg().database << "/" << cfg().user
                                 << ": server settings changed, servers are replaced after their transaction");
        mark_reconnect();
        login_retry_after.store(0, std::memory_order_relaxed);
    }
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        auto& shard = *shards_[i];
        shard.home().post([&shard, keep = shared_from_this()] { shard.apply_config(); });
    }
}

bool pool::try_reserve_server(bool use_reserve, shared_limit* held) {
    const auto& c = cfg();
    const int limit = c.pool_size + (use_reserve ? c.reserve_pool_size : 0);
    int current = server_count_.load(std::memory_order_relaxed);
    do {
        if (current >= limit) {
            if (held)
                held->release();
            return false;
        }
    } while (!server_count_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel));
    shared_limit* taken = nullptr;
    for (auto* l : {db_limit_.get(), user_limit_.get()}) {
        if (l == held)
            continue;
        if (!l->try_take()) {
            if (taken)
                taken->give_back();
            server_count_.fetch_sub(1, std::memory_order_acq_rel);
            if (held)
                held->release();
            if (waiting_total() > 0)
                l->mark_starved(*this);
            return false;
        }
        taken = l;
    }
    return true;
}

void pool::unreserve_server() {
    server_count_.fetch_sub(1, std::memory_order_acq_rel);
    db_limit_->release();
    user_limit_->release();
}

int pool::waiting_total() const noexcept {
    int n = 0;
    for (const auto& s : shards_)
        n += s->shared_waiting.load(std::memory_order_relaxed);
    return n;
}

int pool::idle_total() const noexcept {
    int n = 0;
    for (const auto& s : shards_)
        n += s->shared_idle.load(std::memory_order_relaxed);
    return n;
}

bool pool::try_add_client(std::string& refused) {
    if (!db_limit_->try_add_client()) {
        refused = "no more connections allowed (max_db_client_connections)";
        return false;
    }
    if (!user_limit_->try_add_client()) {
        db_limit_->remove_client();
        refused = "no more connections allowed (max_user_client_connections)";
        return false;
    }
    return true;
}

void pool::remove_client() noexcept {
    db_limit_->remove_client();
    user_limit_->remove_client();
}

void pool::receive_slot(shared_limit& held) {
    pool_shard* target = longest_waiting_shard(nullptr);
    if (!target) {
        held.release();
        return;
    }
    target->home().post([target, &held, keep = shared_from_this()] { target->use_handed_slot(held); });
}

void pool::set_last_login_error(std::string message) {
    std::lock_guard lock(mutex_);
    last_login_error_ = std::move(message);
}

std::string pool::last_login_error() const {
    std::lock_guard lock(mutex_);
    return last_login_error_;
}

std::shared_ptr<const pool::welcome_parameters> pool::welcome() const {
    std::lock_guard lock(mutex_);
    return welcome_;
}

void pool::set_welcome(const welcome_parameters& params) {
    auto copy = std::make_shared<const welcome_parameters>(params);  // outside the lock
    std::lock_guard lock(mutex_);
    if (!welcome_)
        welcome_ = std::move(copy);
}

void pool::share_login_parameters(session::parameter_set& parameters) {
    std::lock_guard lock(mutex_);
    if (parameters == login_parameters_) {
        parameters = login_parameters_;
    } else {
        login_parameters_ = parameters;
    }
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

std::shared_ptr<listen_relay> pool::listen_relay_instance() {
    std::lock_guard lock(mutex_);
    if (!listen_relay_)
        listen_relay_ = std::make_shared<listen_relay>(weak_from_this(), rt_.worker_at(0));
    return listen_relay_;
}

std::shared_ptr<listen_relay> pool::existing_listen_relay() const {
    std::lock_guard lock(mutex_);
    return listen_relay_;
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
