// Client authentication methods other than SCRAM (md5, plain, trust) and session pooling.
#include <gtest/gtest.h>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

// Connecting must fail, with `fragment` in the message libpq reports (the FATAL from Sluice).
void expect_login_refused(const std::string& conninfo, std::string_view fragment) {
    connection conn(PQconnectdb(conninfo.c_str()));
    ASSERT_NE(PQstatus(conn.get()), CONNECTION_OK);
    EXPECT_NE(std::string(PQerrorMessage(conn.get())).find(fragment), std::string::npos) << PQerrorMessage(conn.get());
}

TEST(proxy_auth_modes, md5_with_a_plain_password_in_the_auth_file_logs_in_and_a_wrong_password_is_refused) {
    pooler_options options;
    options.settings = {{"auth_type", "md5"}};
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(conn.get(), "SELECT 41 + 1"), "42");
    expect_login_refused(sluice.conninfo({}, "wrong"), "password authentication failed");
}

TEST(proxy_auth_modes, plain_logs_in_and_a_wrong_password_is_refused) {
    pooler_options options;
    options.settings = {{"auth_type", "plain"}};
    pooler sluice(options);
    auto conn = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(conn.get(), "SELECT current_user"), "sluice_test");
    expect_login_refused(sluice.conninfo({}, "wrong"), "password authentication failed");
}

TEST(proxy_auth_modes, trust_logs_in_without_checking_the_password) {
    pooler_options options;
    options.settings = {{"auth_type", "trust"}};
    pooler sluice(options);
    // The server login still uses the auth_file's password; the client's is not checked.
    auto conn = connect_or_throw(sluice.conninfo({}, "anything"));
    EXPECT_EQ(scalar(conn.get(), "SELECT 1"), "1");
}

TEST(proxy_session_mode, a_client_keeps_its_server_and_the_next_client_finds_it_reset) {
    pooler_options options;
    options.pool_size = 1;
    options.settings = {{"pool_mode", "session"}};
    pooler sluice(options);
    std::string first_pid;
    {
        auto a = connect_or_throw(sluice.conninfo());
        first_pid = scalar(a.get(), "SELECT pg_backend_pid()");
        run(a.get(), "CREATE TEMP TABLE left_behind (x int)");
        run(a.get(), "SET search_path = pg_catalog");
        for (int i = 0; i < 3; ++i)
            EXPECT_EQ(scalar(a.get(), "SELECT pg_backend_pid()"), first_pid);
        // Session state survives between transactions in session mode.
        EXPECT_EQ(scalar(a.get(), "SELECT count(*) FROM pg_temp.left_behind"), "0");
    }
    // One server: the next client gets the same backend, cleaned by server_reset_query (DISCARD ALL).
    auto b = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(b.get(), "SELECT pg_backend_pid()"), first_pid);
    EXPECT_EQ(scalar(b.get(), "SELECT count(*) FROM pg_class WHERE relname = 'left_behind'"), "0");
    EXPECT_NE(scalar(b.get(), "SHOW search_path"), "pg_catalog");
}

}  // namespace
}  // namespace sluice::test::proxy
