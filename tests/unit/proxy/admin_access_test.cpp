#include <gtest/gtest.h>

#include "admin/access.hpp"

namespace sluice::admin {
namespace {

config::settings console_settings() {
    config::settings s;
    s.admin_users = {"root", "ops"};
    s.stats_users = {"monitor"};
    return s;
}

TEST(admin_access, console_answers_to_pgbouncer_and_sluice_databases) {
    EXPECT_TRUE(is_console_database("pgbouncer"));
    EXPECT_TRUE(is_console_database("sluice"));
    EXPECT_FALSE(is_console_database("PgBouncer")) << "database names compare exactly";
    EXPECT_FALSE(is_console_database("app"));
    EXPECT_FALSE(is_console_database(""));
}

TEST(admin_access, admin_and_stats_users_come_from_their_lists) {
    const auto s = console_settings();
    EXPECT_TRUE(is_admin_user(s, "root"));
    EXPECT_TRUE(is_admin_user(s, "ops"));
    EXPECT_FALSE(is_admin_user(s, "monitor"));
    EXPECT_FALSE(is_admin_user(s, "Root")) << "user names compare exactly, as PgBouncer's strlist_contains";
    EXPECT_TRUE(is_stats_user(s, "monitor"));
    EXPECT_FALSE(is_stats_user(s, "root"));
}

TEST(admin_access, console_access_grants_admin_stats_or_nothing) {
    const auto s = console_settings();
    EXPECT_EQ(console_access_for(s, "root"), console_access::admin);
    EXPECT_EQ(console_access_for(s, "monitor"), console_access::stats);
    EXPECT_EQ(console_access_for(s, "app"), console_access::none);
}

TEST(admin_access, user_in_both_lists_is_admin) {
    auto s = console_settings();
    s.stats_users.push_back("ops");
    EXPECT_EQ(console_access_for(s, "ops"), console_access::admin);
}

TEST(admin_access, auth_type_any_lets_every_user_in_as_stats_user) {
    auto s = console_settings();
    s.auth_type = config::auth_type::any;
    EXPECT_EQ(console_access_for(s, "app"), console_access::stats);
    EXPECT_EQ(console_access_for(s, "root"), console_access::admin);
}

TEST(admin_access, pgbouncer_user_from_own_unix_user_is_admin) {
    const auto s = console_settings();
    EXPECT_EQ(console_access_for(s, "pgbouncer", true), console_access::admin);
    EXPECT_EQ(console_access_for(s, "pgbouncer", false), console_access::none);
    EXPECT_EQ(console_access_for(s, "app", true), console_access::none);
}

TEST(admin_access, auth_user_has_no_console_rights_of_its_own) {
    auto s = console_settings();
    s.auth_user = "pgbouncer_auth";
    EXPECT_EQ(console_access_for(s, "pgbouncer_auth"), console_access::none);
}

TEST(admin_access, empty_lists_admit_nobody) {
    const config::settings s;
    EXPECT_EQ(console_access_for(s, "postgres"), console_access::none);
    EXPECT_EQ(console_access_for(s, ""), console_access::none);
}

}  // namespace
}  // namespace sluice::admin
