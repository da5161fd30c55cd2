#pragma once
// A hand-built stats::snapshot with two pools, shared by the mapping and deploy tests.

#include "stats/snapshot.hpp"

namespace sluice::stats::testing {

inline connection_row client_row(std::string database, std::string user, std::string state, std::uint64_t link_id,
                                 std::string application_name) {
    connection_row c;
    c.database = std::move(database);
    c.user = std::move(user);
    c.state = std::move(state);
    c.link_id = link_id;
    c.application_name = std::move(application_name);
    return c;
}

inline snapshot sample_snapshot() {
    snapshot s;
    s.taken_unix_us = 1'700'000'000'000'000;
    s.started_unix_us = 1'699'999'000'000'000;

    pool_row app;
    app.database = "app";
    app.user = "alice";
    app.pool_mode = "transaction";
    app.cl_active = 7;  // 5 holding a server + 2 idle
    app.cl_idle = 2;
    app.cl_pinned = 1;
    app.cl_waiting = 3;
    app.cl_active_cancel_req = 1;
    app.sv_active = 5;
    app.sv_idle = 1;
    app.sv_used = 2;
    app.sv_tested = 1;
    app.sv_login = 1;
    app.sv_being_canceled = 1;
    app.maxwait_us = 1'500'000;
    app.pool_size = 5;
    app.min_pool_size = 1;
    app.reserve_pool_size = 2;
    app.max_db_connections = 10;
    app.oldest_xact_us = 12'000'000;
    app.oldest_idle_in_xact_us = 3'000'000;
    app.totals.server_assignment_count = 90;
    app.totals.xact_count = 100;
    app.totals.query_count = 250;
    app.totals.bytes_received = 123'456;
    app.totals.bytes_sent = 7'654'321;
    app.totals.client_parse_count = 11;
    app.totals.server_parse_count = 12;
    app.totals.bind_count = 13;
    app.totals.exhaustion_events = 17;
    app.totals.query_wait_timeouts = 3;
    app.totals.query_timeouts = 4;
    app.totals.idle_transaction_timeouts = 5;
    app.totals.client_idle_timeouts = 6;
    app.totals.transaction_timeouts = 14;
    app.totals.server_connects = 20;
    app.totals.server_connect_failures = 2;
    app.totals.servers_closed_lifetime = 7;
    app.totals.servers_closed_idle = 8;
    app.totals.servers_closed_error = 9;
    app.totals.servers_closed_dirty = 10;
    app.totals.servers_closed_reload = 1;
    app.wait_time.buckets[0] = 4;   // <= 100 us
    app.wait_time.buckets[12] = 2;  // (0.5 s, 1 s]
    app.wait_time.buckets[18] = 1;  // above 60 s
    app.wait_time.count = 7;
    app.wait_time.sum_us = 62'000'000;
    app.xact_time.buckets[5] = 100;  // (2.5 ms, 5 ms]
    app.xact_time.count = 100;
    app.xact_time.sum_us = 400'000;
    app.connect_time.buckets[3] = 20;  // (0.5 ms, 1 ms]
    app.connect_time.count = 20;
    app.connect_time.sum_us = 16'000;
    s.pools.push_back(app);

    pool_row reports;
    reports.database = "reports";
    reports.user = "bob";
    reports.pool_mode = "session";
    reports.pool_size = 2;
    reports.paused = true;
    s.pools.push_back(reports);

    s.clients.push_back(client_row("app", "alice", "active", 101, "billing"));
    s.clients.push_back(client_row("app", "alice", "active", 102, "billing"));
    s.clients.push_back(client_row("app", "alice", "active", 103, "web"));
    s.clients.push_back(client_row("app", "alice", "active", 0, "web"));  // logged in, no server: not holding one
    s.clients.push_back(client_row("app", "alice", "waiting", 0, "web"));

    database_row db;
    db.name = "app";
    db.host = "127.0.0.1";
    db.port = 5432;
    db.database = "app";
    db.pool_size = 5;
    db.max_connections = 10;
    db.current_connections = 11;
    db.max_client_connections = 50;
    db.current_client_connections = 10;
    s.databases.push_back(db);

    s.total_clients = 12;
    s.max_client_conn = 100;
    s.max_client_conn_rejections = 4;
    s.client_login_timeouts = 2;
    s.login_failures = 1;
    return s;
}

}  // namespace sluice::stats::testing
