// Query cancellation through Sluice: a CancelRequest with the key Sluice gave a client reaches that client's server
// and no other.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

// Sends a CancelRequest for `conn` the way libpq does; true when it was delivered.
bool cancel(PGconn* conn) {
    PGcancel* handle = PQgetCancel(conn);
    char error[256] = {};
    const bool sent = PQcancel(handle, error, sizeof error) == 1;
    PQfreeCancel(handle);
    EXPECT_TRUE(sent) << error;
    return sent;
}

class proxy_cancel : public ::testing::Test {
  protected:
    pooler sluice_;
};

TEST_F(proxy_cancel, cancel_stops_the_clients_query_and_not_anothers) {
    auto victim = connect_or_throw(sluice_.conninfo());
    auto bystander = connect_or_throw(sluice_.conninfo());
    ASSERT_TRUE(PQsendQuery(victim.get(), "SELECT pg_sleep(10)"));
    ASSERT_TRUE(PQsendQuery(bystander.get(), "SELECT pg_sleep(1)"));
    ASSERT_TRUE(wait_until(
        [] {
            return active_backends_running("SELECT pg_sleep(10)") == 1 &&
                   active_backends_running("SELECT pg_sleep(1)") == 1;
        },
        10s));

    const auto begin = std::chrono::steady_clock::now();
    ASSERT_TRUE(cancel(victim.get()));
    const auto cancelled = last_result(victim.get());
    const auto elapsed = std::chrono::steady_clock::now() - begin;
    EXPECT_EQ(PQresultStatus(cancelled.get()), PGRES_FATAL_ERROR);
    EXPECT_EQ(sqlstate(cancelled.get()), "57014") << PQerrorMessage(victim.get());
    EXPECT_LT(elapsed, 1s);

    const auto completed = last_result(bystander.get());
    EXPECT_EQ(PQresultStatus(completed.get()), PGRES_TUPLES_OK) << PQerrorMessage(bystander.get());

    EXPECT_EQ(scalar(victim.get(), "SELECT 'victim usable'"), "victim usable");
    EXPECT_EQ(scalar(bystander.get(), "SELECT 'bystander usable'"), "bystander usable");
}

TEST_F(proxy_cancel, cancel_inside_a_transaction_fails_it_on_the_same_server) {
    auto conn = connect_or_throw(sluice_.conninfo());
    run(conn.get(), "BEGIN");
    ASSERT_TRUE(PQsendQuery(conn.get(), "SELECT pg_sleep(10)"));
    ASSERT_TRUE(wait_until([] { return active_backends_running("SELECT pg_sleep(10)") == 1; }, 10s));
    ASSERT_TRUE(cancel(conn.get()));
    EXPECT_EQ(sqlstate(last_result(conn.get()).get()), "57014");
    EXPECT_EQ(PQtransactionStatus(conn.get()), PQTRANS_INERROR);
    EXPECT_EQ(sqlstate(exec(conn.get(), "SELECT 1").get()), "25P02");
    run(conn.get(), "ROLLBACK");
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
}

TEST_F(proxy_cancel, cancel_of_a_client_on_the_unix_socket_arrives_over_it) {
    auto conn = connect_or_throw(sluice_.unix_conninfo());
    ASSERT_TRUE(PQsendQuery(conn.get(), "SELECT pg_sleep(10)"));
    ASSERT_TRUE(wait_until([] { return active_backends_running("SELECT pg_sleep(10)") == 1; }, 10s));
    const auto begin = std::chrono::steady_clock::now();
    ASSERT_TRUE(cancel(conn.get()));
    EXPECT_EQ(sqlstate(last_result(conn.get()).get()), "57014");
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s);
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
}

// With one server, an idle client's old cancel key must not reach the query another client now runs on the server
// it used before.
TEST(proxy_cancel_single_server, cancel_for_an_idle_client_does_not_reach_the_next_user_of_its_server) {
    pooler_options one_server;
    one_server.pool_size = 1;
    pooler sluice(one_server);
    auto idle = connect_or_throw(sluice.conninfo());
    auto busy = connect_or_throw(sluice.conninfo());
    const std::string backend = scalar(idle.get(), "SELECT pg_backend_pid()");
    ASSERT_TRUE(PQsendQuery(busy.get(), "SELECT pg_backend_pid(), pg_sleep(1)"));
    ASSERT_TRUE(wait_until([] { return active_backends_running("SELECT pg_backend_pid(), pg_sleep(1)") == 1; }, 10s));
    ASSERT_TRUE(cancel(idle.get()));
    const auto res = last_result(busy.get());
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(busy.get());
    EXPECT_EQ(PQgetvalue(res.get(), 0, 0), backend) << "the two clients did not share the server";
}

// A cancel that Sluice forwards just as the client's query ends must not land on the query the next client runs on
// that server. One server shared by a client whose short queries are cancelled over and over and a bystander: the
// bystander's queries must never be cancelled.
TEST(proxy_cancel_single_server, cancels_racing_the_end_of_a_query_never_reach_the_next_client) {
    pooler_options one_server;
    one_server.pool_size = 1;
    pooler sluice(one_server);
    auto victim = connect_or_throw(sluice.conninfo());
    auto bystander = connect_or_throw(sluice.conninfo());
    std::unique_ptr<PGcancel, decltype(&PQfreeCancel)> victim_cancel(PQgetCancel(victim.get()), &PQfreeCancel);

    std::atomic<bool> stopping{false};
    std::atomic<int> completed{0};
    std::atomic<int> cancelled{0};
    std::atomic<int> victim_queries{0};
    {
        std::vector<std::jthread> threads;
        threads.emplace_back([&] {
            while (!stopping) {
                const auto res = exec(bystander.get(), "SELECT pg_sleep(0.002)");
                ++(sqlstate(res.get()) == "57014" ? cancelled : completed);
            }
        });
        threads.emplace_back([&] {
            while (!stopping) {
                (void)exec(victim.get(), "SELECT 1");
                ++victim_queries;
            }
        });
        threads.emplace_back([&] {
            char error[256];
            while (!stopping) {
                (void)PQcancel(victim_cancel.get(), error, sizeof error);
            }
        });
        EXPECT_TRUE(wait_until([&] { return cancelled > 0 || (completed >= 300 && victim_queries >= 300); }, 60s))
            << completed << " bystander and " << victim_queries << " victim queries";
        stopping = true;
    }
    EXPECT_EQ(cancelled, 0) << "the bystander's query was cancelled (" << completed << " completed)";
}

}  // namespace
}  // namespace sluice::test::proxy
