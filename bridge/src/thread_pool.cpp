#include "sluice/bridge/thread_pool.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <utility>

#include <boost/asio/post.hpp>

#include "runtime.hpp"

namespace sluice::bridge {
namespace detail {
namespace {

thread_local thread_role this_thread_role;

admission_limits limits_of(const pool_options& o) {
    return admission_limits{o.threads, o.max_queue, o.when_full, o.full_wait};
}

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Returns once mail is set or budget has passed.
void poll_for_mail(const std::atomic<bool>& mail, std::chrono::nanoseconds budget) noexcept {
    const auto until = clock::now() + budget;
    do {
        for (int i = 0; i < 64; ++i) {
            if (mail.load(std::memory_order_acquire)) {
                return;
            }
            cpu_relax();
        }
    } while (clock::now() < until);
}

std::atomic<std::uint64_t>& rejection_counter(pool_stats& s, errc reason) noexcept {
    switch (reason) {
        case errc::queue_full:
            return s.rejected_queue_full;
        case errc::queue_timeout:
            return s.rejected_queue_timeout;
        default:
            return s.rejected_pool_stopped;
    }
}

}  // namespace

thread_role& current_role() noexcept {
    return this_thread_role;
}

call_base::~call_base() = default;

void complete_call(call_base& c, std::exception_ptr e) {
    auto handler = std::move(c.handler_);
    assert(handler);
    // work_ is the coroutine's own executor; the handler's associated executor is a type-erased copy of it.
    boost::asio::post(c.work_, [h = std::move(handler), e = std::move(e)]() mutable {
        // Our slot handler holds a reference to the call; it is done with now. The slot belongs to this executor.
        h.get_cancellation_slot().clear();
        std::move(h)(std::move(e));
    });
    c.work_ = {};  // the posted completion keeps the io_context running from here
}

void run_call_here(call_base& c) noexcept {
    pool_stats& stats = c.pool_->stats();
    const auto started = clock::now();
    stats.queue_wait.record(started - c.submitted_);
    thread_role& role = current_role();
    scope_core* const outer = std::exchange(role.scope, c.scope_);
    c.run();
    role.scope = outer;
    stats.run_time.record(clock::now() - started);
    increment(c.error() ? stats.calls_exception : stats.calls_ok);
}

void cancel_call(call_base& c) noexcept {
    if (c.owner_ != nullptr) {
        c.owner_->cancel(c);
    }
}

// Workers to notify once the mutex is released (a notified thread then finds the mutex free). More than fit here are
// notified at once, under the mutex; that only happens when a scope's release hands out several calls.
class pool_core::wake_list {
  public:
    explicit wake_list(pool_core& pool) : pool_(pool) {}
    wake_list(const wake_list&) = delete;
    wake_list& operator=(const wake_list&) = delete;

    void add(std::size_t w) {
        if (size_ < workers_.size()) {
            workers_[size_++] = w;
        } else {
            pool_.workers_[w].cv.notify_one();
        }
    }
    // Precondition: the pool's mutex is not held.
    void notify() noexcept {
        for (std::size_t i = 0; i < size_; ++i) {
            pool_.workers_[workers_[i]].cv.notify_one();
        }
        size_ = 0;
    }

  private:
    pool_core& pool_;
    std::array<std::size_t, 4> workers_{};
    std::size_t size_ = 0;
};

pool_core::pool_core(pool_options options)
    : options_(std::move(options)), fsm_(limits_of(options_)), workers_(std::make_unique<worker[]>(fsm_.threads())) {
    std::lock_guard lk(mutex_);
    publish_gauges_locked();
}

pool_core::~pool_core() = default;

void pool_core::start() {
    try {
        for (std::size_t w = 0; w < fsm_.threads(); ++w) {
            workers_[w].running.reserve(4);
            workers_[w].thread = std::thread([this, w] { worker_main(w); });
        }
        if (options_.when_full == overflow_policy::wait) {
            timer_ = std::thread([this] { timer_main(); });
        }
    } catch (...) {
        stop();
        join();
        throw;
    }
}

void pool_core::stop() noexcept {
    std::vector<call_base*> drained;
    std::vector<call_ref> running;
    {
        std::lock_guard lk(mutex_);
        if (stopping_) {
            return;
        }
        stopping_ = true;
        fsm_.stop();
        while (scheduler_fsm::entry* e = fsm_.drain()) {
            drained.push_back(static_cast<call_base*>(e));
        }
        for (std::size_t w = 0; w < fsm_.threads(); ++w) {
            for (call_base* c : workers_[w].running) {
                running.emplace_back(c);
            }
            workers_[w].cv.notify_all();
        }
        publish_gauges_locked();
        timer_cv_.notify_all();
    }
    for (call_base* c : drained) {
        const call_ref adopted(c, false);
        reject(*c, errc::pool_stopped);
    }
    // Outside the mutex: request_stop runs the callables' stop_callbacks.
    for (const call_ref& c : running) {
        if (c->stop_.request_stop()) {
            increment(stats_.stop_requests);
        }
    }
}

void pool_core::join() {
    assert(current_role().pool != this);
    for (std::size_t w = 0; w < fsm_.threads(); ++w) {
        if (workers_[w].thread.joinable()) {
            workers_[w].thread.join();
        }
    }
    if (timer_.joinable()) {
        timer_.join();
    }
}

void pool_core::submit(call_ref c, scope_core* scope) {
    call_base& call = *c;
    call.set_sticky_scope(scope != nullptr ? &scope->fsm_scope : nullptr);
    call.pool_ = this;
    call.pool_keep_ = this;
    call.owner_ = this;
    call.owner_keep_ = this;
    call.scope_ = scope;
    call.scope_keep_ = scope;
    call.submitted_ = clock::now();

    wake_list wakes(*this);
    scheduler_fsm::admission admitted;
    {
        std::lock_guard lk(mutex_);
        const bool timer_idle = fsm_.waiting() == 0;
        admitted = fsm_.submit(call, call.submitted_);
        switch (admitted) {
            case scheduler_fsm::admission::waiting:
                if (timer_idle) {
                    timer_cv_.notify_one();  // its next deadline is this call's
                }
                [[fallthrough]];
            case scheduler_fsm::admission::started:
            case scheduler_fsm::admission::queued:
                c.detach();  // the pool holds this reference until the call leaves it
                dispatch_locked(wakes, scheduler_fsm::no_worker);
                break;
            case scheduler_fsm::admission::rejected_full:
            case scheduler_fsm::admission::rejected_stopped:
                break;
        }
    }
    wakes.notify();
    if (admitted == scheduler_fsm::admission::rejected_full) {
        reject(call, errc::queue_full);
    } else if (admitted == scheduler_fsm::admission::rejected_stopped) {
        reject(call, errc::pool_stopped);
    }
}

void pool_core::cancel(call_base& c) noexcept {
    bool removed = false;
    bool running = false;
    {
        std::lock_guard lk(mutex_);
        removed = fsm_.cancel(c);
        running = c.state() == scheduler_fsm::entry_state::running;
        if (removed) {
            publish_gauges_locked();
        }
    }
    if (removed) {
        const call_ref adopted(&c, false);
        increment(stats_.calls_cancelled);
        complete_call(c, std::make_exception_ptr(bridge_error(errc::cancelled)));
    } else if (running && c.stop_.request_stop()) {
        increment(stats_.stop_requests);
    }
}

void pool_core::close_scope(scope_core& s) {
    wake_list wakes(*this);
    {
        std::lock_guard lk(mutex_);
        fsm_.close_scope(s.fsm_scope);
        dispatch_locked(wakes, scheduler_fsm::no_worker);
    }
    wakes.notify();
}

std::optional<std::thread::id> pool_core::leased_thread(const scope_core& s) {
    std::lock_guard lk(mutex_);
    const std::size_t w = s.fsm_scope.worker();
    if (w == scheduler_fsm::no_worker) {
        return std::nullopt;
    }
    return workers_[w].thread.get_id();
}

park pool_core::make_park(std::size_t w) noexcept {
    return park{&mutex_, &workers_[w].cv};
}

void pool_core::serve_parked(std::size_t w, park& p) {
    wake_list wakes(*this);
    std::unique_lock lk(mutex_);
    fsm_.block(w);
    dispatch_locked(wakes, w);  // only ever assigns to w itself
    worker& me = workers_[w];
    for (;;) {
        if (call_base* c = take_mail(me)) {
            run_assigned(lk, w, *c);
        } else if (p.done) {
            fsm_.unblock(w);
            publish_gauges_locked();
            return;
        } else {
            me.sleeping = true;
            me.cv.wait(lk);
            me.sleeping = false;
        }
    }
}

void pool_core::worker_main(std::size_t w) {
    thread_role& role = current_role();
    role.pool = this;
    role.worker = w;
    worker& me = workers_[w];
    bool polled = false;
    std::unique_lock lk(mutex_);
    for (;;) {
        if (call_base* c = take_mail(me)) {
            run_assigned(lk, w, *c);
            polled = false;
        } else if (stopping_ && fsm_.worker_idle(w)) {
            return;
        } else if (!polled && options_.spin.count() > 0) {
            // A caller awaiting a chain of calls submits the next one within microseconds: catching it here saves a
            // sleep and a wake-up on both sides.
            polled = true;
            lk.unlock();
            poll_for_mail(me.mail, options_.spin);
            lk.lock();
        } else {
            me.sleeping = true;
            me.cv.wait(lk);
            me.sleeping = false;
        }
    }
}

call_base* pool_core::take_mail(worker& me) noexcept {
    call_base* c = std::exchange(me.mailbox, nullptr);
    if (c != nullptr) {
        me.mail.store(false, std::memory_order_relaxed);
    }
    return c;
}

void pool_core::run_assigned(std::unique_lock<std::mutex>& lk, std::size_t w, call_base& c) {
    worker& me = workers_[w];
    me.running.push_back(&c);
    lk.unlock();
    call_ref adopted(&c, false);
    run_call_here(c);

    wake_list wakes(*this);
    lk.lock();
    me.running.pop_back();
    fsm_.finish(c);
    dispatch_locked(wakes, w);
    lk.unlock();
    wakes.notify();
    // Last, so that this thread has little left to do when the coroutine's thread wakes: on a busy machine they may
    // share a core.
    complete_call(c, c.error());
    adopted.reset();  // the callable's captures are gone already; the rest may still run arbitrary destructors
    lk.lock();
}

void pool_core::timer_main() {
    std::vector<call_base*> expired;
    std::unique_lock lk(mutex_);
    while (!stopping_) {
        if (const auto deadline = fsm_.next_deadline()) {
            timer_cv_.wait_until(lk, *deadline);
        } else {
            timer_cv_.wait(lk);
        }
        const auto now = clock::now();
        while (scheduler_fsm::entry* e = fsm_.expire(now)) {
            expired.push_back(static_cast<call_base*>(e));
        }
        if (expired.empty()) {
            continue;
        }
        publish_gauges_locked();
        lk.unlock();
        for (call_base* c : expired) {
            const call_ref adopted(c, false);
            reject(*c, errc::queue_timeout);
        }
        expired.clear();
        lk.lock();
    }
}

void pool_core::dispatch_locked(wake_list& wakes, std::size_t self) {
    for (const scheduler_fsm::assignment& a : fsm_.assignments()) {
        worker& target = workers_[a.worker];
        assert(target.mailbox == nullptr);
        target.mailbox = static_cast<call_base*>(a.work);
        target.mail.store(true, std::memory_order_release);
        if (a.worker != self && target.sleeping) {
            wakes.add(a.worker);
        }
    }
    fsm_.clear_assignments();
    publish_gauges_locked();
}

void pool_core::publish_gauges_locked() noexcept {
    constexpr auto relaxed = std::memory_order_relaxed;
    stats_.queue_depth.store(fsm_.queued(), relaxed);
    stats_.queue_waiting.store(fsm_.waiting(), relaxed);
    stats_.threads_busy.store(fsm_.busy(), relaxed);
    stats_.threads_idle.store(fsm_.threads() - fsm_.busy(), relaxed);
    stats_.scopes_leased.store(fsm_.leased(), relaxed);
}

void pool_core::reject(call_base& c, errc reason) noexcept {
    increment(stats_.calls_rejected);
    increment(rejection_counter(stats_, reason));
    complete_call(c, std::make_exception_ptr(bridge_error(reason)));
}

bool scope_core::submit(call_ref& c) {
    pool_->submit(std::move(c), this);
    return true;
}

bool local_caller::submit(call_ref& c) {
    {
        std::lock_guard lk(mutex_);
        if (!open_) {
            return false;
        }
        c->owner_ = this;
        c->owner_keep_ = this;
        c->submitted_ = clock::now();
        jobs_.push_back(c.detach());
    }
    cv_.notify_one();
    return true;
}

void local_caller::cancel(call_base& c) noexcept {
    bool removed = false;
    {
        std::lock_guard lk(mutex_);
        if (const auto it = std::find(jobs_.begin(), jobs_.end(), &c); it != jobs_.end()) {
            jobs_.erase(it);
            removed = true;
        }
    }
    if (removed) {
        const call_ref adopted(&c, false);
        increment(c.pool_->stats().calls_cancelled);
        complete_call(c, std::make_exception_ptr(bridge_error(errc::cancelled)));
    } else if (c.stop_.request_stop()) {
        increment(c.pool_->stats().stop_requests);
    }
}

void local_caller::serve(park& p) {
    thread_role& role = current_role();
    local_caller* const outer = std::exchange(role.caller, this);
    std::unique_lock lk(mutex_);
    ++depth_;
    for (;;) {
        if (!jobs_.empty()) {
            call_ref job(jobs_.front(), false);
            jobs_.pop_front();
            lk.unlock();
            run_call_here(*job);
            complete_call(*job, job->error());
            job.reset();
            lk.lock();
        } else if (p.done) {
            break;
        } else {
            cv_.wait(lk);
        }
    }
    if (--depth_ == 0) {
        open_ = false;  // a coroutine that outlives its async_to_sync falls back to the pool
    }
    lk.unlock();
    role.caller = outer;
}

pool_core& pool_core_of(thread_pool& pool) noexcept {
    return *pool.core_;
}

scope_core& scope_core_of(thread_scope& scope) noexcept {
    return *scope.core_;
}

}  // namespace detail

thread_pool::thread_pool(pool_options options) : core_(new detail::pool_core(std::move(options))) {
    core_->start();
}

thread_pool::~thread_pool() {
    core_->stop();
    core_->join();
}

void thread_pool::stop() noexcept {
    core_->stop();
}

pool_stats_snapshot thread_pool::stats() const noexcept {
    return core_->stats().snapshot();
}

const pool_options& thread_pool::options() const noexcept {
    return core_->options();
}

thread_scope::thread_scope(thread_pool& pool) : core_(new detail::scope_core(pool.core_)) {}

thread_scope::~thread_scope() {
    core_->pool().close_scope(*core_);
}

std::optional<std::thread::id> thread_scope::thread_id() const {
    return core_->pool().leased_thread(*core_);
}

}  // namespace sluice::bridge
