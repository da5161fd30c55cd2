// The admission and scheduling rules, driven with made-up times and no threads.

#include "sluice/bridge/scheduler_fsm.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace sluice::bridge {
namespace {

using namespace std::chrono_literals;
using admission = scheduler_fsm::admission;
using entry = scheduler_fsm::entry;
using state = scheduler_fsm::entry_state;

const scheduler_fsm::time_point t0{};

admission_limits limits(std::size_t threads, std::size_t max_queue, overflow_policy policy = overflow_policy::reject,
                        std::chrono::steady_clock::duration full_wait = 1s) {
    return admission_limits{threads, max_queue, policy, full_wait};
}

// The assignments made since the last call, cleared.
std::vector<scheduler_fsm::assignment> take(scheduler_fsm& fsm) {
    std::vector<scheduler_fsm::assignment> out(fsm.assignments().begin(), fsm.assignments().end());
    fsm.clear_assignments();
    return out;
}

TEST(scheduler_fsm, starts_calls_on_free_workers_then_queues) {
    scheduler_fsm fsm(limits(2, 8));
    entry a, b, c;
    EXPECT_EQ(fsm.submit(a, t0), admission::started);
    EXPECT_EQ(fsm.submit(b, t0), admission::started);
    EXPECT_EQ(fsm.submit(c, t0), admission::queued);
    const auto assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 2u);
    EXPECT_NE(assigned[0].worker, assigned[1].worker);
    EXPECT_EQ(fsm.busy(), 2u);
    EXPECT_EQ(fsm.queued(), 1u);
    EXPECT_EQ(c.state(), state::queued);
}

TEST(scheduler_fsm, finished_worker_takes_the_oldest_queued_call) {
    scheduler_fsm fsm(limits(1, 8));
    entry a, b, c;
    ASSERT_EQ(fsm.submit(a, t0), admission::started);
    ASSERT_EQ(fsm.submit(b, t0), admission::queued);
    ASSERT_EQ(fsm.submit(c, t0), admission::queued);
    take(fsm);
    const std::size_t w = a.worker();
    fsm.finish(a);
    auto assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].work, &b);
    EXPECT_EQ(assigned[0].worker, w);
    EXPECT_EQ(fsm.queued(), 1u);
    fsm.finish(b);
    assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].work, &c);
    fsm.finish(c);
    EXPECT_TRUE(take(fsm).empty());
    EXPECT_EQ(fsm.busy(), 0u);
    EXPECT_EQ(fsm.queued(), 0u);
}

TEST(scheduler_fsm, full_queue_rejects_under_reject_policy) {
    scheduler_fsm fsm(limits(1, 1));
    entry a, b, c;
    ASSERT_EQ(fsm.submit(a, t0), admission::started);
    ASSERT_EQ(fsm.submit(b, t0), admission::queued);
    EXPECT_EQ(fsm.submit(c, t0), admission::rejected_full);
    EXPECT_EQ(c.state(), state::idle);
    EXPECT_EQ(fsm.queued(), 1u);
}

TEST(scheduler_fsm, zero_queue_admits_only_what_starts_at_once) {
    scheduler_fsm fsm(limits(1, 0));
    entry a, b;
    EXPECT_EQ(fsm.submit(a, t0), admission::started);
    EXPECT_EQ(fsm.submit(b, t0), admission::rejected_full);
}

TEST(scheduler_fsm, full_queue_waits_until_its_deadline_under_wait_policy) {
    scheduler_fsm fsm(limits(1, 1, overflow_policy::wait, 50ms));
    entry a, b, c;
    ASSERT_EQ(fsm.submit(a, t0), admission::started);
    ASSERT_EQ(fsm.submit(b, t0), admission::queued);
    ASSERT_EQ(fsm.submit(c, t0 + 10ms), admission::waiting);
    EXPECT_EQ(fsm.waiting(), 1u);
    ASSERT_TRUE(fsm.next_deadline().has_value());
    EXPECT_EQ(*fsm.next_deadline(), t0 + 60ms);
    EXPECT_EQ(fsm.expire(t0 + 59ms), nullptr);
    EXPECT_EQ(fsm.expire(t0 + 60ms), &c);
    EXPECT_EQ(c.state(), state::idle);
    EXPECT_EQ(fsm.waiting(), 0u);
    EXPECT_FALSE(fsm.next_deadline().has_value());
    EXPECT_EQ(fsm.queued(), 1u);
}

TEST(scheduler_fsm, waiting_call_that_gets_a_slot_no_longer_expires) {
    scheduler_fsm fsm(limits(1, 1, overflow_policy::wait, 50ms));
    entry a, b, c;
    ASSERT_EQ(fsm.submit(a, t0), admission::started);
    ASSERT_EQ(fsm.submit(b, t0), admission::queued);
    ASSERT_EQ(fsm.submit(c, t0), admission::waiting);
    take(fsm);
    fsm.finish(a);  // b starts, c takes b's slot
    EXPECT_EQ(c.state(), state::queued);
    EXPECT_EQ(fsm.waiting(), 0u);
    EXPECT_EQ(fsm.expire(t0 + 1h), nullptr);
    fsm.finish(b);
    const auto assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 2u);
    EXPECT_EQ(assigned[1].work, &c);
}

TEST(scheduler_fsm, cancel_drops_a_queued_call_and_frees_its_slot) {
    scheduler_fsm fsm(limits(1, 1, overflow_policy::wait));
    entry a, b, c;
    ASSERT_EQ(fsm.submit(a, t0), admission::started);
    ASSERT_EQ(fsm.submit(b, t0), admission::queued);
    ASSERT_EQ(fsm.submit(c, t0), admission::waiting);
    EXPECT_TRUE(fsm.cancel(b));
    EXPECT_EQ(b.state(), state::idle);
    EXPECT_EQ(c.state(), state::queued);  // promoted into the freed slot
    take(fsm);
    fsm.finish(a);
    const auto assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].work, &c);  // b never runs
}

TEST(scheduler_fsm, cancel_refuses_a_running_call) {
    scheduler_fsm fsm(limits(1, 1));
    entry a;
    ASSERT_EQ(fsm.submit(a, t0), admission::started);
    EXPECT_FALSE(fsm.cancel(a));
    EXPECT_EQ(a.state(), state::running);
}

TEST(scheduler_fsm, scope_leases_one_worker_for_all_its_calls) {
    scheduler_fsm fsm(limits(3, 8));
    scheduler_fsm::scope s;
    std::array<entry, 3> calls;
    for (entry& e : calls) {
        e.set_sticky_scope(&s);
    }
    ASSERT_EQ(fsm.submit(calls[0], t0), admission::started);
    ASSERT_EQ(fsm.submit(calls[1], t0), admission::queued);  // same scope: waits for its own worker, not a free one
    ASSERT_EQ(fsm.submit(calls[2], t0), admission::queued);
    const std::size_t w = s.worker();
    ASSERT_NE(w, scheduler_fsm::no_worker);
    EXPECT_EQ(fsm.leased(), 1u);
    EXPECT_EQ(take(fsm)[0].worker, w);
    fsm.finish(calls[0]);
    auto assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].work, &calls[1]);
    EXPECT_EQ(assigned[0].worker, w);
    fsm.finish(calls[1]);
    assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].worker, w);
    fsm.finish(calls[2]);
    EXPECT_EQ(s.worker(), w);  // sticky: kept while the scope lives
}

TEST(scheduler_fsm, leased_idle_worker_is_not_used_by_other_calls) {
    scheduler_fsm fsm(limits(1, 8));
    scheduler_fsm::scope s;
    entry sticky(&s), other;
    ASSERT_EQ(fsm.submit(sticky, t0), admission::started);
    take(fsm);
    fsm.finish(sticky);
    EXPECT_EQ(fsm.submit(other, t0), admission::queued);
    EXPECT_TRUE(take(fsm).empty());
    fsm.close_scope(s);  // the lease returns: the waiting call gets the worker
    EXPECT_EQ(s.worker(), scheduler_fsm::no_worker);
    const auto assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].work, &other);
    EXPECT_EQ(fsm.leased(), 0u);
}

TEST(scheduler_fsm, scope_closed_while_running_returns_its_worker_after_its_calls) {
    scheduler_fsm fsm(limits(1, 8));
    scheduler_fsm::scope s;
    entry first(&s), second(&s), other;
    ASSERT_EQ(fsm.submit(first, t0), admission::started);
    ASSERT_EQ(fsm.submit(second, t0), admission::queued);
    ASSERT_EQ(fsm.submit(other, t0), admission::queued);
    take(fsm);
    fsm.close_scope(s);
    EXPECT_TRUE(take(fsm).empty());
    fsm.finish(first);
    auto assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].work, &second);  // the scope's own calls first
    fsm.finish(second);
    assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].work, &other);
    EXPECT_EQ(fsm.leased(), 0u);
}

TEST(scheduler_fsm, scopes_wait_for_a_lease_when_every_worker_is_taken) {
    scheduler_fsm fsm(limits(2, 8));
    scheduler_fsm::scope s1, s2, s3;
    entry a(&s1), b(&s2), c(&s3);
    ASSERT_EQ(fsm.submit(a, t0), admission::started);
    ASSERT_EQ(fsm.submit(b, t0), admission::started);
    EXPECT_NE(s1.worker(), s2.worker());
    ASSERT_EQ(fsm.submit(c, t0), admission::queued);
    EXPECT_EQ(s3.worker(), scheduler_fsm::no_worker);
    take(fsm);
    fsm.finish(a);  // s1 keeps its worker
    EXPECT_TRUE(take(fsm).empty());
    fsm.close_scope(s1);
    const auto assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].work, &c);
    EXPECT_NE(s3.worker(), scheduler_fsm::no_worker);
}

TEST(scheduler_fsm, free_worker_takes_the_oldest_of_free_and_sticky_calls) {
    scheduler_fsm fsm(limits(1, 8));
    scheduler_fsm::scope s;
    entry running, sticky(&s), any;
    ASSERT_EQ(fsm.submit(running, t0), admission::started);
    ASSERT_EQ(fsm.submit(sticky, t0), admission::queued);
    ASSERT_EQ(fsm.submit(any, t0), admission::queued);
    take(fsm);
    fsm.finish(running);
    const auto assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].work, &sticky);
    EXPECT_EQ(s.worker(), assigned[0].worker);
}

TEST(scheduler_fsm, blocked_scope_worker_runs_its_scope_calls_nested) {
    scheduler_fsm fsm(limits(1, 8));
    scheduler_fsm::scope s;
    entry outer(&s), nested(&s), later(&s);
    ASSERT_EQ(fsm.submit(outer, t0), admission::started);
    ASSERT_EQ(fsm.submit(nested, t0), admission::queued);
    take(fsm);
    const std::size_t w = s.worker();
    fsm.block(w);  // outer waits in async_to_sync
    auto assigned = take(fsm);
    ASSERT_EQ(assigned.size(), 1u);
    EXPECT_EQ(assigned[0].work, &nested);
    EXPECT_EQ(assigned[0].worker, w);
    fsm.finish(nested);
    EXPECT_EQ(fsm.submit(later, t0), admission::started);  // still blocked: starts at once, nested
    take(fsm);
    fsm.finish(later);
    fsm.unblock(w);
    EXPECT_EQ(outer.state(), state::running);
    EXPECT_EQ(fsm.busy(), 1u);
    fsm.finish(outer);
    EXPECT_EQ(fsm.busy(), 0u);
}

TEST(scheduler_fsm, blocked_worker_without_scope_takes_no_pool_calls) {
    scheduler_fsm fsm(limits(1, 8));
    entry outer, other;
    ASSERT_EQ(fsm.submit(outer, t0), admission::started);
    take(fsm);
    fsm.block(outer.worker());
    EXPECT_EQ(fsm.submit(other, t0), admission::queued);
    EXPECT_TRUE(take(fsm).empty());
}

TEST(scheduler_fsm, stop_refuses_new_calls_and_drains_pending_ones) {
    scheduler_fsm fsm(limits(1, 8));
    scheduler_fsm::scope leased, unleased;
    entry running(&leased), a, b(&leased), c(&unleased), late;
    ASSERT_EQ(fsm.submit(running, t0), admission::started);
    ASSERT_EQ(fsm.submit(a, t0), admission::queued);
    ASSERT_EQ(fsm.submit(b, t0), admission::queued);
    ASSERT_EQ(fsm.submit(c, t0), admission::queued);
    fsm.stop();
    EXPECT_EQ(fsm.submit(late, t0), admission::rejected_stopped);
    std::vector<entry*> drained;
    while (entry* e = fsm.drain()) {
        drained.push_back(e);
    }
    EXPECT_EQ(drained.size(), 3u);
    EXPECT_EQ(fsm.queued(), 0u);
    EXPECT_EQ(running.state(), state::running);  // runs to its end
    take(fsm);
    fsm.finish(running);
    EXPECT_TRUE(take(fsm).empty());
}

}  // namespace
}  // namespace sluice::bridge
