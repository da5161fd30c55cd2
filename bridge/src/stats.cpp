#include "sluice/bridge/stats.hpp"

namespace sluice::bridge {

void duration_histogram::record(std::chrono::nanoseconds d) noexcept {
    // Linear scan: bridge calls are mostly short, so the first buckets match early.
    std::size_t i = 0;
    while (i < duration_bucket_bounds.size() && d > duration_bucket_bounds[i]) {
        ++i;
    }
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(d.count(), std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
}

histogram_snapshot duration_histogram::snapshot() const noexcept {
    histogram_snapshot s;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
        s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    }
    s.count = count_.load(std::memory_order_relaxed);
    s.sum = std::chrono::nanoseconds(sum_ns_.load(std::memory_order_relaxed));
    return s;
}

#define SLUICE_BRIDGE_COPY_VALUE(field, name, label, help) s.field = field.load(std::memory_order_relaxed);
#define SLUICE_BRIDGE_COPY_HISTOGRAM(field, name, label, help) s.field = field.snapshot();

pool_stats_snapshot pool_stats::snapshot() const noexcept {
    pool_stats_snapshot s;
    SLUICE_BRIDGE_POOL_COUNTERS(SLUICE_BRIDGE_COPY_VALUE)
    SLUICE_BRIDGE_POOL_GAUGES(SLUICE_BRIDGE_COPY_VALUE)
    SLUICE_BRIDGE_POOL_HISTOGRAMS(SLUICE_BRIDGE_COPY_HISTOGRAM)
    return s;
}

global_stats_snapshot global_stats::snapshot() const noexcept {
    global_stats_snapshot s;
    SLUICE_BRIDGE_GLOBAL_COUNTERS(SLUICE_BRIDGE_COPY_VALUE)
    SLUICE_BRIDGE_GLOBAL_HISTOGRAMS(SLUICE_BRIDGE_COPY_HISTOGRAM)
    return s;
}

#undef SLUICE_BRIDGE_COPY_VALUE
#undef SLUICE_BRIDGE_COPY_HISTOGRAM

global_stats& bridge_global_stats() noexcept {
    static global_stats stats;
    return stats;
}

}  // namespace sluice::bridge
