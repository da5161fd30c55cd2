// Session parameters under transaction pooling: what one client SETs follows it from server to server and never
// leaks to another client sharing those servers.
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

constexpr int pool_size = 5;

struct session_view {
    std::string application_name;
    std::string time_zone;
    std::string backend;
};

// What the client's session looks like from inside one transaction.
session_view view_in_transaction(PGconn* conn) {
    run(conn, "BEGIN");
    session_view view{scalar(conn, "SELECT current_setting('application_name')"),
                      scalar(conn, "SELECT current_setting('TimeZone')"), scalar(conn, "SELECT pg_backend_pid()")};
    run(conn, "COMMIT");
    return view;
}

class proxy_parameters : public ::testing::Test {
  protected:
    void SetUp() override { default_time_zone_ = postgres().query_scalar("SHOW TimeZone"); }

    pooler sluice_;
    std::string default_time_zone_;
};

TEST_F(proxy_parameters, settings_of_one_client_never_reach_another_and_follow_their_owner) {
    auto a = connect_or_throw(sluice_.conninfo("application_name=initial"));
    run(a.get(), "SET application_name = 'a'");
    run(a.get(), "SET TimeZone = 'Asia/Tokyo'");
    ASSERT_NE(default_time_zone_, "Asia/Tokyo");

    std::vector<connection> others;
    for (int i = 0; i < pool_size; ++i) {
        others.push_back(connect_or_throw(sluice_.conninfo("application_name=b" + std::to_string(i))));
    }
    std::set<std::string> a_backends;
    std::set<std::string> other_backends;
    for (int round = 0; round < 10; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        // The others open their transactions together: they hold every server of the pool, so one of them holds
        // each server that A used.
        for (auto& b : others) {
            run(b.get(), "BEGIN");
        }
        for (int i = 0; i < pool_size; ++i) {
            PGconn* b = others[static_cast<std::size_t>(i)].get();
            EXPECT_EQ(scalar(b, "SELECT current_setting('application_name')"), "b" + std::to_string(i));
            EXPECT_EQ(scalar(b, "SELECT current_setting('TimeZone')"), default_time_zone_);
            EXPECT_STREQ(PQparameterStatus(b, "application_name"), ("b" + std::to_string(i)).c_str());
            EXPECT_STREQ(PQparameterStatus(b, "TimeZone"), default_time_zone_.c_str());
            other_backends.insert(scalar(b, "SELECT pg_backend_pid()"));
        }
        for (auto& b : others) {
            run(b.get(), "COMMIT");
        }

        const auto a_view = view_in_transaction(a.get());
        EXPECT_EQ(a_view.application_name, "a");
        EXPECT_EQ(a_view.time_zone, "Asia/Tokyo");
        a_backends.insert(a_view.backend);
        EXPECT_EQ(scalar(a.get(), "SELECT current_setting('application_name') || ' ' || current_setting('TimeZone')"),
                  "a Asia/Tokyo");
        EXPECT_STREQ(PQparameterStatus(a.get(), "TimeZone"), "Asia/Tokyo");
        EXPECT_STREQ(PQparameterStatus(a.get(), "application_name"), "a");
    }
    // The test only shows something if the clients shared servers.
    EXPECT_EQ(other_backends.size(), static_cast<std::size_t>(pool_size));
    for (const auto& backend : a_backends) {
        EXPECT_EQ(other_backends.count(backend), 1U) << "A's backend " << backend << " was never used by another";
    }
}

// Every parameter Sluice tracks, as one string.
constexpr const char* tracked_settings =
    "SELECT concat_ws('|', current_setting('client_encoding'), current_setting('DateStyle'), "
    "current_setting('TimeZone'), current_setting('IntervalStyle'), current_setting('standard_conforming_strings'), "
    "current_setting('application_name'))";

TEST_F(proxy_parameters, every_tracked_parameter_stays_with_the_client_that_set_it) {
    const std::string defaults = scalar(connect_or_throw(postgres().conninfo()).get(), tracked_settings);
    auto a = connect_or_throw(sluice_.conninfo());
    run(a.get(), "SET client_encoding = 'LATIN1'");
    run(a.get(), "SET DateStyle = 'German, DMY'");
    run(a.get(), "SET TimeZone = 'America/Halifax'");
    run(a.get(), "SET IntervalStyle = 'iso_8601'");
    run(a.get(), "SET standard_conforming_strings = off");
    run(a.get(), "SET application_name = 'every'");
    const std::string a_settings = "LATIN1|German, DMY|America/Halifax|iso_8601|off|every";
    ASSERT_EQ(scalar(a.get(), tracked_settings), a_settings);

    std::vector<connection> others;
    for (int i = 0; i < pool_size; ++i) {
        others.push_back(connect_or_throw(sluice_.conninfo()));
    }
    for (int round = 0; round < 5; ++round) {
        for (auto& b : others) {
            run(b.get(), "BEGIN");
        }
        for (auto& b : others) {
            EXPECT_EQ(scalar(b.get(), tracked_settings), defaults) << "round " << round;
        }
        for (auto& b : others) {
            run(b.get(), "COMMIT");
        }
        EXPECT_EQ(scalar(a.get(), tracked_settings), a_settings) << "round " << round;
    }
}

TEST_F(proxy_parameters, client_encoding_asked_for_at_startup_follows_the_client) {
    auto latin1 = connect_or_throw(sluice_.conninfo("client_encoding=LATIN1"));
    auto utf8 = connect_or_throw(sluice_.conninfo("client_encoding=UTF8"));
    for (int i = 0; i < 2 * pool_size; ++i) {
        EXPECT_EQ(scalar(latin1.get(), "SHOW client_encoding"), "LATIN1");
        EXPECT_EQ(scalar(utf8.get(), "SHOW client_encoding"), "UTF8");
        // The server converts text to the client's encoding: é is one byte in LATIN1, two in UTF8.
        const auto res = exec(latin1.get(), "SELECT chr(233)");
        ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK);
        EXPECT_EQ(PQgetlength(res.get(), 0, 0), 1);
        const auto res8 = exec(utf8.get(), "SELECT chr(233)");
        ASSERT_EQ(PQresultStatus(res8.get()), PGRES_TUPLES_OK);
        EXPECT_EQ(PQgetlength(res8.get(), 0, 0), 2);
    }
}

TEST_F(proxy_parameters, set_inside_a_rolled_back_transaction_does_not_stick) {
    auto a = connect_or_throw(sluice_.conninfo());
    run(a.get(), "BEGIN");
    run(a.get(), "SET TimeZone = 'Europe/Paris'");
    EXPECT_EQ(scalar(a.get(), "SHOW TimeZone"), "Europe/Paris");
    run(a.get(), "ROLLBACK");
    EXPECT_STREQ(PQparameterStatus(a.get(), "TimeZone"), default_time_zone_.c_str());

    // Move the other servers around, then look again from whichever server A gets.
    std::vector<connection> others;
    for (int i = 0; i < pool_size; ++i) {
        others.push_back(connect_or_throw(sluice_.conninfo()));
        run(others.back().get(), "BEGIN");
        EXPECT_EQ(scalar(others.back().get(), "SHOW TimeZone"), default_time_zone_);
    }
    for (auto& b : others) {
        run(b.get(), "COMMIT");
    }
    EXPECT_EQ(view_in_transaction(a.get()).time_zone, default_time_zone_);
}

TEST_F(proxy_parameters, set_local_ends_with_its_transaction) {
    auto a = connect_or_throw(sluice_.conninfo());
    run(a.get(), "BEGIN");
    run(a.get(), "SET LOCAL application_name = 'local'");
    EXPECT_EQ(scalar(a.get(), "SHOW application_name"), "local");
    run(a.get(), "COMMIT");
    for (int i = 0; i < pool_size; ++i) {
        EXPECT_EQ(scalar(a.get(), "SHOW application_name"), "");
    }
}

TEST_F(proxy_parameters, reset_all_returns_the_client_to_the_server_defaults) {
    auto a = connect_or_throw(sluice_.conninfo());
    run(a.get(), "SET TimeZone = 'Asia/Tokyo'");
    run(a.get(), "RESET ALL");
    for (int i = 0; i < pool_size; ++i) {
        EXPECT_EQ(view_in_transaction(a.get()).time_zone, default_time_zone_);
    }
}

// With standard_conforming_strings = off a backslash in a string literal is an escape character, so the SETs that
// sync a server to a client must not depend on how the server last left that setting.
TEST(proxy_parameters_single_server, application_name_with_a_backslash_survives_standard_conforming_strings_off) {
    pooler_options one_server;
    one_server.pool_size = 1;
    pooler sluice(one_server);
    auto x = connect_or_throw(sluice.conninfo(R"(application_name='one\\two')"));
    auto y = connect_or_throw(sluice.conninfo(R"(application_name='uno\\dos')"));
    ASSERT_STREQ(PQparameterStatus(x.get(), "application_name"), R"(one\two)");
    run(x.get(), "SET standard_conforming_strings = off");
    run(y.get(), "SET standard_conforming_strings = off");
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(scalar(x.get(), "SELECT current_setting('application_name')"), R"(one\two)");
        EXPECT_EQ(scalar(y.get(), "SELECT current_setting('application_name')"), R"(uno\dos)");
    }
}

TEST(proxy_parameters_single_server, untracked_settings_of_one_client_are_reset_before_the_next_client) {
    pooler_options one_server;
    one_server.pool_size = 1;
    pooler sluice(one_server);
    auto a = connect_or_throw(sluice.conninfo());
    auto b = connect_or_throw(sluice.conninfo());
    const auto default_path = scalar(b.get(), "SHOW search_path");
    run(a.get(), "SET search_path = pg_catalog");
    run(a.get(), "SET statement_timeout = 1234");
    run(a.get(), "SET work_mem = '7MB'");
    // One server: b gets the very server a used, and must find it as a fresh session would.
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(scalar(b.get(), "SHOW search_path"), default_path);
        EXPECT_EQ(scalar(b.get(), "SHOW statement_timeout"), "0");
        EXPECT_NE(scalar(b.get(), "SHOW work_mem"), "7MB");
    }
}

}  // namespace
}  // namespace sluice::test::proxy
