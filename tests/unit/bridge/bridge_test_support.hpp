#pragma once

// Shared by the bridge's unit tests: an io_context on its own thread, and waits that end at a deadline instead of
// sleeping for a guessed time.

#include <chrono>
#include <functional>
#include <future>
#include <thread>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace sluice::bridge::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// How long any single expected event may take before the test gives up on it. Generous: sanitizers and a busy
// 2-core machine are slow, and a passing test never waits this long.
inline constexpr auto deadline = 20s;

// An io_context run by one thread for the test's lifetime.
class io_thread {
  public:
    io_thread() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
    ~io_thread() {
        work_.reset();
        io_.stop();
        thread_.join();
    }
    io_thread(const io_thread&) = delete;
    io_thread& operator=(const io_thread&) = delete;

    [[nodiscard]] asio::io_context& context() noexcept { return io_; }
    [[nodiscard]] asio::any_io_executor executor() { return io_.get_executor(); }
    [[nodiscard]] std::thread::id id() const noexcept { return thread_.get_id(); }

  private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
};

// Co_spawns f (a callable returning an awaitable, kept alive by co_spawn) on io and returns its future.
template <class F>
[[nodiscard]] auto spawn(asio::io_context& io, F&& f) {
    return asio::co_spawn(io, std::forward<F>(f), asio::use_future);
}

template <class T>
[[nodiscard]] bool ready_in_time(std::future<T>& f) {
    return f.wait_for(deadline) == std::future_status::ready;
}

// Polls pred until it holds or the deadline passes; for states with no event to wait on (a gauge reaching a value).
template <class Pred>
[[nodiscard]] bool eventually(Pred pred) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > until) {
            return false;
        }
        std::this_thread::yield();
    }
    return true;
}

// A one-shot gate a callable blocks on until the test opens it (or the deadline passes, to never hang a failing
// test).
class gate {
  public:
    void open() { promise_.set_value(); }
    [[nodiscard]] bool wait() const { return future_.wait_for(deadline) == std::future_status::ready; }

  private:
    std::promise<void> promise_;
    std::shared_future<void> future_ = promise_.get_future().share();
};

}  // namespace sluice::bridge::test
