// Transaction pooling: a client keeps its server from BEGIN to COMMIT or ROLLBACK (also through an error), and gives
// it back to the pool afterwards, while many other clients share the rest of the pool.
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

constexpr int other_clients = 20;

// Twenty clients running short transactions through Sluice until stop(); records every backend they ran on.
class transaction_load {
  public:
    explicit transaction_load(const pooler& sluice) {
        for (int i = 0; i < other_clients; ++i) {
            threads_.emplace_back([this, conninfo = sluice.conninfo()] { run_client(conninfo); });
        }
    }
    transaction_load(const transaction_load&) = delete;
    transaction_load& operator=(const transaction_load&) = delete;
    ~transaction_load() { stop(); }

    void stop() {
        stopping_ = true;
        threads_.clear();  // joins
    }
    [[nodiscard]] int transactions() const { return transactions_.load(); }
    // Valid after stop().
    [[nodiscard]] const std::set<std::string>& backends() const { return backends_; }
    [[nodiscard]] const std::vector<std::string>& errors() const { return errors_; }

  private:
    void run_client(const std::string& conninfo) {
        try {
            auto conn = connect_or_throw(conninfo);
            while (!stopping_) {
                run(conn.get(), "BEGIN");
                const std::string pid = scalar(conn.get(), "SELECT pg_backend_pid()");
                if (scalar(conn.get(), "SELECT pg_backend_pid()") != pid) {
                    throw std::runtime_error("backend changed inside a transaction of the load");
                }
                run(conn.get(), "COMMIT");
                ++transactions_;
                const std::lock_guard lock(mutex_);
                backends_.insert(pid);
            }
        } catch (const std::exception& e) {
            const std::lock_guard lock(mutex_);
            errors_.emplace_back(e.what());
        }
    }

    std::atomic<bool> stopping_{false};
    std::atomic<int> transactions_{0};
    std::mutex mutex_;
    std::set<std::string> backends_;
    std::vector<std::string> errors_;
    std::vector<std::jthread> threads_;
};

// Backends of `count` clients that each open a transaction at the same time: with count = pool_size, every server.
std::set<std::string> backends_of_simultaneous_transactions(const pooler& sluice, int count) {
    std::vector<connection> clients;
    std::set<std::string> pids;
    for (int i = 0; i < count; ++i) {
        clients.push_back(connect_or_throw(sluice.conninfo()));
        run(clients.back().get(), "BEGIN");
        pids.insert(scalar(clients.back().get(), "SELECT pg_backend_pid()"));
    }
    for (auto& conn : clients) {
        run(conn.get(), "COMMIT");
    }
    return pids;
}

class proxy_transaction : public ::testing::Test {
  protected:
    pooler sluice_;
};

TEST_F(proxy_transaction, backend_is_constant_inside_a_transaction_while_twenty_clients_share_the_pool) {
    auto pinned = connect_or_throw(sluice_.conninfo());
    run(pinned.get(), "BEGIN");
    const std::string pid = scalar(pinned.get(), "SELECT pg_backend_pid()");

    transaction_load load(sluice_);
    int checks = 0;
    const bool busy = wait_until(
        [&] {
            EXPECT_EQ(scalar(pinned.get(), "SELECT pg_backend_pid()"), pid);
            ++checks;
            return load.transactions() >= 200;
        },
        60s);
    load.stop();
    ASSERT_TRUE(busy) << load.transactions() << " transactions of the load";
    EXPECT_EQ(load.errors(), std::vector<std::string>{});
    EXPECT_EQ(load.backends().count(pid), 0U) << "another client ran on the pinned server";
    // How many of the other four servers the load needed depends on how fast its transactions free them.
    EXPECT_GE(load.backends().size(), 1U);
    EXPECT_LE(load.backends().size(), 4U) << "the load used the pinned server";
    EXPECT_EQ(scalar(pinned.get(), "SELECT pg_backend_pid()"), pid);
    run(pinned.get(), "COMMIT");
    EXPECT_GT(checks, 0);

    // Given back: five simultaneous transactions take all five servers, the one pinned before among them.
    EXPECT_EQ(backends_of_simultaneous_transactions(sluice_, 5).count(pid), 1U);
}

TEST_F(proxy_transaction, uncommitted_rows_stay_invisible_to_other_clients_until_commit) {
    run(connect_or_throw(sluice_.conninfo()).get(),
        "CREATE TABLE IF NOT EXISTS proxy_txn_rows (v int); "
        "TRUNCATE proxy_txn_rows");
    auto writer = connect_or_throw(sluice_.conninfo());
    auto reader = connect_or_throw(sluice_.conninfo());
    run(writer.get(), "BEGIN");
    run(writer.get(), "INSERT INTO proxy_txn_rows VALUES (1)");
    EXPECT_EQ(scalar(writer.get(), "SELECT count(*) FROM proxy_txn_rows"), "1");
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(scalar(reader.get(), "SELECT count(*) FROM proxy_txn_rows"), "0");
    }
    run(writer.get(), "COMMIT");
    EXPECT_EQ(scalar(reader.get(), "SELECT count(*) FROM proxy_txn_rows"), "1");
    run(reader.get(), "DROP TABLE proxy_txn_rows");
}

TEST_F(proxy_transaction, failed_transaction_keeps_its_server_until_rollback) {
    auto failed = connect_or_throw(sluice_.conninfo());
    run(failed.get(), "BEGIN");
    const std::string pid = scalar(failed.get(), "SELECT pg_backend_pid()");
    EXPECT_EQ(sqlstate(exec(failed.get(), "SELECT 1 / 0").get()), "22012");
    EXPECT_EQ(PQtransactionStatus(failed.get()), PQTRANS_INERROR);

    transaction_load load(sluice_);
    const bool busy = wait_until([&] { return load.transactions() >= 200; }, 60s);
    load.stop();
    ASSERT_TRUE(busy) << load.transactions() << " transactions of the load";
    EXPECT_EQ(load.errors(), std::vector<std::string>{});
    EXPECT_EQ(load.backends().count(pid), 0U) << "another client ran on the server of the failed transaction";

    // Still in the failed transaction on the same server: any statement but ROLLBACK is refused.
    EXPECT_EQ(sqlstate(exec(failed.get(), "SELECT 1").get()), "25P02");
    EXPECT_EQ(PQtransactionStatus(failed.get()), PQTRANS_INERROR);
    run(failed.get(), "ROLLBACK");
    EXPECT_EQ(PQtransactionStatus(failed.get()), PQTRANS_IDLE);
    EXPECT_EQ(scalar(failed.get(), "SELECT 1"), "1");
    EXPECT_EQ(backends_of_simultaneous_transactions(sluice_, 5).count(pid), 1U);
}

TEST_F(proxy_transaction, transaction_opened_and_left_open_by_one_query_string_stays_pinned) {
    auto conn = connect_or_throw(sluice_.conninfo());
    const std::string pid = scalar(conn.get(), "BEGIN; SELECT pg_backend_pid()");
    EXPECT_EQ(PQtransactionStatus(conn.get()), PQTRANS_INTRANS);
    transaction_load load(sluice_);
    ASSERT_TRUE(wait_until([&] { return load.transactions() >= 100; }, 60s));
    load.stop();
    EXPECT_EQ(load.backends().count(pid), 0U);
    EXPECT_EQ(scalar(conn.get(), "SELECT pg_backend_pid()"), pid);
    run(conn.get(), "COMMIT");
}

TEST_F(proxy_transaction, statement_waits_for_the_server_a_commit_frees_when_transactions_hold_the_whole_pool) {
    // Five clients that each hold a transaction take the whole pool; a sixth client's statement waits for one of
    // them and then runs on that server.
    std::vector<connection> holders;
    std::set<std::string> held;
    for (int i = 0; i < 5; ++i) {
        holders.push_back(connect_or_throw(sluice_.conninfo()));
        run(holders.back().get(), "BEGIN");
        held.insert(scalar(holders.back().get(), "SELECT pg_backend_pid()"));
    }
    ASSERT_EQ(held.size(), 5U);
    auto waiter = connect_or_throw(sluice_.conninfo());
    ASSERT_TRUE(PQsendQuery(waiter.get(), "SELECT pg_backend_pid()"));
    const std::string freed = scalar(holders[2].get(), "SELECT pg_backend_pid()");
    run(holders[2].get(), "COMMIT");
    const auto res = last_result(waiter.get());
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(waiter.get());
    EXPECT_EQ(PQgetvalue(res.get(), 0, 0), freed);
    for (std::size_t i = 0; i < holders.size(); ++i) {
        if (i != 2) {
            run(holders[i].get(), "COMMIT");
        }
    }
}

}  // namespace
}  // namespace sluice::test::proxy
