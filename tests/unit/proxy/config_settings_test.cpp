#include <gtest/gtest.h>

#include <set>
#include <string>

#include "config/settings.hpp"
#include "config/text.hpp"

namespace sluice::config {
namespace {

using namespace std::chrono_literals;

// Parses `value` into a copy of `base` through the table row `name`; fails the test if the row is missing.
struct assigned {
    settings value;
    std::optional<std::string> error;
};
assigned assign(std::string_view name, std::string_view value, const std::string& base_dir = {}, settings base = {}) {
    const auto* def = find_setting(name);
    if (def == nullptr) {
        ADD_FAILURE() << "no setting " << name;
        return {base, "no such setting"};
    }
    auto error = def->assign(base, value, base_dir);
    return {base, error};
}

TEST(config_settings, defaults_follow_pgbouncer_documentation) {
    const settings s;
    EXPECT_TRUE(s.listen_addr.empty());
    EXPECT_EQ(s.listen_port, 6432);
    EXPECT_EQ(s.unix_socket_dir, "/tmp");
    EXPECT_EQ(s.unix_socket_mode, 0777);
    EXPECT_EQ(s.listen_backlog, 128);
    EXPECT_EQ(s.max_client_conn, 100);
    EXPECT_EQ(s.default_pool_size, 20);
    EXPECT_EQ(s.reserve_pool_timeout, 5s);
    EXPECT_EQ(s.server_reset_query, "DISCARD ALL");
    EXPECT_EQ(s.server_check_delay, 30s);
    EXPECT_EQ(s.server_check_query, std::optional<std::string>(""));
    EXPECT_EQ(s.server_lifetime, 3600s);
    EXPECT_EQ(s.server_idle_timeout, 600s);
    EXPECT_EQ(s.server_connect_timeout, 15s);
    EXPECT_EQ(s.server_login_retry, 15s);
    EXPECT_EQ(s.client_login_timeout, 60s);
    EXPECT_EQ(s.autodb_idle_timeout, 3600s);
    EXPECT_EQ(s.query_wait_timeout, 120s);
    EXPECT_EQ(s.cancel_wait_timeout, 10s);
    EXPECT_EQ(s.suspend_timeout, 10s);
    EXPECT_EQ(s.query_timeout, 0s);
    EXPECT_EQ(s.pkt_buf, 4096U);
    EXPECT_EQ(s.max_packet_size, 2147483647U);
    EXPECT_EQ(s.sbuf_loopcnt, 5);
    EXPECT_TRUE(s.tcp_keepalive);
    EXPECT_EQ(s.track_extra_parameters, std::vector<std::string>{"IntervalStyle"});
    EXPECT_EQ(s.client_tls_sslmode, ssl_mode::disable);
    EXPECT_EQ(s.server_tls_sslmode, ssl_mode::prefer);
    EXPECT_EQ(s.client_tls_protocols, tls_protocols{});
    EXPECT_EQ(s.max_prepared_statements, 200);
    EXPECT_EQ(s.auth_query,
              "SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid "
              "WHERE rolname=$1 AND rolcanlogin");
    EXPECT_TRUE(s.log_connections);
    EXPECT_EQ(s.stats_period, 60s);
    EXPECT_EQ(s.dns_max_ttl, 15s);
}

TEST(config_settings, sluice_defaults_and_extensions) {
    const settings s;
    EXPECT_EQ(s.pool_mode, pool_mode::transaction);    // PgBouncer: session
    EXPECT_EQ(s.auth_type, auth_type::scram_sha_256);  // PgBouncer: md5
    EXPECT_EQ(s.workers, 0);
    EXPECT_EQ(s.server_lifetime_jitter, 0s);
    EXPECT_EQ(s.query_wait_notify, 5s);
    EXPECT_EQ(s.metrics_addr, "127.0.0.1");
    EXPECT_EQ(s.metrics_port, 9127);
    EXPECT_EQ(s.shutdown_timeout, 30s);
    EXPECT_TRUE(s.track_session_state);
    for (std::string_view name : {"workers", "server_lifetime_jitter", "metrics_addr", "metrics_port",
                                  "shutdown_timeout", "track_session_state"}) {
        ASSERT_NE(find_setting(name), nullptr) << name;
        EXPECT_EQ(find_setting(name)->origin, setting_origin::sluice) << name;
    }
    EXPECT_EQ(find_setting("listen_port")->origin, setting_origin::pgbouncer);
}

TEST(config_settings, table_names_are_unique_lower_case_and_described) {
    std::set<std::string_view> names;
    for (const auto& def : all_settings()) {
        EXPECT_TRUE(names.insert(def.name).second) << "duplicate " << def.name;
        EXPECT_EQ(text::to_lower(def.name), def.name);
        EXPECT_FALSE(def.description.empty()) << def.name;
    }
    EXPECT_GT(names.size(), 80U);
    for (const auto& unused : accepted_unused_settings()) {
        EXPECT_EQ(find_setting(unused.name), nullptr) << unused.name << " is both typed and unused";
        EXPECT_TRUE(names.insert(unused.name).second) << "duplicate " << unused.name;
    }
}

TEST(config_settings, lookup_is_case_insensitive) {
    ASSERT_NE(find_setting("Listen_PORT"), nullptr);
    EXPECT_EQ(find_setting("Listen_PORT")->name, "listen_port");
    EXPECT_NE(find_unused_setting("SYSLOG"), nullptr);
    EXPECT_EQ(find_setting("no_such_setting"), nullptr);
}

TEST(config_settings, settings_that_bind_or_start_things_need_a_restart) {
    for (std::string_view name :
         {"listen_addr", "listen_port", "unix_socket_dir", "workers", "so_reuseport", "user", "pidfile",
          "unix_socket_mode", "unix_socket_group", "listen_backlog", "metrics_addr", "metrics_port"}) {
        ASSERT_NE(find_setting(name), nullptr) << name;
        EXPECT_EQ(find_setting(name)->applies, applies_on::restart) << name;
    }
    for (std::string_view name :
         {"default_pool_size", "pool_mode", "auth_file", "logfile", "query_timeout", "client_tls_sslmode"}) {
        EXPECT_EQ(find_setting(name)->applies, applies_on::reload) << name;
    }
}

TEST(config_settings, integer_out_of_range_or_not_a_number_is_rejected) {
    EXPECT_EQ(assign("listen_port", "7000").value.listen_port, 7000);
    EXPECT_EQ(assign("listen_port", "abc").error, R"(expected an integer 1..65535, got "abc")");
    EXPECT_EQ(assign("listen_port", "0").error, R"(expected an integer 1..65535, got "0")");
    EXPECT_EQ(assign("listen_port", "65536").error, R"(expected an integer 1..65535, got "65536")");
    EXPECT_EQ(assign("listen_port", "64 32").error, R"(expected an integer 1..65535, got "64 32")");
    EXPECT_EQ(assign("default_pool_size", "-1").error, R"(expected a non-negative integer, got "-1")");
    EXPECT_EQ(assign("default_pool_size", "").error, R"(expected a non-negative integer, got "")");
    EXPECT_EQ(assign("max_client_conn", "0").error, R"(expected an integer >= 1, got "0")");
    EXPECT_EQ(assign("metrics_port", "0").value.metrics_port, 0);
    EXPECT_EQ(assign("pkt_buf", "8192").value.pkt_buf, 8192U);
    EXPECT_TRUE(assign("pkt_buf", "100").error.has_value());
}

TEST(config_settings, failed_assignment_leaves_the_field_unchanged) {
    settings base;
    base.listen_port = 7000;
    EXPECT_EQ(assign("listen_port", "abc", {}, base).value.listen_port, 7000);
}

TEST(config_settings, time_settings_take_fractional_seconds) {
    EXPECT_EQ(assign("query_timeout", "0.5").value.query_timeout, 500ms);
    EXPECT_EQ(assign("query_timeout", "2").value.query_timeout, 2s);
    EXPECT_EQ(assign("query_timeout", "1e2").value.query_timeout, 100s);
    EXPECT_EQ(assign("query_timeout", "0.000001").value.query_timeout, 1us);
    EXPECT_EQ(assign("server_lifetime", "3600.0").value.server_lifetime, 3600s);
    EXPECT_EQ(assign("reserve_pool_timeout", "0").value.reserve_pool_timeout, 0s);
}

TEST(config_settings, time_settings_reject_negative_suffixed_and_non_finite_values) {
    const std::string expected = "expected a non-negative number of seconds (fractions allowed, e.g. 0.5), got ";
    EXPECT_EQ(assign("query_timeout", "-1").error, expected + "\"-1\"");
    EXPECT_EQ(assign("query_timeout", "5min").error, expected + "\"5min\"");  // PgBouncer has no suffixes
    EXPECT_EQ(assign("query_timeout", "5s").error, expected + "\"5s\"");
    EXPECT_EQ(assign("query_timeout", "inf").error, expected + "\"inf\"");
    EXPECT_EQ(assign("query_timeout", "nan").error, expected + "\"nan\"");
    EXPECT_EQ(assign("query_timeout", "1e10").error, expected + "\"1e10\"");
}

TEST(config_settings, whole_number_durations_for_socket_options) {
    EXPECT_EQ(assign("tcp_keepidle", "60").value.tcp_keepidle, 60s);
    EXPECT_EQ(assign("tcp_user_timeout", "1500").value.tcp_user_timeout, 1500ms);
    EXPECT_TRUE(assign("tcp_user_timeout", "1.5").error.has_value());
    EXPECT_EQ(find_setting("tcp_user_timeout")->unit, "milliseconds");
    EXPECT_EQ(find_setting("tcp_keepidle")->unit, "seconds");
}

TEST(config_settings, booleans_accept_pgbouncer_integers_and_words) {
    EXPECT_TRUE(assign("so_reuseport", "1").value.so_reuseport);
    EXPECT_TRUE(assign("so_reuseport", "2").value.so_reuseport);  // PgBouncer: any non-zero integer
    EXPECT_TRUE(assign("so_reuseport", "On").value.so_reuseport);
    EXPECT_TRUE(assign("so_reuseport", "true").value.so_reuseport);
    EXPECT_TRUE(assign("so_reuseport", "YES").value.so_reuseport);
    EXPECT_FALSE(assign("tcp_keepalive", "0").value.tcp_keepalive);
    EXPECT_FALSE(assign("tcp_keepalive", "off").value.tcp_keepalive);
    EXPECT_FALSE(assign("tcp_keepalive", "False").value.tcp_keepalive);
    EXPECT_FALSE(assign("tcp_keepalive", "no").value.tcp_keepalive);
    EXPECT_EQ(assign("tcp_keepalive", "maybe").error,
              R"(expected a boolean (0 or 1, on/off, true/false, yes/no), got "maybe")");
}

TEST(config_settings, enums_use_pgbouncer_keywords_case_insensitively) {
    EXPECT_EQ(assign("auth_type", "scram-sha-256").value.auth_type, auth_type::scram_sha_256);
    EXPECT_EQ(assign("auth_type", "MD5").value.auth_type, auth_type::md5);
    EXPECT_EQ(assign("auth_type", "hba").value.auth_type, auth_type::hba);
    EXPECT_EQ(assign("pool_mode", "Session").value.pool_mode, pool_mode::session);
    EXPECT_EQ(assign("pool_mode", "statement").value.pool_mode, pool_mode::statement);
    EXPECT_EQ(assign("server_tls_sslmode", "verify-full").value.server_tls_sslmode, ssl_mode::verify_full);
    EXPECT_EQ(assign("client_tls_sslmode", "verify-ca").value.client_tls_sslmode, ssl_mode::verify_ca);
}

TEST(config_settings, unknown_enum_keyword_lists_the_choices) {
    EXPECT_EQ(assign("pool_mode", "sessions").error,
              R"(expected one of session, transaction, statement, got "sessions")");
    EXPECT_EQ(assign("client_tls_sslmode", "verify_ca").error,
              R"(expected one of disable, allow, prefer, require, verify-ca, verify-full, got "verify_ca")");
    EXPECT_EQ(assign("auth_type", "scram_sha_256").error,
              R"(expected one of scram-sha-256, md5, plain, trust, cert, hba, any, got "scram_sha_256")");
}

TEST(config_settings, pgbouncer_auth_methods_sluice_lacks_are_named_unsupported) {
    EXPECT_EQ(assign("auth_type", "pam").error, R"("pam" is a PgBouncer method that Sluice does not support)");
    EXPECT_TRUE(assign("auth_type", "ldap").error.has_value());
}

TEST(config_settings, lists_are_split_on_commas_and_trimmed) {
    EXPECT_EQ(assign("admin_users", " alice, bob ,,carol ").value.admin_users,
              (std::vector<std::string>{"alice", "bob", "carol"}));
    EXPECT_EQ(assign("listen_addr", "*").value.listen_addr, std::vector<std::string>{"*"});
    EXPECT_TRUE(assign("track_extra_parameters", "").value.track_extra_parameters.empty());
}

TEST(config_settings, optional_text_is_unset_by_an_empty_value) {
    EXPECT_EQ(assign("auth_user", "pgbouncer").value.auth_user, std::optional<std::string>("pgbouncer"));
    settings base;
    base.auth_user = "x";
    EXPECT_FALSE(assign("auth_user", "", {}, base).value.auth_user.has_value());
    EXPECT_EQ(assign("unix_socket_dir", "").value.unix_socket_dir, "");  // empty disables the socket
}

TEST(config_settings, socket_mode_is_octal) {
    EXPECT_EQ(assign("unix_socket_mode", "0700").value.unix_socket_mode, 0700);
    EXPECT_EQ(assign("unix_socket_mode", "660").value.unix_socket_mode, 0660);
    EXPECT_EQ(assign("unix_socket_mode", "0800").error, R"(expected an octal file mode such as 0777, got "0800")");
    EXPECT_TRUE(assign("unix_socket_mode", "17777").error.has_value());
    EXPECT_EQ(find_setting("unix_socket_mode")->format(settings{}), "0777");
}

TEST(config_settings, tls_protocols_accept_versions_and_shortcuts) {
    EXPECT_EQ(assign("client_tls_protocols", "secure").value.client_tls_protocols, (tls_protocols{}));
    EXPECT_EQ(assign("client_tls_protocols", "all").value.client_tls_protocols,
              (tls_protocols{true, true, true, true}));
    EXPECT_EQ(assign("client_tls_protocols", "legacy").value.client_tls_protocols,
              (tls_protocols{true, true, true, true}));
    EXPECT_EQ(assign("server_tls_protocols", "tlsv1.3").value.server_tls_protocols,
              (tls_protocols{false, false, false, true}));
    EXPECT_EQ(assign("server_tls_protocols", "TLSv1.1, tlsv1.2").value.server_tls_protocols,
              (tls_protocols{false, true, true, false}));
    EXPECT_TRUE(assign("server_tls_protocols", "sslv3").error.has_value());
    EXPECT_TRUE(assign("server_tls_protocols", "").error.has_value());
}

TEST(config_settings, server_check_query_distinguishes_disabled_from_empty_query) {
    EXPECT_EQ(assign("server_check_query", "select 1").value.server_check_query,
              std::optional<std::string>("select 1"));
    EXPECT_EQ(assign("server_check_query", "<empty>").value.server_check_query, std::optional<std::string>(""));
    EXPECT_FALSE(assign("server_check_query", "").value.server_check_query.has_value());
    EXPECT_EQ(find_setting("server_check_query")->format(settings{}), "<empty>");
}

TEST(config_settings, relative_paths_resolve_against_the_base_directory) {
    EXPECT_EQ(assign("auth_file", "userlist.txt", "/etc/sluice").value.auth_file,
              std::optional<std::string>("/etc/sluice/userlist.txt"));
    EXPECT_EQ(assign("auth_file", "../x/users.txt", "/etc/sluice").value.auth_file,
              std::optional<std::string>("/etc/x/users.txt"));
    EXPECT_EQ(assign("client_tls_key_file", "/abs/key.pem", "/etc/sluice").value.client_tls_key_file,
              std::optional<std::string>("/abs/key.pem"));
    EXPECT_EQ(assign("logfile", "sluice.log", "").value.logfile, std::optional<std::string>("sluice.log"));
    EXPECT_FALSE(assign("pidfile", "", "/etc").value.pidfile.has_value());
}

TEST(config_settings, every_value_survives_format_then_parse) {
    // Non-default values for every kind of field.
    settings changed;
    const std::pair<std::string_view, std::string_view> edits[] = {
        {"listen_addr", "127.0.0.1,::1"},
        {"listen_port", "7432"},
        {"unix_socket_mode", "0640"},
        {"pool_mode", "statement"},
        {"auth_type", "md5"},
        {"server_check_query", ""},
        {"query_timeout", "0.25"},
        {"tcp_user_timeout", "250"},
        {"tcp_keepidle", "30"},
        {"so_reuseport", "1"},
        {"logfile", "/var/log/s.log"},
        {"client_tls_protocols", "tlsv1.3"},
        {"server_tls_protocols", "all"},
        {"client_tls_sslmode", "require"},
        {"pkt_buf", "8192"},
        {"auth_user", "authy"},
        {"track_extra_parameters", "a,b"},
    };
    for (const auto& [name, value] : edits) {
        ASSERT_FALSE(find_setting(name)->assign(changed, value, "/")) << name;
    }
    ASSERT_NE(changed, settings{});
    settings rebuilt;
    for (const auto& def : all_settings()) {
        const auto text = def.format(changed);
        EXPECT_FALSE(def.assign(rebuilt, text, "/")) << def.name << " = " << text;
    }
    EXPECT_EQ(rebuilt, changed);
}

TEST(config_settings, diff_reports_changed_settings_with_their_reload_rule) {
    settings before;
    settings after;
    after.listen_port = 7000;
    after.default_pool_size = 50;
    after.query_timeout = std::chrono::milliseconds(1500);
    const auto changes = diff_settings(before, after);
    ASSERT_EQ(changes.size(), 3U);
    EXPECT_EQ(changes[0].name, "listen_port");
    EXPECT_EQ(changes[0].applies, applies_on::restart);
    EXPECT_EQ(changes[0].old_value, "6432");
    EXPECT_EQ(changes[0].new_value, "7000");
    EXPECT_EQ(changes[1].name, "default_pool_size");
    EXPECT_EQ(changes[1].applies, applies_on::reload);
    EXPECT_EQ(changes[2].name, "query_timeout");
    EXPECT_EQ(changes[2].new_value, "1.5");
    EXPECT_TRUE(diff_settings(before, before).empty());
}

TEST(config_values, seconds_format_like_show_config) {
    EXPECT_EQ(format_seconds(3600s), "3600");
    EXPECT_EQ(format_seconds(500ms), "0.5");
    EXPECT_EQ(format_seconds(std::chrono::microseconds(1'000'001)), "1.000001");
    EXPECT_EQ(format_seconds(0s), "0");
}

TEST(config_values, enum_names_round_trip) {
    EXPECT_EQ(to_string(auth_type::scram_sha_256), "scram-sha-256");
    EXPECT_EQ(to_string(ssl_mode::verify_full), "verify-full");
    EXPECT_EQ(to_string(pool_mode::transaction), "transaction");
    EXPECT_EQ(parse_ssl_mode("prefer").value, ssl_mode::prefer);
}

}  // namespace
}  // namespace sluice::config
