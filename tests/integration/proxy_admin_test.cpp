// The admin console through a real connection: SHOW, PAUSE/RESUME, access control.
#include <gtest/gtest.h>

#include <future>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

using namespace std::chrono_literals;

pooler_options admin_options() {
    pooler_options options;
    options.settings = {{"admin_users", "sluice_test"}};
    return options;
}

TEST(proxy_admin, show_pools_lists_the_pool_a_client_used_with_pgbouncer_columns) {
    pooler sluice(admin_options());
    auto client = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(client.get(), "SELECT 1"), "1");
    auto admin = connect_or_throw(sluice.conninfo({}, "sluice_test", "pgbouncer"));
    auto res = exec(admin.get(), "SHOW POOLS");
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(admin.get());
    ASSERT_GE(PQntuples(res.get()), 1);
    EXPECT_STREQ(PQfname(res.get(), 0), "database");
    EXPECT_STREQ(PQfname(res.get(), 1), "user");
    EXPECT_STREQ(PQgetvalue(res.get(), 0, 0), "sluice_test");
    const int sv_idle = PQfnumber(res.get(), "sv_idle");
    ASSERT_GE(sv_idle, 0);
    EXPECT_GE(std::stoi(PQgetvalue(res.get(), 0, sv_idle)), 1);
}

TEST(proxy_admin, pause_holds_new_transactions_and_resume_releases_them) {
    pooler sluice(admin_options());
    auto admin = connect_or_throw(sluice.conninfo({}, "sluice_test", "pgbouncer"));
    auto client = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(client.get(), "SELECT 1"), "1");
    run(admin.get(), "PAUSE");
    // While paused the client's query waits for a server instead of running.
    ASSERT_EQ(PQsendQuery(client.get(), "SELECT 2"), 1);
    auto waited = std::async(std::launch::async, [&] {
        auto r = result(PQgetResult(client.get()));
        std::string value = PQresultStatus(r.get()) == PGRES_TUPLES_OK ? PQgetvalue(r.get(), 0, 0) : "error";
        while (auto* rest = PQgetResult(client.get()))
            PQclear(rest);
        return value;
    });
    EXPECT_EQ(waited.wait_for(300ms), std::future_status::timeout);
    run(admin.get(), "RESUME");
    ASSERT_EQ(waited.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(waited.get(), "2");
}

TEST(proxy_admin, a_user_outside_admin_users_and_stats_users_is_refused) {
    pooler sluice;  // no admin_users
    auto conn = connect(sluice.conninfo({}, "sluice_test", "pgbouncer"));
    ASSERT_NE(PQstatus(conn.get()), CONNECTION_OK);
    EXPECT_NE(std::string(PQerrorMessage(conn.get())).find("admin console"), std::string::npos)
        << PQerrorMessage(conn.get());
}

}  // namespace
}  // namespace sluice::test::proxy
