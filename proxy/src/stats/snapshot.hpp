#pragma once
// A point-in-time picture of pools, clients and servers, built by the net layer (one part per worker, gathered on
// request) and read by the admin console (SHOW ...) and the Prometheus exporter. Plain data, std-only: the consumers
// never touch live connection objects.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sluice/metrics/instruments.hpp"
#include "stats/pool_counters.hpp"

namespace sluice::stats {

// A histogram copied out of a metrics::latency_histogram (non-cumulative buckets; the last is +Inf).
struct histogram_snapshot {
    std::array<std::uint64_t, metrics::latency_histogram::bucket_count> buckets{};
    std::uint64_t count = 0;
    std::uint64_t sum_us = 0;

    void add(const metrics::latency_histogram& h) noexcept {
        for (std::size_t i = 0; i < buckets.size(); ++i)
            buckets[i] += h.bucket(i);
        count += h.count();
        sum_us += h.sum_microseconds();
    }
};

struct pool_row {
    std::string database;
    std::string user;
    std::string pool_mode;  // "session", "transaction", "statement"
    // Clients
    int cl_active = 0;   // logged in, holding a server or idle (PgBouncer's "active" = linked or idle-ok)
    int cl_waiting = 0;  // queued for a server
    int cl_idle = 0;     // logged in, not holding a server, not waiting (Sluice's own split of cl_active)
    int cl_active_cancel_req = 0;
    int cl_waiting_cancel_req = 0;
    int cl_pinned = 0;     // holding a server past transaction end for session state (session_state.hpp)
    int cl_listening = 0;  // with LISTEN channels served by the pool's listen relay (net/listen_relay.hpp)
    // Servers
    int sv_active = 0;  // attached to a client
    int sv_active_cancel = 0;
    int sv_being_canceled = 0;
    int sv_idle = 0;              // ready for reuse
    int sv_used = 0;              // needs server_check_query before reuse
    int sv_tested = 0;            // running a reset or check query
    int sv_login = 0;             // connecting or logging in
    std::int64_t maxwait_us = 0;  // longest current wait of a queued client, 0 if none
    // Limits
    int pool_size = 0;
    int min_pool_size = 0;
    int reserve_pool_size = 0;
    int max_db_connections = 0;
    int max_user_connections = 0;
    bool paused = false;
    // Oldest transaction and oldest idle-in-transaction client, microseconds; 0 if none.
    std::int64_t oldest_xact_us = 0;
    std::int64_t oldest_idle_in_xact_us = 0;
    pool_totals totals;
    histogram_snapshot wait_time;
    histogram_snapshot xact_time;
    histogram_snapshot query_time;
    histogram_snapshot connect_time;
};

// One connection, client or server: the fields of SHOW CLIENTS / SHOW SERVERS.
struct connection_row {
    bool is_server = false;
    std::uint64_t id = 0;
    std::string user;
    std::string database;
    std::string
        state;         // PgBouncer's words: "active", "idle", "used", "waiting", "login", "tested", "active_cancel_req"
    std::string addr;  // peer address (client) or server host
    int port = 0;
    std::string local_addr;
    int local_port = 0;
    std::int64_t connect_time_unix_us = 0;  // wall clock
    std::int64_t request_time_unix_us = 0;  // last request (client) / last use (server)
    std::int64_t wait_us = 0;               // current wait for a server (clients)
    bool close_needed = false;
    std::uint64_t link_id = 0;     // the attached server/client, 0 if none
    std::uint32_t remote_pid = 0;  // backend pid (servers) / cancel key pid (clients)
    bool tls = false;
    std::string application_name;
    int prepared_statements = 0;
    bool pinned = false;  // Sluice: held by session state (issue "session state")
    unsigned worker = 0;
};

struct database_row {
    std::string name;
    std::string host;
    int port = 0;
    std::string database;  // dbname on the server
    std::optional<std::string> force_user;
    int pool_size = 0;
    int min_pool_size = 0;
    int reserve_pool_size = 0;
    std::string pool_mode;
    int max_connections = 0;
    int current_connections = 0;
    int max_client_connections = 0;
    int current_client_connections = 0;
    bool paused = false;
    bool disabled = false;
};

struct snapshot {
    std::int64_t taken_unix_us = 0;
    std::int64_t started_unix_us = 0;  // process start, for averages
    std::vector<pool_row> pools;
    std::vector<connection_row> clients;
    std::vector<connection_row> servers;
    std::vector<database_row> databases;
    int total_clients = 0;
    int max_client_conn = 0;
    std::uint64_t max_client_conn_rejections = 0;
    std::uint64_t client_login_timeouts = 0;
    std::uint64_t login_failures = 0;
};

}  // namespace sluice::stats

namespace sluice::stats {
// Adds `from` (one worker's part of a pool) into `into` (the pool's row): counts and totals add, maxima take the max.
void merge_pool_row(pool_row& into, const pool_row& from);
}  // namespace sluice::stats
