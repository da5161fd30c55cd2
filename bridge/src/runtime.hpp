#pragma once

// The bridge's threads and queues, private to bridge/src: thread_pool.cpp implements them, bridge_coro.cpp (the one
// coroutine file) connects them to Asio.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include "sluice/bridge/detail/call.hpp"
#include "sluice/bridge/error.hpp"
#include "sluice/bridge/scheduler_fsm.hpp"
#include "sluice/bridge/stats.hpp"
#include "sluice/bridge/thread_pool.hpp"

namespace sluice::bridge::detail {

using call_ref = boost::intrusive_ptr<call_base>;
using clock = std::chrono::steady_clock;

// A queue holding calls that have not started.
class call_owner {
  public:
    // From the awaiting coroutine's cancellation slot, on its executor: drops c if it has not started, else signals
    // its stop_token.
    virtual void cancel(call_base& c) noexcept = 0;

  protected:
    ~call_owner() = default;
};

// A sticky thread for thread-sensitive calls, carried by a coroutine's executor (see context_executor).
class sticky_context : public ref_counted {
  public:
    // Takes c (leaving it null) to run on this context's thread, or returns false and leaves c alone if the context
    // takes no more calls.
    [[nodiscard]] virtual bool submit(call_ref& c) = 0;
};

// A thread blocked in async_to_sync. The completion sets done under *mutex and notifies *cv; the thread reads done
// under the same mutex, so the park may live on its stack.
struct park {
    std::mutex* mutex;
    std::condition_variable* cv;
    bool done = false;
    bool abandoned = false;
    std::exception_ptr error{};
};

class scope_core;

// What thread_pool holds. The FSM, mailboxes and running stacks are guarded by mutex_.
class pool_core final : public ref_counted, public call_owner {
  public:
    explicit pool_core(pool_options options);
    ~pool_core() override;

    void start();  // starts the threads; once, right after construction
    void stop() noexcept;
    void join();  // precondition: stop() called, and not on one of the pool's threads

    // Takes c and starts, queues or rejects it (completing it with a bridge_error). scope: its sticky scope or null.
    void submit(call_ref c, scope_core* scope);
    void cancel(call_base& c) noexcept override;
    void close_scope(scope_core& s);
    [[nodiscard]] std::optional<std::thread::id> leased_thread(const scope_core& s);

    // For a call of a scope running on worker w that blocks in async_to_sync: the park to wait on, then serving the
    // scope's calls on this thread until the park is done.
    [[nodiscard]] park make_park(std::size_t w) noexcept;
    void serve_parked(std::size_t w, park& p);

    [[nodiscard]] pool_stats& stats() noexcept { return stats_; }
    [[nodiscard]] const pool_options& options() const noexcept { return options_; }

  private:
    struct worker {
        std::condition_variable cv;
        call_base* mailbox = nullptr;     // assigned by the FSM, not yet taken
        std::atomic<bool> mail{false};    // mailbox is set: polled without the mutex by a worker about to sleep
        bool sleeping = false;            // waits on cv, so an assignment must notify it
        std::vector<call_base*> running;  // the call on this thread and those it runs nested
        std::thread thread;
    };
    class wake_list;

    [[nodiscard]] static call_base* take_mail(worker& me) noexcept;
    void worker_main(std::size_t w);
    void timer_main();
    void run_assigned(std::unique_lock<std::mutex>& lk, std::size_t w, call_base& c);
    void dispatch_locked(wake_list& wakes, std::size_t self);
    void publish_gauges_locked() noexcept;
    void reject(call_base& c, errc reason) noexcept;

    const pool_options options_;
    pool_stats stats_;
    std::mutex mutex_;
    scheduler_fsm fsm_;
    std::unique_ptr<worker[]> workers_;
    std::condition_variable timer_cv_;
    std::thread timer_;
    bool stopping_ = false;
};

class scope_core final : public sticky_context {
  public:
    explicit scope_core(boost::intrusive_ptr<pool_core> pool) : pool_(std::move(pool)) {}

    [[nodiscard]] bool submit(call_ref& c) override;
    [[nodiscard]] pool_core& pool() const noexcept { return *pool_; }

    scheduler_fsm::scope fsm_scope;  // guarded by the pool's mutex

  private:
    boost::intrusive_ptr<pool_core> pool_;
};

// asgiref's CurrentThreadExecutor: the calls a thread blocked in async_to_sync runs for the coroutine it waits on.
// Thread-safe. Closed when its outermost serve() returns, after which submit() refuses.
class local_caller final : public sticky_context, public call_owner {
  public:
    [[nodiscard]] bool submit(call_ref& c) override;
    void cancel(call_base& c) noexcept override;

    [[nodiscard]] park make_park() noexcept { return park{&mutex_, &cv_}; }
    // Runs submitted calls on this thread until p is done.
    void serve(park& p);

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<call_base*> jobs_;  // each holds a reference
    int depth_ = 0;                // nested serve() calls on the owning thread
    bool open_ = true;
};

// What the current thread is doing for the bridge.
struct thread_role {
    pool_core* pool = nullptr;  // set on a pool's worker threads
    std::size_t worker = scheduler_fsm::no_worker;
    scope_core* scope = nullptr;     // scope of the call running on this thread, if any
    local_caller* caller = nullptr;  // innermost async_to_sync whose calls this thread serves
};
[[nodiscard]] thread_role& current_role() noexcept;

// Resumes c's coroutine on its executor with e (null for success). Any thread; once per call.
void complete_call(call_base& c, std::exception_ptr e);
// Runs c on this thread and records its stats; the caller then completes it.
void run_call_here(call_base& c) noexcept;
// From a coroutine's cancellation slot.
void cancel_call(call_base& c) noexcept;

}  // namespace sluice::bridge::detail
