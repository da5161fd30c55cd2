#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <regex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "admin/command.hpp"
#include "admin/show.hpp"
#include "config/config.hpp"
#include "sluice/protocol/error.hpp"
#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/reader.hpp"

namespace sluice::admin {
namespace {

// Type OIDs spelled out here (pg_type.dat), independently of sluice::protocol's constants.
constexpr std::uint32_t text_t = 25;
constexpr std::uint32_t int4_t = 23;
constexpr std::uint32_t int8_t_ = 20;
constexpr std::uint32_t numeric_t = 1700;
constexpr std::uint32_t bytea_t = 17;

struct expected_column {
    std::string_view name;
    std::uint32_t type_oid;
};

// ---------------------------------------------------------------------------------------------------------------
// The compatibility contract: PgBouncer 1.25's SHOW columns.
// Names and order: doc/usage.md of PgBouncer 1.25 ("Show commands"). Types, and where the documentation is silent
// or differs from what PgBouncer sends, names and order too: the RowDescription PgBouncer 1.25 writes (src/admin.c,
// src/stats.c; type letters in src/pktbuf.c: s=text, i=int4, q=int8, N=numeric, b=bytea, T=timestamp as text).
// Checked against a live PgBouncer 1.18 for the columns 1.18 already had.
// ---------------------------------------------------------------------------------------------------------------

constexpr expected_column pools_contract[] = {
    {"database", text_t},
    {"user", text_t},
    {"cl_active", int4_t},
    {"cl_waiting", int4_t},
    {"cl_active_cancel_req", int4_t},
    {"cl_waiting_cancel_req", int4_t},
    {"sv_active", int4_t},
    {"sv_active_cancel", int4_t},
    {"sv_being_canceled", int4_t},
    {"sv_idle", int4_t},
    {"sv_used", int4_t},
    {"sv_tested", int4_t},
    {"sv_login", int4_t},
    {"maxwait", int4_t},
    {"maxwait_us", int4_t},
    {"pool_mode", text_t},
    {"load_balance_hosts", text_t},
};

// Wire order (stats.c): total_server_assignment_count comes first. The documentation lists the same names with
// total_server_assignment_count after total_query_count; see stats_columns_are_the_documented_set below.
constexpr expected_column stats_contract[] = {
    {"database", text_t},
    {"total_server_assignment_count", numeric_t},
    {"total_xact_count", numeric_t},
    {"total_query_count", numeric_t},
    {"total_received", numeric_t},
    {"total_sent", numeric_t},
    {"total_xact_time", numeric_t},
    {"total_query_time", numeric_t},
    {"total_wait_time", numeric_t},
    {"total_client_parse_count", numeric_t},
    {"total_server_parse_count", numeric_t},
    {"total_bind_count", numeric_t},
    {"avg_server_assignment_count", numeric_t},
    {"avg_xact_count", numeric_t},
    {"avg_query_count", numeric_t},
    {"avg_recv", numeric_t},
    {"avg_sent", numeric_t},
    {"avg_xact_time", numeric_t},
    {"avg_query_time", numeric_t},
    {"avg_wait_time", numeric_t},
    {"avg_client_parse_count", numeric_t},
    {"avg_server_parse_count", numeric_t},
    {"avg_bind_count", numeric_t},
};

// usage.md's SHOW STATS list, in the documentation's order.
constexpr std::string_view stats_documented[] = {
    "database",
    "total_xact_count",
    "total_query_count",
    "total_server_assignment_count",
    "total_received",
    "total_sent",
    "total_xact_time",
    "total_query_time",
    "total_wait_time",
    "total_client_parse_count",
    "total_server_parse_count",
    "total_bind_count",
    "avg_xact_count",
    "avg_query_count",
    "avg_server_assignment_count",
    "avg_recv",
    "avg_sent",
    "avg_xact_time",
    "avg_query_time",
    "avg_wait_time",
    "avg_client_parse_count",
    "avg_server_parse_count",
    "avg_bind_count",
};

// "Subset of SHOW STATS showing the total values" (usage.md); names from stats.c, without the total_ prefix.
constexpr expected_column stats_totals_contract[] = {
    {"database", text_t},
    {"server_assignment_count", numeric_t},
    {"xact_count", numeric_t},
    {"query_count", numeric_t},
    {"bytes_received", numeric_t},
    {"bytes_sent", numeric_t},
    {"xact_time", numeric_t},
    {"query_time", numeric_t},
    {"wait_time", numeric_t},
    {"client_parse_count", numeric_t},
    {"server_parse_count", numeric_t},
    {"bind_count", numeric_t},
};

// "Subset of SHOW STATS showing the average values" (usage.md); stats.c keeps avg_ on the last three only.
constexpr expected_column stats_averages_contract[] = {
    {"database", text_t},
    {"server_assignment_count", numeric_t},
    {"xact_count", numeric_t},
    {"query_count", numeric_t},
    {"bytes_received", numeric_t},
    {"bytes_sent", numeric_t},
    {"xact_time", numeric_t},
    {"query_time", numeric_t},
    {"wait_time", numeric_t},
    {"avg_client_parse_count", numeric_t},
    {"avg_server_parse_count", numeric_t},
    {"avg_bind_count", numeric_t},
};

// "Like SHOW STATS but aggregated across all databases": one (name, value) row per figure (stats.c).
constexpr expected_column totals_contract[] = {{"name", text_t}, {"value", numeric_t}};

constexpr expected_column clients_contract[] = {
    {"type", text_t},
    {"user", text_t},
    {"database", text_t},
    {"replication", text_t},
    {"state", text_t},
    {"addr", text_t},
    {"port", int4_t},
    {"local_addr", text_t},
    {"local_port", int4_t},
    {"connect_time", text_t},
    {"request_time", text_t},
    {"wait", int4_t},
    {"wait_us", int4_t},
    {"close_needed", int4_t},
    {"ptr", text_t},
    {"link", text_t},
    {"remote_pid", int4_t},
    {"tls", text_t},
    {"application_name", text_t},
    {"prepared_statements", int4_t},
    {"id", int4_t},
};

// SHOW SOCKETS / ACTIVE_SOCKETS: the SHOW CLIENTS columns plus PgBouncer's buffer positions (admin.c SKF_DBG).
constexpr expected_column sockets_extra_contract[] = {
    {"recv_pos", int4_t},    {"pkt_pos", int4_t},   {"pkt_remain", int4_t}, {"send_pos", int4_t},
    {"send_remain", int4_t}, {"pkt_avail", int4_t}, {"send_avail", int4_t},
};

constexpr expected_column databases_contract[] = {
    {"name", text_t},
    {"host", text_t},
    {"port", int4_t},
    {"database", text_t},
    {"force_user", text_t},
    {"pool_size", int4_t},
    {"min_pool_size", int4_t},
    {"reserve_pool_size", int4_t},
    {"server_lifetime", int4_t},
    {"pool_mode", text_t},
    {"load_balance_hosts", text_t},
    {"max_connections", int4_t},
    {"current_connections", int4_t},
    {"max_client_connections", int4_t},
    {"current_client_connections", int4_t},
    {"paused", int4_t},
    {"disabled", int4_t},
};

constexpr expected_column users_contract[] = {
    {"name", text_t},
    {"pool_size", text_t},
    {"reserve_pool_size", text_t},
    {"pool_mode", text_t},
    {"max_user_connections", int4_t},
    {"current_connections", int4_t},
    {"max_user_client_connections", int4_t},
    {"current_client_connections", int4_t},
};

constexpr expected_column config_contract[] = {
    {"key", text_t},
    {"value", text_t},
    {"default", text_t},
    {"changeable", text_t},
};

// usage.md: "Show following internal information, in columns (not rows)" — PgBouncer actually sends rows of
// (list, items).
constexpr expected_column lists_contract[] = {{"list", text_t}, {"items", int4_t}};

constexpr expected_column version_contract[] = {{"version", text_t}};

constexpr expected_column mem_contract[] = {
    {"name", text_t}, {"size", int4_t}, {"used", int4_t}, {"free", int4_t}, {"memtotal", int4_t},
};

constexpr expected_column dns_hosts_contract[] = {{"hostname", text_t}, {"ttl", int8_t_}, {"addrs", text_t}};

constexpr expected_column dns_zones_contract[] = {{"zonename", text_t}, {"serial", int8_t_}, {"count", int4_t}};

// usage.md documents the first eight; admin.c sends seven more.
constexpr expected_column fds_contract[] = {
    {"fd", int4_t},
    {"task", text_t},
    {"user", text_t},
    {"database", text_t},
    {"addr", text_t},
    {"port", int4_t},
    {"cancel", int8_t_},
    {"link", int4_t},
    {"client_encoding", text_t},
    {"std_strings", text_t},
    {"datestyle", text_t},
    {"timezone", text_t},
    {"password", text_t},
    {"scram_client_key", bytea_t},
    {"scram_server_key", bytea_t},
};

constexpr expected_column peers_contract[] = {
    {"peer_id", int4_t},
    {"host", text_t},
    {"port", int4_t},
    {"pool_size", int4_t},
};

// usage.md calls the first column "database"; admin.c sends "peer_id".
constexpr expected_column peer_pools_contract[] = {
    {"peer_id", int4_t},
    {"cl_active_cancel_req", int4_t},
    {"cl_waiting_cancel_req", int4_t},
    {"sv_active_cancel", int4_t},
    {"sv_login", int4_t},
};

constexpr expected_column state_contract[] = {{"key", text_t}, {"value", text_t}};

// ---------------------------------------------------------------------------------------------------------------
// Decoding what render_show produced, with sluice::protocol's frame and reader helpers.
// ---------------------------------------------------------------------------------------------------------------

using value = std::optional<std::string>;

struct decoded_column {
    std::string name;
    std::uint32_t type_oid = 0;
    std::int16_t type_size = 0;
};

struct decoded {
    std::string message_types;  // one type byte per message, in order
    std::vector<decoded_column> columns;
    std::vector<std::vector<value>> rows;
    std::string tag;
    std::string notice_severity;
    std::string notice_code;
    std::string notice_message;
    std::string notice_detail;

    // The value in `row` of the column called `name`.
    [[nodiscard]] value at(std::size_t row, std::string_view name) const {
        for (std::size_t i = 0; i < columns.size(); ++i) {
            if (columns[i].name == name)
                return row < rows.size() ? rows[row][i] : value{"<no such row>"};
        }
        ADD_FAILURE() << "no column " << name;
        return std::nullopt;
    }
};

decoded decode(const std::string& bytes) {
    decoded d;
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        const auto rest = std::span<const char>(bytes).subspan(pos);
        const auto h = protocol::read_header(rest, 1U << 30);
        if (h.status != protocol::header_status::ok || rest.size() < h.header.total_size()) {
            ADD_FAILURE() << "bad or truncated message at offset " << pos;
            break;
        }
        const auto body = rest.subspan(protocol::header_size, h.header.body_size());
        protocol::message_reader r(body);
        d.message_types.push_back(h.header.type);
        switch (h.header.type) {
            case 'T': {
                const int n = r.i16();
                for (int i = 0; i < n; ++i) {
                    decoded_column c;
                    c.name = std::string(r.cstring());
                    EXPECT_EQ(r.i32(), 0) << "table oid of " << c.name;
                    EXPECT_EQ(r.i16(), 0) << "attribute number of " << c.name;
                    c.type_oid = static_cast<std::uint32_t>(r.i32());
                    c.type_size = r.i16();
                    (void)r.i32();  // type modifier
                    EXPECT_EQ(r.i16(), 0) << "format code of " << c.name << " (text)";
                    d.columns.push_back(std::move(c));
                }
                break;
            }
            case 'D': {
                const int n = r.i16();
                EXPECT_EQ(static_cast<std::size_t>(n), d.columns.size()) << "DataRow width";
                std::vector<value> row;
                for (int i = 0; i < n; ++i) {
                    const auto len = r.i32();
                    if (len < 0) {
                        row.emplace_back(std::nullopt);
                    } else {
                        const auto b = r.bytes(static_cast<std::size_t>(len));
                        row.emplace_back(std::string(b.data(), b.size()));
                    }
                }
                d.rows.push_back(std::move(row));
                break;
            }
            case 'C':
                d.tag = std::string(r.cstring());
                break;
            case 'N': {
                const auto f = protocol::parse_error_fields(body);
                d.notice_severity = std::string(f.severity);
                d.notice_code = std::string(f.sqlstate);
                d.notice_message = std::string(f.message);
                d.notice_detail = std::string(f.detail);
                (void)r.rest();
                break;
            }
            default:
                ADD_FAILURE() << "unexpected message type '" << h.header.type << "'";
                (void)r.rest();
        }
        EXPECT_TRUE(r.ok() && r.at_end()) << "malformed body of message '" << h.header.type << "'";
        pos += h.header.total_size();
    }
    return d;
}

// Renders `subject` and decodes it, checking the message sequence RowDescription, DataRow*, CommandComplete SHOW.
decoded show(std::string_view subject, const stats::snapshot& snap, const config::config& cfg,
             const show_context& ctx = {}) {
    std::string out;
    EXPECT_TRUE(render_show(subject, snap, cfg, ctx, out)) << subject;
    auto d = decode(out);
    EXPECT_EQ(d.message_types, "T" + std::string(d.rows.size(), 'D') + "C") << subject;
    EXPECT_EQ(d.tag, "SHOW") << subject;
    return d;
}

std::int16_t expected_size(std::uint32_t oid) {
    switch (oid) {
        case int4_t:
            return 4;
        case int8_t_:
            return 8;
        default:
            return -1;
    }
}

void expect_columns(const decoded& d, std::span<const expected_column> contract, std::string_view subject) {
    std::vector<std::string> got_names;
    std::vector<std::string> want_names;
    for (const auto& c : d.columns)
        got_names.push_back(c.name);
    for (const auto& c : contract)
        want_names.emplace_back(c.name);
    ASSERT_EQ(got_names, want_names) << "SHOW " << subject << " column names and order";
    for (std::size_t i = 0; i < contract.size(); ++i) {
        EXPECT_EQ(d.columns[i].type_oid, contract[i].type_oid) << "SHOW " << subject << " column " << contract[i].name;
        EXPECT_EQ(d.columns[i].type_size, expected_size(contract[i].type_oid))
            << "SHOW " << subject << " column " << contract[i].name;
    }
}

std::vector<std::string> column_values(const decoded& d, std::string_view name) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < d.rows.size(); ++i)
        out.push_back(d.at(i, name).value_or("<NULL>"));
    return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

config::config load(std::string_view text) {
    auto result = config::load_config_string(text, "/etc/sluice/sluice.ini", {});
    EXPECT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].to_string());
    return result.ok() ? std::move(*result.value) : config::config{};
}

config::config test_config() {
    return load(R"(
[databases]
app = host=db1.example,db2.example port=5433 dbname=appdb load_balance_hosts=disable
other = host=db3.example pool_mode=session server_lifetime=120
[users]
alice = pool_size=5 reserve_pool_size=2 pool_mode=statement max_user_connections=7
bob = max_user_client_connections=9
[pgbouncer]
admin_users = root
stats_users = monitor
max_client_conn = 500
max_user_connections = 40
max_user_client_connections = 50
server_lifetime = 3600
)");
}

constexpr std::int64_t second = 1'000'000;
constexpr std::int64_t t0 = 1'700'000'000 * second;  // 2023-11-14 22:13:20 UTC

stats::pool_row pool(std::string database, std::string user) {
    stats::pool_row p;
    p.database = std::move(database);
    p.user = std::move(user);
    p.pool_mode = "transaction";
    return p;
}

stats::connection_row connection(bool is_server, std::uint64_t id, std::string user, std::string database,
                                 std::string state) {
    stats::connection_row c;
    c.is_server = is_server;
    c.id = id;
    c.user = std::move(user);
    c.database = std::move(database);
    c.state = std::move(state);
    c.addr = is_server ? "10.0.0.5" : "192.0.2.10";
    c.port = is_server ? 5433 : 40000 + static_cast<int>(id);
    c.local_addr = is_server ? "10.0.0.1" : "10.0.0.1";
    c.local_port = is_server ? 50000 + static_cast<int>(id) : 6432;
    c.connect_time_unix_us = t0;
    c.request_time_unix_us = t0 + 61 * second + 250'000;
    return c;
}

stats::database_row database(std::string name, std::string host, int port, std::string dbname) {
    stats::database_row d;
    d.name = std::move(name);
    d.host = std::move(host);
    d.port = port;
    d.database = std::move(dbname);
    d.pool_size = 20;
    d.max_connections = 0;
    return d;
}

// ---------------------------------------------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------------------------------------------

struct subject_contract {
    std::string_view subject;
    std::span<const expected_column> columns;
};

TEST(admin_show, every_subject_sends_pgbouncer_1_25_columns_and_types) {
    std::vector<expected_column> sockets_contract(std::begin(clients_contract), std::end(clients_contract));
    sockets_contract.insert(sockets_contract.end(), std::begin(sockets_extra_contract),
                            std::end(sockets_extra_contract));
    const subject_contract contracts[] = {
        {"pools", pools_contract},
        {"stats", stats_contract},
        {"stats_totals", stats_totals_contract},
        {"stats_averages", stats_averages_contract},
        {"totals", totals_contract},
        {"clients", clients_contract},
        {"servers", clients_contract},
        {"sockets", sockets_contract},
        {"active_sockets", sockets_contract},
        {"databases", databases_contract},
        {"users", users_contract},
        {"config", config_contract},
        {"lists", lists_contract},
        {"version", version_contract},
        {"mem", mem_contract},
        {"dns_hosts", dns_hosts_contract},
        {"dns_zones", dns_zones_contract},
        {"fds", fds_contract},
        {"peers", peers_contract},
        {"peer_pools", peer_pools_contract},
        {"state", state_contract},
    };
    const auto cfg = test_config();
    const stats::snapshot empty;
    for (const auto& [subject, columns] : contracts) {
        const auto d = show(subject, empty, cfg);
        expect_columns(d, columns, subject);
    }
}

TEST(admin_show, stats_columns_are_the_documented_set) {
    std::multiset<std::string_view> wire;
    for (const auto& c : stats_contract)
        wire.insert(c.name);
    const std::multiset<std::string_view> documented(std::begin(stats_documented), std::end(stats_documented));
    EXPECT_EQ(wire, documented);
}

TEST(admin_show, every_parsable_subject_renders_and_unknown_ones_do_not) {
    const auto cfg = test_config();
    const stats::snapshot empty;
    for (std::string_view subject : {"pools",
                                     "stats",
                                     "stats_totals",
                                     "stats_averages",
                                     "servers",
                                     "clients",
                                     "databases",
                                     "users",
                                     "config",
                                     "lists",
                                     "version",
                                     "mem",
                                     "dns_hosts",
                                     "dns_zones",
                                     "sockets",
                                     "active_sockets",
                                     "fds",
                                     "state",
                                     "totals",
                                     "peers",
                                     "peer_pools",
                                     "help",
                                     "client_encoding",
                                     "default_transaction_isolation",
                                     "standard_conforming_strings",
                                     "datestyle",
                                     "timezone",
                                     "extra_float_digits"}) {
        ASSERT_TRUE(is_show_subject(subject)) << subject;
        std::string out;
        EXPECT_TRUE(render_show(subject, empty, cfg, out)) << subject;
        EXPECT_FALSE(out.empty()) << subject;
    }
    std::string out = "kept";
    EXPECT_FALSE(render_show("nothing", empty, cfg, out));
    EXPECT_FALSE(render_show("", empty, cfg, out));
    EXPECT_EQ(out, "kept") << "nothing is appended for an unknown subject";
}

TEST(admin_show, subject_is_case_insensitive) {
    const auto cfg = test_config();
    const stats::snapshot empty;
    const auto d = show("POOLS", empty, cfg);
    expect_columns(d, pools_contract, "POOLS");
}

TEST(admin_show, appends_to_what_the_buffer_already_holds) {
    const auto cfg = test_config();
    const stats::snapshot empty;
    std::string out;
    ASSERT_TRUE(render_show("version", empty, cfg, out));
    const auto first = out.size();
    ASSERT_TRUE(render_show("version", empty, cfg, out));
    EXPECT_EQ(out.size(), 2 * first);
    EXPECT_EQ(out.substr(0, first), out.substr(first));
}

// ---------------------------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------------------------

TEST(admin_show, pools_rows_are_sorted_and_carry_counts_and_maxwait) {
    const auto cfg = test_config();
    stats::snapshot snap;
    auto other = pool("other", "bob");
    other.pool_mode = "session";
    auto alice = pool("app", "alice");
    alice.cl_active = 3;
    alice.cl_waiting = 4;
    alice.cl_active_cancel_req = 1;
    alice.cl_waiting_cancel_req = 2;
    alice.sv_active = 3;
    alice.sv_active_cancel = 1;
    alice.sv_being_canceled = 1;
    alice.sv_idle = 6;
    alice.sv_used = 2;
    alice.sv_tested = 1;
    alice.sv_login = 1;
    alice.maxwait_us = 2'500'000;
    auto app_bob = pool("app", "bob");
    app_bob.maxwait_us = 999'999;
    snap.pools = {other, alice, app_bob};

    const auto d = show("pools", snap, cfg);
    ASSERT_EQ(d.rows.size(), 3U);
    EXPECT_EQ(column_values(d, "database"), (std::vector<std::string>{"app", "app", "other"}));
    EXPECT_EQ(column_values(d, "user"), (std::vector<std::string>{"alice", "bob", "bob"}));
    const std::vector<value> expected_alice{"app", "alice", "3", "4", "1", "2",      "3",           "1",      "1",
                                            "6",   "2",     "1", "1", "2", "500000", "transaction", "disable"};
    EXPECT_EQ(d.rows[0], expected_alice);
    EXPECT_EQ(d.at(1, "maxwait"), "0");
    EXPECT_EQ(d.at(1, "maxwait_us"), "999999");
    EXPECT_EQ(d.at(2, "pool_mode"), "session");
    EXPECT_EQ(d.at(2, "load_balance_hosts"), std::nullopt) << "NULL unless the database has several hosts";
}

TEST(admin_show, load_balance_hosts_defaults_to_round_robin) {
    const auto cfg = load("[databases]\nmulti = host=a,b\n");
    stats::snapshot snap;
    snap.pools = {pool("multi", "u")};
    EXPECT_EQ(show("pools", snap, cfg).at(0, "load_balance_hosts"), "round-robin");
}

// Two databases: "app" with alice (also in the previous sample) and bob (new since), "other" idle since then.
struct stats_fixture {
    stats::snapshot previous;
    stats::snapshot now;

    stats_fixture() {
        now.started_unix_us = t0 - 3600 * second;
        now.taken_unix_us = t0;
        previous.started_unix_us = now.started_unix_us;
        previous.taken_unix_us = t0 - 60 * second;

        auto alice_then = pool("app", "alice");
        alice_then.totals.server_assignment_count = 100;
        alice_then.totals.wait_time_us = 10'000;
        auto carol_then = pool("other", "carol");
        carol_then.totals.xact_count = 42;
        carol_then.totals.query_count = 84;
        carol_then.totals.xact_time_us = 4200;
        previous.pools = {alice_then, carol_then};

        auto alice = pool("app", "alice");
        alice.totals.server_assignment_count = 700;
        alice.totals.xact_count = 600;
        alice.totals.query_count = 1200;
        alice.totals.bytes_received = 60'000;
        alice.totals.bytes_sent = 120'000;
        alice.totals.xact_time_us = 1'200'000;
        alice.totals.query_time_us = 600'000;
        alice.totals.wait_time_us = 70'000;
        alice.totals.client_parse_count = 600;
        alice.totals.server_parse_count = 300;
        alice.totals.bind_count = 1200;
        auto bob = pool("app", "bob");
        bob.totals.server_assignment_count = 60;
        bob.totals.xact_count = 60;
        bob.totals.query_count = 60;
        bob.totals.bytes_received = 6'000;
        bob.totals.bytes_sent = 6'000;
        bob.totals.xact_time_us = 60'000;
        bob.totals.query_time_us = 30'000;
        now.pools = {carol_then, alice, bob};
    }
};

TEST(admin_show, stats_totals_and_per_second_averages_over_the_last_period) {
    const auto cfg = test_config();
    const stats_fixture f;
    const auto d = show("stats", f.now, cfg, show_context{&f.previous, pause_state::active});
    ASSERT_EQ(d.rows.size(), 2U);
    // app: totals are alice + bob; the 60 s deltas are (alice - alice_then) + bob.
    const std::vector<value> app{
        "app",
        "760",      // total_server_assignment_count
        "660",      // total_xact_count
        "1260",     // total_query_count
        "66000",    // total_received
        "126000",   // total_sent
        "1260000",  // total_xact_time
        "630000",   // total_query_time
        "70000",    // total_wait_time
        "600",      // total_client_parse_count
        "300",      // total_server_parse_count
        "1200",     // total_bind_count
        "11",       // avg_server_assignment_count: 660 / 60 s
        "11",       // avg_xact_count: 660 / 60 s
        "21",       // avg_query_count: 1260 / 60 s
        "1100",     // avg_recv: 66000 / 60 s
        "2100",     // avg_sent: 126000 / 60 s
        "1909",     // avg_xact_time: 1260000 us / 660 transactions
        "500",      // avg_query_time: 630000 us / 1260 queries
        "90",       // avg_wait_time: (70000 - 10000) us / 660 assignments
        "10",       // avg_client_parse_count: 600 / 60 s
        "5",        // avg_server_parse_count: 300 / 60 s
        "20",       // avg_bind_count: 1200 / 60 s
    };
    EXPECT_EQ(d.rows[0], app);
    // other: nothing happened during the period, so every average is 0 (no division by a zero count).
    EXPECT_EQ(d.at(1, "database"), "other");
    EXPECT_EQ(d.at(1, "total_xact_count"), "42");
    EXPECT_EQ(d.at(1, "total_xact_time"), "4200");
    for (std::size_t i = 12; i < d.columns.size(); ++i)
        EXPECT_EQ(d.rows[1][i], "0") << d.columns[i].name;
}

TEST(admin_show, stats_without_a_previous_sample_average_over_the_process_lifetime) {
    const auto cfg = test_config();
    stats::snapshot snap;
    snap.started_unix_us = t0;
    snap.taken_unix_us = t0 + 100 * second;
    auto p = pool("app", "alice");
    p.totals.xact_count = 500;
    p.totals.xact_time_us = 1000;
    p.totals.bytes_received = 12'345;
    snap.pools = {p};
    const auto d = show("stats", snap, cfg);
    EXPECT_EQ(d.at(0, "avg_xact_count"), "5");
    EXPECT_EQ(d.at(0, "avg_xact_time"), "2");
    EXPECT_EQ(d.at(0, "avg_recv"), "123");
}

TEST(admin_show, stats_averages_are_zero_when_no_time_has_passed) {
    const auto cfg = test_config();
    stats::snapshot snap;
    snap.started_unix_us = t0;
    snap.taken_unix_us = t0;
    auto p = pool("app", "alice");
    p.totals.xact_count = 5;
    p.totals.xact_time_us = 50;
    snap.pools = {p};
    const auto d = show("stats", snap, cfg);
    EXPECT_EQ(d.at(0, "total_xact_count"), "5");
    EXPECT_EQ(d.at(0, "avg_xact_count"), "0");
    EXPECT_EQ(d.at(0, "avg_xact_time"), "0");
}

TEST(admin_show, stats_counts_a_recreated_pool_from_zero) {
    const auto cfg = test_config();
    stats::snapshot previous;
    previous.taken_unix_us = t0 - 10 * second;
    auto before = pool("app", "alice");
    before.totals.xact_count = 1000;
    previous.pools = {before};
    stats::snapshot now;
    now.taken_unix_us = t0;
    auto after = pool("app", "alice");
    after.totals.xact_count = 50;  // the pool was dropped and created again
    now.pools = {after};
    const auto d = show("stats", now, cfg, show_context{&previous, pause_state::active});
    EXPECT_EQ(d.at(0, "avg_xact_count"), "5");
}

TEST(admin_show, stats_totals_and_stats_averages_split_show_stats) {
    const auto cfg = test_config();
    const stats_fixture f;
    const show_context ctx{&f.previous, pause_state::active};
    const auto all = show("stats", f.now, cfg, ctx);
    const auto totals = show("stats_totals", f.now, cfg, ctx);
    const auto averages = show("stats_averages", f.now, cfg, ctx);
    ASSERT_EQ(totals.rows.size(), all.rows.size());
    ASSERT_EQ(averages.rows.size(), all.rows.size());
    for (std::size_t r = 0; r < all.rows.size(); ++r) {
        const auto& row = all.rows[r];
        std::vector<value> want_totals(row.begin(), row.begin() + 12);
        std::vector<value> want_averages{row[0]};
        want_averages.insert(want_averages.end(), row.begin() + 12, row.end());
        EXPECT_EQ(totals.rows[r], want_totals);
        EXPECT_EQ(averages.rows[r], want_averages);
    }
}

TEST(admin_show, totals_aggregate_every_database_as_name_value_rows) {
    const auto cfg = test_config();
    const stats_fixture f;
    const auto d = show("totals", f.now, cfg, show_context{&f.previous, pause_state::active});
    const std::vector<std::string> names{
        "total_server_assignment_count",
        "total_xact_count",
        "total_query_count",
        "total_client_bytes",
        "total_server_bytes",
        "total_xact_time",
        "total_query_time",
        "total_wait_time",
        "total_ps_client_parse_count",
        "total_ps_server_parse_count",
        "total_ps_bind_count",
        "avg_server_assignment_count",
        "avg_xact_count",
        "avg_query_count",
        "avg_client_bytes",
        "avg_server_bytes",
        "avg_xact_time",
        "avg_query_time",
        "avg_wait_time",
        "avg_ps_client_parse_count",
        "avg_ps_server_parse_count",
        "avg_ps_bind_count",
    };
    EXPECT_EQ(column_values(d, "name"), names);
    // app + other: 660 + 42 transactions in total, 660 of them in the last 60 s.
    EXPECT_EQ(d.at(1, "value"), "702");
    EXPECT_EQ(d.at(5, "value"), "1264200");
    EXPECT_EQ(d.at(12, "value"), "11");
    EXPECT_EQ(d.at(16, "value"), "1909");
}

TEST(admin_show, clients_rows_use_pgbouncer_states_times_and_links) {
    const auto cfg = test_config();
    stats::snapshot snap;
    auto linked = connection(false, 7, "alice", "app", "active");
    linked.link_id = 0x2a;
    linked.application_name = "psql";
    linked.prepared_statements = 3;
    linked.remote_pid = 12345;  // a cancel key pid: not what PgBouncer shows
    linked.tls = true;
    auto waiting = connection(false, 8, "alice", "app", "waiting");
    waiting.wait_us = 3'000'042;
    auto idle = connection(false, 9, "bob", "app", "active");  // active without a server: PgBouncer says idle
    auto logging_in = connection(false, 10, "", "", "login");
    snap.clients = {linked, waiting, idle, logging_in};

    const auto d = show("clients", snap, cfg);
    ASSERT_EQ(d.rows.size(), 3U) << "clients still logging in are not listed";
    const std::vector<value> first{"C",
                                   "alice",
                                   "app",
                                   "none",
                                   "active",
                                   "192.0.2.10",
                                   "40007",
                                   "10.0.0.1",
                                   "6432",
                                   "2023-11-14 22:13:20 UTC",
                                   "2023-11-14 22:14:21 UTC",
                                   "0",
                                   "0",
                                   "0",
                                   "0x7",
                                   "0x2a",
                                   "0",
                                   "TLS",
                                   "psql",
                                   "3",
                                   "7"};
    EXPECT_EQ(d.rows[0], first);
    EXPECT_EQ(d.at(1, "state"), "waiting");
    EXPECT_EQ(d.at(1, "wait"), "3");
    EXPECT_EQ(d.at(1, "wait_us"), "42");
    EXPECT_EQ(d.at(1, "link"), "");
    EXPECT_EQ(d.at(1, "tls"), "");
    EXPECT_EQ(d.at(2, "state"), "idle");
}

TEST(admin_show, servers_rows_show_backend_pid_and_new_for_logging_in) {
    const auto cfg = test_config();
    stats::snapshot snap;
    auto active = connection(true, 42, "alice", "app", "active");
    active.link_id = 7;
    active.remote_pid = 31337;
    active.close_needed = true;
    auto connecting = connection(true, 43, "alice", "app", "login");
    auto used = connection(true, 44, "alice", "app", "used");
    snap.servers = {active, connecting, used};

    const auto d = show("servers", snap, cfg);
    ASSERT_EQ(d.rows.size(), 3U);
    EXPECT_EQ(column_values(d, "type"), (std::vector<std::string>{"S", "S", "S"}));
    EXPECT_EQ(column_values(d, "state"), (std::vector<std::string>{"active", "new", "used"}));
    EXPECT_EQ(d.at(0, "remote_pid"), "31337");
    EXPECT_EQ(d.at(0, "close_needed"), "1");
    EXPECT_EQ(d.at(0, "ptr"), "0x2a");
    EXPECT_EQ(d.at(0, "link"), "0x7");
    EXPECT_EQ(d.at(0, "id"), "42");
    EXPECT_EQ(d.at(0, "addr"), "10.0.0.5");
    EXPECT_EQ(d.at(0, "port"), "5433");
}

TEST(admin_show, connections_without_user_or_database_show_placeholders) {
    const auto cfg = test_config();
    stats::snapshot snap;
    snap.servers = {connection(true, 1, "", "", "idle")};
    const auto d = show("servers", snap, cfg);
    EXPECT_EQ(d.at(0, "user"), "(nouser)");
    EXPECT_EQ(d.at(0, "database"), "(nodb)");
}

TEST(admin_show, sockets_list_connections_by_pgbouncer_list_with_zero_buffer_positions) {
    const auto cfg = test_config();
    stats::snapshot snap;
    snap.clients = {connection(false, 1, "alice", "app", "login"), connection(false, 2, "alice", "app", "active"),
                    connection(false, 3, "alice", "app", "waiting"), connection(false, 4, "alice", "app", "idle")};
    snap.servers = {connection(true, 5, "alice", "app", "idle"), connection(true, 6, "alice", "app", "login"),
                    connection(true, 7, "alice", "app", "tested")};
    const auto d = show("sockets", snap, cfg);
    EXPECT_EQ(column_values(d, "state"), (std::vector<std::string>{"cl_active", "cl_waiting", "cl_active", "sv_idle",
                                                                   "sv_login", "sv_tested", "cl_login"}));
    for (std::string_view extra :
         {"recv_pos", "pkt_pos", "pkt_remain", "send_pos", "send_remain", "pkt_avail", "send_avail"})
        EXPECT_EQ(d.at(0, extra), "0");
    EXPECT_TRUE(show("active_sockets", snap, cfg).rows.empty());
}

TEST(admin_show, databases_rows_combine_snapshot_and_configuration) {
    const auto cfg = test_config();
    stats::snapshot snap;
    auto other = database("other", "db3.example", 5432, "other");
    other.current_connections = 4;
    other.current_client_connections = 9;
    other.paused = true;
    auto app = database("app", "db1.example,db2.example", 5433, "appdb");
    app.force_user = "svc";
    app.pool_size = 25;
    app.min_pool_size = 2;
    app.reserve_pool_size = 3;
    app.max_connections = 100;
    app.max_client_connections = 1000;
    app.disabled = true;
    auto socket_db = database("local", "", 5432, "local");
    socket_db.pool_mode = "transaction";  // not in the configuration: the snapshot's word is used
    snap.databases = {other, app, socket_db};

    const auto d = show("databases", snap, cfg);
    ASSERT_EQ(d.rows.size(), 3U);
    const std::vector<value> app_row{"app",     "db1.example,db2.example",
                                     "5433",    "appdb",
                                     "svc",     "25",
                                     "2",       "3",
                                     "3600",    std::nullopt,
                                     "disable", "100",
                                     "0",       "1000",
                                     "0",       "0",
                                     "1"};
    EXPECT_EQ(d.rows[0], app_row);
    EXPECT_EQ(d.at(1, "name"), "local");
    EXPECT_EQ(d.at(1, "host"), std::nullopt) << "no host: Unix socket, NULL as in PgBouncer";
    EXPECT_EQ(d.at(1, "force_user"), std::nullopt);
    EXPECT_EQ(d.at(1, "pool_mode"), "transaction");
    EXPECT_EQ(d.at(2, "name"), "other");
    EXPECT_EQ(d.at(2, "server_lifetime"), "120");
    EXPECT_EQ(d.at(2, "pool_mode"), "session");
    EXPECT_EQ(d.at(2, "load_balance_hosts"), std::nullopt);
    EXPECT_EQ(d.at(2, "current_connections"), "4");
    EXPECT_EQ(d.at(2, "current_client_connections"), "9");
    EXPECT_EQ(d.at(2, "paused"), "1");
    EXPECT_EQ(d.at(2, "disabled"), "0");
}

TEST(admin_show, users_rows_show_overrides_limits_and_connection_counts) {
    const auto cfg = test_config();
    stats::snapshot snap;
    auto app_alice = pool("app", "alice");
    app_alice.sv_active = 2;
    app_alice.sv_idle = 3;
    app_alice.sv_login = 1;
    auto other_alice = pool("other", "alice");
    other_alice.sv_used = 4;
    snap.pools = {app_alice, other_alice, pool("app", "dave")};
    snap.clients = {connection(false, 1, "alice", "app", "active"), connection(false, 2, "alice", "other", "idle"),
                    connection(false, 3, "erin", "app", "waiting")};

    const auto d = show("users", snap, cfg);
    EXPECT_EQ(column_values(d, "name"), (std::vector<std::string>{"alice", "bob", "dave", "erin"}));
    const std::vector<value> alice{"alice", "        5", "        2", "statement", "7", "10", "50", "2"};
    EXPECT_EQ(d.rows[0], alice);
    const std::vector<value> bob{"bob", "", "", std::nullopt, "40", "0", "9", "0"};
    EXPECT_EQ(d.rows[1], bob);
    EXPECT_EQ(d.at(3, "current_client_connections"), "1");
}

TEST(admin_show, config_rows_are_sorted_with_value_default_and_changeable) {
    const auto cfg = test_config();
    const auto d = show("config", stats::snapshot{}, cfg);
    const auto keys = column_values(d, "key");
    EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
    EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size()) << "no duplicate keys";
    EXPECT_EQ(keys.size(), config::all_settings().size() + 1) << "every setting plus conffile";

    const auto row_of = [&](std::string_view key) -> std::size_t {
        const auto it = std::find(keys.begin(), keys.end(), key);
        EXPECT_NE(it, keys.end()) << key;
        return static_cast<std::size_t>(it - keys.begin());
    };
    const auto max_client_conn = row_of("max_client_conn");
    EXPECT_EQ(d.at(max_client_conn, "value"), "500");
    EXPECT_EQ(d.at(max_client_conn, "default"), "100");
    EXPECT_EQ(d.at(max_client_conn, "changeable"), "yes");
    const auto listen_port = row_of("listen_port");
    EXPECT_EQ(d.at(listen_port, "value"), "6432");
    EXPECT_EQ(d.at(listen_port, "changeable"), "no");
    EXPECT_EQ(d.at(row_of("admin_users"), "value"), "root");
    EXPECT_EQ(d.at(row_of("max_user_connections"), "value"), "40");
    EXPECT_EQ(d.at(row_of("conffile"), "value"), "/etc/sluice/sluice.ini");
    EXPECT_EQ(d.at(row_of("conffile"), "default"), std::nullopt);
}

TEST(admin_show, lists_rows_follow_pgbouncer_1_25) {
    const auto cfg = test_config();
    stats::snapshot snap;
    snap.databases = {database("app", "h", 5432, "app"), database("other", "h", 5432, "other")};
    snap.pools = {pool("app", "alice"), pool("app", "carol"), pool("other", "alice")};
    snap.clients = {connection(false, 1, "alice", "app", "active"), connection(false, 2, "", "", "login")};
    snap.servers = {connection(true, 3, "alice", "app", "idle")};
    snap.total_clients = 2;
    const auto d = show("lists", snap, cfg);
    // PgBouncer 1.25 (admin.c) also sends peers and peer_pools, which usage.md does not list.
    EXPECT_EQ(column_values(d, "list"),
              (std::vector<std::string>{"databases", "users", "peers", "pools", "peer_pools", "free_clients",
                                        "used_clients", "login_clients", "free_servers", "used_servers", "dns_names",
                                        "dns_zones", "dns_queries", "dns_pending"}));
    EXPECT_EQ(column_values(d, "items"),
              (std::vector<std::string>{"2", "3", "0", "3", "0", "0", "2", "1", "0", "1", "0", "0", "0", "0"}));
}

TEST(admin_show, state_reports_the_pause_mode) {
    const auto cfg = test_config();
    const stats::snapshot empty;
    const auto values = [&](pause_state s) { return column_values(show("state", empty, cfg, {nullptr, s}), "value"); };
    EXPECT_EQ(column_values(show("state", empty, cfg), "key"),
              (std::vector<std::string>{"active", "paused", "suspended"}));
    EXPECT_EQ(values(pause_state::active), (std::vector<std::string>{"yes", "no", "no"}));
    EXPECT_EQ(values(pause_state::paused), (std::vector<std::string>{"no", "yes", "no"}));
    EXPECT_EQ(values(pause_state::suspended), (std::vector<std::string>{"no", "no", "yes"}));
}

TEST(admin_show, version_starts_with_pgbouncer_and_a_version_exporters_parse) {
    const auto d = show("version", stats::snapshot{}, test_config());
    ASSERT_EQ(d.rows.size(), 1U);
    const auto v = d.at(0, "version").value_or("");
    EXPECT_EQ(v, version_string);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(v, m, std::regex(R"(^PgBouncer (\d+)\.(\d+)\.(\d+))")));
    EXPECT_EQ(m[1], "1");
    EXPECT_EQ(m[2], "25");
    EXPECT_EQ(m[3], "0");
    EXPECT_NE(v.find("Sluice"), std::string::npos);
}

TEST(admin_show, empty_subjects_send_columns_and_no_rows) {
    const auto cfg = test_config();
    stats::snapshot busy;
    busy.pools = {pool("app", "alice")};
    busy.clients = {connection(false, 1, "alice", "app", "active")};
    for (std::string_view subject : {"mem", "dns_hosts", "dns_zones", "fds", "peers", "peer_pools"})
        EXPECT_TRUE(show(subject, busy, cfg).rows.empty()) << subject;
}

TEST(admin_show, help_is_a_notice_listing_the_commands) {
    std::string out;
    ASSERT_TRUE(render_show("help", stats::snapshot{}, test_config(), out));
    const auto d = decode(out);
    EXPECT_EQ(d.message_types, "NC");
    EXPECT_EQ(d.tag, "SHOW");
    EXPECT_EQ(d.notice_severity, "NOTICE");
    EXPECT_EQ(d.notice_code, "00000");
    EXPECT_EQ(d.notice_message, "Console usage");
    for (std::string_view item : {"SHOW HELP|CONFIG|DATABASES", "KILL_CLIENT <client_id>", "WAIT_CLOSE [<db>]",
                                  "SHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS", "SET key = arg"})
        EXPECT_NE(d.notice_detail.find(item), std::string::npos) << item;
}

TEST(admin_show, driver_parameters_get_pgbouncer_fixed_answers) {
    const auto cfg = test_config();
    const auto d = show("client_encoding", stats::snapshot{}, cfg);
    ASSERT_EQ(d.columns.size(), 1U);
    EXPECT_EQ(d.columns[0].name, "client_encoding");
    EXPECT_EQ(d.columns[0].type_oid, text_t);
    EXPECT_EQ(d.at(0, "client_encoding"), "UTF-8");
    EXPECT_EQ(show("DateStyle", stats::snapshot{}, cfg).at(0, "datestyle"), "ISO");
    EXPECT_EQ(show("timezone", stats::snapshot{}, cfg).at(0, "timezone"), "GMT");
    EXPECT_EQ(show("standard_conforming_strings", stats::snapshot{}, cfg).at(0, "standard_conforming_strings"), "on");
}

}  // namespace
}  // namespace sluice::admin
