// Timeouts that fire on clients: what fires, and what the client then receives.
#include <gtest/gtest.h>

#include <poll.h>

#include <chrono>
#include <csignal>
#include <optional>

#include "proxy_test_support.hpp"

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
    run(conn.get(), "CREATE TABLE IF NOT EXISTS idle_tx_probe (x int)");
    run(conn.get(), "BEGIN");
    run(conn.get(), "INSERT INTO idle_tx_probe VALUES (1)");
    const auto error = wait_for_close(conn.get());
    EXPECT_NE(error.find("25P03"), std::string::npos) << error;
    EXPECT_NE(error.find("idle transaction timeout"), std::string::npos) << error;
    auto other = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(other.get(), "SELECT count(*) FROM idle_tx_probe"), "0");
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

TEST(proxy_shutdown, sigterm_tells_idle_clients_57P01_and_the_process_exits_cleanly) {
    pooler sluice;
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
    sluice.process().send_signal(SIGTERM);
    const auto error = wait_for_close(conn.get());
    EXPECT_NE(error.find("57P01"), std::string::npos) << error;
    EXPECT_EQ(sluice.process().wait_exit(std::chrono::milliseconds(10'000)), std::optional<int>(0));
}

}  // namespace
}  // namespace sluice::test::proxy
