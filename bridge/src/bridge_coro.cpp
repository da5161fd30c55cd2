// The bridge's only coroutine and Asio-initiation code: sync_to_async's initiation, async_to_sync's co_spawn, and the
// executor wrapper that carries a coroutine's sticky thread.

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detail/thread_context.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/require.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "runtime.hpp"
#include "sluice/bridge/async_to_sync.hpp"
#include "sluice/bridge/sync_to_async.hpp"

namespace sluice::bridge::detail {
namespace {

namespace asio = boost::asio;

// A counted reference that copies without throwing, as executors must (boost::intrusive_ptr's copy is not noexcept).
template <class T>
class nothrow_ref {
  public:
    explicit nothrow_ref(T* p) noexcept : p_(p) {
        if (p_ != nullptr) {
            intrusive_ptr_add_ref(p_);
        }
    }
    nothrow_ref(const nothrow_ref& other) noexcept : nothrow_ref(other.p_) {}
    nothrow_ref(nothrow_ref&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    nothrow_ref& operator=(nothrow_ref other) noexcept {
        std::swap(p_, other.p_);
        return *this;
    }
    ~nothrow_ref() {
        if (p_ != nullptr) {
            intrusive_ptr_release(p_);
        }
    }
    [[nodiscard]] T* get() const noexcept { return p_; }
    friend bool operator==(const nothrow_ref& a, const nothrow_ref& b) noexcept { return a.p_ == b.p_; }

  private:
    T* p_;  // null only when moved from
};

// The executors below run work exactly like the one they wrap, and carry the sticky thread of the coroutines
// co_spawned with them: the thread blocked in async_to_sync, or a bound thread_scope. Every executor a coroutine
// derives from its own (by require/prefer) keeps it, so sync_to_async finds it through any_io_executor::target().
// This is the bridge's counterpart of asgiref's contextvars.

// For io_context executors, the common case: 16 bytes, so any_io_executor stores it inline and copies never allocate.
template <class Inner>
class context_executor {
  public:
    context_executor(const Inner& inner, sticky_context* context) noexcept : inner_(inner), context_(context) {}
    context_executor(const Inner& inner, const nothrow_ref<sticky_context>& context) noexcept
        : inner_(inner), context_(context) {}

    [[nodiscard]] sticky_context* context() const noexcept { return context_.get(); }
    [[nodiscard]] const Inner& inner() const noexcept { return inner_; }

    template <class F>
    void execute(F&& f) const {
        inner_.execute(std::forward<F>(f));
    }

    template <class Property>
    requires asio::can_query<const Inner&, Property>::value [[nodiscard]] decltype(auto) query(
        const Property& p) const {
        return asio::query(inner_, p);
    }

    template <class Property>
    requires asio::can_require<const Inner&, Property>::value [[nodiscard]] auto require(const Property& p) const {
        using result = std::decay_t<decltype(asio::require(inner_, p))>;
        return context_executor<result>(asio::require(inner_, p), context_);
    }

    template <class Property>
    requires asio::can_prefer<const Inner&, Property>::value [[nodiscard]] auto prefer(const Property& p) const {
        using result = std::decay_t<decltype(asio::prefer(inner_, p))>;
        return context_executor<result>(asio::prefer(inner_, p), context_);
    }

    friend bool operator==(const context_executor& a, const context_executor& b) noexcept {
        return a.inner_ == b.inner_ && a.context_ == b.context_;
    }
    friend bool operator!=(const context_executor& a, const context_executor& b) noexcept { return !(a == b); }

  private:
    Inner inner_;
    nothrow_ref<sticky_context> context_;
};

// For any other executor (a strand, a thread_pool's): one counted block per derived executor, so the wrapper itself
// stays pointer-sized. require/prefer allocate.
class shared_context_executor {
  public:
    shared_context_executor(asio::any_io_executor inner, sticky_context* context)
        : state_(new state(std::move(inner), nothrow_ref<sticky_context>(context))) {}

    [[nodiscard]] sticky_context* context() const noexcept { return state_.get()->context.get(); }

    template <class F>
    void execute(F&& f) const {
        state_.get()->inner.execute(std::forward<F>(f));
    }

    template <class Property>
    requires asio::can_query<const asio::any_io_executor&, Property>::value [[nodiscard]] decltype(auto) query(
        const Property& p) const {
        return asio::query(state_.get()->inner, p);
    }

    template <class Property>
    requires asio::can_require<const asio::any_io_executor&, Property>::value [[nodiscard]] shared_context_executor
    require(const Property& p) const {
        return shared_context_executor(asio::require(state_.get()->inner, p), state_.get()->context);
    }

    template <class Property>
    requires asio::can_prefer<const asio::any_io_executor&, Property>::value [[nodiscard]] shared_context_executor
    prefer(const Property& p) const {
        return shared_context_executor(asio::prefer(state_.get()->inner, p), state_.get()->context);
    }

    friend bool operator==(const shared_context_executor& a, const shared_context_executor& b) noexcept {
        return a.state_ == b.state_ || (a.state_.get()->inner == b.state_.get()->inner && a.context() == b.context());
    }
    // No operator!=: C++20 rewrites a != b as !(a == b), and clang -Werror rejects an unused one in this unnamed
    // namespace.

  private:
    struct state final : ref_counted {
        state(asio::any_io_executor i, nothrow_ref<sticky_context> c) noexcept
            : inner(std::move(i)), context(std::move(c)) {}
        asio::any_io_executor inner;
        nothrow_ref<sticky_context> context;
    };

    shared_context_executor(asio::any_io_executor inner, const nothrow_ref<sticky_context>& context)
        : state_(new state(std::move(inner), context)) {}

    nothrow_ref<state> state_;
};

using io_executor = asio::io_context::executor_type;
using tracked_io_executor =
    std::decay_t<decltype(asio::prefer(std::declval<io_executor>(), asio::execution::outstanding_work.tracked))>;
static_assert(sizeof(context_executor<io_executor>) <= 3 * sizeof(void*),
              "must fit any_io_executor's inline buffer: no allocation per copy");

// The sticky thread a coroutine's executor carries, or null.
sticky_context* sticky_context_of(const asio::any_io_executor& ex) noexcept {
    if (const auto* e = ex.target<context_executor<io_executor>>()) {
        return e->context();
    }
    if (const auto* e = ex.target<context_executor<tracked_io_executor>>()) {
        return e->context();
    }
    if (const auto* e = ex.target<shared_context_executor>()) {
        return e->context();
    }
    return nullptr;
}

// ex, carrying context instead of whatever it carried.
asio::any_io_executor with_context(const asio::any_io_executor& ex, sticky_context* context) {
    if (const auto* e = ex.target<io_executor>()) {
        return context_executor<io_executor>(*e, context);
    }
    if (const auto* e = ex.target<context_executor<io_executor>>()) {
        return context_executor<io_executor>(e->inner(), context);
    }
    return shared_context_executor(ex, context);
}

// Hands a call to its thread once the awaiting coroutine's completion handler exists.
struct run_call_initiation {
    boost::intrusive_ptr<pool_core> pool;  // the pool named by the caller: stats, and where a call without a scope goes
    boost::intrusive_ptr<scope_core> scope;  // an explicit scope, or null
    route how;
    call_ref call;

    template <class Handler>
    void operator()(Handler&& handler) {
        const asio::any_io_executor ex = asio::get_associated_executor(handler);
        call_base& c = *call;
        c.work_ = asio::prefer(ex, asio::execution::outstanding_work.tracked);
        // Not operator=: Boost 1.81's any_completion_handler move assignment recurses (copies from an lvalue).
        asio::any_completion_handler<void(std::exception_ptr)>(std::forward<Handler>(handler)).swap(c.handler_);
        c.pool_ = pool.get();
        c.pool_keep_ = pool;
        // The wrapper has hooked the coroutine's slot and forwards to a slot of its own: ours goes there. Assigning
        // the coroutine's slot instead would destroy the wrapper's hook, which it still uses.
        if (auto slot = c.handler_.get_cancellation_slot(); slot.is_connected()) {
            slot.assign([ref = call](asio::cancellation_type type) {
                if (type != asio::cancellation_type::none) {
                    cancel_call(*ref);
                }
            });
        }
        if (scope) {
            scope->pool().submit(std::move(call), scope.get());
            return;
        }
        if (how == route::follow_context) {
            if (sticky_context* context = sticky_context_of(ex); context != nullptr && context->submit(call)) {
                return;
            }
        }
        pool->submit(std::move(call), nullptr);
    }
};

// co_spawn's completion for async_to_sync: wakes the parked thread, with abandoned if destroyed without being called
// (the io_context was destroyed with the coroutine unfinished).
class park_completion {
  public:
    park_completion(park& p, boost::intrusive_ptr<const ref_counted> keep) noexcept
        : park_(&p), keep_(std::move(keep)) {}
    park_completion(park_completion&& other) noexcept
        : park_(std::exchange(other.park_, nullptr)), keep_(std::move(other.keep_)) {}
    park_completion(const park_completion&) = delete;
    park_completion& operator=(const park_completion&) = delete;
    park_completion& operator=(park_completion&&) = delete;

    ~park_completion() {
        if (park_ != nullptr) {
            fire(std::make_exception_ptr(bridge_error(errc::abandoned)), true);
        }
    }

    void operator()(std::exception_ptr e) { fire(std::move(e), false); }

  private:
    void fire(std::exception_ptr e, bool abandoned) noexcept {
        park* const p = std::exchange(park_, nullptr);
        // keep_ holds the mutex's owner; the park itself may be gone once the mutex is released.
        std::lock_guard lk(*p->mutex);
        p->error = std::move(e);
        p->abandoned = abandoned;
        p->done = true;
        p->cv->notify_one();
    }

    park* park_;
    boost::intrusive_ptr<const ref_counted> keep_;
};

void spawn_on(const asio::any_io_executor& ex, asio::awaitable<void> aw, boost::intrusive_ptr<sticky_context> context,
              park_completion done) {
    // co_spawn itself runs on ex's thread: nothing of the awaitable starts on the calling thread.
    asio::post(ex, [aw = std::move(aw), cex = with_context(ex, context.get()), done = std::move(done)]() mutable {
        asio::co_spawn(cex, std::move(aw), std::move(done));
    });
}

}  // namespace

asio::awaitable<void> run_call(thread_pool& pool, call_ref c, route r) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(
        run_call_initiation{&pool_core_of(pool), nullptr, r, std::move(c)}, asio::use_awaitable);
}

asio::awaitable<void> run_call(thread_scope& scope, call_ref c) {
    scope_core& sc = scope_core_of(scope);
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(
        run_call_initiation{&sc.pool(), &sc, route::follow_context, std::move(c)}, asio::use_awaitable);
}

void block_on(const asio::any_io_executor& ex, asio::awaitable<void> aw) {
    global_stats& stats = bridge_global_stats();
    // Any event loop running on this thread (Asio pushes its call stack in run/poll) would stall while we block, and
    // deadlock if the awaitable needs it.
    if (asio::detail::thread_context::top_of_thread_call_stack() != nullptr) {
        increment(stats.misuse);
        throw misuse_error(errc::event_loop_thread);
    }
    if (const auto* io = ex.target<asio::io_context::executor_type>(); io != nullptr && io->context().stopped()) {
        throw bridge_error(errc::loop_stopped);
    }

    const auto started = clock::now();
    thread_role& role = current_role();
    std::optional<park> parked;
    if (role.pool != nullptr && role.scope != nullptr) {
        // A scope's thread: nested calls of its scope come to this thread through the pool.
        pool_core& pool = *role.pool;
        park& p = parked.emplace(pool.make_park(role.worker));
        spawn_on(ex, std::move(aw), role.scope, park_completion(p, &pool));
        pool.serve_parked(role.worker, p);
    } else {
        boost::intrusive_ptr<local_caller> caller(role.caller != nullptr ? role.caller : new local_caller());
        park& p = parked.emplace(caller->make_park());
        spawn_on(ex, std::move(aw), caller, park_completion(p, caller));
        caller->serve(p);
    }

    stats.async_to_sync_time.record(clock::now() - started);
    if (parked->abandoned) {
        increment(stats.async_to_sync_abandoned);
    } else {
        increment(parked->error ? stats.async_to_sync_exception : stats.async_to_sync_ok);
    }
    if (parked->error) {
        std::rethrow_exception(parked->error);
    }
}

}  // namespace sluice::bridge::detail

namespace sluice::bridge {

boost::asio::any_io_executor bind_scope(thread_scope& scope, const boost::asio::any_io_executor& ex) {
    return detail::with_context(ex, &detail::scope_core_of(scope));
}

}  // namespace sluice::bridge
