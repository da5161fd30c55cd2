#pragma once

// One sync_to_async call, type-erased: the callable and its result live in a heap object shared by the awaiting
// coroutine and the thread that runs it, so neither outliving the other can leave a dangling pointer. Only
// sync_to_async.hpp instantiates the templates here; everything else is in bridge/src.

#include <chrono>
#include <concepts>
#include <exception>
#include <functional>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include "sluice/bridge/detail/ref_counted.hpp"
#include "sluice/bridge/scheduler_fsm.hpp"

namespace sluice::bridge::detail {

class pool_core;
class scope_core;
class call_owner;

// The callables sync_to_async accepts: invocable with no argument, or with a std::stop_token that is signalled when
// the awaiting coroutine is cancelled while the call runs.
template <class F>
concept bridge_callable = std::invocable<F&> || std::invocable<F&, std::stop_token>;

template <class F>
struct call_result {
    using type = std::invoke_result_t<F&>;
};
template <class F>
requires std::invocable<F&, std::stop_token>
struct call_result<F> {
    using type = std::invoke_result_t<F&, std::stop_token>;
};
// What co_await sync_to_async(...) yields: the callable's result by value (a returned reference is copied).
template <class F>
using call_result_t = std::remove_cvref_t<typename call_result<F>::type>;

class call_base : public ref_counted, public scheduler_fsm::entry {
  public:
    // Runs the callable on this thread. Called once; any exception is kept for the awaiting coroutine.
    void run() noexcept { invoke(stop_.get_token()); }
    [[nodiscard]] std::exception_ptr error() const noexcept { return error_; }

    // Set and used by the bridge machinery only (bridge/src). Each field's owner is noted.
    std::stop_source stop_;  // requested when the coroutine is cancelled while the call runs
    boost::asio::any_completion_handler<void(std::exception_ptr)> handler_;  // resumes the coroutine
    boost::asio::any_io_executor work_;  // tracked: keeps the coroutine's io_context running meanwhile
    pool_core* pool_ = nullptr;          // whose stats record the call; kept alive by pool_keep_
    call_owner* owner_ = nullptr;        // queue holding the call, for cancellation; kept alive by owner_keep_
    scope_core* scope_ = nullptr;        // sticky scope, or nullptr; kept alive by scope_keep_
    boost::intrusive_ptr<const ref_counted> pool_keep_;
    boost::intrusive_ptr<const ref_counted> owner_keep_;
    boost::intrusive_ptr<const ref_counted> scope_keep_;
    std::chrono::steady_clock::time_point submitted_{};

  protected:
    explicit call_base(bool stoppable) : stop_(stoppable ? std::stop_source() : std::stop_source(std::nostopstate)) {}
    ~call_base() override;

    virtual void invoke(std::stop_token st) noexcept = 0;

    std::exception_ptr error_;
};

template <class R>
class result_call : public call_base {
  public:
    // Precondition: the call ran and error() is null.
    [[nodiscard]] R take() { return std::move(*value_); }

  protected:
    using call_base::call_base;
    std::optional<R> value_;
};

template <>
class result_call<void> : public call_base {
  public:
    void take() noexcept {}

  protected:
    using call_base::call_base;
};

template <class F>
class call final : public result_call<call_result_t<F>> {
    using result_type = call_result_t<F>;
    static constexpr bool stoppable = std::invocable<F&, std::stop_token>;
    static_assert(std::is_void_v<result_type> || std::move_constructible<result_type>,
                  "sync_to_async: the callable's result must be movable");

  public:
    explicit call(F&& fn) : result_call<result_type>(stoppable), fn_(std::move(fn)) {}

  private:
    void invoke(std::stop_token st) noexcept override {
        try {
            if constexpr (std::is_void_v<result_type>) {
                invoke_fn(st);
            } else {
                this->value_.emplace(invoke_fn(st));
            }
        } catch (...) {
            this->error_ = std::current_exception();
        }
        // The captures die on the thread that used them, before the coroutine resumes.
        fn_.reset();
    }

    decltype(auto) invoke_fn(std::stop_token& st) {
        if constexpr (stoppable) {
            return std::invoke(*fn_, std::move(st));
        } else {
            return std::invoke(*fn_);
        }
    }

    std::optional<F> fn_;
};

}  // namespace sluice::bridge::detail
