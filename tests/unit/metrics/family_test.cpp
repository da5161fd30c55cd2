// The std-only family model: building histogram series from per-bucket counts.

#include "sluice/metrics/family.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace sluice::metrics {
namespace {

TEST(make_histogram, accumulates_per_bucket_counts_and_takes_count_from_their_sum) {
    const std::vector<double> bounds = {0.5, 1, 2};
    const std::vector<std::uint64_t> buckets = {1, 0, 3, 2};  // the last is +Inf
    const auto h = make_histogram({{"database", "db"}}, bounds, buckets, 7.5);
    EXPECT_EQ(h.upper_bounds, bounds);
    EXPECT_EQ(h.cumulative_counts, (std::vector<std::uint64_t>{1, 1, 4}));
    EXPECT_EQ(h.count, 6u);
    EXPECT_EQ(h.sum, 7.5);
    ASSERT_EQ(h.labels.size(), 1u);
    EXPECT_EQ(h.labels[0], (label{"database", "db"}));
}

TEST(make_histogram, converts_a_latency_histogram_to_seconds) {
    latency_histogram live;
    live.observe_microseconds(50);          // first bucket (<= 100 us)
    live.observe_microseconds(1'500'000);   // (1 s, 2.5 s]
    live.observe_microseconds(90'000'000);  // above 60 s: +Inf only
    const auto h = make_histogram({}, live);
    ASSERT_EQ(h.upper_bounds.size(), latency_bounds_seconds.size());
    EXPECT_EQ(h.upper_bounds.front(), 0.0001);
    EXPECT_EQ(h.upper_bounds.back(), 60.0);
    EXPECT_EQ(h.cumulative_counts.front(), 1u);
    EXPECT_EQ(h.cumulative_counts[12], 1u);  // le 1
    EXPECT_EQ(h.cumulative_counts[13], 2u);  // le 2.5
    EXPECT_EQ(h.cumulative_counts.back(), 2u);
    EXPECT_EQ(h.count, 3u);
    EXPECT_DOUBLE_EQ(h.sum, 91.50005);
}

TEST(family, add_chains_samples_in_order) {
    family f;
    f.name = "sluice_test_total";
    f.type = metric_type::counter;
    f.add({{"kind", "a"}}, 1).add({{"kind", "b"}}, 2);
    ASSERT_EQ(f.samples.size(), 2u);
    EXPECT_EQ(f.samples[1].labels[0].value, "b");
    EXPECT_EQ(f.samples[1].value, 2);
}

}  // namespace
}  // namespace sluice::metrics
