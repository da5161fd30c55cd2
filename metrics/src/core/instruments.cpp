#include "sluice/metrics/instruments.hpp"

namespace sluice::metrics {

void latency_histogram::observe_microseconds(std::uint64_t us) noexcept {
    const double seconds = static_cast<double>(us) / 1e6;
    std::size_t i = 0;
    while (i < latency_bounds_seconds.size() && seconds > latency_bounds_seconds[i])
        ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(us, std::memory_order_relaxed);
}

}  // namespace sluice::metrics
