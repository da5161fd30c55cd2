#pragma once
// Std-only instruments that hot paths record into without locks or allocation. The Prometheus exporter reads them at
// scrape time; nothing here knows about Prometheus.
//
// Thread-safety: every member function may be called from any thread. Recording uses relaxed atomics: totals are
// exact, but a scrape may see a histogram's count and sum from slightly different instants.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice::metrics {

class counter {
  public:
    void add(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<std::uint64_t> value_{0};
};

class gauge {
  public:
    void set(std::int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
    void add(std::int64_t n) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    [[nodiscard]] std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<std::int64_t> value_{0};
};

// Upper bounds in seconds: 100 us to 60 s in a 1-2.5-5 progression (Prometheus `le` buckets; +Inf is implicit).
inline constexpr std::array<double, 18> latency_bounds_seconds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
};

// A fixed-bucket latency histogram of atomics.
class latency_histogram {
  public:
    static constexpr std::size_t bucket_count = latency_bounds_seconds.size() + 1;  // the last one is +Inf

    void observe_microseconds(std::uint64_t us) noexcept;
    [[nodiscard]] std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t sum_microseconds() const noexcept { return sum_us_.load(std::memory_order_relaxed); }
    // Non-cumulative count of bucket i.
    [[nodiscard]] std::uint64_t bucket(std::size_t i) const noexcept {
        return buckets_[i].load(std::memory_order_relaxed);
    }

  private:
    std::array<std::atomic<std::uint64_t>, bucket_count> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_us_{0};
};

}  // namespace sluice::metrics
