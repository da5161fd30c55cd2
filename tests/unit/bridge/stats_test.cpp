// The std-only metrics: histogram buckets and snapshots.

#include "sluice/bridge/stats.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sluice::bridge {
namespace {

using namespace std::chrono_literals;

TEST(duration_histogram, bounds_run_from_100us_to_60s_in_1_2_5_steps) {
    EXPECT_EQ(duration_bucket_bounds.front(), 100us);
    EXPECT_EQ(duration_bucket_bounds.back(), 60s);
    for (std::size_t i = 1; i + 1 < duration_bucket_bounds.size(); ++i) {
        const double ratio = static_cast<double>(duration_bucket_bounds[i].count()) /
                             static_cast<double>(duration_bucket_bounds[i - 1].count());
        EXPECT_TRUE(ratio == 2.5 || ratio == 2.0) << "bound " << i;
    }
}

TEST(duration_histogram, counts_each_observation_in_the_first_bucket_that_holds_it) {
    duration_histogram h;
    h.record(0ns);
    h.record(100us);  // bounds are inclusive
    h.record(101us);
    h.record(1500ms);  // (1 s, 2.5 s]
    h.record(61s);     // above every bound
    const auto s = h.snapshot();
    EXPECT_EQ(s.buckets[0], 2u);
    EXPECT_EQ(s.buckets[1], 1u);
    EXPECT_EQ(s.buckets[13], 1u);
    EXPECT_EQ(s.buckets.back(), 1u);
    EXPECT_EQ(s.count, 5u);
    EXPECT_EQ(s.sum, 100us + 101us + 1500ms + 61s);
}

TEST(pool_stats, snapshot_copies_every_declared_field) {
    pool_stats live;
    increment(live.calls_ok);
    increment(live.rejected_queue_full);
    live.queue_depth.store(7);
    live.run_time.record(3ms);
    const auto s = live.snapshot();
    EXPECT_EQ(s.calls_ok, 1u);
    EXPECT_EQ(s.rejected_queue_full, 1u);
    EXPECT_EQ(s.queue_depth, 7u);
    EXPECT_EQ(s.run_time.count, 1u);
    EXPECT_EQ(s.calls_exception, 0u);
}

TEST(pool_stats, declaration_lists_name_every_field_for_the_exporter) {
    int families = 0;
#define SLUICE_COUNT_FIELD(field, name, label, help) \
    ++families;                                      \
    EXPECT_EQ(std::string(name).rfind("sluice_bridge_", 0), 0u) << #field;
    SLUICE_BRIDGE_POOL_COUNTERS(SLUICE_COUNT_FIELD)
    SLUICE_BRIDGE_POOL_GAUGES(SLUICE_COUNT_FIELD)
    SLUICE_BRIDGE_POOL_HISTOGRAMS(SLUICE_COUNT_FIELD)
    SLUICE_BRIDGE_GLOBAL_COUNTERS(SLUICE_COUNT_FIELD)
    SLUICE_BRIDGE_GLOBAL_HISTOGRAMS(SLUICE_COUNT_FIELD)
#undef SLUICE_COUNT_FIELD
    EXPECT_EQ(families, 8 + 5 + 2 + 4 + 1);
}

}  // namespace
}  // namespace sluice::bridge
