// Faults around a client's server: the backend killed mid-transaction, the client vanishing mid-transaction or
// mid-query. The client concerned sees an error or nothing at all; every other client keeps a clean, working pool.
#include <sys/socket.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "free_port.hpp"
#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

constexpr int pool_size = 5;

// Opens a transaction on `pool_size` clients at once (so they hold every server the pool may have) and runs `check`
// on each inside it; then commits them all and returns their backends. Fails when the pool cannot give out pool_size
// servers any more.
template <class Check>
std::set<std::string> on_every_server(const pooler& sluice, Check check) {
    std::vector<connection> clients;
    for (int i = 0; i < pool_size; ++i) {
        clients.push_back(connect_or_throw(sluice.conninfo()));
        run(clients.back().get(), "BEGIN");
    }
    std::set<std::string> backends;
    for (auto& conn : clients) {
        backends.insert(scalar(conn.get(), "SELECT pg_backend_pid()"));
        check(conn.get());
    }
    EXPECT_EQ(backends.size(), static_cast<std::size_t>(pool_size));
    for (auto& conn : clients) {
        run(conn.get(), "COMMIT");
    }
    return backends;
}

// Closes the client's socket under libpq without a Terminate message, as a crashed client would.
void drop_connection(connection& conn) {
    ::shutdown(PQsocket(conn.get()), SHUT_RDWR);
    conn.reset();
}

class proxy_faults : public ::testing::Test {
  protected:
    void SetUp() override {
        run(connect_or_throw(sluice_.conninfo()).get(),
            "DROP TABLE IF EXISTS proxy_faults_rows; CREATE TABLE proxy_faults_rows (v int)");
    }
    void TearDown() override { postgres().execute("DROP TABLE IF EXISTS proxy_faults_rows"); }

    pooler sluice_;
};

TEST_F(proxy_faults, killed_backend_fails_only_its_client_and_the_pool_reconnects) {
    auto victim = connect_or_throw(sluice_.conninfo());
    auto bystander = connect_or_throw(sluice_.conninfo());
    run(bystander.get(), "BEGIN");
    const std::string bystander_backend = scalar(bystander.get(), "SELECT pg_backend_pid()");
    run(victim.get(), "BEGIN");
    run(victim.get(), "INSERT INTO proxy_faults_rows VALUES (1)");
    const std::string backend = scalar(victim.get(), "SELECT pg_backend_pid()");

    ASSERT_EQ(postgres().query_scalar("SELECT pg_terminate_backend(" + backend + ")"), "t");
    // Sluice relays the server's FATAL as it arrives (libpq would fold it into a lost-connection result with no
    // SQLSTATE), then closes the client.
    auto victim_socket = raw_connection::borrow(victim.get());
    const auto refused = read_refusal(victim_socket);
    EXPECT_EQ(refused.severity, "FATAL");
    EXPECT_THAT(refused.sqlstate, ::testing::AnyOf("57P01", "08006")) << refused.message;
    EXPECT_TRUE(refused.closed);

    // The other client's transaction is untouched.
    EXPECT_EQ(scalar(bystander.get(), "SELECT pg_backend_pid()"), bystander_backend);
    run(bystander.get(), "COMMIT");
    // The killed server's place in the pool is free again: pool_size simultaneous transactions get servers.
    on_every_server(sluice_,
                    [&](PGconn* conn) { EXPECT_EQ(scalar(conn, "SELECT count(*) FROM proxy_faults_rows"), "0"); });
    auto fresh = connect_or_throw(sluice_.conninfo());
    run(fresh.get(), "BEGIN");
    run(fresh.get(), "INSERT INTO proxy_faults_rows VALUES (2)");
    run(fresh.get(), "COMMIT");
    EXPECT_EQ(postgres().query_scalar("SELECT string_agg(v::text, ',') FROM proxy_faults_rows"), "2");
}

TEST_F(proxy_faults, killed_idle_server_is_not_handed_to_the_next_client) {
    const auto backends = on_every_server(sluice_, [](PGconn*) {});
    ASSERT_FALSE(backends.empty());
    // Every server of the pool is idle now; kill one behind Sluice's back.
    const std::string killed = *backends.begin();
    ASSERT_EQ(postgres().query_scalar("SELECT pg_terminate_backend(" + killed + ")"), "t");
    ASSERT_TRUE(wait_until(
        [&] { return postgres().query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + killed) == "0"; },
        5s));
    for (int i = 0; i < 2 * pool_size; ++i) {
        auto conn = connect_or_throw(sluice_.conninfo());
        EXPECT_EQ(scalar(conn.get(), "SELECT 'fine'"), "fine") << "client " << i;
    }
    EXPECT_EQ(on_every_server(sluice_, [](PGconn*) {}).count(killed), 0U);
}

TEST_F(proxy_faults, client_vanishing_mid_transaction_leaves_no_open_transaction_behind) {
    auto vanishing = connect_or_throw(sluice_.conninfo());
    run(vanishing.get(), "BEGIN");
    run(vanishing.get(), "INSERT INTO proxy_faults_rows VALUES (1)");
    drop_connection(vanishing);

    // A server still in that transaction would show the row and an assigned transaction id to whoever got it.
    for (int round = 0; round < 3; ++round) {
        on_every_server(sluice_, [](PGconn* conn) {
            EXPECT_EQ(scalar(conn, "SELECT count(*) FROM proxy_faults_rows"), "0");
            EXPECT_EQ(scalar(conn, "SELECT txid_current_if_assigned()"), "NULL");
        });
    }
    // Outside a transaction, every statement is its own transaction: now() moves.
    auto conn = connect_or_throw(sluice_.conninfo());
    const std::string first = scalar(conn.get(), "SELECT now()::text");
    EXPECT_TRUE(wait_until([&] { return scalar(conn.get(), "SELECT now()::text") != first; }, 5s));
    EXPECT_TRUE(wait_until(
        [] {
            return postgres().query_scalar(
                       "SELECT count(*) FROM pg_stat_activity WHERE usename = 'sluice_test' AND state LIKE 'idle in "
                       "transaction%'") == "0";
        },
        5s));
    EXPECT_EQ(postgres().query_scalar("SELECT count(*) FROM proxy_faults_rows"), "0");
}

TEST_F(proxy_faults, client_sending_terminate_mid_transaction_has_its_transaction_rolled_back) {
    auto leaving = connect_or_throw(sluice_.conninfo());
    run(leaving.get(), "BEGIN");
    run(leaving.get(), "INSERT INTO proxy_faults_rows VALUES (1)");
    leaving.reset();  // PQfinish sends Terminate
    on_every_server(sluice_, [](PGconn* conn) {
        EXPECT_EQ(scalar(conn, "SELECT count(*) FROM proxy_faults_rows"), "0");
        EXPECT_EQ(scalar(conn, "SELECT txid_current_if_assigned()"), "NULL");
    });
    EXPECT_EQ(postgres().query_scalar("SELECT count(*) FROM proxy_faults_rows"), "0");
}

TEST_F(proxy_faults, client_vanishing_mid_query_does_not_leave_a_dirty_server_in_the_pool) {
    auto vanishing = connect_or_throw(sluice_.conninfo());
    ASSERT_TRUE(PQsendQuery(vanishing.get(), "SELECT 'stale', pg_sleep(5)"));
    ASSERT_TRUE(wait_until([] { return active_backends_running("SELECT 'stale', pg_sleep(5)") == 1; }, 10s));
    drop_connection(vanishing);

    const auto begin = std::chrono::steady_clock::now();
    for (int round = 0; round < 2; ++round) {
        on_every_server(sluice_, [](PGconn* conn) { EXPECT_EQ(scalar(conn, "SELECT 'fresh'"), "fresh"); });
    }
    for (int i = 0; i < 2 * pool_size; ++i) {
        auto conn = connect_or_throw(sluice_.conninfo());
        EXPECT_EQ(scalar(conn.get(), "SELECT 'fresh ' || " + std::to_string(i)), "fresh " + std::to_string(i));
    }
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 3s) << "a client waited for the abandoned query";
}

TEST_F(proxy_faults, client_vanishing_while_receiving_a_large_result_does_not_leave_a_dirty_server) {
    auto vanishing = connect_or_throw(sluice_.conninfo());
    ASSERT_TRUE(PQsendQuery(vanishing.get(), "SELECT repeat('v', 1000) FROM generate_series(1, 200000)"));
    ASSERT_TRUE(PQsetSingleRowMode(vanishing.get()));
    // Take a few rows, then vanish with most of the result still on its way.
    for (int i = 0; i < 10; ++i) {
        const result row(PQgetResult(vanishing.get()));
        ASSERT_EQ(PQresultStatus(row.get()), PGRES_SINGLE_TUPLE);
    }
    drop_connection(vanishing);
    for (int round = 0; round < 2; ++round) {
        on_every_server(sluice_, [](PGconn* conn) { EXPECT_EQ(scalar(conn, "SELECT 'clean'"), "clean"); });
    }
}

TEST_F(proxy_faults, client_vanishing_while_waiting_for_a_server_loses_no_server) {
    std::vector<connection> holders;
    for (int i = 0; i < pool_size; ++i) {
        holders.push_back(connect_or_throw(sluice_.conninfo()));
        run(holders.back().get(), "BEGIN");
    }
    // Several clients queue for a server (on both workers), then vanish.
    std::vector<connection> waiters;
    for (int i = 0; i < 4; ++i) {
        waiters.push_back(connect_or_throw(sluice_.conninfo()));
        ASSERT_TRUE(PQsendQuery(waiters.back().get(), "SELECT 'never ran'"));
        ASSERT_EQ(PQflush(waiters.back().get()), 0);
    }
    for (auto& conn : waiters) {
        drop_connection(conn);
    }
    for (auto& conn : holders) {
        run(conn.get(), "COMMIT");
    }
    for (int round = 0; round < 2; ++round) {
        on_every_server(sluice_, [](PGconn* conn) { EXPECT_EQ(scalar(conn, "SELECT 'served'"), "served"); });
    }
}

TEST(proxy_faults_server_down, login_to_a_database_whose_server_is_down_fails_fast_and_others_keep_working) {
    pooler_options options;
    options.databases = database_entry("sluice_test") +
                        "proxy_down = host=127.0.0.1 port=" + std::to_string(free_port()) + " dbname=sluice_test\n";
    pooler sluice(options);
    for (int attempt = 0; attempt < 2; ++attempt) {
        const auto begin = std::chrono::steady_clock::now();
        auto conn = connect(sluice.conninfo("", "sluice_test", "proxy_down"));
        EXPECT_EQ(PQstatus(conn.get()), CONNECTION_BAD);
        EXPECT_LT(std::chrono::steady_clock::now() - begin, 4s) << "attempt " << attempt;
    }
    EXPECT_TRUE(serves_queries(sluice));
}

}  // namespace
}  // namespace sluice::test::proxy
