// auth_query's pure rules: reading the query's answer, and what to query where for a client's database.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "auth/scram.hpp"
#include "auth/secret.hpp"
#include "config/config.hpp"
#include "net/auth_query.hpp"

namespace sluice::net {
namespace {

using row = std::vector<std::optional<std::string>>;

auth_query_rows one_row(std::optional<std::string> password) {
    return {2, {row{"alice", std::move(password)}}};
}

const std::string scram_secret = auth::make_scram_secret("s3cret");

TEST(auth_query_answer, no_row_means_no_such_user) {
    const auto r = parse_auth_query_rows("alice", {2, {}}, 4096);
    EXPECT_EQ(r.outcome, auth_query_result::status::not_found);
}

TEST(auth_query_answer, scram_secret_is_found_as_is) {
    const auto r = parse_auth_query_rows("alice", one_row(scram_secret), 4096);
    ASSERT_TRUE(r.found());
    EXPECT_EQ(r.stored.type, auth::secret::kind::scram_sha_256);
    EXPECT_EQ(r.stored.stored, scram_secret);
    EXPECT_EQ(r.scram.stored, scram_secret);
}

TEST(auth_query_answer, md5_secret_is_found_and_kept_for_md5_logins) {
    const auto md5 = auth::md5_secret("s3cret", "alice");
    const auto r = parse_auth_query_rows("alice", one_row(md5), 4096);
    ASSERT_TRUE(r.found());
    EXPECT_EQ(r.stored.type, auth::secret::kind::md5);
    EXPECT_EQ(r.stored.stored, md5);
}

TEST(auth_query_answer, plain_password_gets_a_scram_verifier_derived_once) {
    const auto r = parse_auth_query_rows("alice", one_row("s3cret"), 1000);
    ASSERT_TRUE(r.found());
    EXPECT_EQ(r.stored.type, auth::secret::kind::plain);
    ASSERT_EQ(r.scram.type, auth::secret::kind::scram_sha_256);
    EXPECT_EQ(r.scram.scram.iterations, 1000);
    // The verifier is the password's: deriving again with its salt gives the same keys.
    EXPECT_EQ(auth::derive_scram_verifier("s3cret", r.scram.scram.salt, 1000), r.scram.scram);
}

TEST(auth_query_answer, null_or_empty_password_means_nobody_can_log_in) {
    // PostgreSQL's default auth_query returns NULL for an expired password; a role may have none at all.
    EXPECT_EQ(parse_auth_query_rows("alice", one_row(std::nullopt), 4096).outcome,
              auth_query_result::status::not_found);
    EXPECT_EQ(parse_auth_query_rows("alice", one_row(""), 4096).outcome, auth_query_result::status::not_found);
}

TEST(auth_query_answer, several_rows_are_an_error_naming_auth_query) {
    const auto r = parse_auth_query_rows("alice", {2, {row{"alice", "a"}, row{"alice", "b"}}}, 4096);
    ASSERT_TRUE(r.error());
    EXPECT_EQ(r.sqlstate, "28000");
    EXPECT_EQ(r.message, "auth_query for user \"alice\" failed: the query returned more than one row");
    EXPECT_EQ(r.detail, "the query returned 2 rows");
}

TEST(auth_query_answer, fewer_than_two_columns_is_an_error) {
    const auto r = parse_auth_query_rows("alice", {1, {row{"alice"}}}, 4096);
    ASSERT_TRUE(r.error());
    EXPECT_EQ(r.sqlstate, "28000");
    EXPECT_NE(r.message.find("auth_query"), std::string::npos);
}

TEST(auth_query_answer, malformed_scram_secret_is_an_error_not_a_password) {
    const auto r = parse_auth_query_rows("alice", one_row("SCRAM-SHA-256$4096:bad$x:y"), 4096);
    ASSERT_TRUE(r.error());
    EXPECT_EQ(r.sqlstate, "28000");
    EXPECT_EQ(r.message, "auth_query for user \"alice\" failed: the query returned a malformed SCRAM secret");
}

// --- plan_auth_query ---

config::config load(std::string_view text) {
    auto loaded = config::load_config_string(text, "/etc/sluice/sluice.ini");
    EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors.front().to_string());
    return loaded.ok() ? std::move(*loaded.value) : config::config{};
}

config::database_entry entry_of(const config::config& cfg, std::string_view name) {
    auto entry = config::resolve_database(cfg, name);
    EXPECT_TRUE(entry) << name;
    return entry ? std::move(*entry) : config::database_entry{};
}

TEST(auth_query_plan, without_auth_user_there_is_nothing_to_look_up) {
    const auto cfg = load("[databases]\napp = host=db1 dbname=appdb\n[pgbouncer]\n");
    const auto plan = plan_auth_query(cfg, entry_of(cfg, "app"), nullptr);
    EXPECT_FALSE(plan.target);
    EXPECT_TRUE(plan.error.empty());
}

TEST(auth_query_plan, global_auth_user_queries_the_client_database_with_the_default_query) {
    const auto cfg = load(
        "[databases]\napp = host=db1,db2 port=5433 dbname=appdb\n[pgbouncer]\nauth_user = pgb\n"
        "server_tls_sslmode = require\nserver_tls_ca_file = /etc/ca.pem\n");
    const auth::secret password = *auth::parse_secret("pgb-password");
    const auto plan = plan_auth_query(cfg, entry_of(cfg, "app"), &password);
    ASSERT_TRUE(plan.target) << plan.error;
    const auto& t = *plan.target;
    EXPECT_EQ(t.host, "db1,db2");
    EXPECT_EQ(t.port, 5433);
    EXPECT_EQ(t.dbname, "appdb");
    EXPECT_EQ(t.user, "pgb");
    EXPECT_EQ(t.password, "pgb-password");
    EXPECT_EQ(t.query, config::settings{}.auth_query);
    EXPECT_EQ(t.sslmode, "require");
    EXPECT_EQ(t.sslrootcert, "/etc/ca.pem");
}

TEST(auth_query_plan, database_settings_override_the_global_ones) {
    const auto cfg = load(
        "[databases]\n"
        "app = host=db1 dbname=appdb auth_user=local auth_query='SELECT u, p FROM creds WHERE u=$1' auth_dbname=meta\n"
        "meta = host=db9 port=6000 dbname=metadb\n"
        "[pgbouncer]\nauth_user = pgb\nauth_query = SELECT 1\n");
    const auto plan = plan_auth_query(cfg, entry_of(cfg, "app"), nullptr);
    ASSERT_TRUE(plan.target) << plan.error;
    const auto& t = *plan.target;
    // auth_dbname picks the server; the query and auth_user are the client database's.
    EXPECT_EQ(t.host, "db9");
    EXPECT_EQ(t.port, 6000);
    EXPECT_EQ(t.dbname, "metadb");
    EXPECT_EQ(t.user, "local");
    EXPECT_EQ(t.query, "SELECT u, p FROM creds WHERE u=$1");
    EXPECT_FALSE(t.password);
}

TEST(auth_query_plan, global_auth_dbname_and_unix_socket_default) {
    const auto cfg = load(
        "[databases]\napp = dbname=appdb\nmeta = dbname=metadb\n"
        "[pgbouncer]\nauth_user = pgb\nauth_dbname = meta\nunix_socket_dir = /run/pg\n");
    const auto plan = plan_auth_query(cfg, entry_of(cfg, "app"), nullptr);
    ASSERT_TRUE(plan.target) << plan.error;
    EXPECT_EQ(plan.target->host, "/run/pg");
    EXPECT_EQ(plan.target->dbname, "metadb");
}

TEST(auth_query_plan, unknown_auth_dbname_is_an_error) {
    const auto cfg = load("[databases]\napp = host=db1\n[pgbouncer]\nauth_user = pgb\nauth_dbname = nowhere\n");
    const auto plan = plan_auth_query(cfg, entry_of(cfg, "app"), nullptr);
    EXPECT_FALSE(plan.target);
    EXPECT_EQ(plan.error, "auth_dbname \"nowhere\" is not a [databases] entry");
}

TEST(auth_query_plan, only_a_plain_text_password_is_given_to_libpq) {
    const auto cfg = load("[databases]\napp = host=db1\n[pgbouncer]\nauth_user = pgb\n");
    const auto app = entry_of(cfg, "app");
    const auth::secret md5 = *auth::parse_secret(auth::md5_secret("pw", "pgb"));
    const auth::secret scram = *auth::parse_secret(scram_secret);
    ASSERT_TRUE(plan_auth_query(cfg, app, &md5).target);
    EXPECT_FALSE(plan_auth_query(cfg, app, &md5).target->password);
    EXPECT_FALSE(plan_auth_query(cfg, app, &scram).target->password);
}

TEST(auth_query_keys, differ_for_every_field_and_never_collide_across_fields) {
    auth_query_target a;
    a.host = "h";
    a.dbname = "db";
    a.user = "u";
    a.query = "q";
    auto b = a;
    b.host = "hd";
    b.dbname = "b";  // "h" "db" vs "hd" "b": the separator keeps them apart
    EXPECT_NE(auth_query_login_key(a), auth_query_login_key(b));

    auto empty_password = a;
    empty_password.password = "";
    EXPECT_NE(auth_query_login_key(a), auth_query_login_key(empty_password));

    auto other_query = a;
    other_query.query = "q2";
    EXPECT_EQ(auth_query_login_key(a), auth_query_login_key(other_query));  // same connection serves both
    EXPECT_NE(auth_query_target_key(a), auth_query_target_key(other_query));
}

}  // namespace
}  // namespace sluice::net
