#include "sluice/metrics/instruments.hpp"

namespace sluice::metrics {

namespace {

// The bounds in whole microseconds, so that an observation needs no floating point.
constexpr auto latency_bounds_us = [] {
    std::array<std::uint64_t, latency_bounds_seconds.size()> out{};
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = static_cast<std::uint64_t>(latency_bounds_seconds[i] * 1e6 + 0.5);
    return out;
}();

}  // namespace

void latency_histogram::observe_microseconds(std::uint64_t us) noexcept {
    // The first bucket whose bound is >= us (Prometheus `le`); past the last bound, +Inf. A linear scan: most
    // observations fall in the first few buckets.
    std::size_t i = 0;
    while (i < latency_bounds_us.size() && us > latency_bounds_us[i])
        ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(us, std::memory_order_relaxed);
}

}  // namespace sluice::metrics
