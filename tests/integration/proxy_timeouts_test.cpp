// Timeouts that fire on clients: what fires, and what the client then receives.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <thread>

#include "proxy_test_support.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::test::proxy {
namespace {

using namespace std::chrono_literals;

// Waits, without sending anything (which would count as activity), until Sluice closes the connection; returns what
// libpq read before the close. libpq hands an ErrorResponse that arrives while idle to the notice receiver.
std::string wait_for_close(PGconn* conn) {
    std::string received;
    PQsetNoticeReceiver(
        conn,
        [](void* arg, const PGresult* res) {
            static_cast<std::string*>(arg)
                ->append(PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "")
                .append(" ")
                .append(PQresultErrorMessage(res));
        },
        &received);
    const bool closed = wait_until(
        [&] {
            pollfd p{PQsocket(conn), POLLIN, 0};
            if (::poll(&p, 1, 0) <= 0)
                return false;
            // Readable: the FATAL and then EOF. PQisBusy parses what was read (the FATAL goes to the notice
            // receiver); PQconsumeInput fails once the peer is gone.
            const int still_open = PQconsumeInput(conn);
            (void)PQisBusy(conn);
            return still_open == 0;
        },
        10s);
    return closed ? received + PQerrorMessage(conn) : std::string("still open");
}

// A transaction that inserted a row into `table` (created if needed), left open.
void begin_with_an_insert(PGconn* conn, const std::string& table) {
    run(conn, "CREATE TABLE IF NOT EXISTS " + table + " (x int)");
    run(conn, "BEGIN");
    run(conn, "INSERT INTO " + table + " VALUES (1)");
}

// A client closed by a timeout mid-transaction must leave nothing committed: another client finds `table` empty.
void expect_rolled_back(const pooler& sluice, const std::string& table) {
    auto other = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(other.get(), "SELECT count(*) FROM " + table), "0");
}

TEST(proxy_timeouts, query_timeout_cancels_the_query_with_57014_and_keeps_the_connection_usable) {
    pooler_options options;
    options.pool_size = 1;
    options.settings = {{"query_timeout", "0.5"}};
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());
    const auto pid = scalar(conn.get(), "SELECT pg_backend_pid()");
    const auto started = std::chrono::steady_clock::now();
    auto res = exec(conn.get(), "SELECT pg_sleep(10)");
    EXPECT_EQ(sqlstate(res.get()), "57014");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    // Same connection, and (one server) the same backend: the server came back clean and was kept.
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
    EXPECT_EQ(scalar(conn.get(), "SELECT pg_backend_pid()"), pid);
}

TEST(proxy_timeouts, idle_transaction_timeout_closes_the_client_with_25P03_and_rolls_back) {
    pooler_options options;
    options.settings = {{"idle_transaction_timeout", "0.5"}};
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());
    begin_with_an_insert(conn.get(), "idle_tx_probe");
    const auto error = wait_for_close(conn.get());
    EXPECT_NE(error.find("25P03"), std::string::npos) << error;
    EXPECT_NE(error.find("idle transaction timeout"), std::string::npos) << error;
    expect_rolled_back(sluice, "idle_tx_probe");
}

TEST(proxy_timeouts, client_idle_timeout_closes_an_idle_client) {
    pooler_options options;
    options.settings = {{"client_idle_timeout", "0.5"}};
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
    const auto error = wait_for_close(conn.get());
    EXPECT_NE(error.find("57P05"), std::string::npos) << error;
    EXPECT_NE(error.find("client_idle_timeout"), std::string::npos) << error;
}

TEST(proxy_timeouts, query_wait_timeout_fails_a_queued_client_with_08P01_query_wait_timeout) {
    pooler_options options;
    options.pool_size = 1;
    options.settings = {{"query_wait_timeout", "0.5"}};
    pooler sluice(options);
    auto holder = connect_or_throw(sluice.conninfo());
    run(holder.get(), "BEGIN");
    EXPECT_EQ(scalar(holder.get(), "SELECT 1"), "1");
    auto waiter = connect_or_throw(sluice.conninfo());
    ASSERT_EQ(PQsendQuery(waiter.get(), "SELECT 2"), 1);
    // The first result carries the FATAL's fields; libpq adds one for the closed connection after it.
    auto res = result(PQgetResult(waiter.get()));
    EXPECT_EQ(sqlstate(res.get()), "08P01");
    EXPECT_STREQ(PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY), "query_wait_timeout");
    EXPECT_STREQ(PQresultErrorField(res.get(), PG_DIAG_SEVERITY_NONLOCALIZED), "FATAL");
    (void)last_result(waiter.get());
    EXPECT_EQ(PQstatus(waiter.get()), CONNECTION_BAD);  // PgBouncer's FATAL: the connection is closed
    run(holder.get(), "COMMIT");
    EXPECT_EQ(scalar(holder.get(), "SELECT 3"), "3");
}

TEST(proxy_timeouts, server_idle_timeout_closes_an_idle_server) {
    pooler_options options;
    options.settings = {{"server_idle_timeout", "0.5"}};
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());
    const auto pid = scalar(conn.get(), "SELECT pg_backend_pid()");
    EXPECT_TRUE(wait_until(
        [&] { return postgres().query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid) == "0"; },
        10s));
    EXPECT_NE(sluice.log().find("closing because: idle_timeout"), std::string::npos);
    // The client carries on with a new server.
    EXPECT_NE(scalar(conn.get(), "SELECT pg_backend_pid()"), pid);
}

TEST(proxy_timeouts, server_connect_timeout_fails_the_client_with_08006_when_the_server_never_answers) {
    // A socket that listens but never accepts: the TCP connect succeeds, the login never gets an answer.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(fd, 16), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    pooler_options options;
    options.databases = "sluice_test = host=127.0.0.1 port=" + std::to_string(ntohs(addr.sin_port)) + "\n";
    options.settings = {{"server_connect_timeout", "0.5"}, {"auth_type", "trust"}};
    pooler sluice(options);
    const auto started = std::chrono::steady_clock::now();
    const auto refused = login_refusal(sluice.port());
    ::close(fd);
    EXPECT_EQ(refused.sqlstate, "08006") << refused.message;
    EXPECT_EQ(refused.message, "server_connect_timeout expired connecting to the server");
    EXPECT_TRUE(refused.closed);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 8s);
}

TEST(proxy_shutdown, sigterm_tells_idle_clients_57P01_and_the_process_exits_cleanly) {
    pooler sluice;
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
    sluice.process().send_signal(SIGTERM);
    const auto error = wait_for_close(conn.get());
    EXPECT_NE(error.find("57P01"), std::string::npos) << error;
    EXPECT_EQ(sluice.process().wait_exit(std::chrono::milliseconds(10'000)), std::optional<int>(0));
}

TEST(proxy_timeouts, transaction_timeout_closes_a_client_mid_query_with_25P04_and_rolls_back) {
    pooler_options options;
    options.settings = {{"transaction_timeout", "0.5"}};
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());
    begin_with_an_insert(conn.get(), "tx_timeout_probe");
    // Unlike idle_transaction_timeout, a running query counts: the transaction as a whole is over its time.
    const auto started = std::chrono::steady_clock::now();
    ASSERT_EQ(PQsendQuery(conn.get(), "SELECT pg_sleep(10)"), 1);
    auto res = result(PQgetResult(conn.get()));
    EXPECT_EQ(sqlstate(res.get()), "25P04");
    EXPECT_STREQ(PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY), "transaction timeout");
    EXPECT_STREQ(PQresultErrorField(res.get(), PG_DIAG_SEVERITY_NONLOCALIZED), "FATAL");
    (void)last_result(conn.get());
    EXPECT_EQ(PQstatus(conn.get()), CONNECTION_BAD);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    expect_rolled_back(sluice, "tx_timeout_probe");
}

TEST(proxy_timeouts, transaction_timeout_counts_each_transaction_not_the_connection) {
    pooler_options options;
    options.settings = {{"transaction_timeout", "0.5"}};
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());
    // Well over the timeout in total, each transaction far under it.
    for (int i = 0; i < 8; ++i) {
        run(conn.get(), "BEGIN");
        EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
        run(conn.get(), "COMMIT");
        std::this_thread::sleep_for(150ms);
    }
    EXPECT_EQ(scalar(conn.get(), "SELECT 2"), "2");
}

}  // namespace
}  // namespace sluice::test::proxy
