// Large results and values stream through Sluice: its memory stays bounded whatever the size of a result or of a
// single message (the streaming path of the message splitter, both directions).
#include <algorithm>
#include <string>

#include <gtest/gtest.h>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

constexpr std::size_t memory_budget_kib = 32 * 1024;

class proxy_large_result : public ::testing::Test {
  protected:
    void SetUp() override {
        conn_ = connect_or_throw(sluice_.conninfo());
        // Servers connected and buffers used once, so that the baseline includes them.
        ASSERT_EQ(scalar(conn_.get(), "SELECT count(*) FROM generate_series(1, 1000)"), "1000");
        reset_peak_rss(sluice_.pid());
        baseline_kib_ = proc_status_kib(sluice_.pid(), "VmRSS");
    }

    // How far Sluice's resident memory peaked above the baseline since SetUp.
    [[nodiscard]] std::size_t peak_growth_kib() const {
        const std::size_t peak = proc_status_kib(sluice_.pid(), "VmHWM");
        return peak > baseline_kib_ ? peak - baseline_kib_ : 0;
    }

    pooler sluice_;
    connection conn_;
    std::size_t baseline_kib_ = 0;
};

TEST_F(proxy_large_result, million_rows_stream_through_with_bounded_memory) {
    ASSERT_TRUE(PQsendQuery(conn_.get(), "SELECT g, repeat('x', 100) FROM generate_series(1, 1000000) g"));
    ASSERT_TRUE(PQsetSingleRowMode(conn_.get()));
    long rows = 0;
    long bad_rows = 0;
    ExecStatusType last_status = PGRES_EMPTY_QUERY;
    while (PGresult* raw = PQgetResult(conn_.get())) {
        const result res(raw);
        last_status = PQresultStatus(res.get());
        if (last_status != PGRES_SINGLE_TUPLE) {
            continue;
        }
        ++rows;
        if (std::stol(PQgetvalue(res.get(), 0, 0)) != rows || PQgetlength(res.get(), 0, 1) != 100) {
            ++bad_rows;
        }
    }
    EXPECT_EQ(last_status, PGRES_TUPLES_OK) << PQerrorMessage(conn_.get());
    EXPECT_EQ(rows, 1000000);
    EXPECT_EQ(bad_rows, 0);
    EXPECT_LT(peak_growth_kib(), memory_budget_kib);
    EXPECT_EQ(scalar(conn_.get(), "SELECT 'after'"), "after");
}

TEST_F(proxy_large_result, hundred_megabyte_value_streams_to_the_client_with_bounded_memory) {
    const auto res = exec(conn_.get(), "SELECT repeat('x', 100000000)");
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn_.get());
    ASSERT_EQ(PQgetlength(res.get(), 0, 0), 100000000);
    const char* value = PQgetvalue(res.get(), 0, 0);
    EXPECT_TRUE(std::all_of(value, value + 100000000, [](char c) { return c == 'x'; }));
    EXPECT_LT(peak_growth_kib(), memory_budget_kib);
    EXPECT_EQ(scalar(conn_.get(), "SELECT 'after'"), "after");
}

TEST_F(proxy_large_result, hundred_megabyte_parameter_streams_to_the_server_with_bounded_memory) {
    const std::string big(100000000, 'y');
    const char* values[] = {big.c_str()};
    const auto res = result(PQexecParams(conn_.get(), "SELECT length($1), $1 = repeat('y', 100000000)", 1, nullptr,
                                         values, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn_.get());
    EXPECT_STREQ(PQgetvalue(res.get(), 0, 0), "100000000");
    EXPECT_STREQ(PQgetvalue(res.get(), 0, 1), "t");
    EXPECT_LT(peak_growth_kib(), memory_budget_kib);
}

TEST_F(proxy_large_result, clients_share_the_pool_while_a_large_result_streams) {
    auto other = connect_or_throw(sluice_.conninfo());
    ASSERT_TRUE(PQsendQuery(conn_.get(), "SELECT repeat('z', 1000) FROM generate_series(1, 100000)"));
    ASSERT_TRUE(PQsetSingleRowMode(conn_.get()));
    long rows = 0;
    while (PGresult* raw = PQgetResult(conn_.get())) {
        const result res(raw);
        if (PQresultStatus(res.get()) == PGRES_SINGLE_TUPLE && ++rows % 20000 == 0) {
            // Mid-stream, another client is served by another server.
            EXPECT_EQ(scalar(other.get(), "SELECT 'other ' || " + std::to_string(rows)),
                      "other " + std::to_string(rows));
        }
    }
    EXPECT_EQ(rows, 100000);
}

}  // namespace
}  // namespace sluice::test::proxy
