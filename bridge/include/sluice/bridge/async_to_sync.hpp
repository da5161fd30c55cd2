#pragma once

// async_to_sync: from a plain thread, run an awaitable on a running io_context and block for its result.
//
//   int rows = bridge::async_to_sync(io.get_executor(), [&] { return count_rows(db); });  // count_rows: awaitable<int>
//
// Prefer the callable form: the bridge keeps the callable (and so a coroutine lambda's captures) alive until the
// coroutine finishes, and calls it on the executor. Passing `coroutine_lambda()` instead leaves the coroutine
// referring to a destroyed closure. Either way the coroutine is co_spawned on the executor; nothing starts on the
// calling thread. Its exception is rethrown here with its own type. While it waits, the calling thread runs the
// thread-sensitive sync_to_async calls the awaitable makes (asgiref's CurrentThreadExecutor), so sync -> async -> sync
// nesting cannot deadlock. On a thread that runs an event loop it throws misuse_error (errc::event_loop_thread) instead
// of blocking that loop.

#include <concepts>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "sluice/bridge/error.hpp"

namespace sluice::bridge {

namespace detail {
// Co_spawns aw on ex and parks the calling thread until it completes, serving nested calls meanwhile.
void block_on(const boost::asio::any_io_executor& ex, boost::asio::awaitable<void> aw);

template <class T>
boost::asio::awaitable<void> store_result(boost::asio::awaitable<T> aw, std::optional<T>& out) {
    out.emplace(co_await std::move(aw));
}

// f lives in this coroutine's frame until the awaitable it returns has finished.
template <class F, class T>
boost::asio::awaitable<void> call_and_store(F f, std::optional<T>& out) {
    out.emplace(co_await f());
}

template <class F>
boost::asio::awaitable<void> call_void(F f) {
    co_await f();
}

template <class A>
struct awaitable_value {};
template <class T, class Executor>
struct awaitable_value<boost::asio::awaitable<T, Executor>> {
    using type = T;
};
// What co_await f() yields, for a callable returning an awaitable.
template <class F>
using awaitable_value_t = typename awaitable_value<std::remove_cvref_t<std::invoke_result_t<F&>>>::type;
}  // namespace detail

// Throws misuse_error on an event-loop thread, bridge_error(errc::loop_stopped) if ex's io_context is stopped,
// bridge_error(errc::abandoned) if the io_context is destroyed first, and whatever the awaitable throws.
inline void async_to_sync(const boost::asio::any_io_executor& ex, boost::asio::awaitable<void> aw) {
    detail::block_on(ex, std::move(aw));
}

template <class T>
[[nodiscard]] T async_to_sync(const boost::asio::any_io_executor& ex, boost::asio::awaitable<T> aw) {
    std::optional<T> out;
    detail::block_on(ex, detail::store_result(std::move(aw), out));
    return std::move(*out);
}

// f() must return an awaitable; it is called on ex, and f is kept alive until that awaitable finishes.
template <class F>
requires std::invocable<F&> && requires {
    typename detail::awaitable_value_t<F>;
}
auto async_to_sync(const boost::asio::any_io_executor& ex, F f) -> detail::awaitable_value_t<F> {
    using result_type = detail::awaitable_value_t<F>;
    if constexpr (std::is_void_v<result_type>) {
        detail::block_on(ex, detail::call_void(std::move(f)));
    } else {
        std::optional<result_type> out;
        detail::block_on(ex, detail::call_and_store(std::move(f), out));
        return std::move(*out);
    }
}

}  // namespace sluice::bridge
