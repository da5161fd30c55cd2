#pragma once
// Counters a pool shard records on the hot path. Each shard has its own set, written only by its worker thread
// (single-writer: a relaxed load+store, no locked instruction) and read by any thread at scrape or SHOW time, where
// the shards of a pool are summed.
//
// The list below is the single declaration of these counters: it produces the struct fields, the names the exporter
// and SHOW STATS use, and the help text (Envoy's ALL_POSTGRES_PROXY_STATS pattern).

#include <atomic>
#include <cstdint>

#include "sluice/metrics/instruments.hpp"

namespace sluice::stats {

// X(field, help)
#define SLUICE_POOL_COUNTERS(X)                                                                     \
    X(server_assignment_count, "Times a server was assigned to a client")                           \
    X(xact_count, "Transactions completed (ReadyForQuery 'I' after work)")                          \
    X(query_count, "Queries completed (ReadyForQuery after a Query or Sync)")                       \
    X(bytes_received, "Bytes received from clients")                                                \
    X(bytes_sent, "Bytes sent to clients")                                                          \
    X(xact_time_us, "Microseconds spent in transactions")                                           \
    X(query_time_us, "Microseconds spent in queries")                                               \
    X(wait_time_us, "Microseconds clients spent waiting for a server")                              \
    X(client_parse_count, "Parse messages received from clients")                                   \
    X(server_parse_count, "Parse messages sent to servers")                                         \
    X(bind_count, "Bind messages received from clients")                                            \
    X(prepared_statement_rejections, "Parses refused for a prepared statement memory limit")        \
    X(exhaustion_events, "Times a client had to queue because the pool was at its limit")           \
    X(query_wait_timeouts, "Clients disconnected by query_wait_timeout")                            \
    X(query_timeouts, "Queries cancelled by query_timeout")                                         \
    X(idle_transaction_timeouts, "Clients disconnected by idle_transaction_timeout")                \
    X(transaction_timeouts, "Clients disconnected by transaction_timeout")                          \
    X(client_idle_timeouts, "Clients disconnected by client_idle_timeout")                          \
    X(server_connects, "Server connections established")                                            \
    X(server_connect_failures, "Server connection or login failures")                               \
    X(server_connect_time_us, "Microseconds spent connecting and logging in to servers")            \
    X(servers_closed_lifetime, "Server connections closed at server_lifetime")                      \
    X(servers_closed_idle, "Server connections closed at server_idle_timeout")                      \
    X(servers_closed_error, "Server connections closed after an error")                             \
    X(servers_closed_dirty, "Server connections closed because a client left them mid-transaction") \
    X(servers_closed_reload, "Server connections replaced after a configuration change")

// A counter written by one thread and read by many: no read-modify-write instruction on the hot path.
class single_writer_counter {
  public:
    void add(std::uint64_t n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    [[nodiscard]] std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<std::uint64_t> value_{0};
};

struct pool_counters {
#define SLUICE_DECLARE_COUNTER(name, help) single_writer_counter name;
    SLUICE_POOL_COUNTERS(SLUICE_DECLARE_COUNTER)
#undef SLUICE_DECLARE_COUNTER
    metrics::latency_histogram wait_time;     // time from queueing to server assignment
    metrics::latency_histogram xact_time;     // transaction duration
    metrics::latency_histogram query_time;    // query duration
    metrics::latency_histogram connect_time;  // server connect + login
};

// Plain totals, summed over shards at read time.
struct pool_totals {
#define SLUICE_DECLARE_TOTAL(name, help) std::uint64_t name = 0;
    SLUICE_POOL_COUNTERS(SLUICE_DECLARE_TOTAL)
#undef SLUICE_DECLARE_TOTAL

    void add(const pool_counters& c) noexcept {
#define SLUICE_ADD_TOTAL(name, help) name += c.name.value();
        SLUICE_POOL_COUNTERS(SLUICE_ADD_TOTAL)
#undef SLUICE_ADD_TOTAL
    }
};

}  // namespace sluice::stats
