// async_to_sync: results and exceptions from a plain thread, the misuse error, and nesting that cannot deadlock.

#include "sluice/bridge/async_to_sync.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bridge_test_support.hpp"
#include "sluice/bridge/stats.hpp"
#include "sluice/bridge/sync_to_async.hpp"

namespace sluice::bridge {
namespace {

using namespace test;
using asio::awaitable;

struct lookup_failed : std::runtime_error {
    explicit lookup_failed(std::string k) : std::runtime_error("lookup failed"), key(std::move(k)) {}
    std::string key;
};

struct no_default {
    explicit no_default(int v) : value(v) {}
    int value;
};

awaitable<int> add_on_loop(int a, int b) {
    auto ex = co_await asio::this_coro::executor;
    co_await asio::post(ex, asio::use_awaitable);  // a real suspension, resumed by the loop
    co_return a + b;
}

// Runs f on a fresh plain thread (no event loop); the test thread only waits for its result, with a deadline.
template <class R>
class plain_thread {
  public:
    template <class F>
    explicit plain_thread(F f) {
        std::packaged_task<R()> task(std::move(f));
        result_ = task.get_future();
        thread_ = std::thread(std::move(task));
    }
    ~plain_thread() {
        // A thread stuck past the deadline has already failed the test; leave it rather than hang the run.
        if (result_.valid() && !ready_in_time(result_)) {
            thread_.detach();
        } else {
            thread_.join();
        }
    }
    plain_thread(const plain_thread&) = delete;
    plain_thread& operator=(const plain_thread&) = delete;

    [[nodiscard]] bool ready() { return ready_in_time(result_); }
    [[nodiscard]] R get() { return result_.get(); }

  private:
    std::future<R> result_;
    std::thread thread_;
};

template <class F>
plain_thread(F) -> plain_thread<std::invoke_result_t<F&>>;

TEST(async_to_sync, returns_the_awaitable_result_to_a_plain_thread) {
    io_thread io;
    EXPECT_EQ(async_to_sync(io.executor(), add_on_loop(40, 2)), 42);
    EXPECT_EQ(async_to_sync(io.executor(), [&]() -> awaitable<int> { co_return co_await add_on_loop(1, 2); }), 3);
}

TEST(async_to_sync, runs_the_awaitable_on_the_event_loop_thread) {
    io_thread io;
    const auto ran_on =
        async_to_sync(io.executor(), []() -> awaitable<std::thread::id> { co_return std::this_thread::get_id(); });
    EXPECT_EQ(ran_on, io.id());
}

TEST(async_to_sync, supports_void_move_only_and_non_default_constructible_results) {
    io_thread io;
    bool ran = false;
    async_to_sync(io.executor(), [&]() -> awaitable<void> {
        ran = true;
        co_return;
    });
    EXPECT_TRUE(ran);
    auto owned =
        async_to_sync(io.executor(), []() -> awaitable<std::unique_ptr<int>> { co_return std::make_unique<int>(7); });
    ASSERT_NE(owned, nullptr);
    EXPECT_EQ(*owned, 7);
    EXPECT_EQ(async_to_sync(io.executor(), []() -> awaitable<no_default> { co_return no_default(5); }).value, 5);
}

TEST(async_to_sync, rethrows_the_awaitable_exception_with_its_type) {
    io_thread io;
    try {
        async_to_sync(io.executor(), []() -> awaitable<void> {
            co_await add_on_loop(0, 0);
            throw lookup_failed("user:42");
        });
        ADD_FAILURE() << "expected lookup_failed";
    } catch (const lookup_failed& e) {
        EXPECT_EQ(e.key, "user:42");
    }
}

TEST(async_to_sync, on_an_event_loop_thread_throws_misuse_instead_of_deadlocking) {
    io_thread io;
    const auto misuse_before = bridge_global_stats().snapshot().misuse;
    auto f = spawn(io.context(), [&]() -> awaitable<std::error_code> {
        try {
            (void)async_to_sync(io.executor(), add_on_loop(1, 1));
        } catch (const misuse_error& e) {
            co_return e.code();
        }
        co_return std::error_code();
    });
    ASSERT_TRUE(ready_in_time(f));
    EXPECT_EQ(f.get(), make_error_code(errc::event_loop_thread));
    EXPECT_EQ(bridge_global_stats().snapshot().misuse, misuse_before + 1);
}

TEST(async_to_sync, on_the_thread_of_another_event_loop_throws_misuse) {
    io_thread target;
    io_thread other;
    auto f = spawn(other.context(), [&]() -> awaitable<bool> {
        try {
            (void)async_to_sync(target.executor(), add_on_loop(1, 1));
        } catch (const misuse_error&) {
            co_return true;
        }
        co_return false;
    });
    ASSERT_TRUE(ready_in_time(f));
    EXPECT_TRUE(f.get());
}

TEST(async_to_sync, stopped_io_context_fails_at_once) {
    asio::io_context io;
    io.stop();
    try {
        (void)async_to_sync(io.get_executor(), add_on_loop(1, 1));
        ADD_FAILURE() << "expected loop_stopped";
    } catch (const bridge_error& e) {
        EXPECT_EQ(e.code(), make_error_code(errc::loop_stopped));
    }
}

TEST(async_to_sync, destroyed_io_context_abandons_the_wait) {
    auto io = std::make_unique<asio::io_context>();
    auto work = asio::make_work_guard(*io);
    std::thread runner([&] { io->run(); });
    gate suspended;
    plain_thread caller([&] {
        try {
            async_to_sync(io->get_executor(), [&]() -> awaitable<void> {
                asio::steady_timer never(co_await asio::this_coro::executor, std::chrono::hours(1));
                suspended.open();
                co_await never.async_wait(asio::use_awaitable);
            });
        } catch (const bridge_error& e) {
            return e.code();
        }
        return std::error_code();
    });
    ASSERT_TRUE(suspended.wait());
    // The coroutine may run before the caller's asio::post() has returned (Asio signals its condition variable after
    // unlocking); destroying the io_context then would race Asio itself, not the bridge. Asio's rule: no thread may
    // be inside a call on an io_context being destroyed. Give the caller time to get from post() to its wait.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    io->stop();
    runner.join();
    work.reset();
    io.reset();  // destroys the suspended coroutine and its completion handler
    ASSERT_TRUE(caller.ready());
    EXPECT_EQ(caller.get(), make_error_code(errc::abandoned));
}

// asgiref's CurrentThreadExecutor: sync -> async -> thread-sensitive sync runs back on the blocked caller.
TEST(nesting, thread_sensitive_call_runs_on_the_blocked_caller_thread) {
    io_thread io;
    thread_pool pool({.threads = 1});
    plain_thread caller([&] {
        const auto inner = async_to_sync(io.executor(), [&]() -> awaitable<std::thread::id> {
            co_return co_await sync_to_async(pool, [] { return std::this_thread::get_id(); });
        });
        return std::pair{std::this_thread::get_id(), inner};
    });
    ASSERT_TRUE(caller.ready());
    const auto [outer, inner] = caller.get();
    EXPECT_EQ(inner, outer);
    EXPECT_EQ(pool.stats().calls_ok, 1u);
}

TEST(nesting, works_through_a_strand_executor) {
    io_thread io;
    thread_pool pool({.threads = 1});
    auto strand = asio::make_strand(io.context());
    plain_thread caller([&] {
        const auto inner = async_to_sync(strand, [&]() -> awaitable<std::thread::id> {
            co_return co_await sync_to_async(pool, [] { return std::this_thread::get_id(); });
        });
        return inner == std::this_thread::get_id();
    });
    ASSERT_TRUE(caller.ready());
    EXPECT_TRUE(caller.get());
}

TEST(nesting, caller_serves_its_calls_even_when_the_pool_is_exhausted) {
    io_thread io;
    thread_pool pool({.threads = 1, .max_queue = 0});
    gate started, release;
    auto blocker = spawn(io.context(), [&]() -> awaitable<void> {
        co_await sync_to_async(pool, [&] {
            started.open();
            (void)release.wait();
        });
    });
    ASSERT_TRUE(started.wait());
    plain_thread caller([&] {
        return async_to_sync(io.executor(),
                             [&]() -> awaitable<int> { co_return co_await sync_to_async(pool, [] { return 5; }); });
    });
    const bool served = caller.ready();
    release.open();
    ASSERT_TRUE(served);
    EXPECT_EQ(caller.get(), 5);
    ASSERT_TRUE(ready_in_time(blocker));
}

TEST(nesting, sync_async_sync_async_sync_stays_on_the_caller_thread) {
    io_thread io;
    thread_pool pool({.threads = 1});
    plain_thread caller([&] {
        const auto deepest = async_to_sync(io.executor(), [&]() -> awaitable<std::thread::id> {
            co_return co_await sync_to_async(pool, [&] {
                return async_to_sync(io.executor(), [&]() -> awaitable<std::thread::id> {
                    co_return co_await sync_to_async(pool, [] { return std::this_thread::get_id(); });
                });
            });
        });
        return deepest == std::this_thread::get_id();
    });
    ASSERT_TRUE(caller.ready());
    EXPECT_TRUE(caller.get());
}

TEST(nesting, scope_thread_blocked_in_async_to_sync_serves_its_scope) {
    io_thread io;
    thread_pool pool({.threads = 1});  // one thread: without nested serving this deadlocks
    thread_scope scope(pool);
    auto f = spawn(io.context(), [&]() -> awaitable<bool> {
        co_return co_await sync_to_async(scope, [&] {
            const auto outer = std::this_thread::get_id();
            const auto [explicit_scope, followed] =
                async_to_sync(io.executor(), [&]() -> awaitable<std::pair<std::thread::id, std::thread::id>> {
                    const auto a = co_await sync_to_async(scope, [] { return std::this_thread::get_id(); });
                    const auto b = co_await sync_to_async(pool, [] { return std::this_thread::get_id(); });
                    co_return std::pair{a, b};
                });
            return explicit_scope == outer && followed == outer;
        });
    });
    ASSERT_TRUE(ready_in_time(f));
    EXPECT_TRUE(f.get());
}

TEST(nesting, any_thread_call_from_async_to_sync_uses_the_pool) {
    io_thread io;
    thread_pool pool({.threads = 1});
    plain_thread caller([&] {
        const auto inner = async_to_sync(io.executor(), [&]() -> awaitable<std::thread::id> {
            co_return co_await sync_to_async(
                pool, [] { return std::this_thread::get_id(); }, any_thread);
        });
        return inner != std::this_thread::get_id();
    });
    ASSERT_TRUE(caller.ready());
    EXPECT_TRUE(caller.get());
}

TEST(nesting, coroutine_outliving_its_async_to_sync_falls_back_to_the_pool) {
    io_thread io;
    thread_pool pool({.threads = 1});
    asio::steady_timer hold(io.context(), std::chrono::hours(1));
    std::promise<std::thread::id> later;
    plain_thread caller([&] {
        async_to_sync(io.executor(), [&]() -> awaitable<void> {
            // Inherits this coroutine's executor, and with it the blocked caller as its sticky thread.
            asio::co_spawn(
                co_await asio::this_coro::executor,
                [&]() -> awaitable<void> {
                    try {
                        co_await hold.async_wait(asio::use_awaitable);
                    } catch (const boost::system::system_error&) {
                        // cancelled once the caller has returned
                    }
                    later.set_value(co_await sync_to_async(pool, [] { return std::this_thread::get_id(); }));
                },
                asio::detached);
            co_return;
        });
        return std::this_thread::get_id();
    });
    ASSERT_TRUE(caller.ready());
    const auto caller_id = caller.get();
    asio::post(io.context(), [&] { hold.cancel(); });
    auto later_id = later.get_future();
    ASSERT_TRUE(ready_in_time(later_id));
    EXPECT_NE(later_id.get(), caller_id);
}

}  // namespace
}  // namespace sluice::bridge
