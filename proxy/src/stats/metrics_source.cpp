#include "stats/metrics_source.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

namespace sluice::stats {

namespace {

using metrics::family;
using metrics::label_set;
using metrics::metric_type;

constexpr double microseconds_per_second = 1e6;

// One series per pool. Entries that share a family name are adjacent and share its help text; `label` adds one label
// (state, kind, reason) to database and user.
struct pool_series {
    std::string_view family;
    std::string_view help;
    metric_type type;
    std::string_view label_name;  // empty for none
    std::string_view label_value;
    double (*read)(const pool_row&);
};

template <auto field>
double value_of(const pool_row& p) {
    return static_cast<double>(p.*field);
}
template <auto field>
double total_of(const pool_row& p) {
    return static_cast<double>(p.totals.*field);
}
template <auto field>
double seconds_of(const pool_row& p) {
    return static_cast<double>(p.*field) / microseconds_per_second;
}
// PgBouncer's cl_active counts every logged-in client that is not waiting, cl_idle the part of it that holds no
// server; the exported states are disjoint so that sum(sluice_clients) is the number of clients.
double clients_holding_a_server(const pool_row& p) {
    return static_cast<double>(std::max(0, p.cl_active - p.cl_idle));
}

constexpr metric_type gauge = metric_type::gauge;
constexpr metric_type counter = metric_type::counter;

constexpr std::string_view clients_help =
    "Client connections by state: active (holding a server), idle (logged in, neither holding a server nor waiting), "
    "waiting (queued for a server), active_cancel_req and waiting_cancel_req (cancel requests forwarded or queued)";
constexpr std::string_view clients_pinned_help =
    "Clients holding a server past transaction end in transaction pooling for session state that cannot move between "
    "servers (session advisory locks, temporary tables, WITH HOLD cursors, SQL PREPARE)";
constexpr std::string_view clients_listening_help =
    "Clients with LISTEN channels in transaction pooling, whose notifications the pool's listen relay delivers";
constexpr std::string_view servers_help =
    "Server connections by state: active (linked to a client), idle (ready for reuse), used (needing "
    "server_check_query), tested (running a reset or check query), login (connecting or logging in), active_cancel "
    "(forwarding a cancel request), being_canceled (waiting for a cancel to finish)";
constexpr std::string_view timeouts_help =
    "Clients disconnected or queries cancelled by a timeout, by kind (the setting that fired)";
constexpr std::string_view closed_help =
    "Server connections closed by the pooler, by reason: lifetime (server_lifetime), idle (server_idle_timeout), "
    "error, client_dirty (a client left it mid-transaction), reload (configuration changed)";

const pool_series pool_table[] = {
    {"sluice_clients", clients_help, gauge, "state", "active", clients_holding_a_server},
    {"sluice_clients", clients_help, gauge, "state", "idle", value_of<&pool_row::cl_idle>},
    {"sluice_clients", clients_help, gauge, "state", "waiting", value_of<&pool_row::cl_waiting>},
    {"sluice_clients", clients_help, gauge, "state", "active_cancel_req", value_of<&pool_row::cl_active_cancel_req>},
    {"sluice_clients", clients_help, gauge, "state", "waiting_cancel_req", value_of<&pool_row::cl_waiting_cancel_req>},
    {"sluice_clients_pinned", clients_pinned_help, gauge, "", "", value_of<&pool_row::cl_pinned>},
    {"sluice_clients_listening", clients_listening_help, gauge, "", "", value_of<&pool_row::cl_listening>},

    {"sluice_servers", servers_help, gauge, "state", "active", value_of<&pool_row::sv_active>},
    {"sluice_servers", servers_help, gauge, "state", "idle", value_of<&pool_row::sv_idle>},
    {"sluice_servers", servers_help, gauge, "state", "used", value_of<&pool_row::sv_used>},
    {"sluice_servers", servers_help, gauge, "state", "tested", value_of<&pool_row::sv_tested>},
    {"sluice_servers", servers_help, gauge, "state", "login", value_of<&pool_row::sv_login>},
    {"sluice_servers", servers_help, gauge, "state", "active_cancel", value_of<&pool_row::sv_active_cancel>},
    {"sluice_servers", servers_help, gauge, "state", "being_canceled", value_of<&pool_row::sv_being_canceled>},

    {"sluice_pool_size",
     "Configured pool_size: servers the pool keeps for its clients",
     gauge,
     {},
     {},
     value_of<&pool_row::pool_size>},
    {"sluice_pool_min_size",
     "Configured min_pool_size: servers kept open even when idle",
     gauge,
     {},
     {},
     value_of<&pool_row::min_pool_size>},
    {"sluice_pool_reserve_size",
     "Configured reserve_pool_size: extra servers allowed when clients wait too long",
     gauge,
     {},
     {},
     value_of<&pool_row::reserve_pool_size>},
    {"sluice_pool_max_db_connections",
     "Configured max_db_connections of the pool's database; 0 means no limit",
     gauge,
     {},
     {},
     value_of<&pool_row::max_db_connections>},
    {"sluice_pool_max_user_connections",
     "Configured max_user_connections of the pool's user; 0 means no limit",
     gauge,
     {},
     {},
     value_of<&pool_row::max_user_connections>},
    {"sluice_pool_paused",
     "1 while the pool is paused (PAUSE), 0 otherwise",
     gauge,
     {},
     {},
     value_of<&pool_row::paused>},

    {"sluice_client_max_wait_seconds",
     "Longest current wait of a client queued for a server; 0 when none waits",
     gauge,
     {},
     {},
     seconds_of<&pool_row::maxwait_us>},
    {"sluice_oldest_transaction_age_seconds",
     "Age of the oldest open transaction; 0 when none is open",
     gauge,
     {},
     {},
     seconds_of<&pool_row::oldest_xact_us>},
    {"sluice_oldest_idle_in_transaction_age_seconds",
     "Time the longest idle-in-transaction client has been idle inside its transaction; 0 when none",
     gauge,
     {},
     {},
     seconds_of<&pool_row::oldest_idle_in_xact_us>},

    {"sluice_pool_exhaustion_events_total",
     "Times a client had to queue because the pool was at its limit",
     counter,
     {},
     {},
     total_of<&pool_totals::exhaustion_events>},
    {"sluice_server_assignments_total",
     "Times a server was assigned to a client",
     counter,
     {},
     {},
     total_of<&pool_totals::server_assignment_count>},
    {"sluice_transactions_total", "Transactions completed", counter, {}, {}, total_of<&pool_totals::xact_count>},
    {"sluice_queries_total", "Queries completed", counter, {}, {}, total_of<&pool_totals::query_count>},
    {"sluice_received_bytes_total",
     "Bytes received from clients",
     counter,
     {},
     {},
     total_of<&pool_totals::bytes_received>},
    {"sluice_sent_bytes_total", "Bytes sent to clients", counter, {}, {}, total_of<&pool_totals::bytes_sent>},
    {"sluice_client_parses_total",
     "Parse messages received from clients",
     counter,
     {},
     {},
     total_of<&pool_totals::client_parse_count>},
    {"sluice_server_parses_total",
     "Parse messages sent to servers",
     counter,
     {},
     {},
     total_of<&pool_totals::server_parse_count>},
    {"sluice_binds_total", "Bind messages received from clients", counter, {}, {}, total_of<&pool_totals::bind_count>},
    {"sluice_prepared_statement_rejections_total",
     "Parse messages refused because a prepared statement memory limit was reached",
     counter,
     {},
     {},
     total_of<&pool_totals::prepared_statement_rejections>},

    {"sluice_timeouts_total", timeouts_help, counter, "kind", "query_wait_timeout",
     total_of<&pool_totals::query_wait_timeouts>},
    {"sluice_timeouts_total", timeouts_help, counter, "kind", "query_timeout", total_of<&pool_totals::query_timeouts>},
    {"sluice_timeouts_total", timeouts_help, counter, "kind", "idle_transaction_timeout",
     total_of<&pool_totals::idle_transaction_timeouts>},
    {"sluice_timeouts_total", timeouts_help, counter, "kind", "transaction_timeout",
     total_of<&pool_totals::transaction_timeouts>},
    {"sluice_timeouts_total", timeouts_help, counter, "kind", "client_idle_timeout",
     total_of<&pool_totals::client_idle_timeouts>},

    {"sluice_server_connects_total",
     "Server connections established (connected and logged in)",
     counter,
     {},
     {},
     total_of<&pool_totals::server_connects>},
    {"sluice_server_connect_failures_total",
     "Server connection attempts that failed to connect or log in",
     counter,
     {},
     {},
     total_of<&pool_totals::server_connect_failures>},
    {"sluice_server_closed_total", closed_help, counter, "reason", "lifetime",
     total_of<&pool_totals::servers_closed_lifetime>},
    {"sluice_server_closed_total", closed_help, counter, "reason", "idle", total_of<&pool_totals::servers_closed_idle>},
    {"sluice_server_closed_total", closed_help, counter, "reason", "error",
     total_of<&pool_totals::servers_closed_error>},
    {"sluice_server_closed_total", closed_help, counter, "reason", "client_dirty",
     total_of<&pool_totals::servers_closed_dirty>},
    {"sluice_server_closed_total", closed_help, counter, "reason", "reload",
     total_of<&pool_totals::servers_closed_reload>},
};

struct pool_histogram {
    std::string_view family;
    std::string_view help;
    histogram_snapshot pool_row::*field;
};

const pool_histogram histogram_table[] = {
    {"sluice_client_wait_seconds", "Time clients waited for a server, from queueing to assignment",
     &pool_row::wait_time},
    {"sluice_transaction_duration_seconds", "Duration of transactions", &pool_row::xact_time},
    {"sluice_query_duration_seconds", "Duration of queries", &pool_row::query_time},
    {"sluice_server_connect_duration_seconds", "Time to connect and log in to a server", &pool_row::connect_time},
};

family make_family(std::string_view name, std::string_view help, metric_type type) {
    family f;
    f.name = name;
    f.help = help;
    f.type = type;
    return f;
}

family single(std::string_view name, std::string_view help, metric_type type, label_set labels, double value) {
    auto f = make_family(name, help, type);
    f.add(std::move(labels), value);
    return f;
}

label_set pool_labels(const pool_row& p) {
    return {{"database", p.database}, {"user", p.user}};
}

void append_pool_families(const std::vector<pool_row>& pools, std::vector<family>& out) {
    auto info = make_family("sluice_pool_info", "Pools and their pool_mode; the value is always 1", gauge);
    for (const auto& p : pools) {
        auto labels = pool_labels(p);
        labels.push_back({"pool_mode", p.pool_mode});
        info.add(std::move(labels), 1);
    }
    out.push_back(std::move(info));

    for (std::size_t first = 0; first < std::size(pool_table);) {
        const auto& head = pool_table[first];
        std::size_t last = first + 1;
        while (last < std::size(pool_table) && pool_table[last].family == head.family)
            ++last;
        auto f = make_family(head.family, head.help, head.type);
        for (const auto& p : pools) {
            for (std::size_t i = first; i < last; ++i) {
                const auto& series = pool_table[i];
                auto labels = pool_labels(p);
                if (!series.label_name.empty())
                    labels.push_back({std::string(series.label_name), std::string(series.label_value)});
                f.add(std::move(labels), series.read(p));
            }
        }
        out.push_back(std::move(f));
        first = last;
    }

    for (const auto& h : histogram_table) {
        auto f = make_family(h.family, h.help, metric_type::histogram);
        for (const auto& p : pools) {
            const histogram_snapshot& s = p.*h.field;
            f.add(metrics::make_histogram(pool_labels(p), metrics::latency_bounds_seconds, s.buckets,
                                          static_cast<double>(s.sum_us) / microseconds_per_second));
        }
        out.push_back(std::move(f));
    }
}

// Who holds the servers: clients linked to a server, by application_name. When a pool is exhausted this names the
// application that holds it.
void append_servers_held(const std::vector<connection_row>& clients, std::vector<family>& out) {
    std::map<std::tuple<std::string_view, std::string_view, std::string_view>, int> held;
    for (const auto& c : clients)
        if (!c.is_server && c.link_id != 0 && c.state == "active")
            ++held[{c.database, c.user, c.application_name}];
    auto f = make_family("sluice_servers_held",
                         "Server connections linked to clients right now, by the clients' application_name", gauge);
    for (const auto& [key, n] : held) {
        const auto& [database, user, application] = key;
        f.add({{"database", std::string(database)},
               {"user", std::string(user)},
               {"application_name", std::string(application)}},
              n);
    }
    out.push_back(std::move(f));
}

void append_database_families(const std::vector<database_row>& databases, std::vector<family>& out) {
    struct database_series {
        std::string_view family;
        std::string_view help;
        double (*read)(const database_row&);
    };
    static constexpr database_series table[] = {
        {"sluice_database_server_connections", "Server connections open to the database, all users",
         [](const database_row& d) { return static_cast<double>(d.current_connections); }},
        {"sluice_database_server_connections_limit", "Configured max_db_connections; 0 means no limit",
         [](const database_row& d) { return static_cast<double>(d.max_connections); }},
        {"sluice_database_client_connections", "Client connections to the database, all users",
         [](const database_row& d) { return static_cast<double>(d.current_client_connections); }},
        {"sluice_database_client_connections_limit", "Configured max_db_client_connections; 0 means no limit",
         [](const database_row& d) { return static_cast<double>(d.max_client_connections); }},
        {"sluice_database_paused", "1 while the database is paused (PAUSE), 0 otherwise",
         [](const database_row& d) { return d.paused ? 1.0 : 0.0; }},
        {"sluice_database_disabled", "1 while the database is disabled (DISABLE), 0 otherwise",
         [](const database_row& d) { return d.disabled ? 1.0 : 0.0; }},
    };
    for (const auto& series : table) {
        auto f = make_family(series.family, series.help, gauge);
        for (const auto& d : databases)
            f.add({{"database", d.name}}, series.read(d));
        out.push_back(std::move(f));
    }
}

}  // namespace

void append_snapshot_families(const snapshot& snap, std::vector<family>& out) {
    const std::size_t first = out.size();
    append_pool_families(snap.pools, out);

    // client_login_timeout fires before a client has a pool: its series carries no database or user.
    const auto timeouts = std::find_if(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                                       [](const family& f) { return f.name == "sluice_timeouts_total"; });
    timeouts->add({{"kind", "client_login_timeout"}}, static_cast<double>(snap.client_login_timeouts));

    append_servers_held(snap.clients, out);
    append_database_families(snap.databases, out);

    out.push_back(single("sluice_client_connections", "Client connections logged in or logging in", gauge, {},
                         snap.total_clients));
    out.push_back(
        single("sluice_client_connections_limit", "Configured max_client_conn", gauge, {}, snap.max_client_conn));
    out.push_back(single("sluice_client_rejections_total",
                         "Client connections refused before login, by reason (the limit that was reached)", counter,
                         {{"reason", "max_client_conn"}}, static_cast<double>(snap.max_client_conn_rejections)));
    out.push_back(single("sluice_login_failures_total",
                         "Client logins that failed (authentication, unknown database or user, protocol error)",
                         counter, {}, static_cast<double>(snap.login_failures)));
}

}  // namespace sluice::stats
