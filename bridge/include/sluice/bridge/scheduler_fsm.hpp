#pragma once

// The bridge's admission and scheduling rules with no threads, clocks or locks: which worker runs which call, when a
// call queues, waits for room or is rejected, and when a sticky scope leases or returns its worker. thread_pool drives
// it under its mutex and performs what it decides; the unit tests drive it directly with made-up times.
//
// Flow:
//   submit(call) -> started on an available worker | queued | waiting for room (wait policy) | rejected
//   finish(call) -> the worker takes the next call it may run (its scope's, else the oldest free-for-all one)
//   block(worker) / unblock(worker) -> a worker parked in async_to_sync may run its scope's calls nested meanwhile
//   cancel(call), expire(now), close_scope(scope), stop() + drain()
// Every decision that starts a call is appended to assignments(); the driver hands each one to its worker, then calls
// clear_assignments().

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace sluice::bridge {

// What a pool does with a call that finds its queue full.
enum class overflow_policy {
    reject,  // fail at once with errc::queue_full
    wait,    // wait up to admission_limits::full_wait for room, then fail with errc::queue_timeout
};

struct admission_limits {
    std::size_t threads = 4;      // workers, at least 1
    std::size_t max_queue = 256;  // calls admitted but not started, over all scopes of the pool
    overflow_policy when_full = overflow_policy::reject;
    std::chrono::steady_clock::duration full_wait = std::chrono::seconds(1);  // only for overflow_policy::wait
};

namespace detail {

// A FIFO threaded through its elements, so queueing never allocates. T provides the two link members.
template <class T, T* T::*Prev, T* T::*Next>
class intrusive_fifo {
  public:
    [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] T* front() const noexcept { return head_; }

    void push_back(T& x) noexcept {
        x.*Prev = tail_;
        x.*Next = nullptr;
        (tail_ != nullptr ? tail_->*Next : head_) = &x;
        tail_ = &x;
        ++size_;
    }

    // Precondition: x is in this list.
    void erase(T& x) noexcept {
        (x.*Prev != nullptr ? (x.*Prev)->*Next : head_) = x.*Next;
        (x.*Next != nullptr ? (x.*Next)->*Prev : tail_) = x.*Prev;
        x.*Prev = nullptr;
        x.*Next = nullptr;
        --size_;
    }

  private:
    T* head_ = nullptr;
    T* tail_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace detail

// Not thread-safe: the owner serialises every call (thread_pool holds its mutex).
class scheduler_fsm {
  public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;
    static constexpr std::size_t no_worker = static_cast<std::size_t>(-1);

    enum class admission { started, queued, waiting, rejected_full, rejected_stopped };
    enum class entry_state { idle, queued, waiting, running };

    class scope;

    // One call's scheduling state, embedded in the call. The owner keeps it alive and in place from submit() until
    // finish(), cancel() returning true, expire() or drain() returning it.
    class entry {
      public:
        explicit entry(scope* sticky = nullptr) noexcept : scope_(sticky) {}
        entry(const entry&) = delete;
        entry& operator=(const entry&) = delete;

        // The scope whose sticky worker must run this call, or nullptr when any worker may.
        [[nodiscard]] scope* sticky_scope() const noexcept { return scope_; }
        // Precondition: not submitted, or back to idle.
        void set_sticky_scope(scope* sticky) noexcept { scope_ = sticky; }
        [[nodiscard]] entry_state state() const noexcept { return state_; }
        // The worker running this call; meaningful while state() is running.
        [[nodiscard]] std::size_t worker() const noexcept { return worker_; }

      private:
        friend class scheduler_fsm;
        friend class scope;

        scope* scope_;
        entry* prev_ = nullptr;  // in the free-for-all list or the scope's list
        entry* next_ = nullptr;
        entry* wait_prev_ = nullptr;  // in the overflow list, while waiting for room
        entry* wait_next_ = nullptr;
        std::uint64_t seq_ = 0;  // submission order, to pick the oldest of several lists
        time_point deadline_{};
        entry_state state_ = entry_state::idle;
        std::size_t worker_ = no_worker;
    };

    // A sticky scope's scheduling state: its pending calls and the worker it leases. The owner keeps it alive while
    // it has entries or a lease (close_scope() returns the lease once both are gone).
    class scope {
      public:
        scope() = default;
        scope(const scope&) = delete;
        scope& operator=(const scope&) = delete;

        // The leased worker, or no_worker before the first call runs and after the lease is returned.
        [[nodiscard]] std::size_t worker() const noexcept { return worker_; }
        [[nodiscard]] std::size_t pending() const noexcept { return entries_.size(); }

      private:
        friend class scheduler_fsm;
        using entry_list = detail::intrusive_fifo<entry, &entry::prev_, &entry::next_>;

        entry_list entries_;
        scope* prev_ = nullptr;  // in the list of unleased scopes waiting for a worker
        scope* next_ = nullptr;
        std::size_t worker_ = no_worker;
        bool lease_waiting_ = false;
        bool closing_ = false;
    };

    struct assignment {
        entry* work;
        std::size_t worker;
    };

    explicit scheduler_fsm(const admission_limits& limits);

    // Starts e on an available worker if one may run it, else queues it, else applies the overflow policy.
    [[nodiscard]] admission submit(entry& e, time_point now);
    // e, running, has returned; its worker takes its next call, if any.
    void finish(entry& e);
    // The worker's current call waits in async_to_sync: until unblock(), the worker may run its scope's calls nested.
    void block(std::size_t worker);
    void unblock(std::size_t worker);
    // Removes e if it has not started. Returns false if it is running (the caller requests stop instead).
    [[nodiscard]] bool cancel(entry& e);
    // The scope's owner is gone: its worker returns to the pool once the scope's calls have finished.
    void close_scope(scope& s);
    // Removes and returns one waiting entry whose deadline is at or before now, or nullptr.
    [[nodiscard]] entry* expire(time_point now);
    [[nodiscard]] std::optional<time_point> next_deadline() const noexcept;
    // Refuses every later submission; pending calls are then taken out with drain().
    void stop() noexcept;
    [[nodiscard]] entry* drain() noexcept;

    [[nodiscard]] std::span<const assignment> assignments() const noexcept { return assignments_; }
    void clear_assignments() noexcept { assignments_.clear(); }

    // Accounting, read by the stats gauges and the tests.
    [[nodiscard]] std::size_t queued() const noexcept { return admitted_; }
    [[nodiscard]] std::size_t waiting() const noexcept { return overflow_.size(); }
    [[nodiscard]] std::size_t busy() const noexcept { return busy_; }
    [[nodiscard]] std::size_t threads() const noexcept { return workers_.size(); }
    [[nodiscard]] std::size_t leased() const noexcept { return leased_; }
    [[nodiscard]] bool stopped() const noexcept { return stopped_; }
    [[nodiscard]] bool worker_idle(std::size_t worker) const noexcept { return workers_[worker].runs == 0; }

  private:
    struct worker_state {
        scope* lease = nullptr;
        std::uint32_t runs = 0;     // calls on this worker's stack: the current one plus those it waits under
        std::uint32_t blocked = 0;  // of those, how many wait in async_to_sync
    };
    using entry_list = detail::intrusive_fifo<entry, &entry::prev_, &entry::next_>;
    using overflow_list = detail::intrusive_fifo<entry, &entry::wait_prev_, &entry::wait_next_>;
    using scope_list = detail::intrusive_fifo<scope, &scope::prev_, &scope::next_>;

    [[nodiscard]] bool available(std::size_t w) const noexcept;
    void start(entry& e, std::size_t w);
    void enqueue(entry& e);
    void remove_pending(entry& e) noexcept;
    void promote() noexcept;
    void lease(scope& s, std::size_t w) noexcept;
    void unlease(std::size_t w) noexcept;
    void feed(std::size_t w);

    admission_limits limits_;
    std::vector<worker_state> workers_;
    std::vector<std::size_t> free_;  // unleased idle workers, most recently used last
    entry_list any_;                 // calls any worker may run
    scope_list lease_waiting_;       // unleased scopes with calls, waiting for a free worker
    overflow_list overflow_;         // calls waiting for room, oldest (earliest deadline) first
    std::vector<assignment> assignments_;
    std::size_t admitted_ = 0;  // pending calls that hold a queue slot
    std::size_t busy_ = 0;
    std::size_t leased_ = 0;
    std::uint64_t seq_ = 0;
    bool stopped_ = false;
};

}  // namespace sluice::bridge
