#include "sluice/bridge/scheduler_fsm.hpp"

#include <algorithm>
#include <cassert>

namespace sluice::bridge {

scheduler_fsm::scheduler_fsm(const admission_limits& limits)
    : limits_(limits), workers_(std::max<std::size_t>(limits.threads, 1)) {
    free_.reserve(workers_.size());
    for (std::size_t w = workers_.size(); w-- > 0;) {
        free_.push_back(w);  // worker 0 is taken first
    }
    assignments_.reserve(workers_.size());
}

scheduler_fsm::admission scheduler_fsm::submit(entry& e, time_point now) {
    assert(e.state_ == entry_state::idle);
    if (stopped_) {
        return admission::rejected_stopped;
    }
    e.seq_ = ++seq_;
    // An available worker implies nothing it may run is pending, so starting at once keeps FIFO order.
    if (scope* s = e.scope_) {
        if (s->worker_ != no_worker) {
            if (available(s->worker_) && s->entries_.empty()) {
                start(e, s->worker_);
                return admission::started;
            }
        } else if (!free_.empty() && s->entries_.empty()) {
            const std::size_t w = free_.back();
            free_.pop_back();
            lease(*s, w);
            start(e, w);
            return admission::started;
        }
    } else if (!free_.empty()) {
        const std::size_t w = free_.back();
        free_.pop_back();
        start(e, w);
        return admission::started;
    }

    if (admitted_ < limits_.max_queue) {
        e.state_ = entry_state::queued;
        ++admitted_;
    } else if (limits_.when_full == overflow_policy::reject) {
        return admission::rejected_full;
    } else {
        e.state_ = entry_state::waiting;
        e.deadline_ = now + limits_.full_wait;
        overflow_.push_back(e);
    }
    enqueue(e);
    return e.state_ == entry_state::queued ? admission::queued : admission::waiting;
}

void scheduler_fsm::finish(entry& e) {
    assert(e.state_ == entry_state::running);
    const std::size_t w = e.worker_;
    e.state_ = entry_state::idle;
    e.worker_ = no_worker;
    worker_state& ws = workers_[w];
    assert(ws.runs > 0);
    if (--ws.runs == 0) {
        --busy_;
    }
    if (available(w)) {
        feed(w);
    }
}

void scheduler_fsm::block(std::size_t worker) {
    worker_state& ws = workers_[worker];
    assert(ws.runs > ws.blocked);
    ++ws.blocked;
    if (available(worker)) {
        feed(worker);
    }
}

void scheduler_fsm::unblock(std::size_t worker) {
    worker_state& ws = workers_[worker];
    assert(ws.blocked > 0 && ws.runs == ws.blocked);
    --ws.blocked;
}

bool scheduler_fsm::cancel(entry& e) {
    if (e.state_ != entry_state::queued && e.state_ != entry_state::waiting) {
        return false;
    }
    remove_pending(e);
    return true;
}

void scheduler_fsm::close_scope(scope& s) {
    s.closing_ = true;
    const std::size_t w = s.worker_;
    if (w != no_worker && workers_[w].runs == 0 && s.entries_.empty()) {
        unlease(w);
        feed(w);
    }
}

scheduler_fsm::entry* scheduler_fsm::expire(time_point now) {
    entry* e = overflow_.front();
    if (e == nullptr || e->deadline_ > now) {
        return nullptr;
    }
    remove_pending(*e);
    return e;
}

std::optional<scheduler_fsm::time_point> scheduler_fsm::next_deadline() const noexcept {
    // Every waiting entry got the same full_wait when it arrived, so the oldest expires first.
    if (overflow_.empty()) {
        return std::nullopt;
    }
    return overflow_.front()->deadline_;
}

void scheduler_fsm::stop() noexcept {
    stopped_ = true;
}

scheduler_fsm::entry* scheduler_fsm::drain() noexcept {
    if (!stopped_) {
        return nullptr;
    }
    entry* e = any_.front();
    if (e == nullptr && !lease_waiting_.empty()) {
        e = lease_waiting_.front()->entries_.front();
    }
    for (std::size_t w = 0; e == nullptr && w < workers_.size(); ++w) {
        if (workers_[w].lease != nullptr) {
            e = workers_[w].lease->entries_.front();
        }
    }
    if (e != nullptr) {
        remove_pending(*e);
    }
    return e;
}

bool scheduler_fsm::available(std::size_t w) const noexcept {
    // Idle, or every call on its stack waits in async_to_sync and so may let a call of its scope run nested.
    return workers_[w].runs == workers_[w].blocked;
}

void scheduler_fsm::start(entry& e, std::size_t w) {
    e.state_ = entry_state::running;
    e.worker_ = w;
    if (workers_[w].runs++ == 0) {
        ++busy_;
    }
    assignments_.push_back({&e, w});
}

void scheduler_fsm::enqueue(entry& e) {
    scope* s = e.scope_;
    if (s == nullptr) {
        any_.push_back(e);
        return;
    }
    s->entries_.push_back(e);
    if (s->worker_ == no_worker && !s->lease_waiting_) {
        s->lease_waiting_ = true;
        lease_waiting_.push_back(*s);
    }
}

void scheduler_fsm::remove_pending(entry& e) noexcept {
    if (scope* s = e.scope_) {
        s->entries_.erase(e);
        if (s->entries_.empty() && s->lease_waiting_) {
            s->lease_waiting_ = false;
            lease_waiting_.erase(*s);
        }
    } else {
        any_.erase(e);
    }
    if (e.state_ == entry_state::waiting) {
        overflow_.erase(e);
    } else {
        --admitted_;
    }
    e.state_ = entry_state::idle;
    promote();
}

void scheduler_fsm::promote() noexcept {
    while (admitted_ < limits_.max_queue && !overflow_.empty()) {
        entry* e = overflow_.front();
        overflow_.erase(*e);
        e->state_ = entry_state::queued;
        ++admitted_;
    }
}

void scheduler_fsm::lease(scope& s, std::size_t w) noexcept {
    s.worker_ = w;
    workers_[w].lease = &s;
    ++leased_;
}

void scheduler_fsm::unlease(std::size_t w) noexcept {
    scope* s = workers_[w].lease;
    s->worker_ = no_worker;
    workers_[w].lease = nullptr;
    --leased_;
}

void scheduler_fsm::feed(std::size_t w) {
    worker_state& ws = workers_[w];
    if (scope* s = ws.lease) {
        if (entry* e = s->entries_.front()) {
            remove_pending(*e);
            start(*e, w);
            return;
        }
        if (ws.runs != 0 || !s->closing_) {
            return;  // stays reserved for its scope
        }
        unlease(w);
    }
    if (ws.runs != 0) {
        return;  // an unleased worker waiting in async_to_sync serves only its own caller's calls
    }
    entry* any = any_.front();
    scope* sticky = lease_waiting_.front();
    entry* first_sticky = sticky != nullptr ? sticky->entries_.front() : nullptr;
    if (first_sticky != nullptr && (any == nullptr || first_sticky->seq_ < any->seq_)) {
        sticky->lease_waiting_ = false;
        lease_waiting_.erase(*sticky);
        lease(*sticky, w);
        remove_pending(*first_sticky);
        start(*first_sticky, w);
    } else if (any != nullptr) {
        remove_pending(*any);
        start(*any, w);
    } else {
        free_.push_back(w);
    }
}

}  // namespace sluice::bridge
