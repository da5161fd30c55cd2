// The extended query protocol through Sluice with libpq's pipeline mode: many queries sent before one Sync stay on
// one server and their results come back in order; an error aborts the rest of the pipeline up to the Sync.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

// Queues `sql` with one text parameter in pipeline mode.
void send_with_param(PGconn* conn, const char* sql, const std::string& param) {
    const char* values[] = {param.c_str()};
    ASSERT_TRUE(PQsendQueryParams(conn, sql, 1, nullptr, values, nullptr, nullptr, 0)) << PQerrorMessage(conn);
}

void send_without_params(PGconn* conn, const char* sql) {
    ASSERT_TRUE(PQsendQueryParams(conn, sql, 0, nullptr, nullptr, nullptr, nullptr, 0)) << PQerrorMessage(conn);
}

// The result of the next pipelined query, consuming the NULL that ends it.
result next_query_result(PGconn* conn) {
    result res(PQgetResult(conn));
    if (res && PQresultStatus(res.get()) != PGRES_PIPELINE_SYNC) {
        const result end(PQgetResult(conn));
        EXPECT_EQ(end, nullptr) << "more than one result for one pipelined query";
    }
    return res;
}

void expect_sync(PGconn* conn) {
    const result res(PQgetResult(conn));
    ASSERT_NE(res, nullptr);
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_PIPELINE_SYNC) << PQresStatus(PQresultStatus(res.get()));
}

// Clients that keep the rest of the pool busy with short queries, so that a server released too early would be
// taken by one of them.
class query_load {
  public:
    explicit query_load(const pooler& sluice) {
        for (int i = 0; i < 8; ++i) {
            threads_.emplace_back([this, conninfo = sluice.conninfo()] {
                try {
                    auto conn = connect_or_throw(conninfo);
                    while (!stopping_) {
                        (void)scalar(conn.get(), "SELECT pg_backend_pid()");
                        ++queries_;
                    }
                } catch (const std::exception&) {
                    ++failures_;
                }
            });
        }
    }
    query_load(const query_load&) = delete;
    query_load& operator=(const query_load&) = delete;
    ~query_load() {
        stopping_ = true;
        threads_.clear();
    }
    [[nodiscard]] int queries() const { return queries_.load(); }
    [[nodiscard]] int failures() const { return failures_.load(); }

  private:
    std::atomic<bool> stopping_{false};
    std::atomic<int> queries_{0};
    std::atomic<int> failures_{0};
    std::vector<std::jthread> threads_;
};

class proxy_pipeline : public ::testing::Test {
  protected:
    void SetUp() override {
        conn_ = connect_or_throw(sluice_.conninfo());
        ASSERT_TRUE(PQenterPipelineMode(conn_.get()));
    }

    pooler sluice_;
    connection conn_;
};

TEST_F(proxy_pipeline, results_of_one_sync_come_back_in_order_from_one_server) {
    query_load load(sluice_);
    ASSERT_TRUE(wait_until([&] { return load.queries() > 50; }, 30s));
    constexpr int count = 50;
    for (int i = 0; i < count; ++i) {
        send_with_param(conn_.get(), "SELECT $1::int * 2, pg_backend_pid()", std::to_string(i));
    }
    ASSERT_TRUE(PQpipelineSync(conn_.get()));
    std::string backend;
    for (int i = 0; i < count; ++i) {
        SCOPED_TRACE("query " + std::to_string(i));
        const auto res = next_query_result(conn_.get());
        ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn_.get());
        EXPECT_EQ(std::string(PQgetvalue(res.get(), 0, 0)), std::to_string(2 * i));
        if (i == 0) {
            backend = PQgetvalue(res.get(), 0, 1);
        }
        EXPECT_EQ(PQgetvalue(res.get(), 0, 1), backend);
    }
    expect_sync(conn_.get());
    EXPECT_EQ(load.failures(), 0);
    ASSERT_TRUE(PQexitPipelineMode(conn_.get()));
    EXPECT_EQ(scalar(conn_.get(), "SELECT 'after'"), "after");
}

TEST_F(proxy_pipeline, several_syncs_in_flight_each_get_their_results) {
    query_load load(sluice_);
    for (int batch = 0; batch < 5; ++batch) {
        for (int i = 0; i < 4; ++i) {
            send_with_param(conn_.get(), "SELECT $1::text", std::to_string(batch) + "." + std::to_string(i));
        }
        ASSERT_TRUE(PQpipelineSync(conn_.get()));
    }
    for (int batch = 0; batch < 5; ++batch) {
        for (int i = 0; i < 4; ++i) {
            const auto res = next_query_result(conn_.get());
            ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn_.get());
            EXPECT_EQ(std::string(PQgetvalue(res.get(), 0, 0)), std::to_string(batch) + "." + std::to_string(i));
        }
        expect_sync(conn_.get());
    }
    EXPECT_EQ(load.failures(), 0);
}

TEST_F(proxy_pipeline, error_aborts_the_rest_of_the_pipeline_until_sync_then_the_connection_recovers) {
    send_with_param(conn_.get(), "SELECT $1::int", "1");
    send_without_params(conn_.get(), "SELECT 1 / 0");
    send_with_param(conn_.get(), "SELECT $1::int", "3");
    send_with_param(conn_.get(), "SELECT $1::int", "4");
    ASSERT_TRUE(PQpipelineSync(conn_.get()));
    send_with_param(conn_.get(), "SELECT $1::int", "5");
    ASSERT_TRUE(PQpipelineSync(conn_.get()));

    auto res = next_query_result(conn_.get());
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK);
    res = next_query_result(conn_.get());
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_FATAL_ERROR);
    EXPECT_EQ(sqlstate(res.get()), "22012");
    for (int aborted = 0; aborted < 2; ++aborted) {
        res = next_query_result(conn_.get());
        EXPECT_EQ(PQresultStatus(res.get()), PGRES_PIPELINE_ABORTED);
    }
    expect_sync(conn_.get());
    res = next_query_result(conn_.get());
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn_.get());
    EXPECT_STREQ(PQgetvalue(res.get(), 0, 0), "5");
    expect_sync(conn_.get());

    ASSERT_TRUE(PQexitPipelineMode(conn_.get()));
    EXPECT_EQ(PQtransactionStatus(conn_.get()), PQTRANS_IDLE);
    EXPECT_EQ(scalar(conn_.get(), "SELECT 'recovered'"), "recovered");
}

TEST_F(proxy_pipeline, queries_before_a_flush_keep_their_server_until_the_sync) {
    query_load load(sluice_);
    ASSERT_TRUE(wait_until([&] { return load.queries() > 50; }, 30s));
    send_without_params(conn_.get(), "SELECT pg_backend_pid()");
    ASSERT_TRUE(PQsendFlushRequest(conn_.get()));
    ASSERT_EQ(PQflush(conn_.get()), 0);
    const auto first = next_query_result(conn_.get());
    ASSERT_EQ(PQresultStatus(first.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn_.get());
    const std::string backend = PQgetvalue(first.get(), 0, 0);

    // No Sync yet: the unnamed portal and the implicit transaction live on that server, which must stay ours
    // while the load runs.
    const int before = load.queries();
    ASSERT_TRUE(wait_until([&] { return load.queries() > before + 100; }, 30s));
    send_without_params(conn_.get(), "SELECT pg_backend_pid()");
    ASSERT_TRUE(PQpipelineSync(conn_.get()));
    const auto second = next_query_result(conn_.get());
    ASSERT_EQ(PQresultStatus(second.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn_.get());
    EXPECT_EQ(PQgetvalue(second.get(), 0, 0), backend);
    expect_sync(conn_.get());
    EXPECT_EQ(load.failures(), 0);
}

TEST_F(proxy_pipeline, transaction_spanning_syncs_stays_on_one_server) {
    query_load load(sluice_);
    send_without_params(conn_.get(), "BEGIN");
    send_without_params(conn_.get(), "SELECT pg_backend_pid()");
    ASSERT_TRUE(PQpipelineSync(conn_.get()));
    auto res = next_query_result(conn_.get());
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_COMMAND_OK);
    res = next_query_result(conn_.get());
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK);
    const std::string backend = PQgetvalue(res.get(), 0, 0);
    expect_sync(conn_.get());
    EXPECT_EQ(PQtransactionStatus(conn_.get()), PQTRANS_INTRANS);

    const int before = load.queries();
    ASSERT_TRUE(wait_until([&] { return load.queries() > before + 100; }, 30s));
    send_without_params(conn_.get(), "SELECT pg_backend_pid()");
    send_without_params(conn_.get(), "COMMIT");
    ASSERT_TRUE(PQpipelineSync(conn_.get()));
    res = next_query_result(conn_.get());
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK);
    EXPECT_EQ(PQgetvalue(res.get(), 0, 0), backend);
    res = next_query_result(conn_.get());
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_COMMAND_OK);
    expect_sync(conn_.get());
    EXPECT_EQ(PQtransactionStatus(conn_.get()), PQTRANS_IDLE);
}

}  // namespace
}  // namespace sluice::test::proxy
