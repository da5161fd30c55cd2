#pragma once

// sync_to_async: run blocking code on a bridge thread and co_await its result from an Asio coroutine.
//
//   std::string key = co_await bridge::sync_to_async(pool, [&] { return derive_key(password, salt); },
//                                                  bridge::any_thread);
//
// The callable's result is returned by value (void and move-only results work) and its exception is rethrown in the
// coroutine with its own type. Refusals are bridge_error (see error.hpp). Cancelling the coroutine (a cancellation
// slot, `||`) drops a call that has not started (bridge_error, errc::cancelled) and signals the std::stop_token of one
// that has; the coroutine resumes only once the callable has returned, so it may capture locals by reference.
//
// GCC 12 destroys twice a lambda (or aggregate) temporary written inside a co_await expression when a capture has a
// non-trivial destructor. Inline lambdas should capture by reference or trivially destructible values; name one that
// owns resources first, then pass it with std::move (bridge/README.md).

#include <boost/asio/awaitable.hpp>
#include <boost/smart_ptr/intrusive_ptr.hpp>

#include "sluice/bridge/detail/call.hpp"
#include "sluice/bridge/error.hpp"
#include "sluice/bridge/thread_pool.hpp"

namespace sluice::bridge {

// Selects thread-insensitive mode: the call may run on any thread of the pool (asgiref's thread_sensitive=False).
struct any_thread_t {
    explicit any_thread_t() = default;
};
inline constexpr any_thread_t any_thread{};

namespace detail {
enum class route { follow_context, any_thread };
[[nodiscard]] boost::asio::awaitable<void> run_call(thread_pool& pool, boost::intrusive_ptr<call_base> c, route r);
[[nodiscard]] boost::asio::awaitable<void> run_call(thread_scope& scope, boost::intrusive_ptr<call_base> c);
}  // namespace detail

// Thread-sensitive, the default as in asgiref: fn runs on the sticky thread of the coroutine's scope, which is
//  - the thread blocked in async_to_sync that started this coroutine (it serves the call while it waits), or
//  - the thread_scope bound to the coroutine's executor with bind_scope(), or
//  - when the coroutine has neither, any thread of pool (there is no thread state to keep between calls).
template <detail::bridge_callable F>
[[nodiscard]] boost::asio::awaitable<detail::call_result_t<F>> sync_to_async(thread_pool& pool, F fn) {
    boost::intrusive_ptr<detail::call<F>> c(new detail::call<F>(std::move(fn)));
    co_await detail::run_call(pool, c, detail::route::follow_context);
    co_return c->take();
}

// Thread-insensitive: fn runs on any thread of pool, whatever the coroutine's scope. For CPU work (SCRAM key
// derivation) and calls that touch no thread-bound state.
template <detail::bridge_callable F>
[[nodiscard]] boost::asio::awaitable<detail::call_result_t<F>> sync_to_async(thread_pool& pool, F fn, any_thread_t) {
    boost::intrusive_ptr<detail::call<F>> c(new detail::call<F>(std::move(fn)));
    co_await detail::run_call(pool, c, detail::route::any_thread);
    co_return c->take();
}

// Thread-sensitive on an explicit scope: fn runs on the scope's thread, after the scope's earlier calls.
template <detail::bridge_callable F>
[[nodiscard]] boost::asio::awaitable<detail::call_result_t<F>> sync_to_async(thread_scope& scope, F fn) {
    boost::intrusive_ptr<detail::call<F>> c(new detail::call<F>(std::move(fn)));
    co_await detail::run_call(scope, c);
    co_return c->take();
}

}  // namespace sluice::bridge
