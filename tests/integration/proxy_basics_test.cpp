// Logging in through Sluice over TCP and its Unix socket, simple queries, and the session parameters a client is
// shown at login.
#include <array>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proxy_test_support.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::test::proxy {
namespace {

class proxy_basics : public ::testing::Test {
  protected:
    pooler sluice_;
};

TEST_F(proxy_basics, scram_login_over_tcp_runs_queries) {
    auto conn = connect(sluice_.conninfo());
    ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
    EXPECT_TRUE(PQconnectionUsedPassword(conn.get()));
    EXPECT_EQ(scalar(conn.get(), "SELECT current_user"), "sluice_test");
    EXPECT_EQ(scalar(conn.get(), "SELECT current_database()"), "sluice_test");
    EXPECT_EQ(scalar(conn.get(), "SELECT 1 + 1"), "2");
}

TEST_F(proxy_basics, scram_login_over_the_unix_socket_runs_queries) {
    auto conn = connect(sluice_.unix_conninfo());
    ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
    EXPECT_TRUE(PQconnectionUsedPassword(conn.get()));
    EXPECT_EQ(scalar(conn.get(), "SELECT current_user"), "sluice_test");
    EXPECT_EQ(scalar(conn.get(), "SELECT 1 + 1"), "2");
}

TEST_F(proxy_basics, wrong_password_is_refused_over_the_unix_socket) {
    const std::string conninfo = "host=" + sluice_.process().dir().string() +
                                 " port=" + std::to_string(sluice_.port()) +
                                 " dbname=sluice_test user=sluice_test password=wrong";
    auto conn = connect(conninfo);
    EXPECT_EQ(PQstatus(conn.get()), CONNECTION_BAD);
    EXPECT_THAT(PQerrorMessage(conn.get()), ::testing::HasSubstr("password authentication failed"));
}

TEST_F(proxy_basics, simple_query_returns_rows_columns_types_and_nulls) {
    auto conn = connect_or_throw(sluice_.conninfo());
    const auto res =
        exec(conn.get(), "SELECT g, 'r' || g AS label, NULLIF(g, 2) AS maybe FROM generate_series(1, 3) g");
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(conn.get());
    ASSERT_EQ(PQntuples(res.get()), 3);
    ASSERT_EQ(PQnfields(res.get()), 3);
    EXPECT_STREQ(PQfname(res.get(), 1), "label");
    EXPECT_EQ(PQftype(res.get(), 0), 23U);  // int4
    EXPECT_STREQ(PQgetvalue(res.get(), 2, 0), "3");
    EXPECT_STREQ(PQgetvalue(res.get(), 2, 1), "r3");
    EXPECT_TRUE(PQgetisnull(res.get(), 1, 2));
    EXPECT_FALSE(PQgetisnull(res.get(), 0, 2));
}

TEST_F(proxy_basics, a_client_that_rests_queries_again_after_its_relay_buffers_were_freed) {
    // A busy client receives straight into its relay buffers; after a second of rest Sluice cancels that receive and
    // frees them (client_relay.cpp, release_relay_if_idle). The next query must arrive whole, each time.
    auto conn = connect_or_throw(sluice_.conninfo());
    for (int round = 0; round < 3; ++round) {
        EXPECT_EQ(scalar(conn.get(), "SELECT " + std::to_string(round) + " + 1"), std::to_string(round + 1));
        std::this_thread::sleep_for(std::chrono::milliseconds(1600));
    }
    ASSERT_TRUE(PQsendQuery(conn.get(), "SELECT 'after'; SELECT 'rest'"));
    std::vector<std::string> seen;
    while (PGresult* raw = PQgetResult(conn.get())) {
        const result res(raw);
        seen.emplace_back(PQgetvalue(res.get(), 0, 0));
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"after", "rest"}));
}

TEST_F(proxy_basics, several_statements_in_one_query_each_return_their_result) {
    auto conn = connect_or_throw(sluice_.conninfo());
    ASSERT_TRUE(PQsendQuery(conn.get(), "SELECT 1; SELECT 'two'; CREATE TEMP TABLE t (v int); DROP TABLE t"));
    std::vector<std::string> seen;
    while (PGresult* raw = PQgetResult(conn.get())) {
        const result res(raw);
        seen.push_back(PQresultStatus(res.get()) == PGRES_TUPLES_OK ? PQgetvalue(res.get(), 0, 0)
                                                                    : PQcmdStatus(res.get()));
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"1", "two", "CREATE TABLE", "DROP TABLE"}));
}

TEST_F(proxy_basics, error_is_reported_and_the_connection_stays_usable) {
    auto conn = connect_or_throw(sluice_.conninfo());
    const auto res = exec(conn.get(), "SELECT * FROM proxy_basics_no_such_table");
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_FATAL_ERROR);
    EXPECT_EQ(sqlstate(res.get()), "42P01");
    EXPECT_EQ(PQstatus(conn.get()), CONNECTION_OK);
    EXPECT_EQ(scalar(conn.get(), "SELECT 'still here'"), "still here");
}

TEST_F(proxy_basics, empty_query_gets_an_empty_query_response) {
    auto conn = connect_or_throw(sluice_.conninfo());
    EXPECT_EQ(PQresultStatus(exec(conn.get(), "").get()), PGRES_EMPTY_QUERY);
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
}

TEST_F(proxy_basics, notices_reach_the_client) {
    auto conn = connect_or_throw(sluice_.conninfo());
    std::vector<std::string> notices;
    PQsetNoticeReceiver(
        conn.get(),
        [](void* arg, const PGresult* res) {
            static_cast<std::vector<std::string>*>(arg)->push_back(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
        },
        &notices);
    run(conn.get(), "DO $$ BEGIN RAISE NOTICE 'first'; RAISE WARNING 'second'; END $$");
    EXPECT_EQ(notices, (std::vector<std::string>{"first", "second"}));
}

// Reads one simple query's response up to ReadyForQuery; returns the message types and the first DataRow's value.
std::pair<std::string, std::string> read_simple_response(raw_connection& conn) {
    std::string types;
    std::string value;
    while (auto message = conn.read_message(5s)) {
        types += message->type;
        if (message->type == 'D' && value.empty() && message->body.size() >= 6) {
            value = message->body.substr(6);  // Int16 column count, Int32 length, then the bytes
        }
        if (message->type == 'Z') {
            break;
        }
    }
    return {types, value};
}

// TCP may deliver a message in pieces: here the second query's header and the start of its body come with the first
// query, and the rest only after the first answer.
TEST_F(proxy_basics, query_split_after_its_header_is_answered) {
    auto client = connect_or_throw(sluice_.conninfo());
    auto conn = raw_connection::borrow(client.get());
    std::string first;
    protocol::write_query(first, "SELECT 'first'");
    std::string second;
    protocol::write_query(second, "SELECT 'second'");
    ASSERT_TRUE(conn.send(first + second.substr(0, 7)));
    EXPECT_EQ(read_simple_response(conn), std::make_pair(std::string("TDCZ"), std::string("first")));
    ASSERT_TRUE(conn.send(second.substr(7)));
    EXPECT_EQ(read_simple_response(conn), std::make_pair(std::string("TDCZ"), std::string("second")));
    EXPECT_EQ(scalar(client.get(), "SELECT 'libpq again'"), "libpq again");
    EXPECT_TRUE(serves_queries(sluice_));
}

TEST_F(proxy_basics, query_arriving_one_byte_at_a_time_is_answered) {
    auto client = connect_or_throw(sluice_.conninfo());
    auto conn = raw_connection::borrow(client.get());
    std::string query;
    protocol::write_query(query, "SELECT 'assembled'");
    for (const char byte : query) {
        ASSERT_TRUE(conn.send(std::string_view(&byte, 1)));
    }
    EXPECT_EQ(read_simple_response(conn), std::make_pair(std::string("TDCZ"), std::string("assembled")));
    EXPECT_EQ(scalar(client.get(), "SELECT 'libpq again'"), "libpq again");
    EXPECT_TRUE(serves_queries(sluice_));
}

// The parameters PostgreSQL reports at login (runtime-config-preset.html and protocol-flow.html).
constexpr std::array reported_parameters = {
    "server_version",    "server_encoding",
    "client_encoding",   "DateStyle",
    "IntervalStyle",     "TimeZone",
    "integer_datetimes", "standard_conforming_strings",
    "is_superuser",      "session_authorization",
};

// Every client, including the first of a pool (whose login waits for a server), must see what a direct connection
// to the server sees.
TEST_F(proxy_basics, parameter_status_at_login_matches_a_direct_connection) {
    auto direct = connect_or_throw(postgres().conninfo());
    auto first = connect_or_throw(sluice_.conninfo());
    auto second = connect_or_throw(sluice_.conninfo());
    auto over_socket = connect_or_throw(sluice_.unix_conninfo());
    for (const char* name : reported_parameters) {
        SCOPED_TRACE(name);
        const char* expected = PQparameterStatus(direct.get(), name);
        ASSERT_NE(expected, nullptr);
        for (PGconn* conn : {first.get(), second.get(), over_socket.get()}) {
            const char* seen = PQparameterStatus(conn, name);
            ASSERT_NE(seen, nullptr);
            EXPECT_STREQ(seen, expected);
        }
    }
    EXPECT_EQ(PQserverVersion(first.get()), PQserverVersion(direct.get()));
}

TEST_F(proxy_basics, parameter_status_shows_the_values_the_client_asked_for_at_startup) {
    auto conn = connect_or_throw(sluice_.conninfo("application_name=proxy_basics client_encoding=LATIN1"));
    EXPECT_STREQ(PQparameterStatus(conn.get(), "application_name"), "proxy_basics");
    EXPECT_STREQ(PQparameterStatus(conn.get(), "client_encoding"), "LATIN1");
    EXPECT_EQ(scalar(conn.get(), "SHOW application_name"), "proxy_basics");
    EXPECT_EQ(scalar(conn.get(), "SHOW client_encoding"), "LATIN1");
}

// Sets an environment variable for the life of the object. libpq reads PGDATESTYLE and PGTZ at connect time and
// sends them in the StartupMessage; no other thread may connect meanwhile.
class scoped_env {
  public:
    scoped_env(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;
    ~scoped_env() { ::unsetenv(name_); }

  private:
    const char* name_;
};

// PostgreSQL reports a parameter asked for at startup by its canonical spelling (LATIN1, "ISO, MDY", UTC), and a
// client shown something else would also be re-synced with a SET before every transaction.
TEST_F(proxy_basics, parameters_asked_for_at_startup_are_reported_as_a_direct_connection_reports_them) {
    const scoped_env datestyle("PGDATESTYLE", "iso");
    const scoped_env timezone("PGTZ", "utc");
    auto direct = connect_or_throw(postgres().conninfo() + " client_encoding=latin1");
    auto conn = connect_or_throw(sluice_.conninfo("client_encoding=latin1"));
    for (const char* name : {"client_encoding", "DateStyle", "TimeZone"}) {
        SCOPED_TRACE(name);
        const char* expected = PQparameterStatus(direct.get(), name);
        ASSERT_NE(expected, nullptr);
        EXPECT_STREQ(PQparameterStatus(conn.get(), name), expected);
        EXPECT_EQ(scalar(conn.get(), std::string("SHOW ") + name), expected);
    }
}

TEST_F(proxy_basics, parameter_status_follows_a_set_by_the_client) {
    auto conn = connect_or_throw(sluice_.conninfo());
    run(conn.get(), "SET DateStyle = 'German, DMY'");
    EXPECT_STREQ(PQparameterStatus(conn.get(), "DateStyle"), "German, DMY");
    EXPECT_EQ(scalar(conn.get(), "SELECT '2024-03-01'::date::text"), "01.03.2024");
}

TEST_F(proxy_basics, backend_key_data_is_sluices_own) {
    auto conn = connect_or_throw(sluice_.conninfo());
    const int shown = PQbackendPID(conn.get());
    const int real = std::stoi(scalar(conn.get(), "SELECT pg_backend_pid()"));
    EXPECT_NE(shown, 0);
    EXPECT_NE(shown, real);
}

}  // namespace
}  // namespace sluice::test::proxy
