#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace sluice::config {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> strings(const std::vector<diagnostic>& diagnostics) {
    std::vector<std::string> out;
    for (const auto& d : diagnostics) {
        out.push_back(d.to_string());
    }
    return out;
}

file_reader map_reader(std::map<std::string, std::string> files) {
    return [files = std::move(files)](const std::string& path) -> read_outcome {
        const auto found = files.find(path);
        if (found == files.end()) {
            return {std::nullopt, "No such file or directory"};
        }
        return {found->second, {}};
    };
}

// Loads `text` as sluice.ini with no includes available; fails the test on errors.
config load_ok(std::string_view text) {
    auto result = load_config_string(text, "sluice.ini", {});
    EXPECT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].to_string());
    return result.ok() ? std::move(*result.value) : config{};
}

TEST(config_load, reads_settings_databases_and_users) {
    const auto cfg = load_ok(R"(
[databases]
app = host=db1 dbname=appdb pool_size=5
* = host=fallback
[users]
batch = pool_mode=session
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 7432
pool_mode = transaction
query_timeout = 0.5
)");
    EXPECT_EQ(cfg.path, "sluice.ini");
    EXPECT_EQ(cfg.settings.listen_addr, std::vector<std::string>{"127.0.0.1"});
    EXPECT_EQ(cfg.settings.listen_port, 7432);
    EXPECT_EQ(cfg.settings.query_timeout, 500ms);
    ASSERT_EQ(cfg.databases.size(), 1U);
    EXPECT_EQ(cfg.databases[0].name, "app");
    EXPECT_EQ(cfg.databases[0].pool_size, 5);
    ASSERT_TRUE(cfg.fallback);
    EXPECT_EQ(cfg.fallback->hosts, std::vector<std::string>{"fallback"});
    ASSERT_EQ(cfg.users.size(), 1U);
    EXPECT_EQ(cfg.users[0].pool_mode, pool_mode::session);
    EXPECT_TRUE(cfg.warnings.empty()) << strings(cfg.warnings)[0];
}

TEST(config_load, sluice_section_is_an_alias_of_pgbouncer) {
    const auto cfg = load_ok("[databases]\n* =\n[sluice]\nlisten_port = 7000\n[pgbouncer]\nworkers = 4\n");
    EXPECT_EQ(cfg.settings.listen_port, 7000);
    EXPECT_EQ(cfg.settings.workers, 4);
}

TEST(config_load, setting_keys_and_section_names_are_case_insensitive) {
    const auto cfg = load_ok("[Databases]\n* =\n[PGBOUNCER]\nListen_Port = 7001\nPOOL_MODE = Session\n");
    EXPECT_EQ(cfg.settings.listen_port, 7001);
    EXPECT_EQ(cfg.settings.pool_mode, pool_mode::session);
}

TEST(config_load, later_value_of_a_setting_wins) {
    const auto cfg = load_ok("[databases]\n* =\n[pgbouncer]\nlisten_port = 7001\nlisten_port = 7002\n");
    EXPECT_EQ(cfg.settings.listen_port, 7002);
}

TEST(config_load, unknown_setting_is_a_warning_with_file_line_and_key) {
    const auto cfg = load_ok("[databases]\n* =\n[pgbouncer]\n\nlisten_prot = 7000\n");
    EXPECT_EQ(cfg.settings.listen_port, 6432);
    EXPECT_EQ(strings(cfg.warnings), std::vector<std::string>{"sluice.ini:5: listen_prot: unknown setting, ignored"});
    EXPECT_EQ(cfg.warnings[0].line, 5);
    EXPECT_EQ(cfg.warnings[0].key, "listen_prot");
}

TEST(config_load, pgbouncer_setting_sluice_does_not_use_is_accepted_with_a_warning) {
    const auto cfg = load_ok("[databases]\n* =\n[pgbouncer]\nsyslog = 1\n");
    ASSERT_EQ(cfg.warnings.size(), 1U);
    EXPECT_EQ(cfg.warnings[0].line, 4);
    EXPECT_EQ(cfg.warnings[0].key, "syslog");
    EXPECT_EQ(cfg.warnings[0].message.rfind("accepted, not used by Sluice", 0), 0U) << cfg.warnings[0].message;
}

TEST(config_load, bad_value_error_names_file_line_and_key) {
    std::string text = "[databases]\n* =\n[pgbouncer]\n";
    for (int line = 4; line < 12; ++line) {
        text += "; filler\n";
    }
    text += "listen_port = abc\n";
    const auto result = load_config_string(text, "sluice.ini", {});
    EXPECT_FALSE(result.ok());
    EXPECT_EQ(strings(result.errors),
              std::vector<std::string>{R"(sluice.ini:12: listen_port: expected an integer 1..65535, got "abc")"});
}

TEST(config_load, any_error_rejects_the_whole_file_and_all_errors_are_reported) {
    const auto result = load_config_string(
        "[databases]\napp = port=x\n[pgbouncer]\nauth_type = pam\nserver_lifetime = -5\nlisten_port = 7000\n",
        "sluice.ini", {});
    EXPECT_FALSE(result.ok());
    EXPECT_FALSE(result.value.has_value());
    EXPECT_EQ(strings(result.errors),
              (std::vector<std::string>{
                  R"(sluice.ini:2: app: port: expected an integer 1..65535, got "x")",
                  R"(sluice.ini:4: auth_type: "pam" is a PgBouncer method that Sluice does not support)",
                  "sluice.ini:5: server_lifetime: expected a non-negative number of seconds (fractions allowed, "
                  "e.g. 0.5), got \"-5\"",
              }));
}

TEST(config_load, syntax_errors_reject_the_file) {
    const auto result = load_config_string("[databases]\n* =\n[pgbouncer\n", "sluice.ini", {});
    EXPECT_EQ(strings(result.errors), std::vector<std::string>{"sluice.ini:3: section header must end with ']'"});
}

TEST(config_load, exact_database_name_wins_over_fallback_and_names_are_case_sensitive) {
    const auto cfg = load_ok("[databases]\napp = host=db1\n* = host=other port=6000\n");
    ASSERT_NE(find_database(cfg, "app"), nullptr);
    EXPECT_EQ(find_database(cfg, "app")->hosts, std::vector<std::string>{"db1"});
    ASSERT_NE(find_database(cfg, "App"), nullptr);
    EXPECT_EQ(find_database(cfg, "App")->name, "*");
    EXPECT_EQ(find_database(cfg, "anything")->port, 6000);
}

TEST(config_load, without_fallback_unknown_database_is_not_found) {
    const auto cfg = load_ok("[databases]\napp = host=db1\n");
    EXPECT_EQ(find_database(cfg, "other"), nullptr);
    EXPECT_FALSE(resolve_database(cfg, "other"));
}

TEST(config_load, resolved_fallback_uses_the_requested_name_as_dbname) {
    const auto cfg = load_ok("[databases]\nreports = host=db1 dbname=warehouse\napp = host=db2\n* = host=db3\n");
    const auto fallback = resolve_database(cfg, "shop");
    ASSERT_TRUE(fallback);
    EXPECT_EQ(fallback->name, "shop");
    EXPECT_EQ(fallback->dbname, std::optional<std::string>("shop"));
    EXPECT_EQ(fallback->hosts, std::vector<std::string>{"db3"});
    EXPECT_EQ(resolve_database(cfg, "reports")->dbname, std::optional<std::string>("warehouse"));
    EXPECT_EQ(resolve_database(cfg, "app")->dbname, std::optional<std::string>("app"));
}

TEST(config_load, fallback_with_explicit_dbname_routes_every_name_there) {
    const auto cfg = load_ok("[databases]\n* = host=db dbname=one\n");
    EXPECT_EQ(resolve_database(cfg, "x")->dbname, std::optional<std::string>("one"));
}

TEST(config_load, quoted_database_name) {
    const auto cfg = load_ok("[databases]\n\"my-db \"\"x\"\"\" = host=a\n");
    ASSERT_NE(find_database(cfg, "my-db \"x\""), nullptr);
}

TEST(config_load, users_are_found_by_exact_name) {
    const auto cfg = load_ok("[databases]\n* =\n[users]\nbatch = max_user_connections=3\n");
    ASSERT_NE(find_user(cfg, "batch"), nullptr);
    EXPECT_EQ(find_user(cfg, "batch")->max_user_connections, 3);
    EXPECT_EQ(find_user(cfg, "Batch"), nullptr);
}

TEST(config_load, redefined_database_replaces_the_earlier_one_with_a_warning) {
    const auto cfg = load_ok("[databases]\napp = host=a\napp = host=b\n");
    ASSERT_EQ(cfg.databases.size(), 1U);
    EXPECT_EQ(cfg.databases[0].hosts, std::vector<std::string>{"b"});
    EXPECT_EQ(strings(cfg.warnings), std::vector<std::string>{"sluice.ini:3: app: database defined again; replaces "
                                                              "the definition at sluice.ini:2"});
}

TEST(config_load, admin_console_name_is_reserved) {
    const auto result = load_config_string("[databases]\npgbouncer = host=a\n", "sluice.ini", {});
    EXPECT_EQ(strings(result.errors), std::vector<std::string>{"sluice.ini:2: pgbouncer: the database name "
                                                               "\"pgbouncer\" is reserved for the admin console"});
}

TEST(config_load, peers_section_is_ignored_with_one_warning) {
    const auto cfg = load_ok("[databases]\n* =\n[peers]\n1 = host=/tmp/a\n2 = host=/tmp/b\n");
    EXPECT_EQ(strings(cfg.warnings),
              std::vector<std::string>{
                  "sluice.ini:3: [peers] is accepted and ignored: Sluice does not forward cancel requests to peers"});
}

TEST(config_load, unknown_section_is_an_error) {
    const auto result = load_config_string("[databses]\n* =\n", "sluice.ini", {});
    ASSERT_EQ(result.errors.size(), 1U);
    EXPECT_EQ(result.errors[0].line, 1);
    EXPECT_NE(result.errors[0].message.find("unknown section [databses]"), std::string::npos);
}

TEST(config_load, missing_databases_is_a_warning) {
    const auto cfg = load_ok("[pgbouncer]\nlisten_port = 7000\n");
    EXPECT_EQ(strings(cfg.warnings),
              std::vector<std::string>{"sluice.ini: no [databases] entries: clients can reach only the admin console"});
}

TEST(config_load, client_tls_without_key_and_certificate_is_an_error_at_the_enabling_line) {
    const auto result =
        load_config_string("[databases]\n* =\n[pgbouncer]\nclient_tls_sslmode = require\n", "sluice.ini", {});
    EXPECT_EQ(strings(result.errors),
              std::vector<std::string>{
                  "sluice.ini:4: client_tls_sslmode: require needs client_tls_key_file and client_tls_cert_file"});
    EXPECT_TRUE(load_config_string("[databases]\n* =\n[pgbouncer]\nclient_tls_sslmode = require\n"
                                   "client_tls_key_file = k.pem\nclient_tls_cert_file = c.pem\n",
                                   "sluice.ini", {})
                    .ok());
}

TEST(config_load, hba_auth_needs_an_hba_file) {
    const auto result = load_config_string("[databases]\n* =\n[pgbouncer]\nauth_type = hba\n", "sluice.ini", {});
    EXPECT_EQ(strings(result.errors), std::vector<std::string>{"sluice.ini:4: auth_type: hba needs auth_hba_file"});
}

TEST(config_load, relative_paths_resolve_against_the_directory_of_the_defining_file) {
    const auto reader = map_reader({{"/etc/sluice/conf.d/auth.ini", "auth_hba_file = hba.conf\n"}});
    const auto result = load_config_string(
        "[databases]\n* =\n[pgbouncer]\nauth_file = userlist.txt\nlogfile = /var/log/sluice.log\n"
        "%include conf.d/auth.ini\n",
        "/etc/sluice/sluice.ini", reader);
    ASSERT_TRUE(result.ok()) << strings(result.errors)[0];
    const auto& s = result.value->settings;
    EXPECT_EQ(s.auth_file, std::optional<std::string>("/etc/sluice/userlist.txt"));
    EXPECT_EQ(s.logfile, std::optional<std::string>("/var/log/sluice.log"));
    EXPECT_EQ(s.auth_hba_file, std::optional<std::string>("/etc/sluice/conf.d/hba.conf"));
}

TEST(config_load, include_cycle_rejects_the_file) {
    const auto reader = map_reader(
        {{"/c/sluice.ini", "[databases]\n* =\n%include more.ini\n"}, {"/c/more.ini", "%include sluice.ini\n"}});
    const auto result = load_config_file("/c/sluice.ini", reader);
    EXPECT_EQ(strings(result.errors),
              std::vector<std::string>{"/c/more.ini:1: %include cycle: \"/c/sluice.ini\" is already being read"});
}

TEST(config_load, errors_in_included_files_name_the_included_file) {
    const auto reader = map_reader(
        {{"/c/sluice.ini", "[pgbouncer]\n%include pools.ini\n"}, {"/c/pools.ini", "\ndefault_pool_size = lots\n"}});
    const auto result = load_config_file("/c/sluice.ini", reader);
    EXPECT_EQ(
        strings(result.errors),
        std::vector<std::string>{R"(/c/pools.ini:2: default_pool_size: expected a non-negative integer, got "lots")"});
}

TEST(config_load, missing_file_is_one_clear_error) {
    const auto result = load_config_file("/nonexistent-sluice-dir/sluice.ini");
    EXPECT_FALSE(result.ok());
    EXPECT_EQ(strings(result.errors), std::vector<std::string>{"/nonexistent-sluice-dir/sluice.ini: cannot read "
                                                               "config file: No such file or directory"});
}

}  // namespace
}  // namespace sluice::config
