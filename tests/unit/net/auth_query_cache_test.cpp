// auth_query's single-flight cache and per-target slots: pure rules driven with made-up times.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "net/auth_query.hpp"

namespace sluice::net {
namespace {

using namespace std::chrono_literals;
using cache = auth_query_cache<int>;
using time_point = cache::time_point;

const time_point t0 = time_point{} + 1h;

auth_query_result found_answer() {
    auth_query_result r;
    r.outcome = auth_query_result::status::found;
    r.stored = *auth::parse_secret("md5" + std::string(32, 'a'));
    r.scram = r.stored;
    return r;
}

auth_query_result not_found_answer() {
    return {};
}

auth_query_result error_answer() {
    return auth_query_error("08006", "auth_query for user \"u\" timed out after 5000 ms", "no answer");
}

TEST(auth_query_cache, first_lookup_leads_and_concurrent_ones_join_it) {
    cache c(30s, 5s);
    EXPECT_EQ(c.begin("k", 1, t0).what, cache::step::lead);
    EXPECT_EQ(c.begin("k", 2, t0).what, cache::step::join);
    EXPECT_EQ(c.begin("k", 3, t0 + 1s).what, cache::step::join);
    // Another key is another lookup.
    EXPECT_EQ(c.begin("other", 4, t0).what, cache::step::lead);

    EXPECT_EQ(c.complete("k", found_answer(), t0 + 2s), (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(c.complete("other", not_found_answer(), t0 + 2s), (std::vector<int>{4}));
}

TEST(auth_query_cache, found_secret_is_reused_for_the_positive_ttl) {
    cache c(30s, 5s);
    ASSERT_EQ(c.begin("k", 1, t0).what, cache::step::lead);
    (void)c.complete("k", found_answer(), t0);

    auto hit = c.begin("k", 2, t0 + 29s);
    ASSERT_EQ(hit.what, cache::step::hit);
    ASSERT_TRUE(hit.answer);
    EXPECT_TRUE(hit.answer->found());
    EXPECT_EQ(hit.answer->stored.stored, found_answer().stored.stored);

    EXPECT_EQ(c.begin("k", 3, t0 + 30s).what, cache::step::lead);
}

TEST(auth_query_cache, unknown_user_is_remembered_for_the_negative_ttl_only) {
    cache c(30s, 5s);
    ASSERT_EQ(c.begin("ghost", 1, t0).what, cache::step::lead);
    (void)c.complete("ghost", not_found_answer(), t0);

    auto hit = c.begin("ghost", 2, t0 + 4s);
    ASSERT_EQ(hit.what, cache::step::hit);
    EXPECT_EQ(hit.answer->outcome, auth_query_result::status::not_found);
    EXPECT_EQ(c.begin("ghost", 3, t0 + 5s).what, cache::step::lead);
}

TEST(auth_query_cache, errors_answer_the_waiters_but_are_not_cached) {
    cache c(30s, 5s);
    ASSERT_EQ(c.begin("k", 1, t0).what, cache::step::lead);
    ASSERT_EQ(c.begin("k", 2, t0).what, cache::step::join);
    EXPECT_EQ(c.complete("k", error_answer(), t0 + 1s), (std::vector<int>{1, 2}));
    EXPECT_EQ(c.size(), 0u);
    // The next login tries again at once.
    EXPECT_EQ(c.begin("k", 3, t0 + 1s).what, cache::step::lead);
}

TEST(auth_query_cache, completing_a_key_with_no_running_lookup_wakes_nobody) {
    cache c(30s, 5s);
    EXPECT_TRUE(c.complete("never", found_answer(), t0).empty());
    ASSERT_EQ(c.begin("k", 1, t0).what, cache::step::lead);
    (void)c.complete("k", found_answer(), t0);
    // A late second answer neither wakes anyone nor replaces the cached one.
    EXPECT_TRUE(c.complete("k", error_answer(), t0).empty());
    EXPECT_EQ(c.begin("k", 2, t0 + 1s).what, cache::step::hit);
}

TEST(auth_query_cache, expired_answers_are_pruned_so_the_cache_stays_bounded) {
    cache c(30s, 5s);
    for (int i = 0; i < 100; ++i) {
        const std::string key = "user" + std::to_string(i);
        ASSERT_EQ(c.begin(key, i, t0).what, cache::step::lead);
        (void)c.complete(key, not_found_answer(), t0);
    }
    ASSERT_EQ(c.begin("running", 1000, t0).what, cache::step::lead);
    EXPECT_EQ(c.size(), 101u);
    // Once the negative TTL has passed, the next lookup drops every expired answer, never a running lookup.
    ASSERT_EQ(c.begin("late", 1001, t0 + 6s).what, cache::step::lead);
    EXPECT_EQ(c.size(), 2u);
    EXPECT_EQ(c.complete("running", found_answer(), t0 + 6s), (std::vector<int>{1000}));
}

TEST(auth_query_slots, limit_queries_per_target_and_hand_released_slots_over_in_order) {
    auth_query_slots<int> slots(2);
    EXPECT_TRUE(slots.acquire("a", 1));
    EXPECT_TRUE(slots.acquire("a", 2));
    EXPECT_FALSE(slots.acquire("a", 3));
    EXPECT_FALSE(slots.acquire("a", 4));
    // Other targets are not affected by a busy one.
    EXPECT_TRUE(slots.acquire("b", 5));
    EXPECT_EQ(slots.running("a"), 2u);
    EXPECT_EQ(slots.queued("a"), 2u);

    EXPECT_EQ(slots.release("a"), 3);  // handed straight to the oldest waiter: still two running
    EXPECT_EQ(slots.running("a"), 2u);
    EXPECT_EQ(slots.release("a"), 4);
    EXPECT_EQ(slots.release("a"), std::nullopt);
    EXPECT_EQ(slots.release("a"), std::nullopt);
    EXPECT_EQ(slots.running("a"), 0u);
    EXPECT_TRUE(slots.acquire("a", 6));
}

TEST(auth_query_slots, waiter_that_gives_up_leaves_the_queue_unless_already_handed_a_slot) {
    auth_query_slots<int> slots(1);
    ASSERT_TRUE(slots.acquire("a", 1));
    ASSERT_FALSE(slots.acquire("a", 2));
    ASSERT_FALSE(slots.acquire("a", 3));
    EXPECT_TRUE(slots.abandon("a", 2));
    EXPECT_EQ(slots.queued("a"), 1u);
    EXPECT_EQ(slots.release("a"), 3);
    // 3 holds the slot now: giving up is too late, it must release instead.
    EXPECT_FALSE(slots.abandon("a", 3));
    EXPECT_EQ(slots.release("a"), std::nullopt);
    EXPECT_EQ(slots.running("a"), 0u);
}

TEST(auth_query_slots, limit_is_at_least_one) {
    auth_query_slots<int> slots(0);
    EXPECT_TRUE(slots.acquire("a", 1));
    EXPECT_FALSE(slots.acquire("a", 2));
}

}  // namespace
}  // namespace sluice::net
