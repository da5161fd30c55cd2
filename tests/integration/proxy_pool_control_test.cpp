// Pool control: min_pool_size, reserve pools, shared limits with their fair share, server checks, login retry, the
// waiting notice, a live RELOAD, and the admin console's KILL, RECONNECT, WAIT_CLOSE, SUSPEND, DISABLE.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <future>
#include <string>
#include <vector>

#include "free_port.hpp"
#include "proxy_test_support.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::test::proxy {
namespace {

using namespace std::chrono_literals;

// Server connections Sluice holds to the cluster as the test role (the counting connection itself excluded).
int test_role_backends() {
    return std::stoi(postgres().query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'sluice_test' AND backend_type = 'client backend' "
        "AND pid <> pg_backend_pid()"));
}

bool backend_alive(const std::string& pid) {
    return postgres().query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) == "1";
}

// A query sent now whose outcome is collected on another thread: the value of the first row, or "error <SQLSTATE>
// <message>".
class pending_query {
  public:
    pending_query(PGconn* conn, const std::string& sql) : conn_(conn) {
        if (PQsendQuery(conn, sql.c_str()) != 1)
            throw std::runtime_error(std::string("PQsendQuery: ") + PQerrorMessage(conn));
        future_ = std::async(std::launch::async, [conn] {
            auto r = last_result(conn);
            if (PQresultStatus(r.get()) == PGRES_TUPLES_OK && PQntuples(r.get()) > 0)
                return std::string(PQgetvalue(r.get(), 0, 0));
            if (PQresultStatus(r.get()) == PGRES_COMMAND_OK)
                return std::string("ok");
            return "error " + sqlstate(r.get()) + " " + (r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn));
        });
    }
    [[nodiscard]] bool done_within(std::chrono::milliseconds t) {
        return future_.wait_for(t) == std::future_status::ready;
    }
    std::string get() { return future_.get(); }

  private:
    PGconn* conn_;
    std::future<std::string> future_;
};

// Counts of SHOW POOLS for the test database, summed over users.
int show_pools_column(PGconn* admin, const char* column, std::string_view database = "sluice_test") {
    auto res = exec(admin, "SHOW POOLS");
    if (PQresultStatus(res.get()) != PGRES_TUPLES_OK)
        throw std::runtime_error(std::string("SHOW POOLS: ") + PQerrorMessage(admin));
    const int col = PQfnumber(res.get(), column);
    int total = 0;
    for (int row = 0; row < PQntuples(res.get()); ++row) {
        if (PQgetvalue(res.get(), row, 0) == database)
            total += std::stoi(PQgetvalue(res.get(), row, col));
    }
    return total;
}

pooler_options admin_options(int pool_size = 5) {
    pooler_options options;
    options.pool_size = pool_size;
    options.settings = {{"admin_users", "sluice_test"}};
    return options;
}

TEST(proxy_pool_control, min_pool_size_opens_servers_before_clients_need_them) {
    pooler_options options;
    options.settings = {{"min_pool_size", "3"}};
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());  // creates the pool
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
    EXPECT_TRUE(wait_until([] { return test_role_backends() >= 3; }, 10s)) << test_role_backends();
    EXPECT_LE(test_role_backends(), 5);
}

TEST(proxy_pool_control, reserve_pool_serves_a_client_that_waited_reserve_pool_timeout) {
    pooler_options options;
    options.pool_size = 1;
    options.settings = {{"reserve_pool_size", "1"}, {"reserve_pool_timeout", "0.3"}};
    pooler sluice(options);
    auto holder = connect_or_throw(sluice.conninfo());
    run(holder.get(), "BEGIN");
    const auto held_pid = scalar(holder.get(), "SELECT pg_backend_pid()");
    auto waiter = connect_or_throw(sluice.conninfo());
    pending_query query(waiter.get(), "SELECT pg_backend_pid()");
    // The only regular server stays in the holder's transaction: the answer comes from a reserve server.
    ASSERT_TRUE(query.done_within(10s));
    const auto pid = query.get();
    EXPECT_NE(pid, held_pid);
    EXPECT_EQ(pid.find("error"), std::string::npos) << pid;
    EXPECT_NE(sluice.log().find("reserve pool"), std::string::npos);
    run(holder.get(), "COMMIT");
}

TEST(proxy_pool_control, max_db_connections_caps_the_servers_of_a_database) {
    pooler_options options;
    options.settings = {{"max_db_connections", "1"}};
    pooler sluice(options);
    auto holder = connect_or_throw(sluice.conninfo());
    run(holder.get(), "BEGIN");
    EXPECT_EQ(scalar(holder.get(), "SELECT 1"), "1");
    auto waiter = connect_or_throw(sluice.conninfo());
    pending_query query(waiter.get(), "SELECT 2");
    EXPECT_FALSE(query.done_within(500ms));
    EXPECT_EQ(test_role_backends(), 1);
    run(holder.get(), "COMMIT");
    ASSERT_TRUE(query.done_within(10s));
    EXPECT_EQ(query.get(), "2");
}

TEST(proxy_pool_control, max_user_connections_gives_a_starved_pool_a_slot_before_a_pool_with_more) {
    pooler_options options;
    options.databases = database_entry("db_a") + database_entry("db_b");
    options.settings = {{"max_user_connections", "2"}};
    pooler sluice(options);
    // Log in first (a pool's first login borrows a server), then db_a takes both slots of the user and has a third
    // client queued behind them.
    auto a1 = connect_or_throw(sluice.conninfo({}, "sluice_test", "db_a"));
    auto a2 = connect_or_throw(sluice.conninfo({}, "sluice_test", "db_a"));
    auto a3 = connect_or_throw(sluice.conninfo({}, "sluice_test", "db_a"));
    auto b1 = connect_or_throw(sluice.conninfo({}, "sluice_test", "db_b"));
    run(a1.get(), "BEGIN");
    EXPECT_EQ(scalar(a1.get(), "SELECT 1"), "1");
    run(a2.get(), "BEGIN");
    EXPECT_EQ(scalar(a2.get(), "SELECT 1"), "1");
    pending_query a3_query(a3.get(), "SELECT 'a3'");
    ASSERT_FALSE(a3_query.done_within(300ms));
    // b1 keeps its transaction open, so that its server is not idle (an idle one would rightly go to db_a).
    pending_query b1_query(b1.get(), "BEGIN; SELECT 'b1'");
    ASSERT_FALSE(b1_query.done_within(300ms));
    // a1 finishes: db_a (2 servers) would reuse the server for a3, but db_b (0 servers) is owed the slot.
    run(a1.get(), "COMMIT");
    ASSERT_TRUE(b1_query.done_within(10s));
    EXPECT_EQ(b1_query.get(), "b1");
    EXPECT_FALSE(a3_query.done_within(200ms));
    EXPECT_LE(test_role_backends(), 2);
    run(a2.get(), "COMMIT");
    ASSERT_TRUE(a3_query.done_within(10s));
    EXPECT_EQ(a3_query.get(), "a3");
    run(b1.get(), "COMMIT");
}

TEST(proxy_pool_control, max_db_client_connections_refuses_a_client_over_the_limit_with_53300) {
    pooler_options options;
    options.settings = {{"max_db_client_connections", "2"}, {"auth_type", "trust"}};
    pooler sluice(options);
    auto first = connect_or_throw(sluice.conninfo());
    {
        auto second = connect_or_throw(sluice.conninfo());
        const auto refused = login_refusal(sluice.port());
        EXPECT_EQ(refused.sqlstate, "53300") << refused.message;
        EXPECT_EQ(refused.message, "no more connections allowed (max_db_client_connections)");
    }
    // The place comes back when a client leaves.
    EXPECT_TRUE(wait_until(
        [&] {
            auto again = connect(sluice.conninfo());
            return PQstatus(again.get()) == CONNECTION_OK;
        },
        10s));
    EXPECT_EQ(scalar(first.get(), "SELECT 1"), "1");
}

TEST(proxy_pool_control, max_user_client_connections_counts_the_clients_of_a_user_across_databases) {
    pooler_options options;
    options.databases = database_entry("db_a") + database_entry("db_b");
    options.settings = {{"max_user_client_connections", "1"}, {"auth_type", "trust"}};
    pooler sluice(options);
    auto first = connect_or_throw(sluice.conninfo({}, "sluice_test", "db_a"));
    const auto refused = login_refusal(sluice.port(), "db_b");
    EXPECT_EQ(refused.sqlstate, "53300") << refused.message;
    EXPECT_EQ(refused.message, "no more connections allowed (max_user_client_connections)");
}

// Seconds since midnight of each log line containing `what` ("2026-01-01 12:34:56.789 UTC ..." lines).
std::vector<double> log_times(const std::string& log, std::string_view what) {
    std::vector<double> out;
    for (auto at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) {
        const auto line = log.rfind('\n', at) + 1;     // npos + 1 == 0 for the first line
        const auto clock = log.substr(line + 11, 12);  // HH:MM:SS.mmm
        out.push_back(std::stoi(clock.substr(0, 2)) * 3600.0 + std::stoi(clock.substr(3, 2)) * 60.0 +
                      std::stod(clock.substr(6)));
    }
    return out;
}

TEST(proxy_pool_control, server_lifetime_jitter_spreads_the_reconnects_of_servers_opened_together) {
    pooler_options options;
    options.settings = {{"server_lifetime", "2"}, {"server_lifetime_jitter", "1.5"}};
    pooler sluice(options);
    {
        // Five servers opened at the same moment, then all idle.
        std::vector<connection> clients;
        for (int i = 0; i < 5; ++i) {
            clients.push_back(connect_or_throw(sluice.conninfo()));
            run(clients.back().get(), "BEGIN");
            EXPECT_EQ(scalar(clients.back().get(), "SELECT 1"), "1");
        }
        for (auto& c : clients)
            run(c.get(), "COMMIT");
    }
    ASSERT_TRUE(wait_until([&] { return log_times(sluice.log(), "closing because: lifetime").size() >= 5; }, 15s))
        << sluice.log();
    const auto times = log_times(sluice.log(), "closing because: lifetime");
    const auto [first, last] = std::minmax_element(times.begin(), times.end());
    // Without jitter all five close within a tick or two; with +/-1.5 s five draws within 0.3 s are very unlikely
    // (about 1 in 2000).
    EXPECT_GT(*last - *first, 0.3) << sluice.log();
}

TEST(proxy_pool_control, server_check_query_failure_replaces_the_server_and_the_client_is_served) {
    postgres().execute(
        "CREATE TABLE IF NOT EXISTS sluice_check_flag (fail boolean); DELETE FROM sluice_check_flag;"
        "INSERT INTO sluice_check_flag VALUES (false);"
        "CREATE OR REPLACE FUNCTION sluice_check() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
        "IF (SELECT fail FROM sluice_check_flag) THEN RAISE EXCEPTION 'check refused'; END IF; RETURN 1; END $$;");
    pooler_options options;
    options.pool_size = 1;
    options.settings = {{"server_check_query", "SELECT sluice_check()"}, {"server_check_delay", "0"}};
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());
    const auto first = scalar(conn.get(), "SELECT pg_backend_pid()");
    EXPECT_EQ(scalar(conn.get(), "SELECT pg_backend_pid()"), first);  // the check passes: same server
    postgres().execute("UPDATE sluice_check_flag SET fail = true");
    const auto second = scalar(conn.get(), "SELECT pg_backend_pid()");
    EXPECT_NE(second, first);
    EXPECT_NE(sluice.log().find("server_check_query failed"), std::string::npos);
    postgres().execute("UPDATE sluice_check_flag SET fail = false");
}

TEST(proxy_pool_control, server_login_retry_fails_new_clients_at_once_after_a_failed_login) {
    pooler_options options;
    options.databases = "sluice_test = host=127.0.0.1 port=" + std::to_string(free_port()) + " dbname=sluice_test\n";
    options.settings = {{"server_login_retry", "30"}, {"auth_type", "trust"}};
    pooler sluice(options);
    const auto first = login_refusal(sluice.port());
    EXPECT_EQ(first.sqlstate, "08006") << first.message;
    EXPECT_NE(first.message.find("could not connect"), std::string::npos) << first.message;
    const auto started = std::chrono::steady_clock::now();
    const auto second = login_refusal(sluice.port());
    EXPECT_EQ(second.sqlstate, "08P01") << second.message;
    EXPECT_TRUE(second.message.starts_with("server login has been failing, cached error: could not connect"))
        << second.message;
    EXPECT_TRUE(second.message.ends_with("(server_login_retry)")) << second.message;
    EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
    // One login was tried: one server warning (the clients' own lines start with C-).
    const auto log = sluice.log();
    std::size_t server_failures = 0;
    for (auto at = log.find(": could not connect"); at != std::string::npos;
         at = log.find(": could not connect", at + 1)) {
        const auto line_start = log.rfind('\n', at);
        if (log.substr(line_start + 1, at - line_start).find(" S-") != std::string::npos)
            ++server_failures;
    }
    EXPECT_EQ(server_failures, 1u) << log;
}

TEST(proxy_pool_control, query_wait_notify_tells_a_queued_client_once_and_it_keeps_waiting) {
    pooler_options options;
    options.pool_size = 1;
    options.settings = {{"query_wait_notify", "0.3"}};
    pooler sluice(options);
    auto holder = connect_or_throw(sluice.conninfo());
    run(holder.get(), "BEGIN");
    EXPECT_EQ(scalar(holder.get(), "SELECT 1"), "1");
    auto waiter = connect_or_throw(sluice.conninfo());
    std::vector<std::string> notices;
    std::mutex mutex;
    struct sink {
        std::vector<std::string>* notices;
        std::mutex* mutex;
    } target{&notices, &mutex};
    PQsetNoticeReceiver(
        waiter.get(),
        [](void* arg, const PGresult* res) {
            auto* t = static_cast<sink*>(arg);
            std::lock_guard lock(*t->mutex);
            const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
            t->notices->push_back(std::string(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) + " | " +
                                  (detail ? detail : ""));
        },
        &target);
    pending_query query(waiter.get(), "SELECT 'served'");
    EXPECT_TRUE(wait_until(
        [&] {
            std::lock_guard lock(mutex);
            return !notices.empty();
        },
        10s));
    EXPECT_FALSE(query.done_within(500ms));  // still waiting after the notice
    run(holder.get(), "COMMIT");
    ASSERT_TRUE(query.done_within(10s));
    EXPECT_EQ(query.get(), "served");
    std::lock_guard lock(mutex);
    ASSERT_EQ(notices.size(), 1u);
    EXPECT_NE(notices[0].find("No server connection available in postgres backend, client being queued"),
              std::string::npos)
        << notices[0];
    EXPECT_NE(notices[0].find("pool sluice_test/sluice_test: position 1"), std::string::npos) << notices[0];
}

TEST(proxy_pool_control, a_waiting_client_that_disconnects_leaves_the_queue_at_once) {
    pooler sluice(admin_options(1));
    auto admin = connect_or_throw(sluice.conninfo({}, "sluice_test", "pgbouncer"));
    auto holder = connect_or_throw(sluice.conninfo());
    run(holder.get(), "BEGIN");
    EXPECT_EQ(scalar(holder.get(), "SELECT 1"), "1");
    {
        auto waiter = connect_or_throw(sluice.conninfo());
        ASSERT_EQ(PQsendQuery(waiter.get(), "SELECT 2"), 1);
        ASSERT_TRUE(wait_until([&] { return show_pools_column(admin.get(), "cl_waiting") == 1; }, 10s));
    }  // PQfinish: the socket closes while the client waits
    EXPECT_TRUE(wait_until([&] { return show_pools_column(admin.get(), "cl_waiting") == 0; }, 5s));
    run(holder.get(), "COMMIT");
    EXPECT_EQ(scalar(holder.get(), "SELECT 3"), "3");
}

// --- RELOAD ---

TEST(proxy_reload, a_bigger_pool_serves_waiting_clients_at_once) {
    pooler_options options;
    options.pool_size = 1;
    pooler sluice(options);
    auto holder = connect_or_throw(sluice.conninfo());
    run(holder.get(), "BEGIN");
    EXPECT_EQ(scalar(holder.get(), "SELECT 1"), "1");
    auto waiter = connect_or_throw(sluice.conninfo());
    pending_query query(waiter.get(), "SELECT 'served'");
    ASSERT_FALSE(query.done_within(300ms));
    options.pool_size = 2;
    sluice.process().write_config(pooler_config(options));
    sluice.process().send_signal(SIGHUP);
    ASSERT_TRUE(query.done_within(10s));  // the holder still holds the first server
    EXPECT_EQ(query.get(), "served");
    run(holder.get(), "COMMIT");
}

TEST(proxy_reload, a_smaller_pool_closes_its_idle_surplus) {
    pooler_options options;
    options.pool_size = 3;
    pooler sluice(options);
    {
        std::vector<connection> clients;
        for (int i = 0; i < 3; ++i) {
            clients.push_back(connect_or_throw(sluice.conninfo()));
            run(clients.back().get(), "BEGIN");
            EXPECT_EQ(scalar(clients.back().get(), "SELECT 1"), "1");
        }
        for (auto& c : clients)
            run(c.get(), "COMMIT");
    }
    ASSERT_EQ(test_role_backends(), 3);
    options.pool_size = 1;
    sluice.process().write_config(pooler_config(options));
    sluice.process().send_signal(SIGHUP);
    EXPECT_TRUE(wait_until([] { return test_role_backends() <= 1; }, 10s)) << test_role_backends();
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
}

TEST(proxy_reload, servers_with_changed_connection_settings_are_replaced_after_their_transaction) {
    postgres().execute("CREATE TABLE IF NOT EXISTS reload_probe (x int)");
    pooler_options options;
    options.pool_size = 1;
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());
    run(conn.get(), "BEGIN");
    const auto old_pid = scalar(conn.get(), "SELECT pg_backend_pid()");
    options.databases =
        "sluice_test = host=localhost port=" + std::to_string(postgres().port()) + " dbname=sluice_test\n";
    sluice.process().write_config(pooler_config(options));
    sluice.process().send_signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return sluice.log().find("configuration reloaded") != std::string::npos; }, 10s));
    // The transaction goes on, on its server.
    run(conn.get(), "INSERT INTO reload_probe VALUES (1)");
    EXPECT_EQ(scalar(conn.get(), "SELECT pg_backend_pid()"), old_pid);
    run(conn.get(), "COMMIT");
    // The next one gets a server connected with the new settings.
    EXPECT_NE(scalar(conn.get(), "SELECT pg_backend_pid()"), old_pid);
    EXPECT_TRUE(wait_until([&] { return !backend_alive(old_pid); }, 10s));
}

TEST(proxy_reload, an_invalid_file_is_rejected_whole_with_file_and_line_and_the_old_one_stays) {
    pooler_options options;
    options.pool_size = 1;
    pooler sluice(options);
    auto text = pooler_config(options);
    text = set_pgbouncer_settings(text, {{"default_pool_size", "4"}, {"listen_backlog", "abc"}});
    sluice.process().write_config(text);
    sluice.process().send_signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return sluice.log().find("reload rejected") != std::string::npos; }, 10s));
    const auto log = sluice.log();
    EXPECT_NE(log.find("sluice.ini:"), std::string::npos) << log;
    EXPECT_NE(log.find("listen_backlog"), std::string::npos) << log;
    // The old pool size (1) still applies: a second transaction waits.
    auto holder = connect_or_throw(sluice.conninfo());
    run(holder.get(), "BEGIN");
    EXPECT_EQ(scalar(holder.get(), "SELECT 1"), "1");
    auto waiter = connect_or_throw(sluice.conninfo());
    pending_query query(waiter.get(), "SELECT 2");
    EXPECT_FALSE(query.done_within(500ms));
    run(holder.get(), "COMMIT");
    ASSERT_TRUE(query.done_within(10s));
    EXPECT_EQ(query.get(), "2");
}

// --- Admin console ---

TEST(proxy_admin_control, kill_drops_the_database_clients_and_servers_and_new_ones_wait_for_resume) {
    pooler sluice(admin_options());
    auto admin = connect_or_throw(sluice.conninfo({}, "sluice_test", "pgbouncer"));
    auto victim = connect_or_throw(sluice.conninfo());
    const auto pid = scalar(victim.get(), "SELECT pg_backend_pid()");
    run(admin.get(), "KILL sluice_test");
    auto res = exec(victim.get(), "SELECT 1");
    EXPECT_NE(PQresultStatus(res.get()), PGRES_TUPLES_OK);
    EXPECT_NE(std::string(PQerrorMessage(victim.get())).find("database removed"), std::string::npos)
        << PQerrorMessage(victim.get());
    EXPECT_TRUE(wait_until([&] { return !backend_alive(pid); }, 10s));
    auto later = connect_or_throw(sluice.conninfo());
    pending_query query(later.get(), "SELECT 'after resume'");
    EXPECT_FALSE(query.done_within(500ms));
    run(admin.get(), "RESUME sluice_test");
    ASSERT_TRUE(query.done_within(10s));
    EXPECT_EQ(query.get(), "after resume");
}

TEST(proxy_admin_control, reconnect_replaces_servers_and_wait_close_returns_once_they_are_gone) {
    pooler sluice(admin_options(1));
    auto admin = connect_or_throw(sluice.conninfo({}, "sluice_test", "pgbouncer"));
    auto conn = connect_or_throw(sluice.conninfo());
    run(conn.get(), "BEGIN");
    const auto pid = scalar(conn.get(), "SELECT pg_backend_pid()");
    run(admin.get(), "RECONNECT sluice_test");
    auto admin2 = connect_or_throw(sluice.conninfo({}, "sluice_test", "pgbouncer"));
    pending_query wait_close(admin2.get(), "WAIT_CLOSE sluice_test");
    EXPECT_FALSE(wait_close.done_within(300ms));  // the server is still in a transaction
    EXPECT_EQ(scalar(conn.get(), "SELECT pg_backend_pid()"), pid);
    run(conn.get(), "COMMIT");
    ASSERT_TRUE(wait_close.done_within(10s));
    EXPECT_EQ(wait_close.get(), "ok");
    EXPECT_TRUE(wait_until([&] { return !backend_alive(pid); }, 10s));
    EXPECT_NE(scalar(conn.get(), "SELECT pg_backend_pid()"), pid);
}

TEST(proxy_admin_control, suspend_holds_new_transactions_and_resume_releases_them) {
    pooler sluice(admin_options());
    auto admin = connect_or_throw(sluice.conninfo({}, "sluice_test", "pgbouncer"));
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
    run(admin.get(), "SUSPEND");
    auto state = exec(admin.get(), "SHOW STATE");
    ASSERT_EQ(PQresultStatus(state.get()), PGRES_TUPLES_OK);
    bool suspended = false;
    for (int i = 0; i < PQntuples(state.get()); ++i)
        suspended |= std::string(PQgetvalue(state.get(), i, 0)) == "suspended" &&
                     std::string(PQgetvalue(state.get(), i, 1)) == "yes";
    EXPECT_TRUE(suspended);
    pending_query query(conn.get(), "SELECT 'resumed'");
    EXPECT_FALSE(query.done_within(500ms));
    run(admin.get(), "RESUME");
    ASSERT_TRUE(query.done_within(10s));
    EXPECT_EQ(query.get(), "resumed");
}

TEST(proxy_admin_control, disable_refuses_new_logins_and_enable_allows_them_again) {
    auto options = admin_options();
    options.settings.emplace_back("auth_type", "trust");
    pooler sluice(options);
    auto admin = connect_or_throw(sluice.conninfo({}, "sluice_test", "pgbouncer"));
    auto existing = connect_or_throw(sluice.conninfo());
    run(admin.get(), "DISABLE sluice_test");
    const auto refused = login_refusal(sluice.port());
    EXPECT_EQ(refused.sqlstate, "57P03") << refused.message;
    EXPECT_EQ(refused.message, "database \"sluice_test\" does not allow connections (DISABLE)");
    EXPECT_EQ(scalar(existing.get(), "SELECT 1"), "1");  // connected clients carry on
    run(admin.get(), "ENABLE sluice_test");
    auto again = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(again.get(), "SELECT 2"), "2");
}

}  // namespace
}  // namespace sluice::test::proxy
