#include "admin/show.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "admin/command.hpp"
#include "sluice/protocol/error.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::admin {

namespace {

using protocol::column;
using cell = std::optional<std::string>;

constexpr std::uint32_t oid_bytea = 17;
constexpr std::int64_t usec_per_sec = 1'000'000;

// PgBouncer's RowDescription type letters (pktbuf.c): 's' text, 'i' int4, 'q' int8, 'N' numeric, 'b' bytea,
// 'T' a timestamp sent as text.
constexpr column text(std::string_view name) {
    return {name, protocol::oid_text, -1};
}
constexpr column int4(std::string_view name) {
    return {name, protocol::oid_int4, 4};
}
constexpr column int8(std::string_view name) {
    return {name, protocol::oid_int8, 8};
}
constexpr column numeric(std::string_view name) {
    return {name, protocol::oid_numeric, -1};
}
constexpr column bytea(std::string_view name) {
    return {name, oid_bytea, -1};
}

// --- Column lists: PgBouncer 1.25 admin.c and stats.c, in wire order. ---

constexpr std::array pools_columns{
    text("database"),
    text("user"),
    int4("cl_active"),
    int4("cl_waiting"),
    int4("cl_active_cancel_req"),
    int4("cl_waiting_cancel_req"),
    int4("sv_active"),
    int4("sv_active_cancel"),
    int4("sv_being_canceled"),
    int4("sv_idle"),
    int4("sv_used"),
    int4("sv_tested"),
    int4("sv_login"),
    int4("maxwait"),
    int4("maxwait_us"),
    text("pool_mode"),
    text("load_balance_hosts"),
};

constexpr std::array stats_columns{
    text("database"),
    numeric("total_server_assignment_count"),
    numeric("total_xact_count"),
    numeric("total_query_count"),
    numeric("total_received"),
    numeric("total_sent"),
    numeric("total_xact_time"),
    numeric("total_query_time"),
    numeric("total_wait_time"),
    numeric("total_client_parse_count"),
    numeric("total_server_parse_count"),
    numeric("total_bind_count"),
    numeric("avg_server_assignment_count"),
    numeric("avg_xact_count"),
    numeric("avg_query_count"),
    numeric("avg_recv"),
    numeric("avg_sent"),
    numeric("avg_xact_time"),
    numeric("avg_query_time"),
    numeric("avg_wait_time"),
    numeric("avg_client_parse_count"),
    numeric("avg_server_parse_count"),
    numeric("avg_bind_count"),
};

constexpr std::array stats_totals_columns{
    text("database"),
    numeric("server_assignment_count"),
    numeric("xact_count"),
    numeric("query_count"),
    numeric("bytes_received"),
    numeric("bytes_sent"),
    numeric("xact_time"),
    numeric("query_time"),
    numeric("wait_time"),
    numeric("client_parse_count"),
    numeric("server_parse_count"),
    numeric("bind_count"),
};

// PgBouncer really names the last three avg_*, unlike the others.
constexpr std::array stats_averages_columns{
    text("database"),
    numeric("server_assignment_count"),
    numeric("xact_count"),
    numeric("query_count"),
    numeric("bytes_received"),
    numeric("bytes_sent"),
    numeric("xact_time"),
    numeric("query_time"),
    numeric("wait_time"),
    numeric("avg_client_parse_count"),
    numeric("avg_server_parse_count"),
    numeric("avg_bind_count"),
};

constexpr std::array totals_columns{text("name"), numeric("value")};

// SHOW CLIENTS / SERVERS use the first 21; SHOW SOCKETS / ACTIVE_SOCKETS all 28.
constexpr std::array socket_columns{
    text("type"),         text("user"),       text("database"),   text("replication"),      text("state"),
    text("addr"),         int4("port"),       text("local_addr"), int4("local_port"),       text("connect_time"),
    text("request_time"), int4("wait"),       int4("wait_us"),    int4("close_needed"),     text("ptr"),
    text("link"),         int4("remote_pid"), text("tls"),        text("application_name"), int4("prepared_statements"),
    int4("id"),           int4("recv_pos"),   int4("pkt_pos"),    int4("pkt_remain"),       int4("send_pos"),
    int4("send_remain"),  int4("pkt_avail"),  int4("send_avail"),
};
constexpr std::size_t socket_standard_width = 21;

constexpr std::array databases_columns{
    text("name"),
    text("host"),
    int4("port"),
    text("database"),
    text("force_user"),
    int4("pool_size"),
    int4("min_pool_size"),
    int4("reserve_pool_size"),
    int4("server_lifetime"),
    text("pool_mode"),
    text("load_balance_hosts"),
    int4("max_connections"),
    int4("current_connections"),
    int4("max_client_connections"),
    int4("current_client_connections"),
    int4("paused"),
    int4("disabled"),
};

// pool_size and reserve_pool_size are text in PgBouncer: "%9d" when the user overrides them, else empty.
constexpr std::array users_columns{
    text("name"),
    text("pool_size"),
    text("reserve_pool_size"),
    text("pool_mode"),
    int4("max_user_connections"),
    int4("current_connections"),
    int4("max_user_client_connections"),
    int4("current_client_connections"),
};

constexpr std::array config_columns{text("key"), text("value"), text("default"), text("changeable")};
constexpr std::array lists_columns{text("list"), int4("items")};
constexpr std::array version_columns{text("version")};
constexpr std::array mem_columns{text("name"), int4("size"), int4("used"), int4("free"), int4("memtotal")};
constexpr std::array dns_hosts_columns{text("hostname"), int8("ttl"), text("addrs")};
constexpr std::array dns_zones_columns{text("zonename"), int8("serial"), int4("count")};
constexpr std::array fds_columns{
    int4("fd"),        text("task"),     text("user"),     text("database"),          text("addr"),
    int4("port"),      int8("cancel"),   int4("link"),     text("client_encoding"),   text("std_strings"),
    text("datestyle"), text("timezone"), text("password"), bytea("scram_client_key"), bytea("scram_server_key"),
};
constexpr std::array peers_columns{int4("peer_id"), text("host"), int4("port"), int4("pool_size")};
constexpr std::array peer_pools_columns{
    int4("peer_id"),  int4("cl_active_cancel_req"), int4("cl_waiting_cancel_req"), int4("sv_active_cancel"),
    int4("sv_login"),
};
constexpr std::array state_columns{text("key"), text("value")};

// The values PgBouncer's fake_show answers for parameters drivers ask about.
struct fake_parameter {
    std::string_view name;
    std::string_view value;
};
constexpr std::array<fake_parameter, 6> fake_parameters{{
    {"client_encoding", "UTF-8"},
    {"default_transaction_isolation", "read committed"},
    {"standard_conforming_strings", "on"},
    {"datestyle", "ISO"},
    {"timezone", "GMT"},
    {"extra_float_digits", "2"},
}};

constexpr std::string_view help_detail =
    "\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION"
    "\n\tSHOW PEERS|PEER_POOLS"
    "\n\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE"
    "\n\tSHOW DNS_HOSTS|DNS_ZONES"
    "\n\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS"
    "\n\tSET key = arg"
    "\n\tRELOAD"
    "\n\tPAUSE [<db>]"
    "\n\tRESUME [<db>]"
    "\n\tDISABLE <db>"
    "\n\tENABLE <db>"
    "\n\tRECONNECT [<db>]"
    "\n\tKILL [<db>]"
    "\n\tKILL_CLIENT <client_id>"
    "\n\tSUSPEND"
    "\n\tSHUTDOWN"
    "\n\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS"
    "\n\tWAIT_CLOSE [<db>]";

// --- Cells ---

cell number(std::int64_t v) {
    return std::to_string(v);
}
cell unsigned_number(std::uint64_t v) {
    return std::to_string(v);
}
cell str(std::string_view v) {
    return std::string(v);
}
cell text_or_null(std::string_view v) {
    return v.empty() ? cell{} : str(v);
}
cell flag(bool v) {
    return number(v ? 1 : 0);
}

// "YYYY-MM-DD HH:MM:SS UTC", PgBouncer's format_time_s layout.
std::string timestamp(std::int64_t unix_us) {
    using namespace std::chrono;
    const sys_time<microseconds> when{microseconds{unix_us}};
    const auto day = floor<days>(when);
    const year_month_day ymd{day};
    const hh_mm_ss hms{floor<seconds>(when - day)};
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02d:%02d:%02d UTC", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                  static_cast<int>(hms.seconds().count()));
    return buf;
}

// PgBouncer prints object addresses with %p; Sluice prints the connection id the same way.
std::string pointer_text(std::uint64_t id) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(id));
    return buf;
}

// PgBouncer's "%9d".
std::string padded9(int v) {
    auto s = std::to_string(v);
    if (s.size() < 9)
        s.insert(0, 9 - s.size(), ' ');
    return s;
}

// Writes one result set: RowDescription now, DataRows as added, CommandComplete "SHOW" on finish().
class result_set {
  public:
    result_set(std::string& out, std::span<const column> columns) : out_(out), width_(columns.size()) {
        protocol::write_row_description(out_, columns);
    }
    void row(const std::vector<cell>& values) {
        assert(values.size() == width_);
        protocol::write_data_row(out_, values);
    }
    void finish() { protocol::write_command_complete(out_, "SHOW"); }

  private:
    std::string& out_;
    std::size_t width_;
};

void empty_result(std::string& out, std::span<const column> columns) {
    result_set rs(out, columns);
    rs.finish();
}

// --- Lookups shared by several subjects ---

// load_balance_hosts is shown only when the database has several hosts (PgBouncer: host contains a comma).
cell load_balance_hosts_of(const config::config& cfg, const stats::snapshot& snap, std::string_view database) {
    bool several_hosts = false;
    const auto row = std::find_if(snap.databases.begin(), snap.databases.end(),
                                  [&](const stats::database_row& d) { return d.name == database; });
    const auto* entry = config::find_database(cfg, database);
    if (row != snap.databases.end()) {
        several_hosts = row->host.find(',') != std::string::npos;
    } else if (entry != nullptr) {
        several_hosts = entry->hosts.size() > 1;
    }
    if (!several_hosts)
        return {};
    const auto mode = entry != nullptr && entry->load_balance_hosts ? *entry->load_balance_hosts
                                                                    : config::load_balance_hosts::round_robin;
    return str(config::to_string(mode));
}

int server_count(const stats::pool_row& p) {
    return p.sv_active + p.sv_active_cancel + p.sv_being_canceled + p.sv_idle + p.sv_used + p.sv_tested + p.sv_login;
}

template <class T, class Less>
std::vector<const T*> sorted(const std::vector<T>& items, Less less) {
    std::vector<const T*> out;
    out.reserve(items.size());
    for (const auto& item : items)
        out.push_back(&item);
    std::stable_sort(out.begin(), out.end(), [&](const T* a, const T* b) { return less(*a, *b); });
    return out;
}

std::vector<const stats::pool_row*> sorted_pools(const stats::snapshot& snap) {
    return sorted(snap.pools, [](const stats::pool_row& a, const stats::pool_row& b) {
        return std::tie(a.database, a.user) < std::tie(b.database, b.user);
    });
}

// Every user name Sluice knows of: [users] entries and the users of pools and clients. PgBouncer's list also holds
// auth_file users, which the configuration does not carry.
std::set<std::string> known_users(const stats::snapshot& snap, const config::config& cfg) {
    std::set<std::string> users;
    for (const auto& u : cfg.users)
        users.insert(u.name);
    for (const auto& p : snap.pools)
        users.insert(p.user);
    for (const auto& c : snap.clients) {
        if (!c.user.empty())
            users.insert(c.user);
    }
    return users;
}

// --- Statistics ---

void add_totals(stats::pool_totals& into, const stats::pool_totals& from) {
#define SLUICE_ADMIN_ADD_TOTAL(name, help) into.name += from.name;
    SLUICE_POOL_COUNTERS(SLUICE_ADMIN_ADD_TOTAL)
#undef SLUICE_ADMIN_ADD_TOTAL
}

// now - before per counter; a counter that went down belongs to a recreated pool and counts from zero.
stats::pool_totals difference(const stats::pool_totals& now, const stats::pool_totals* before) {
    stats::pool_totals d = now;
    if (before == nullptr)
        return d;
#define SLUICE_ADMIN_SUB_TOTAL(name, help) d.name = now.name >= before->name ? now.name - before->name : now.name;
    SLUICE_POOL_COUNTERS(SLUICE_ADMIN_SUB_TOTAL)
#undef SLUICE_ADMIN_SUB_TOTAL
    return d;
}

// The fields of PgBouncer's PgStats, averaged as its calc_average does: counts and bytes per second, times per
// transaction / query / server assignment.
struct averages {
    std::uint64_t server_assignment_count = 0;
    std::uint64_t xact_count = 0;
    std::uint64_t query_count = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t xact_time = 0;
    std::uint64_t query_time = 0;
    std::uint64_t wait_time = 0;
    std::uint64_t client_parse_count = 0;
    std::uint64_t server_parse_count = 0;
    std::uint64_t bind_count = 0;
};

std::uint64_t per_second(std::uint64_t delta, std::int64_t period_us) {
    if (period_us <= 0)
        return 0;
    __extension__ typedef unsigned __int128 wide;  // exact delta * 10^6 without overflow
    const wide v = static_cast<wide>(delta) * static_cast<wide>(usec_per_sec) / static_cast<wide>(period_us);
    return v > std::numeric_limits<std::uint64_t>::max() ? std::numeric_limits<std::uint64_t>::max()
                                                         : static_cast<std::uint64_t>(v);
}

std::uint64_t ratio(std::uint64_t total, std::uint64_t count) {
    return count == 0 ? 0 : total / count;
}

averages average(const stats::pool_totals& d, std::int64_t period_us) {
    averages a;
    a.server_assignment_count = per_second(d.server_assignment_count, period_us);
    a.xact_count = per_second(d.xact_count, period_us);
    a.query_count = per_second(d.query_count, period_us);
    a.bytes_received = per_second(d.bytes_received, period_us);
    a.bytes_sent = per_second(d.bytes_sent, period_us);
    if (period_us > 0) {
        a.xact_time = ratio(d.xact_time_us, d.xact_count);
        a.query_time = ratio(d.query_time_us, d.query_count);
        a.wait_time = ratio(d.wait_time_us, d.server_assignment_count);
    }
    a.client_parse_count = per_second(d.client_parse_count, period_us);
    a.server_parse_count = per_second(d.server_parse_count, period_us);
    a.bind_count = per_second(d.bind_count, period_us);
    return a;
}

struct database_stats {
    std::string name;
    stats::pool_totals total;  // since start
    stats::pool_totals delta;  // over the averaging period
};

struct stats_view {
    std::vector<database_stats> databases;  // sorted by name
    std::int64_t period_us = 0;
};

stats_view collect_stats(const stats::snapshot& snap, const stats::snapshot* previous) {
    std::map<std::pair<std::string_view, std::string_view>, const stats::pool_totals*> before;
    if (previous != nullptr) {
        for (const auto& p : previous->pools)
            before.emplace(std::pair<std::string_view, std::string_view>(p.database, p.user), &p.totals);
    }
    std::map<std::string_view, database_stats> by_name;
    for (const auto& p : snap.pools) {
        auto& db = by_name[p.database];
        db.name = p.database;
        add_totals(db.total, p.totals);
        const stats::pool_totals* old = nullptr;
        if (previous != nullptr) {
            const auto it = before.find({p.database, p.user});
            static const stats::pool_totals zero{};
            old = it != before.end() ? it->second : &zero;
        }
        add_totals(db.delta, difference(p.totals, old));
    }
    stats_view view;
    view.period_us =
        previous != nullptr ? snap.taken_unix_us - previous->taken_unix_us : snap.taken_unix_us - snap.started_unix_us;
    for (auto& [name, db] : by_name)
        view.databases.push_back(std::move(db));
    return view;
}

std::vector<cell> totals_cells(const stats::pool_totals& t) {
    return {unsigned_number(t.server_assignment_count),
            unsigned_number(t.xact_count),
            unsigned_number(t.query_count),
            unsigned_number(t.bytes_received),
            unsigned_number(t.bytes_sent),
            unsigned_number(t.xact_time_us),
            unsigned_number(t.query_time_us),
            unsigned_number(t.wait_time_us),
            unsigned_number(t.client_parse_count),
            unsigned_number(t.server_parse_count),
            unsigned_number(t.bind_count)};
}

std::vector<cell> averages_cells(const averages& a) {
    return {unsigned_number(a.server_assignment_count),
            unsigned_number(a.xact_count),
            unsigned_number(a.query_count),
            unsigned_number(a.bytes_received),
            unsigned_number(a.bytes_sent),
            unsigned_number(a.xact_time),
            unsigned_number(a.query_time),
            unsigned_number(a.wait_time),
            unsigned_number(a.client_parse_count),
            unsigned_number(a.server_parse_count),
            unsigned_number(a.bind_count)};
}

enum class stats_part { both, totals, averages };

void show_stats(std::string& out, const stats::snapshot& snap, const show_context& ctx, stats_part part) {
    const auto view = collect_stats(snap, ctx.previous);
    const std::span<const column> columns = part == stats_part::both ? std::span<const column>(stats_columns)
                                            : part == stats_part::totals
                                                ? std::span<const column>(stats_totals_columns)
                                                : std::span<const column>(stats_averages_columns);
    result_set rs(out, columns);
    for (const auto& db : view.databases) {
        std::vector<cell> row{str(db.name)};
        if (part != stats_part::averages) {
            auto t = totals_cells(db.total);
            row.insert(row.end(), t.begin(), t.end());
        }
        if (part != stats_part::totals) {
            auto a = averages_cells(average(db.delta, view.period_us));
            row.insert(row.end(), a.begin(), a.end());
        }
        rs.row(row);
    }
    rs.finish();
}

void show_totals(std::string& out, const stats::snapshot& snap, const show_context& ctx) {
    const auto view = collect_stats(snap, ctx.previous);
    stats::pool_totals total;
    stats::pool_totals delta;
    for (const auto& db : view.databases) {
        add_totals(total, db.total);
        add_totals(delta, db.delta);
    }
    static constexpr std::array<std::string_view, 11> names{
        "server_assignment_count",
        "xact_count",
        "query_count",
        "client_bytes",
        "server_bytes",
        "xact_time",
        "query_time",
        "wait_time",
        "ps_client_parse_count",
        "ps_server_parse_count",
        "ps_bind_count",
    };
    const auto totals = totals_cells(total);
    const auto avgs = averages_cells(average(delta, view.period_us));
    result_set rs(out, totals_columns);
    for (std::size_t i = 0; i < names.size(); ++i)
        rs.row({"total_" + std::string(names[i]), totals[i]});
    for (std::size_t i = 0; i < names.size(); ++i)
        rs.row({"avg_" + std::string(names[i]), avgs[i]});
    rs.finish();
}

// --- Other subjects ---

void show_pools(std::string& out, const stats::snapshot& snap, const config::config& cfg) {
    result_set rs(out, pools_columns);
    for (const auto* p : sorted_pools(snap)) {
        rs.row({str(p->database), str(p->user), number(p->cl_active), number(p->cl_waiting),
                number(p->cl_active_cancel_req), number(p->cl_waiting_cancel_req), number(p->sv_active),
                number(p->sv_active_cancel), number(p->sv_being_canceled), number(p->sv_idle), number(p->sv_used),
                number(p->sv_tested), number(p->sv_login), number(p->maxwait_us / usec_per_sec),
                number(p->maxwait_us % usec_per_sec), text_or_null(p->pool_mode),
                load_balance_hosts_of(cfg, snap, p->database)});
    }
    rs.finish();
}

std::vector<cell> socket_cells(const stats::connection_row& c, std::string_view state) {
    return {str(c.is_server ? "S" : "C"),
            str(c.user.empty() ? "(nouser)" : c.user),
            str(c.database.empty() ? "(nodb)" : c.database),
            str("none"),  // replication connections are not pooled by Sluice
            str(state),
            str(c.addr),
            number(c.port),
            str(c.local_addr),
            number(c.local_port),
            timestamp(c.connect_time_unix_us),
            timestamp(c.request_time_unix_us),
            number(c.wait_us / usec_per_sec),
            number(c.wait_us % usec_per_sec),
            flag(c.close_needed),
            pointer_text(c.id),
            c.link_id != 0 ? pointer_text(c.link_id) : std::string(),
            number(c.is_server ? static_cast<std::int32_t>(c.remote_pid) : 0),
            str(c.tls ? "TLS" : ""),
            str(c.application_name),
            number(c.prepared_statements),
            unsigned_number(c.id)};
}

// SHOW CLIENTS / SERVERS state words: PgBouncer lists a client without a server as "idle" and a server still
// logging in as "new"; clients still logging in are not listed at all.
std::optional<std::string_view> listed_state(const stats::connection_row& c) {
    if (c.is_server)
        return c.state == "login" ? std::string_view("new") : std::string_view(c.state);
    if (c.state == "login")
        return std::nullopt;
    if (c.state == "active" && c.link_id == 0)
        return "idle";
    return std::string_view(c.state);
}

void show_connections(std::string& out, const std::vector<stats::connection_row>& rows) {
    result_set rs(out, std::span<const column>(socket_columns).first(socket_standard_width));
    for (const auto& c : rows) {
        if (const auto state = listed_state(c))
            rs.row(socket_cells(c, *state));
    }
    rs.finish();
}

// SHOW SOCKETS state words: the PgBouncer list a connection is in.
std::optional<std::string_view> socket_list_name(const stats::connection_row& c) {
    if (c.is_server) {
        if (c.state == "active")
            return "sv_active";
        if (c.state == "idle")
            return "sv_idle";
        if (c.state == "used")
            return "sv_used";
        if (c.state == "tested")
            return "sv_tested";
        if (c.state == "login" || c.state == "new")
            return "sv_login";
        return std::nullopt;
    }
    if (c.state == "active" || c.state == "idle")
        return "cl_active";
    if (c.state == "waiting")
        return "cl_waiting";
    if (c.state == "login")
        return "cl_login";
    return std::nullopt;
}

void show_sockets(std::string& out, const stats::snapshot& snap) {
    result_set rs(out, socket_columns);
    const auto emit = [&](const stats::connection_row& c, bool login_clients) {
        const auto list = socket_list_name(c);
        if (!list || (*list == "cl_login") != login_clients)
            return;
        auto row = socket_cells(c, *list);
        for (std::size_t i = socket_standard_width; i < socket_columns.size(); ++i)
            row.push_back(number(0));
        rs.row(row);
    };
    for (const auto& c : snap.clients)
        emit(c, false);
    for (const auto& s : snap.servers)
        emit(s, false);
    for (const auto& c : snap.clients)
        emit(c, true);
    rs.finish();
}

void show_databases(std::string& out, const stats::snapshot& snap, const config::config& cfg) {
    result_set rs(out, databases_columns);
    const auto rows = sorted(
        snap.databases, [](const stats::database_row& a, const stats::database_row& b) { return a.name < b.name; });
    for (const auto* d : rows) {
        const auto* entry = config::find_database(cfg, d->name);
        const auto lifetime =
            entry != nullptr && entry->server_lifetime ? *entry->server_lifetime : cfg.settings.server_lifetime;
        cell pool_mode;
        if (entry != nullptr) {
            if (entry->pool_mode)
                pool_mode = str(config::to_string(*entry->pool_mode));
        } else {
            pool_mode = text_or_null(d->pool_mode);
        }
        rs.row({str(d->name), text_or_null(d->host), number(d->port), str(d->database),
                d->force_user ? str(*d->force_user) : cell{}, number(d->pool_size), number(d->min_pool_size),
                number(d->reserve_pool_size), number(lifetime.count() / usec_per_sec), pool_mode,
                load_balance_hosts_of(cfg, snap, d->name), number(d->max_connections), number(d->current_connections),
                number(d->max_client_connections), number(d->current_client_connections), flag(d->paused),
                flag(d->disabled)});
    }
    rs.finish();
}

void show_users(std::string& out, const stats::snapshot& snap, const config::config& cfg) {
    result_set rs(out, users_columns);
    for (const auto& name : known_users(snap, cfg)) {
        const auto* entry = config::find_user(cfg, name);
        int servers = 0;
        for (const auto& p : snap.pools) {
            if (p.user == name)
                servers += server_count(p);
        }
        const auto clients = std::count_if(snap.clients.begin(), snap.clients.end(),
                                           [&](const stats::connection_row& c) { return c.user == name; });
        const bool has = entry != nullptr;
        rs.row({str(name), str(has && entry->pool_size ? padded9(*entry->pool_size) : ""),
                str(has && entry->reserve_pool_size ? padded9(*entry->reserve_pool_size) : ""),
                has && entry->pool_mode ? str(config::to_string(*entry->pool_mode)) : cell{},
                number(has && entry->max_user_connections ? *entry->max_user_connections
                                                          : cfg.settings.max_user_connections),
                number(servers),
                number(has && entry->max_user_client_connections ? *entry->max_user_client_connections
                                                                 : cfg.settings.max_user_client_connections),
                number(clients)});
    }
    rs.finish();
}

void show_config(std::string& out, const config::config& cfg) {
    struct config_row {
        std::string key;
        cell value;
        cell default_value;
        bool changeable;
    };
    std::vector<config_row> rows;
    const config::settings defaults;
    for (const auto& def : config::all_settings()) {
        rows.push_back({std::string(def.name), def.format(cfg.settings), def.format(defaults),
                        def.applies == config::applies_on::reload});
    }
    // PgBouncer also shows the configuration file it was started with.
    rows.push_back({"conffile", text_or_null(cfg.path), cell{}, true});
    std::sort(rows.begin(), rows.end(), [](const config_row& a, const config_row& b) { return a.key < b.key; });
    result_set rs(out, config_columns);
    for (const auto& r : rows)
        rs.row({r.key, r.value, r.default_value, str(r.changeable ? "yes" : "no")});
    rs.finish();
}

void show_lists(std::string& out, const stats::snapshot& snap, const config::config& cfg) {
    const auto login_clients = std::count_if(snap.clients.begin(), snap.clients.end(),
                                             [](const stats::connection_row& c) { return c.state == "login"; });
    const auto used_clients =
        std::max<std::int64_t>(snap.total_clients, static_cast<std::int64_t>(snap.clients.size()));
    // Sluice keeps no free-object caches, DNS cache or peers: those lists are empty.
    const std::array<std::pair<std::string_view, std::int64_t>, 14> lists{{
        {"databases", static_cast<std::int64_t>(snap.databases.size())},
        {"users", static_cast<std::int64_t>(known_users(snap, cfg).size())},
        {"peers", 0},
        {"pools", static_cast<std::int64_t>(snap.pools.size())},
        {"peer_pools", 0},
        {"free_clients", 0},
        {"used_clients", used_clients},
        {"login_clients", login_clients},
        {"free_servers", 0},
        {"used_servers", static_cast<std::int64_t>(snap.servers.size())},
        {"dns_names", 0},
        {"dns_zones", 0},
        {"dns_queries", 0},
        {"dns_pending", 0},
    }};
    result_set rs(out, lists_columns);
    for (const auto& [name, items] : lists)
        rs.row({str(name), number(items)});
    rs.finish();
}

void show_state(std::string& out, pause_state state) {
    result_set rs(out, state_columns);
    rs.row({str("active"), str(state == pause_state::active ? "yes" : "no")});
    rs.row({str("paused"), str(state == pause_state::paused ? "yes" : "no")});
    rs.row({str("suspended"), str(state == pause_state::suspended ? "yes" : "no")});
    rs.finish();
}

void show_version(std::string& out) {
    result_set rs(out, version_columns);
    rs.row({str(version_string)});
    rs.finish();
}

void show_help(std::string& out) {
    protocol::write_error(out, protocol::severity::notice, "00000", "Console usage", help_detail);
    protocol::write_command_complete(out, "SHOW");
}

bool show_fake_parameter(std::string& out, std::string_view subject) {
    for (const auto& p : fake_parameters) {
        if (p.name == subject) {
            const std::array columns{text(p.name)};
            result_set rs(out, columns);
            rs.row({str(p.value)});
            rs.finish();
            return true;
        }
    }
    return false;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

}  // namespace

bool render_show(std::string_view subject, const stats::snapshot& snap, const config::config& cfg, std::string& out) {
    return render_show(subject, snap, cfg, show_context{}, out);
}

bool render_show(std::string_view subject, const stats::snapshot& snap, const config::config& cfg,
                 const show_context& context, std::string& out) {
    const auto s = lower(subject);
    if (s == "pools") {
        show_pools(out, snap, cfg);
    } else if (s == "stats") {
        show_stats(out, snap, context, stats_part::both);
    } else if (s == "stats_totals") {
        show_stats(out, snap, context, stats_part::totals);
    } else if (s == "stats_averages") {
        show_stats(out, snap, context, stats_part::averages);
    } else if (s == "totals") {
        show_totals(out, snap, context);
    } else if (s == "servers") {
        show_connections(out, snap.servers);
    } else if (s == "clients") {
        show_connections(out, snap.clients);
    } else if (s == "sockets") {
        show_sockets(out, snap);
    } else if (s == "active_sockets") {
        empty_result(out, socket_columns);
    } else if (s == "databases") {
        show_databases(out, snap, cfg);
    } else if (s == "users") {
        show_users(out, snap, cfg);
    } else if (s == "config") {
        show_config(out, cfg);
    } else if (s == "lists") {
        show_lists(out, snap, cfg);
    } else if (s == "version") {
        show_version(out);
    } else if (s == "state") {
        show_state(out, context.state);
    } else if (s == "mem") {
        empty_result(out, mem_columns);
    } else if (s == "dns_hosts") {
        empty_result(out, dns_hosts_columns);
    } else if (s == "dns_zones") {
        empty_result(out, dns_zones_columns);
    } else if (s == "fds") {
        empty_result(out, fds_columns);
    } else if (s == "peers") {
        empty_result(out, peers_columns);
    } else if (s == "peer_pools") {
        empty_result(out, peer_pools_columns);
    } else if (s == "help") {
        show_help(out);
    } else {
        return show_fake_parameter(out, s);
    }
    return true;
}

}  // namespace sluice::admin
