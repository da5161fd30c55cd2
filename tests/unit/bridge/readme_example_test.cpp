// The example of bridge/README.md, compiled and run. Keep the two in step: the README quotes the code between the
// "example" markers.

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "sluice/bridge/bridge.hpp"

// example begin
namespace asio = boost::asio;
namespace bridge = sluice::bridge;

// A legacy library: blocking, with per-thread state (like libpq's connection, or a C library's thread-local errno).
namespace legacy {
thread_local int calls_on_this_thread = 0;
std::string lookup(int id) {
    ++calls_on_this_thread;
    return "user-" + std::to_string(id);
}
int calls() {
    return calls_on_this_thread;
}
}  // namespace legacy

// The async caller: a coroutine on the event loop, which must never block.
asio::awaitable<std::string> greet(bridge::thread_scope& scope, int id) {
    // Thread-sensitive: both calls run on the scope's one thread, so they see the same thread-local state.
    std::string name = co_await bridge::sync_to_async(scope, [id] { return legacy::lookup(id); });
    int calls = co_await bridge::sync_to_async(scope, [] { return legacy::calls(); });
    co_return "hello " + name + " after " + std::to_string(calls) + " call";
}

// A sync thread that needs the async code: it blocks until greet() is done, on the event loop.
std::string run_legacy_request(asio::io_context& io, bridge::thread_pool& pool) {
    bridge::thread_scope scope(pool);  // one sticky thread for this request, returned to the pool at the end
    return bridge::async_to_sync(io.get_executor(), [&] { return greet(scope, 7); });
}
// example end

TEST(readme_example, legacy_function_called_from_a_coroutine_and_back) {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread loop([&] { io.run(); });
    bridge::thread_pool pool({.name = "legacy", .threads = 2, .max_queue = 64});

    EXPECT_EQ(run_legacy_request(io, pool), "hello user-7 after 1 call");

    work.reset();
    loop.join();
}
