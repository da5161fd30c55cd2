#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/databases.hpp"

namespace sluice::config {
namespace {

using namespace std::chrono_literals;

const source_location here{"sluice.ini", 7};

std::vector<std::string> strings(const std::vector<diagnostic>& diagnostics) {
    std::vector<std::string> out;
    for (const auto& d : diagnostics) {
        out.push_back(d.to_string());
    }
    return out;
}

TEST(config_connstring, pairs_are_whitespace_separated_with_optional_spaces_around_equals) {
    const auto result = parse_connstring("  host=db1   port = 5433\tdbname= app ");
    ASSERT_TRUE(result.ok()) << result.error;
    ASSERT_EQ(result.pairs.size(), 3U);
    EXPECT_EQ(result.pairs[0].key, "host");
    EXPECT_EQ(result.pairs[0].value, "db1");
    EXPECT_EQ(result.pairs[1].key, "port");
    EXPECT_EQ(result.pairs[1].value, "5433");
    EXPECT_EQ(result.pairs[2].value, "app");
}

TEST(config_connstring, single_quoted_values_keep_spaces_and_double_quotes_escape) {
    const auto result = parse_connstring(R"(dbname='it''s here' connect_query='SELECT 1; SELECT ''x=y''' user='')");
    ASSERT_TRUE(result.ok()) << result.error;
    ASSERT_EQ(result.pairs.size(), 3U);
    EXPECT_EQ(result.pairs[0].value, "it's here");
    EXPECT_EQ(result.pairs[1].value, "SELECT 1; SELECT 'x=y'");
    EXPECT_EQ(result.pairs[2].value, "");
}

TEST(config_connstring, keys_are_lower_cased_and_values_are_not) {
    const auto result = parse_connstring("DBName=MyDb");
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result.pairs[0].key, "dbname");
    EXPECT_EQ(result.pairs[0].value, "MyDb");
}

TEST(config_connstring, empty_string_has_no_pairs) {
    const auto result = parse_connstring("   ");
    EXPECT_TRUE(result.ok());
    EXPECT_TRUE(result.pairs.empty());
}

TEST(config_connstring, syntax_errors_are_described) {
    EXPECT_EQ(parse_connstring("host").error, R"(expected '=' after "host")");
    EXPECT_EQ(parse_connstring("host db").error, R"(expected '=' after "host")");
    EXPECT_EQ(parse_connstring("=x").error, "missing parameter name before '='");
    EXPECT_EQ(parse_connstring("dbname='abc").error, R"(unterminated quoted value for "dbname")");
    EXPECT_EQ(parse_connstring("dbname='a'b").error, R"(expected whitespace after the quoted value of "dbname")");
}

TEST(config_databases, every_documented_key_is_parsed) {
    const auto result = parse_database_entry(
        "app",
        "host=db1,db2 port=5433 dbname=appdb user=u password='p w' auth_user=au auth_query='SELECT 1' "
        "auth_dbname=authdb pool_size=5 min_pool_size=1 reserve_pool_size=2 max_db_connections=9 "
        "max_db_client_connections=99 connect_query='SET x=1' pool_mode=session server_lifetime=60.5 "
        "query_wait_timeout=3 client_encoding=UTF8 datestyle=ISO timezone=UTC application_name=app "
        "load_balance_hosts=disable",
        here);
    ASSERT_TRUE(result.errors.empty()) << strings(result.errors)[0];
    EXPECT_TRUE(result.warnings.empty());
    ASSERT_TRUE(result.entry);
    const auto& e = *result.entry;
    EXPECT_EQ(e.name, "app");
    EXPECT_EQ(e.hosts, (std::vector<std::string>{"db1", "db2"}));
    EXPECT_EQ(e.port, 5433);
    EXPECT_EQ(e.dbname, std::optional<std::string>("appdb"));
    EXPECT_EQ(e.user, std::optional<std::string>("u"));
    EXPECT_EQ(e.password, std::optional<std::string>("p w"));
    EXPECT_EQ(e.auth_user, std::optional<std::string>("au"));
    EXPECT_EQ(e.auth_query, std::optional<std::string>("SELECT 1"));
    EXPECT_EQ(e.auth_dbname, std::optional<std::string>("authdb"));
    EXPECT_EQ(e.pool_size, 5);
    EXPECT_EQ(e.min_pool_size, 1);
    EXPECT_EQ(e.reserve_pool_size, 2);
    EXPECT_EQ(e.max_db_connections, 9);
    EXPECT_EQ(e.max_db_client_connections, 99);
    EXPECT_EQ(e.connect_query, std::optional<std::string>("SET x=1"));
    EXPECT_EQ(e.pool_mode, pool_mode::session);
    EXPECT_EQ(e.server_lifetime, std::chrono::microseconds(60'500'000));
    EXPECT_EQ(e.query_wait_timeout, std::chrono::microseconds(3s));
    EXPECT_EQ(e.client_encoding, std::optional<std::string>("UTF8"));
    EXPECT_EQ(e.datestyle, std::optional<std::string>("ISO"));
    EXPECT_EQ(e.timezone, std::optional<std::string>("UTC"));
    EXPECT_EQ(e.application_name, std::optional<std::string>("app"));
    EXPECT_EQ(e.load_balance_hosts, load_balance_hosts::disable);
    EXPECT_EQ(e.defined_at.file, "sluice.ini");
    EXPECT_EQ(e.defined_at.line, 7);
}

TEST(config_databases, empty_connection_string_means_unix_socket_and_client_database_name) {
    const auto result = parse_database_entry("foodb", "", here);
    ASSERT_TRUE(result.entry);
    EXPECT_TRUE(result.entry->hosts.empty());
    EXPECT_EQ(result.entry->port, 5432);
    EXPECT_FALSE(result.entry->dbname);
    EXPECT_FALSE(result.entry->pool_size);
    EXPECT_FALSE(result.entry->pool_mode);
}

TEST(config_databases, reserve_pool_is_an_alias_of_reserve_pool_size) {
    const auto result = parse_database_entry("db", "reserve_pool=3", here);
    ASSERT_TRUE(result.entry);
    EXPECT_EQ(result.entry->reserve_pool_size, 3);
}

TEST(config_databases, query_wait_timeout_minus_one_means_unset) {
    const auto result = parse_database_entry("db", "query_wait_timeout=5 query_wait_timeout=-1", here);
    ASSERT_TRUE(result.entry);
    EXPECT_FALSE(result.entry->query_wait_timeout);
}

TEST(config_databases, bad_values_name_file_line_entry_and_key) {
    const auto result = parse_database_entry("app", "port=abc pool_size=-2 pool_mode=txn", here);
    EXPECT_FALSE(result.entry);
    EXPECT_EQ(strings(result.errors),
              (std::vector<std::string>{
                  R"(sluice.ini:7: app: port: expected an integer 1..65535, got "abc")",
                  R"(sluice.ini:7: app: pool_size: expected a non-negative integer, got "-2")",
                  R"(sluice.ini:7: app: pool_mode: expected one of session, transaction, statement, got "txn")",
              }));
}

TEST(config_databases, unknown_key_is_an_error) {
    const auto result = parse_database_entry("app", "host=a pool_sise=5", here);
    EXPECT_FALSE(result.entry);
    EXPECT_EQ(strings(result.errors),
              std::vector<std::string>{"sluice.ini:7: app: pool_sise: unknown [databases] parameter"});
}

TEST(config_databases, syntax_error_in_connection_string_is_reported_for_the_entry) {
    const auto result = parse_database_entry("app", "dbname='x", here);
    EXPECT_FALSE(result.entry);
    EXPECT_EQ(strings(result.errors),
              std::vector<std::string>{R"(sluice.ini:7: app: unterminated quoted value for "dbname")"});
}

TEST(config_databases, documented_key_sluice_ignores_is_a_warning) {
    const auto result = parse_database_entry("app", "target_session_attrs=read-write", here);
    ASSERT_TRUE(result.entry);
    EXPECT_EQ(strings(result.warnings),
              std::vector<std::string>{"sluice.ini:7: app: target_session_attrs: accepted, not used by Sluice"});
}

TEST(config_databases, location_is_not_part_of_equality) {
    const auto a = parse_database_entry("app", "host=a", {"a.ini", 1});
    const auto b = parse_database_entry("app", "host=a", {"b.ini", 9});
    const auto c = parse_database_entry("app", "host=b", {"a.ini", 1});
    EXPECT_EQ(*a.entry, *b.entry);
    EXPECT_NE(*a.entry, *c.entry);
}

TEST(config_users, user_keys_are_parsed) {
    const auto result = parse_user_entry(
        "batch",
        "pool_mode=session pool_size=4 reserve_pool_size=1 max_user_connections=10 max_user_client_connections=20 "
        "query_timeout=30 query_wait_timeout=-1 idle_transaction_timeout=5 transaction_timeout=60 "
        "client_idle_timeout=0.5",
        here);
    ASSERT_TRUE(result.errors.empty()) << strings(result.errors)[0];
    ASSERT_TRUE(result.entry);
    const auto& u = *result.entry;
    EXPECT_EQ(u.name, "batch");
    EXPECT_EQ(u.pool_mode, pool_mode::session);
    EXPECT_EQ(u.pool_size, 4);
    EXPECT_EQ(u.reserve_pool_size, 1);
    EXPECT_EQ(u.max_user_connections, 10);
    EXPECT_EQ(u.max_user_client_connections, 20);
    EXPECT_EQ(u.query_timeout, std::chrono::microseconds(30s));
    EXPECT_FALSE(u.query_wait_timeout);
    EXPECT_EQ(u.idle_transaction_timeout, std::chrono::microseconds(5s));
    EXPECT_EQ(u.transaction_timeout, std::chrono::microseconds(60s));
    EXPECT_EQ(u.client_idle_timeout, std::chrono::microseconds(500ms));
}

TEST(config_users, database_only_key_is_an_error_in_users) {
    const auto result = parse_user_entry("batch", "host=x", here);
    EXPECT_FALSE(result.entry);
    EXPECT_EQ(strings(result.errors), std::vector<std::string>{"sluice.ini:7: batch: host: unknown [users] parameter"});
}

}  // namespace
}  // namespace sluice::config
