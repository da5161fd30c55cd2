// sync_to_async: results, exceptions, thread-sensitivity, admission, cancellation and stats, on real threads.

#include "sluice/bridge/sync_to_async.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bridge_test_support.hpp"

namespace sluice::bridge {
namespace {

using namespace test;
using asio::awaitable;

struct payment_declined : std::runtime_error {
    explicit payment_declined(int c) : std::runtime_error("declined"), code(c) {}
    int code;
};

// Expects the future to fail with a bridge_error carrying want.
template <class T>
void expect_bridge_error(std::future<T>& f, errc want) {
    ASSERT_TRUE(ready_in_time(f));
    try {
        f.get();
        ADD_FAILURE() << "expected bridge_error " << make_error_code(want).message();
    } catch (const bridge_error& e) {
        EXPECT_EQ(e.code(), make_error_code(want)) << e.what();
    }
}

TEST(sync_to_async, returns_the_callable_result_computed_off_the_event_loop) {
    io_thread io;
    thread_pool pool({.name = "t", .threads = 2});
    auto f = spawn(io.context(), [&]() -> awaitable<std::pair<int, std::thread::id>> {
        co_return co_await sync_to_async(pool, [] { return std::pair{6 * 7, std::this_thread::get_id()}; });
    });
    ASSERT_TRUE(ready_in_time(f));
    const auto [value, ran_on] = f.get();
    EXPECT_EQ(value, 42);
    EXPECT_NE(ran_on, io.id());
    EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(sync_to_async, supports_void_and_move_only_results) {
    io_thread io;
    thread_pool pool({.threads = 1});
    std::atomic<bool> ran{false};
    auto f = spawn(io.context(), [&]() -> awaitable<std::unique_ptr<std::string>> {
        co_await sync_to_async(pool, [&] { ran = true; });
        co_return co_await sync_to_async(pool, [] { return std::make_unique<std::string>("moved"); });
    });
    ASSERT_TRUE(ready_in_time(f));
    auto result = f.get();
    EXPECT_TRUE(ran);
    ASSERT_NE(result, nullptr);
    EXPECT_EQ(*result, "moved");
}

TEST(sync_to_async, rethrows_the_callable_exception_with_its_type) {
    io_thread io;
    thread_pool pool({.threads = 1});
    auto f = spawn(io.context(), [&]() -> awaitable<int> {
        co_return co_await sync_to_async(pool, []() -> int { throw payment_declined(402); });
    });
    ASSERT_TRUE(ready_in_time(f));
    try {
        (void)f.get();
        ADD_FAILURE() << "expected payment_declined";
    } catch (const payment_declined& e) {
        EXPECT_EQ(e.code, 402);
    }
    EXPECT_TRUE(eventually([&] { return pool.stats().calls_exception == 1; }));
}

// GCC 12 destroys twice a closure (or aggregate) temporary with non-trivially destructible captures when it appears
// in a co_await expression: such callables must be named first (see bridge/README.md). Inline lambdas in these tests
// capture by reference only.
TEST(sync_to_async, named_callable_captures_are_destroyed_once_on_the_worker) {
    io_thread io;
    thread_pool pool({.threads = 1});
    struct probe {
        std::atomic<int>* destroyed;
        std::thread::id* destroyed_on;
        bool owns = true;
        probe(std::atomic<int>* d, std::thread::id* on) : destroyed(d), destroyed_on(on) {}
        probe(probe&& other) noexcept : destroyed(other.destroyed), destroyed_on(other.destroyed_on) {
            other.owns = false;
        }
        ~probe() {
            if (owns) {
                *destroyed_on = std::this_thread::get_id();
                ++*destroyed;
            }
        }
    };
    std::atomic<int> destroyed{0};
    std::thread::id destroyed_on;
    auto f = spawn(io.context(), [&]() -> awaitable<std::thread::id> {
        auto job = [p = probe(&destroyed, &destroyed_on)] { return std::this_thread::get_id(); };
        co_return co_await sync_to_async(pool, std::move(job));
    });
    ASSERT_TRUE(ready_in_time(f));
    const auto ran_on = f.get();
    EXPECT_EQ(destroyed.load(), 1);
    EXPECT_EQ(destroyed_on, ran_on);
}

TEST(sync_to_async, any_thread_calls_spread_over_the_pool) {
    io_thread io;
    thread_pool pool({.threads = 2});
    // Two calls that each wait for the other can only finish if they run at the same time on two threads.
    std::promise<void> a_in, b_in;
    const auto a_seen = a_in.get_future().share();
    const auto b_seen = b_in.get_future().share();
    auto a = spawn(io.context(), [&]() -> awaitable<bool> {
        co_return co_await sync_to_async(
            pool,
            [&] {
                a_in.set_value();
                return b_seen.wait_for(deadline) == std::future_status::ready;
            },
            any_thread);
    });
    auto b = spawn(io.context(), [&]() -> awaitable<bool> {
        co_return co_await sync_to_async(
            pool,
            [&] {
                b_in.set_value();
                return a_seen.wait_for(deadline) == std::future_status::ready;
            },
            any_thread);
    });
    ASSERT_TRUE(ready_in_time(a));
    ASSERT_TRUE(ready_in_time(b));
    EXPECT_TRUE(a.get());
    EXPECT_TRUE(b.get());
}

TEST(thread_sensitive, scope_runs_every_call_on_one_thread_in_order) {
    io_thread io;
    thread_pool pool({.threads = 4});
    thread_scope scope(pool);
    std::mutex m;
    std::vector<int> order;
    std::set<std::thread::id> threads;
    std::atomic<int> in_flight{0};
    std::atomic<int> max_in_flight{0};
    std::vector<std::future<void>> done;
    for (int i = 0; i < 20; ++i) {
        done.push_back(spawn(io.context(), [&, i]() -> awaitable<void> {
            co_await sync_to_async(scope, [&, i] {
                const int now = ++in_flight;
                max_in_flight = std::max(max_in_flight.load(), now);
                {
                    std::lock_guard lk(m);
                    order.push_back(i);
                    threads.insert(std::this_thread::get_id());
                }
                --in_flight;
            });
        }));
    }
    for (auto& f : done) {
        ASSERT_TRUE(ready_in_time(f));
        f.get();
    }
    EXPECT_EQ(threads.size(), 1u);
    EXPECT_EQ(max_in_flight.load(), 1);
    ASSERT_EQ(order.size(), 20u);
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(order[i], i);  // co_spawned in order on one io thread, so submitted in order
    }
    EXPECT_EQ(scope.thread_id(), *threads.begin());
}

TEST(thread_sensitive, different_scopes_run_concurrently_on_different_threads) {
    io_thread io;
    thread_pool pool({.threads = 2});
    thread_scope first(pool), second(pool);
    std::promise<void> a_in, b_in;
    const auto a_seen = a_in.get_future().share();
    const auto b_seen = b_in.get_future().share();
    auto a = spawn(io.context(), [&]() -> awaitable<bool> {
        co_return co_await sync_to_async(first, [&] {
            a_in.set_value();
            return b_seen.wait_for(deadline) == std::future_status::ready;
        });
    });
    auto b = spawn(io.context(), [&]() -> awaitable<bool> {
        co_return co_await sync_to_async(second, [&] {
            b_in.set_value();
            return a_seen.wait_for(deadline) == std::future_status::ready;
        });
    });
    ASSERT_TRUE(ready_in_time(a));
    ASSERT_TRUE(ready_in_time(b));
    EXPECT_TRUE(a.get());
    EXPECT_TRUE(b.get());
    EXPECT_NE(first.thread_id(), second.thread_id());
    EXPECT_EQ(pool.stats().scopes_leased, 2u);
}

TEST(thread_sensitive, scopes_lease_from_a_bounded_pool) {
    io_thread io;
    thread_pool pool({.threads = 1});
    auto holder = std::make_unique<thread_scope>(pool);
    thread_scope waiter(pool);
    auto first = spawn(io.context(), [&]() -> awaitable<void> { co_await sync_to_async(*holder, [] {}); });
    ASSERT_TRUE(ready_in_time(first));
    first.get();
    // The only thread stays leased to holder, even idle: waiter's call queues instead of taking it.
    auto second = spawn(io.context(), [&]() -> awaitable<std::thread::id> {
        co_return co_await sync_to_async(waiter, [] { return std::this_thread::get_id(); });
    });
    ASSERT_TRUE(eventually([&] { return pool.stats().queue_depth == 1; }));
    EXPECT_EQ(second.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
    const auto holder_thread = holder->thread_id();
    holder.reset();  // returns the lease
    ASSERT_TRUE(ready_in_time(second));
    EXPECT_EQ(second.get(), holder_thread);
}

TEST(thread_sensitive, default_mode_follows_the_scope_bound_to_the_coroutine) {
    io_thread io;
    thread_pool pool({.threads = 4});
    thread_scope scope(pool);
    auto f = asio::co_spawn(
        bind_scope(scope, io.executor()),
        [&]() -> awaitable<std::vector<std::thread::id>> {
            std::vector<std::thread::id> ids;
            for (int i = 0; i < 8; ++i) {
                ids.push_back(co_await sync_to_async(pool, [] { return std::this_thread::get_id(); }));
            }
            co_return ids;
        },
        asio::use_future);
    ASSERT_TRUE(ready_in_time(f));
    const auto ids = f.get();
    ASSERT_TRUE(scope.thread_id().has_value());
    for (const auto& id : ids) {
        EXPECT_EQ(id, *scope.thread_id());
    }
}

TEST(thread_sensitive, bound_scope_works_with_a_strand_executor) {
    io_thread io;
    thread_pool pool({.threads = 2});
    thread_scope scope(pool);
    auto f = asio::co_spawn(
        bind_scope(scope, asio::make_strand(io.context())),
        [&]() -> awaitable<std::pair<std::thread::id, std::thread::id>> {
            const auto a = co_await sync_to_async(pool, [] { return std::this_thread::get_id(); });
            const auto b = co_await sync_to_async(pool, [] { return std::this_thread::get_id(); });
            co_return std::pair{a, b};
        },
        asio::use_future);
    ASSERT_TRUE(ready_in_time(f));
    const auto [a, b] = f.get();
    EXPECT_EQ(a, b);
    EXPECT_EQ(scope.thread_id(), a);
}

TEST(thread_sensitive, any_thread_overrides_a_bound_scope) {
    io_thread io;
    thread_pool pool({.threads = 2});
    thread_scope scope(pool);
    auto f = asio::co_spawn(
        bind_scope(scope, io.executor()),
        [&]() -> awaitable<std::pair<std::thread::id, std::thread::id>> {
            const auto sticky = co_await sync_to_async(pool, [] { return std::this_thread::get_id(); });
            // The scope's thread is leased, so the only thread an any_thread call may use is the other one.
            const auto free = co_await sync_to_async(
                pool, [] { return std::this_thread::get_id(); }, any_thread);
            co_return std::pair{sticky, free};
        },
        asio::use_future);
    ASSERT_TRUE(ready_in_time(f));
    const auto [sticky, free] = f.get();
    EXPECT_NE(sticky, free);
}

// A pool of one thread kept busy until release is opened, so later calls queue.
struct busy_pool {
    explicit busy_pool(io_thread& io, pool_options o) : pool(std::move(o)) {
        blocker = spawn(io.context(), [this]() -> awaitable<void> {
            co_await sync_to_async(pool, [this] {
                started.open();
                (void)release.wait();
            });
        });
        EXPECT_TRUE(started.wait());
    }
    ~busy_pool() {
        release_once();
        if (blocker.valid()) {
            EXPECT_TRUE(ready_in_time(blocker));
        }
    }
    void release_once() {
        if (!released.exchange(true)) {
            release.open();
        }
    }
    thread_pool pool;
    gate started, release;
    std::atomic<bool> released{false};
    std::future<void> blocker;
};

TEST(admission, full_queue_rejects_with_queue_full) {
    io_thread io;
    busy_pool busy(io, {.threads = 1, .max_queue = 1, .when_full = overflow_policy::reject});
    auto queued =
        spawn(io.context(), [&]() -> awaitable<int> { co_return co_await sync_to_async(busy.pool, [] { return 1; }); });
    ASSERT_TRUE(eventually([&] { return busy.pool.stats().queue_depth == 1; }));
    std::atomic<bool> ran{false};
    auto refused =
        spawn(io.context(), [&]() -> awaitable<void> { co_await sync_to_async(busy.pool, [&] { ran = true; }); });
    expect_bridge_error(refused, errc::queue_full);
    busy.release_once();
    ASSERT_TRUE(ready_in_time(queued));
    EXPECT_EQ(queued.get(), 1);
    EXPECT_FALSE(ran);
    const auto stats = busy.pool.stats();
    EXPECT_EQ(stats.rejected_queue_full, 1u);
    EXPECT_EQ(stats.calls_rejected, 1u);
}

TEST(admission, full_queue_waits_for_room_under_wait_policy) {
    io_thread io;
    busy_pool busy(
        io, {.threads = 1, .max_queue = 1, .when_full = overflow_policy::wait, .full_wait = std::chrono::minutes(5)});
    auto queued =
        spawn(io.context(), [&]() -> awaitable<int> { co_return co_await sync_to_async(busy.pool, [] { return 1; }); });
    auto waiting =
        spawn(io.context(), [&]() -> awaitable<int> { co_return co_await sync_to_async(busy.pool, [] { return 2; }); });
    ASSERT_TRUE(eventually([&] { return busy.pool.stats().queue_waiting == 1; }));
    busy.release_once();
    ASSERT_TRUE(ready_in_time(queued));
    ASSERT_TRUE(ready_in_time(waiting));
    EXPECT_EQ(queued.get(), 1);
    EXPECT_EQ(waiting.get(), 2);
    EXPECT_EQ(busy.pool.stats().calls_rejected, 0u);
}

TEST(admission, waiting_past_full_wait_fails_with_queue_timeout) {
    io_thread io;
    constexpr auto full_wait = std::chrono::milliseconds(30);
    busy_pool busy(io, {.threads = 1, .max_queue = 1, .when_full = overflow_policy::wait, .full_wait = full_wait});
    auto queued = spawn(io.context(), [&]() -> awaitable<void> { co_await sync_to_async(busy.pool, [] {}); });
    ASSERT_TRUE(eventually([&] { return busy.pool.stats().queue_depth == 1; }));
    const auto submitted = std::chrono::steady_clock::now();
    auto late = spawn(io.context(), [&]() -> awaitable<void> { co_await sync_to_async(busy.pool, [] {}); });
    expect_bridge_error(late, errc::queue_timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - submitted, full_wait);
    EXPECT_EQ(busy.pool.stats().rejected_queue_timeout, 1u);
    busy.release_once();
    ASSERT_TRUE(ready_in_time(queued));
}

TEST(cancellation, call_cancelled_while_queued_never_runs) {
    io_thread io;
    busy_pool busy(io, {.threads = 1});
    asio::cancellation_signal signal;
    std::atomic<bool> ran{false};
    auto f = asio::co_spawn(
        io.context(), [&]() -> awaitable<void> { co_await sync_to_async(busy.pool, [&] { ran = true; }); },
        asio::bind_cancellation_slot(signal.slot(), asio::use_future));
    ASSERT_TRUE(eventually([&] { return busy.pool.stats().queue_depth == 1; }));
    asio::post(io.context(), [&] { signal.emit(asio::cancellation_type::terminal); });
    expect_bridge_error(f, errc::cancelled);
    EXPECT_EQ(busy.pool.stats().queue_depth, 0u);
    busy.release_once();
    ASSERT_TRUE(ready_in_time(busy.blocker));
    busy.blocker.get();
    EXPECT_FALSE(ran);
    EXPECT_EQ(busy.pool.stats().calls_cancelled, 1u);
}

// Waits until st is signalled (true) or the deadline passes (false), without spinning.
bool wait_for_stop(std::stop_token st) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lk(m);
    return cv.wait_for(lk, st, deadline, [] { return false; }) || st.stop_requested();
}

TEST(cancellation, running_call_gets_a_stop_request_and_finishes_itself) {
    io_thread io;
    thread_pool pool({.threads = 1});
    gate started;
    asio::cancellation_signal signal;
    auto f = asio::co_spawn(
        io.context(),
        [&]() -> awaitable<std::string> {
            co_return co_await sync_to_async(pool, [&](std::stop_token st) {
                started.open();
                return wait_for_stop(st) ? std::string("stopped early") : std::string("ran to the end");
            });
        },
        asio::bind_cancellation_slot(signal.slot(), asio::use_future));
    ASSERT_TRUE(started.wait());
    asio::post(io.context(), [&] { signal.emit(asio::cancellation_type::terminal); });
    ASSERT_TRUE(ready_in_time(f));
    EXPECT_EQ(f.get(), "stopped early");
    EXPECT_TRUE(eventually([&] { return pool.stats().stop_requests == 1; }));
}

TEST(cancellation, losing_a_race_against_a_timer_stops_the_call) {
    using namespace asio::experimental::awaitable_operators;
    io_thread io;
    thread_pool pool({.threads = 1});
    std::atomic<bool> saw_stop{false};
    auto f = spawn(io.context(), [&]() -> awaitable<std::size_t> {
        asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
        auto winner = co_await (sync_to_async(pool, [&](std::stop_token st) { saw_stop = wait_for_stop(st); }) ||
                                timer.async_wait(asio::use_awaitable));
        co_return winner.index();
    });
    ASSERT_TRUE(ready_in_time(f));
    EXPECT_EQ(f.get(), 1u);  // the timer won
    EXPECT_TRUE(saw_stop);   // and `||` waited for the call to honour the stop request
}

TEST(shutdown, stop_fails_queued_calls_and_signals_running_ones) {
    io_thread io;
    thread_pool pool({.threads = 1});
    gate started;
    auto running = spawn(io.context(), [&]() -> awaitable<bool> {
        co_return co_await sync_to_async(pool, [&](std::stop_token st) {
            started.open();
            return wait_for_stop(st);
        });
    });
    ASSERT_TRUE(started.wait());
    auto queued = spawn(io.context(), [&]() -> awaitable<void> { co_await sync_to_async(pool, [] {}); });
    ASSERT_TRUE(eventually([&] { return pool.stats().queue_depth == 1; }));
    pool.stop();
    expect_bridge_error(queued, errc::pool_stopped);
    ASSERT_TRUE(ready_in_time(running));
    EXPECT_TRUE(running.get());
    auto late = spawn(io.context(), [&]() -> awaitable<void> { co_await sync_to_async(pool, [] {}); });
    expect_bridge_error(late, errc::pool_stopped);
    EXPECT_EQ(pool.stats().rejected_pool_stopped, 2u);
}

TEST(stats, record_outcomes_times_and_thread_gauges) {
    io_thread io;
    thread_pool pool({.threads = 3, .spin = std::chrono::microseconds(0)});  // idle workers sleep at once
    auto f = spawn(io.context(), [&]() -> awaitable<void> {
        for (int i = 0; i < 10; ++i) {
            co_await sync_to_async(pool, [] {});
        }
    });
    ASSERT_TRUE(ready_in_time(f));
    f.get();
    ASSERT_TRUE(eventually([&] { return pool.stats().threads_busy == 0; }));
    const auto s = pool.stats();
    EXPECT_EQ(s.calls_ok, 10u);
    EXPECT_EQ(s.run_time.count, 10u);
    EXPECT_EQ(s.queue_wait.count, 10u);
    EXPECT_EQ(s.threads_idle, 3u);
    EXPECT_EQ(s.queue_depth, 0u);
}

}  // namespace
}  // namespace sluice::bridge
