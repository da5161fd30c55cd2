// COPY through Sluice: ~10 MB in with COPY FROM STDIN and back out with COPY TO STDOUT, byte for byte, and the
// failure paths of COPY leaving a clean server behind.
#include <algorithm>
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

constexpr int row_count = 100000;

// COPY text-format rows "id<TAB>payload\n" with pseudo-random payloads of varying length (about 10 MB in all),
// using only characters COPY does not escape so that COPY TO must give back exactly these bytes.
std::string make_copy_data() {
    static constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-";
    std::string data;
    data.reserve(11 * 1024 * 1024);
    std::uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (int id = 1; id <= row_count; ++id) {
        data += std::to_string(id);
        data += '\t';
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        const std::size_t length = 60 + (state >> 33) % 80;
        for (std::size_t i = 0; i < length; ++i) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            data += alphabet[(state >> 33) % alphabet.size()];
        }
        data += '\n';
    }
    return data;
}

// Streams `data` as COPY data in chunks of `chunk` bytes, which need not end at row boundaries.
void copy_in(PGconn* conn, const std::string& sql, const std::string& data, std::size_t chunk) {
    const auto start = exec(conn, sql);
    ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN) << PQerrorMessage(conn);
    for (std::size_t offset = 0; offset < data.size(); offset += chunk) {
        const std::size_t n = std::min(chunk, data.size() - offset);
        ASSERT_EQ(PQputCopyData(conn, data.data() + offset, static_cast<int>(n)), 1) << PQerrorMessage(conn);
    }
    ASSERT_EQ(PQputCopyEnd(conn, nullptr), 1) << PQerrorMessage(conn);
}

// Everything COPY ... TO STDOUT sends.
std::string copy_out(PGconn* conn, const std::string& sql) {
    const auto start = exec(conn, sql);
    EXPECT_EQ(PQresultStatus(start.get()), PGRES_COPY_OUT) << PQerrorMessage(conn);
    std::string out;
    char* buffer = nullptr;
    int n = 0;
    while ((n = PQgetCopyData(conn, &buffer, 0)) > 0) {
        out.append(buffer, static_cast<std::size_t>(n));
        PQfreemem(buffer);
    }
    EXPECT_EQ(n, -1) << PQerrorMessage(conn);
    const auto end = last_result(conn);
    EXPECT_EQ(PQresultStatus(end.get()), PGRES_COMMAND_OK) << PQerrorMessage(conn);
    return out;
}

class proxy_copy : public ::testing::Test {
  protected:
    void SetUp() override {
        conn_ = connect_or_throw(sluice_.conninfo());
        run(conn_.get(), "DROP TABLE IF EXISTS proxy_copy_rows; CREATE TABLE proxy_copy_rows (id int, payload text)");
    }
    void TearDown() override { postgres().execute("DROP TABLE IF EXISTS proxy_copy_rows"); }

    pooler sluice_;
    connection conn_;
};

TEST_F(proxy_copy, ten_megabytes_copied_in_come_back_out_byte_for_byte) {
    const std::string data = make_copy_data();
    ASSERT_GT(data.size(), 10'000'000U);
    copy_in(conn_.get(), "COPY proxy_copy_rows (id, payload) FROM STDIN", data, 65521);
    const auto done = last_result(conn_.get());
    ASSERT_EQ(PQresultStatus(done.get()), PGRES_COMMAND_OK) << PQerrorMessage(conn_.get());
    EXPECT_STREQ(PQcmdTuples(done.get()), std::to_string(row_count).c_str());

    const std::string query = "COPY (SELECT id, payload FROM proxy_copy_rows ORDER BY id) TO STDOUT";
    const std::string through_sluice = copy_out(conn_.get(), query);
    EXPECT_EQ(through_sluice.size(), data.size());
    EXPECT_TRUE(through_sluice == data) << "COPY TO STDOUT through Sluice differs from the data copied in";

    // What the server stored, read without Sluice in the way, is the same too.
    auto direct = connect_or_throw(postgres().conninfo());
    EXPECT_TRUE(copy_out(direct.get(), query) == data) << "the server did not receive the bytes sent";
    EXPECT_EQ(scalar(conn_.get(), "SELECT 'usable'"), "usable");
}

TEST_F(proxy_copy, copy_failed_by_the_client_is_rolled_back_and_the_connection_recovers) {
    const auto start = exec(conn_.get(), "COPY proxy_copy_rows (id, payload) FROM STDIN");
    ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN);
    const std::string rows = "1\tone\n2\ttwo\n";
    ASSERT_EQ(PQputCopyData(conn_.get(), rows.data(), static_cast<int>(rows.size())), 1);
    ASSERT_EQ(PQputCopyEnd(conn_.get(), "client gave up"), 1);
    const auto res = last_result(conn_.get());
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_FATAL_ERROR);
    EXPECT_EQ(sqlstate(res.get()), "57014");
    EXPECT_EQ(PQtransactionStatus(conn_.get()), PQTRANS_IDLE);
    EXPECT_EQ(scalar(conn_.get(), "SELECT count(*) FROM proxy_copy_rows"), "0");
}

TEST_F(proxy_copy, bad_row_fails_the_copy_and_the_connection_recovers) {
    const std::string rows = "1\tone\nnot a number\ttwo\n3\tthree\n";
    copy_in(conn_.get(), "COPY proxy_copy_rows (id, payload) FROM STDIN", rows, rows.size());
    const auto res = last_result(conn_.get());
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_FATAL_ERROR);
    EXPECT_EQ(sqlstate(res.get()), "22P02");
    EXPECT_EQ(PQtransactionStatus(conn_.get()), PQTRANS_IDLE);
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(scalar(conn_.get(), "SELECT count(*) FROM proxy_copy_rows"), "0");
    }
}

TEST_F(proxy_copy, copy_inside_a_transaction_stays_on_its_server_until_commit) {
    run(conn_.get(), "BEGIN");
    const std::string backend = scalar(conn_.get(), "SELECT pg_backend_pid()");
    const std::string rows = "1\tone\n2\ttwo\n";
    copy_in(conn_.get(), "COPY proxy_copy_rows (id, payload) FROM STDIN", rows, 3);
    const auto res = last_result(conn_.get());
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_COMMAND_OK) << PQerrorMessage(conn_.get());
    auto other = connect_or_throw(sluice_.conninfo());
    EXPECT_EQ(scalar(other.get(), "SELECT count(*) FROM proxy_copy_rows"), "0");
    EXPECT_EQ(scalar(conn_.get(), "SELECT pg_backend_pid()"), backend);
    EXPECT_EQ(copy_out(conn_.get(), "COPY proxy_copy_rows TO STDOUT"), rows);
    run(conn_.get(), "COMMIT");
    EXPECT_EQ(scalar(other.get(), "SELECT count(*) FROM proxy_copy_rows"), "2");
}

}  // namespace
}  // namespace sluice::test::proxy
