// auth_user / auth_query: roles that exist only in PostgreSQL log in through Sluice with SCRAM, wrong passwords and
// unknown roles get PostgreSQL's 28P01, and a stalled auth_query fails its own login in time while other databases'
// clients keep logging in.
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <string_view>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

// The stalled database's auth_query would sleep for 30 s; Sluice gives up after this.
constexpr std::chrono::seconds auth_query_timeout{3};

// Roles created in PostgreSQL only: the auth_file lists sluice_test alone.
constexpr std::string_view alice = "authq_alice";
constexpr std::string_view alice_password = "alice-pw";
constexpr std::string_view bob = "authq_bob";
constexpr std::string_view bob_password = "bob-pw";

// What a login attempt ended with. libpq folds a refused login into PQerrorMessage only, so the connection is driven
// by hand with verbose errors, whose text carries the SQLSTATE ("FATAL:  28P01: ...").
struct login_outcome {
    bool ok = false;
    std::string sqlstate;
    std::string message;  // the whole libpq message
    std::chrono::steady_clock::duration took{};
};

inline void PrintTo(const login_outcome& o, std::ostream* os) {
    *os << "{ok=" << o.ok << " sqlstate=" << o.sqlstate << " \"" << o.message << "\"}";
}

login_outcome try_login(const std::string& conninfo) {
    login_outcome out;
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + 60s;
    connection conn(PQconnectStart(conninfo.c_str()));
    if (!conn) {
        out.message = "PQconnectStart failed";
        return out;
    }
    PQsetErrorVerbosity(conn.get(), PQERRORS_VERBOSE);
    PostgresPollingStatusType polling =
        PQstatus(conn.get()) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    while (polling != PGRES_POLLING_OK && polling != PGRES_POLLING_FAILED) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            out.message = "login did not finish within 60 s";
            return out;
        }
        pollfd pfd{PQsocket(conn.get()), static_cast<short>(polling == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
        if (::poll(&pfd, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
            out.message = "poll failed";
            return out;
        }
        polling = PQconnectPoll(conn.get());
    }
    out.took = std::chrono::steady_clock::now() - start;
    out.ok = polling == PGRES_POLLING_OK;
    out.message = PQerrorMessage(conn.get());
    if (!out.ok) {
        const auto fatal = out.message.find("FATAL:  ");
        if (fatal != std::string::npos && out.message.size() >= fatal + 13 && out.message[fatal + 13] == ':') {
            out.sqlstate = out.message.substr(fatal + 8, 5);
        }
    }
    return out;
}

class proxy_auth_query : public ::testing::Test {
  protected:
    void SetUp() override {
        drop_roles();
        postgres().execute(
            "SET password_encryption = 'scram-sha-256';"
            "CREATE ROLE " +
            std::string(alice) + " LOGIN PASSWORD '" + std::string(alice_password) +
            "';"
            "CREATE ROLE " +
            std::string(bob) + " LOGIN PASSWORD '" + std::string(bob_password) + "'");
        pooler_options options;
        // `stalled` reaches the same server, but its auth_query sleeps far longer than auth_query_timeout.
        options.databases = database_entry("sluice_test") +
                            "stalled = host=127.0.0.1 port=" + std::to_string(postgres().port()) +
                            " dbname=sluice_test"
                            " auth_query='SELECT usename, passwd FROM pg_shadow, pg_sleep(30) WHERE usename=$1'\n";
        options.settings = {
            {"auth_user", "sluice_test"},
            {"auth_query_timeout", std::to_string(auth_query_timeout.count())},
        };
        sluice_.emplace(options);
    }

    void TearDown() override {
        sluice_.reset();  // its servers log in as the roles
        drop_roles();
    }

    static void drop_roles() {
        postgres().execute("SET client_min_messages = warning; DROP ROLE IF EXISTS " + std::string(alice) +
                           "; DROP ROLE IF EXISTS " + std::string(bob));
    }

    // TCP to Sluice as `user`, without TLS (so that libpq makes exactly one attempt).
    [[nodiscard]] std::string conninfo_as(std::string_view user, std::string_view password,
                                          std::string_view dbname = "sluice_test") const {
        return "host=127.0.0.1 port=" + std::to_string(sluice_->port()) + " dbname=" + std::string(dbname) +
               " user=" + std::string(user) + " password=" + std::string(password) +
               " sslmode=disable connect_timeout=30";
    }

    std::optional<pooler> sluice_;
};

TEST_F(proxy_auth_query, role_known_only_to_postgres_logs_in_with_scram_and_reaches_its_server) {
    auto conn = connect(conninfo_as(alice, alice_password));
    ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
    // The server session is the role's own: Sluice logged into PostgreSQL with the keys the client's SCRAM proved.
    EXPECT_EQ(scalar(conn.get(), "SELECT current_user"), alice);
    EXPECT_EQ(scalar(conn.get(), "SELECT 6 * 7"), "42");

    // A second login (answered from the cache) works as well, and so does the auth_file user.
    auto again = connect(conninfo_as(alice, alice_password));
    ASSERT_EQ(PQstatus(again.get()), CONNECTION_OK) << PQerrorMessage(again.get());
    EXPECT_EQ(scalar(again.get(), "SELECT current_user"), alice);
    EXPECT_TRUE(serves_queries(*sluice_));
}

TEST_F(proxy_auth_query, wrong_password_of_a_postgres_role_gets_28P01) {
    const auto outcome = try_login(conninfo_as(alice, "not-the-password"));
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.sqlstate, "28P01") << outcome.message;
    EXPECT_THAT(outcome.message, HasSubstr("password authentication failed for user \"authq_alice\""));
    // The right password still works afterwards.
    EXPECT_TRUE(try_login(conninfo_as(alice, alice_password)).ok);
}

TEST_F(proxy_auth_query, unknown_role_gets_28P01) {
    const auto outcome = try_login(conninfo_as("authq_nobody", "whatever"));
    EXPECT_FALSE(outcome.ok);
    EXPECT_EQ(outcome.sqlstate, "28P01") << outcome.message;
    EXPECT_THAT(outcome.message, HasSubstr("password authentication failed for user \"authq_nobody\""));
}

TEST_F(proxy_auth_query, stalled_auth_query_times_out_with_a_clear_error_while_other_databases_log_in) {
    const auto lookups_running = [] {
        return std::stoi(postgres().query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice auth_query' AND "
            "state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"));
    };
    auto stalled = std::async(std::launch::async, [&] { return try_login(conninfo_as(bob, bob_password, "stalled")); });
    ASSERT_TRUE(wait_until([&] { return lookups_running() == 1; }, 20s)) << "the stalled auth_query never started";

    // Meanwhile another database's clients log in, a PostgreSQL-only role (its own auth_query) and the auth_file user.
    const auto other = try_login(conninfo_as(alice, alice_password));
    EXPECT_TRUE(other.ok) << other.message;
    EXPECT_TRUE(serves_queries(*sluice_));
    EXPECT_NE(stalled.wait_for(0s), std::future_status::ready) << "the other logins should not have waited for it";

    ASSERT_EQ(stalled.wait_for(60s), std::future_status::ready);
    const auto outcome = stalled.get();
    EXPECT_FALSE(outcome.ok);
    EXPECT_THAT(outcome.sqlstate, AnyOf("08006", "28000")) << outcome.message;
    EXPECT_THAT(outcome.message, HasSubstr("auth_query"));
    EXPECT_THAT(outcome.message, HasSubstr("timed out"));
    // Within the timeout (plus scheduling slack), far from the 30 s the query would sleep.
    EXPECT_LT(outcome.took, auth_query_timeout + 5s);

    // The server dropped the abandoned query (statement_timeout, and Sluice closed that connection).
    EXPECT_TRUE(wait_until([&] { return lookups_running() == 0; }, 20s));
    EXPECT_TRUE(try_login(conninfo_as(alice, alice_password)).ok);
}

}  // namespace
}  // namespace sluice::test::proxy
