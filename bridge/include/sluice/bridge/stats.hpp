#pragma once

// The bridge's metrics as plain atomics, std only. Recording is a relaxed atomic add or store: no lock, no allocation.
// The Prometheus exporter reads snapshots at scrape time; each list below is the single declaration of a metric
// family: field, exported name, label, help text (Envoy's ALL_*_STATS habit).

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace sluice::bridge {

// Upper bounds of the duration histograms' buckets: 100 us to 60 s in a 1-2.5-5 progression; one more bucket counts
// everything slower.
inline constexpr std::array<std::chrono::microseconds, 19> duration_bucket_bounds = {
    std::chrono::microseconds(100),        std::chrono::microseconds(250),        std::chrono::microseconds(500),
    std::chrono::microseconds(1'000),      std::chrono::microseconds(2'500),      std::chrono::microseconds(5'000),
    std::chrono::microseconds(10'000),     std::chrono::microseconds(25'000),     std::chrono::microseconds(50'000),
    std::chrono::microseconds(100'000),    std::chrono::microseconds(250'000),    std::chrono::microseconds(500'000),
    std::chrono::microseconds(1'000'000),  std::chrono::microseconds(2'500'000),  std::chrono::microseconds(5'000'000),
    std::chrono::microseconds(10'000'000), std::chrono::microseconds(25'000'000), std::chrono::microseconds(50'000'000),
    std::chrono::microseconds(60'000'000),
};

struct histogram_snapshot {
    // buckets[i] counts observations in (bounds[i-1], bounds[i]]; the last one those above 60 s. Not cumulative.
    std::array<std::uint64_t, duration_bucket_bounds.size() + 1> buckets{};
    std::uint64_t count = 0;
    std::chrono::nanoseconds sum{0};
};

// Fixed-bucket histogram of durations. Thread-safe; a snapshot taken while others record may be off by the
// observations in flight (count and buckets are read separately).
class duration_histogram {
  public:
    void record(std::chrono::nanoseconds d) noexcept;
    [[nodiscard]] histogram_snapshot snapshot() const noexcept;

  private:
    std::array<std::atomic<std::uint64_t>, duration_bucket_bounds.size() + 1> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::int64_t> sum_ns_{0};
};

// X(field, exported name, label, help). Counters only grow; gauges are set by their owner.
#define SLUICE_BRIDGE_POOL_COUNTERS(X)                                                                                \
    X(calls_ok, "sluice_bridge_calls_total", "outcome=\"ok\"", "Calls finished, by outcome")                          \
    X(calls_exception, "sluice_bridge_calls_total", "outcome=\"exception\"", "Calls finished, by outcome")            \
    X(calls_cancelled, "sluice_bridge_calls_total", "outcome=\"cancelled\"", "Calls finished, by outcome")            \
    X(calls_rejected, "sluice_bridge_calls_total", "outcome=\"rejected\"", "Calls finished, by outcome")              \
    X(rejected_queue_full, "sluice_bridge_rejections_total", "reason=\"queue_full\"", "Calls refused, by reason")     \
    X(rejected_queue_timeout, "sluice_bridge_rejections_total", "reason=\"queue_timeout\"",                           \
      "Calls refused, by reason")                                                                                     \
    X(rejected_pool_stopped, "sluice_bridge_rejections_total", "reason=\"pool_stopped\"", "Calls refused, by reason") \
    X(stop_requests, "sluice_bridge_stop_requests_total", "", "Running calls asked to stop through their stop_token")
#define SLUICE_BRIDGE_POOL_GAUGES(X)                                                                            \
    X(queue_depth, "sluice_bridge_queue_depth", "", "Calls admitted to the queue, not started")                 \
    X(queue_waiting, "sluice_bridge_queue_waiting", "", "Calls waiting for room in a full queue (wait policy)") \
    X(threads_busy, "sluice_bridge_threads", "state=\"busy\"", "Worker threads, by state")                      \
    X(threads_idle, "sluice_bridge_threads", "state=\"idle\"", "Worker threads, by state")                      \
    X(scopes_leased, "sluice_bridge_scopes_leased", "", "Worker threads leased to a thread_scope")
#define SLUICE_BRIDGE_POOL_HISTOGRAMS(X)                                                                   \
    X(queue_wait, "sluice_bridge_queue_wait_seconds", "", "Time from submission to the start of the call") \
    X(run_time, "sluice_bridge_run_seconds", "", "Time a call ran on its thread")

// async_to_sync has no pool: its metrics are process-wide.
#define SLUICE_BRIDGE_GLOBAL_COUNTERS(X)                                                                          \
    X(async_to_sync_ok, "sluice_bridge_async_to_sync_total", "outcome=\"ok\"", "async_to_sync calls, by outcome") \
    X(async_to_sync_exception, "sluice_bridge_async_to_sync_total", "outcome=\"exception\"",                      \
      "async_to_sync calls, by outcome")                                                                          \
    X(async_to_sync_abandoned, "sluice_bridge_async_to_sync_total", "outcome=\"abandoned\"",                      \
      "async_to_sync calls, by outcome")                                                                          \
    X(misuse, "sluice_bridge_misuse_total", "", "async_to_sync called where it would block an event loop")
#define SLUICE_BRIDGE_GLOBAL_HISTOGRAMS(X) \
    X(async_to_sync_time, "sluice_bridge_async_to_sync_seconds", "", "Time a thread blocked in async_to_sync")

#define SLUICE_BRIDGE_ATOMIC_FIELD(field, name, label, help) std::atomic<std::uint64_t> field{0};
#define SLUICE_BRIDGE_VALUE_FIELD(field, name, label, help) std::uint64_t field = 0;
#define SLUICE_BRIDGE_HISTOGRAM_FIELD(field, name, label, help) duration_histogram field;
#define SLUICE_BRIDGE_SNAPSHOT_FIELD(field, name, label, help) histogram_snapshot field;

struct pool_stats_snapshot {
    SLUICE_BRIDGE_POOL_COUNTERS(SLUICE_BRIDGE_VALUE_FIELD)
    SLUICE_BRIDGE_POOL_GAUGES(SLUICE_BRIDGE_VALUE_FIELD)
    SLUICE_BRIDGE_POOL_HISTOGRAMS(SLUICE_BRIDGE_SNAPSHOT_FIELD)
};

// One pool's live metrics. Thread-safe; written by the pool, read by anyone.
struct pool_stats {
    SLUICE_BRIDGE_POOL_COUNTERS(SLUICE_BRIDGE_ATOMIC_FIELD)
    SLUICE_BRIDGE_POOL_GAUGES(SLUICE_BRIDGE_ATOMIC_FIELD)
    SLUICE_BRIDGE_POOL_HISTOGRAMS(SLUICE_BRIDGE_HISTOGRAM_FIELD)

    // Each value is read atomically, the set is not: good enough for a scrape.
    [[nodiscard]] pool_stats_snapshot snapshot() const noexcept;
};

struct global_stats_snapshot {
    SLUICE_BRIDGE_GLOBAL_COUNTERS(SLUICE_BRIDGE_VALUE_FIELD)
    SLUICE_BRIDGE_GLOBAL_HISTOGRAMS(SLUICE_BRIDGE_SNAPSHOT_FIELD)
};

struct global_stats {
    SLUICE_BRIDGE_GLOBAL_COUNTERS(SLUICE_BRIDGE_ATOMIC_FIELD)
    SLUICE_BRIDGE_GLOBAL_HISTOGRAMS(SLUICE_BRIDGE_HISTOGRAM_FIELD)

    [[nodiscard]] global_stats_snapshot snapshot() const noexcept;
};

#undef SLUICE_BRIDGE_ATOMIC_FIELD
#undef SLUICE_BRIDGE_VALUE_FIELD
#undef SLUICE_BRIDGE_HISTOGRAM_FIELD
#undef SLUICE_BRIDGE_SNAPSHOT_FIELD

// The process-wide instance async_to_sync records into.
[[nodiscard]] global_stats& bridge_global_stats() noexcept;

// Adds one to a counter; relaxed, since a counter orders nothing.
inline void increment(std::atomic<std::uint64_t>& counter) noexcept {
    counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace sluice::bridge
