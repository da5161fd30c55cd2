#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "admin/command.hpp"

namespace sluice::admin {
namespace {

// Parses `sql`, failing the test if it does not parse.
command parse_ok(std::string_view sql) {
    auto result = parse_command(sql);
    EXPECT_TRUE(result.ok()) << "query: " << sql << " error: " << result.error;
    return result.ok() ? *result.cmd : command{};
}

// Parses `sql`, failing the test if it parses; returns the error message.
std::string parse_error(std::string_view sql) {
    auto result = parse_command(sql);
    EXPECT_FALSE(result.ok()) << "query unexpectedly parsed: " << sql;
    EXPECT_EQ(result.sqlstate, "42601") << sql;
    return result.error;
}

std::string invalid(std::string_view sql) {
    return "invalid command '" + std::string(sql) + "', use SHOW HELP;";
}

TEST(admin_command, show_accepts_every_pgbouncer_subject) {
    for (std::string_view subject :
         {"pools",   "stats",          "stats_totals", "stats_averages", "servers", "clients",   "databases",
          "users",   "config",         "lists",        "version",        "mem",     "dns_hosts", "dns_zones",
          "sockets", "active_sockets", "fds",          "state",          "totals",  "peers",     "peer_pools",
          "help"}) {
        const auto cmd = parse_ok("SHOW " + std::string(subject));
        EXPECT_EQ(cmd.kind, command_kind::show);
        EXPECT_EQ(cmd.subject, subject);
    }
}

TEST(admin_command, keywords_are_case_insensitive_and_subject_is_lower_cased) {
    EXPECT_EQ(parse_ok("show Pools").subject, "pools");
    EXPECT_EQ(parse_ok("ShOw STATS_TOTALS").subject, "stats_totals");
    EXPECT_EQ(parse_ok("pause").kind, command_kind::pause);
    EXPECT_EQ(parse_ok("Reload").kind, command_kind::reload);
}

TEST(admin_command, tolerates_whitespace_and_one_trailing_semicolon) {
    EXPECT_EQ(parse_ok("  \t\r\nshow \n  pools  ;  \n").subject, "pools");
    EXPECT_EQ(parse_ok("SHOW POOLS;").subject, "pools");
    EXPECT_EQ(parse_ok("SHOW POOLS ;").subject, "pools");
    EXPECT_EQ(parse_ok("RELOAD;").kind, command_kind::reload);
}

TEST(admin_command, select_is_an_alias_of_show_as_in_pgbouncer) {
    const auto cmd = parse_ok("SELECT pools");
    EXPECT_EQ(cmd.kind, command_kind::show);
    EXPECT_EQ(cmd.subject, "pools");
}

TEST(admin_command, show_of_parameters_drivers_ask_for_is_accepted) {
    EXPECT_EQ(parse_ok("SHOW client_encoding").subject, "client_encoding");
    EXPECT_EQ(parse_ok("show TimeZone").subject, "timezone");
}

TEST(admin_command, show_without_or_with_unknown_subject_is_invalid) {
    EXPECT_EQ(parse_error("SHOW"), invalid("SHOW"));
    EXPECT_EQ(parse_error("show nothing"), invalid("show nothing"));
    EXPECT_EQ(parse_error("SELECT 1"), invalid("SELECT 1"));
}

TEST(admin_command, database_commands_take_an_optional_database) {
    struct expectation {
        std::string_view verb;
        command_kind kind;
    };
    for (const auto& [verb, kind] :
         {expectation{"PAUSE", command_kind::pause}, expectation{"RESUME", command_kind::resume},
          expectation{"RECONNECT", command_kind::reconnect}, expectation{"KILL", command_kind::kill},
          expectation{"WAIT_CLOSE", command_kind::wait_close}}) {
        const auto all = parse_ok(verb);
        EXPECT_EQ(all.kind, kind) << verb;
        EXPECT_EQ(all.database, "") << verb;
        const auto one = parse_ok(std::string(verb) + " AppDb");
        EXPECT_EQ(one.kind, kind) << verb;
        EXPECT_EQ(one.database, "AppDb") << verb << ": database names keep their case";
    }
}

TEST(admin_command, quoted_database_names_may_hold_any_character) {
    EXPECT_EQ(parse_ok(R"(PAUSE "my-db.prod")").database, "my-db.prod");
    EXPECT_EQ(parse_ok(R"(pause "with ""quote"" and space";)").database, R"(with "quote" and space)");
    EXPECT_EQ(parse_ok(R"(ENABLE "x;y")").database, "x;y");
}

TEST(admin_command, unquoted_database_names_are_words_only) {
    EXPECT_EQ(parse_error("PAUSE my-db"), invalid("PAUSE my-db"));
    EXPECT_EQ(parse_error("PAUSE db.x"), invalid("PAUSE db.x"));
}

TEST(admin_command, empty_quoted_argument_counts_as_none_as_in_pgbouncer) {
    EXPECT_EQ(parse_ok(R"(PAUSE "")").database, "");
    EXPECT_EQ(parse_error(R"(DISABLE "")"), "a database is required");
}

TEST(admin_command, enable_and_disable_require_a_database) {
    const auto enable = parse_ok("ENABLE app");
    EXPECT_EQ(enable.kind, command_kind::enable);
    EXPECT_EQ(enable.database, "app");
    const auto disable = parse_ok("disable app;");
    EXPECT_EQ(disable.kind, command_kind::disable);
    EXPECT_EQ(disable.database, "app");
    EXPECT_EQ(parse_error("ENABLE"), "a database is required");
    EXPECT_EQ(parse_error("DISABLE ;"), "a database is required");
}

TEST(admin_command, kill_client_takes_a_decimal_id) {
    const auto cmd = parse_ok("KILL_CLIENT 1234");
    EXPECT_EQ(cmd.kind, command_kind::kill_client);
    EXPECT_EQ(cmd.client_id, 1234U);
    EXPECT_EQ(parse_ok("kill_client 18446744073709551615").client_id, 18446744073709551615ULL);
    EXPECT_EQ(parse_error("KILL_CLIENT"), "invalid client pointer supplied");
    EXPECT_EQ(parse_error("KILL_CLIENT abc"), "invalid client pointer supplied");
    EXPECT_EQ(parse_error("KILL_CLIENT 12abc"), "invalid client pointer supplied");
    EXPECT_EQ(parse_error("KILL_CLIENT 18446744073709551616"), "invalid client pointer supplied");
}

TEST(admin_command, suspend_and_reload_take_no_argument) {
    EXPECT_EQ(parse_ok("SUSPEND").kind, command_kind::suspend);
    EXPECT_EQ(parse_ok("RELOAD").kind, command_kind::reload);
    EXPECT_EQ(parse_error("RELOAD x"), invalid("RELOAD x"));
    EXPECT_EQ(parse_error("SUSPEND now"), invalid("SUSPEND now"));
}

TEST(admin_command, shutdown_modes) {
    EXPECT_EQ(parse_ok("SHUTDOWN").shutdown, shutdown_mode::immediate);
    EXPECT_EQ(parse_ok("SHUTDOWN WAIT_FOR_SERVERS").shutdown, shutdown_mode::wait_for_servers);
    EXPECT_EQ(parse_ok("shutdown wait_for_clients;").shutdown, shutdown_mode::wait_for_clients);
    EXPECT_EQ(parse_ok("SHUTDOWN WAIT_FOR_CLIENTS").kind, command_kind::shutdown);
    EXPECT_EQ(parse_error("SHUTDOWN NOW"), invalid("SHUTDOWN NOW"));
}

TEST(admin_command, set_with_bare_value) {
    const auto cmd = parse_ok("SET default_pool_size = 40");
    EXPECT_EQ(cmd.kind, command_kind::set);
    EXPECT_EQ(cmd.key, "default_pool_size");
    EXPECT_EQ(cmd.value, "40");
    const auto compact = parse_ok("set verbose=1;");
    EXPECT_EQ(compact.key, "verbose");
    EXPECT_EQ(compact.value, "1");
}

TEST(admin_command, set_with_quoted_value_unquotes_doubled_quotes) {
    const auto cmd = parse_ok("SET server_check_query = 'select ''x'''");
    EXPECT_EQ(cmd.key, "server_check_query");
    EXPECT_EQ(cmd.value, "select 'x'");
    EXPECT_EQ(parse_ok("SET server_lifetime = '0.5'").value, "0.5");
    EXPECT_EQ(parse_ok("SET admin_users = ''").value, "");
    EXPECT_EQ(parse_ok(R"(SET "auth_user" = "some user")").value, "some user");
}

TEST(admin_command, set_accepts_to_instead_of_equals) {
    const auto cmd = parse_ok("SET verbose TO '2'");
    EXPECT_EQ(cmd.key, "verbose");
    EXPECT_EQ(cmd.value, "2");
    EXPECT_EQ(parse_ok("set verbose to 3").value, "3");
}

TEST(admin_command, malformed_set_is_invalid) {
    for (std::string_view sql : {"SET", "SET verbose", "SET verbose =", "SET verbose = 'unterminated",
                                 "SET verbose = 1.5", "SET verboseto 1", "SET verbose = 1 2", "SET = 1"}) {
        EXPECT_EQ(parse_error(sql), invalid(sql));
    }
    EXPECT_EQ(parse_error(R"(SET "" = 1)"), "bad arguments");
}

TEST(admin_command, extra_words_and_garbage_are_invalid) {
    for (std::string_view sql :
         {"SHOW POOLS extra", "SHOW POOLS;;", "SHOW POOLS; SHOW STATS", "SHOW\"POOLS\"", "FROB", "pause a b",
          "'show' pools", "SHOW \"unterminated", "-- comment", "SHOW POOLS -- comment"}) {
        EXPECT_EQ(parse_error(sql), invalid(sql));
    }
}

TEST(admin_command, quoted_keywords_work_as_in_pgbouncer) {
    EXPECT_EQ(parse_ok(R"("show" "pools")").subject, "pools");
}

TEST(admin_command, empty_query_is_not_an_error) {
    EXPECT_EQ(parse_ok("").kind, command_kind::empty);
    EXPECT_EQ(parse_ok("   ").kind, command_kind::empty);
    EXPECT_EQ(parse_ok(";").kind, command_kind::empty);
    EXPECT_EQ(parse_ok(" ; \n").kind, command_kind::empty);
    EXPECT_EQ(parse_error(";;"), invalid(";;"));
}

TEST(admin_command, error_message_is_bounded_and_stays_valid_utf8) {
    std::string sql = "SHOW " + std::string(2000, 'x') + "\xc3\xa9";
    const auto message = parse_error(sql);
    EXPECT_LE(message.size(), 1023U);
    EXPECT_EQ(message.rfind("invalid command 'SHOW xxx", 0), 0U);

    // A two-byte character cut by the limit is dropped whole.
    std::string accents = "SHOW ";
    while (accents.size() < 1100)
        accents += "\xc3\xa9";
    const auto cut = parse_error(accents);
    ASSERT_FALSE(cut.empty());
    EXPECT_NE(static_cast<unsigned char>(cut.back()), 0xC3);
    EXPECT_EQ(static_cast<unsigned char>(cut.back()), 0xA9);
}

TEST(admin_command, arbitrary_bytes_never_crash_the_parser) {
    std::string sql;
    for (int i = 0; i < 256; ++i) {
        sql.push_back(static_cast<char>(i));
        (void)parse_command(sql);
        (void)parse_command(std::string_view(sql).substr(static_cast<std::size_t>(i)));
    }
    SUCCEED();
}

TEST(admin_command, only_show_is_allowed_to_stats_users) {
    EXPECT_FALSE(command_needs_admin(parse_ok("SHOW POOLS")));
    EXPECT_FALSE(command_needs_admin(parse_ok("SHOW CONFIG")));
    EXPECT_FALSE(command_needs_admin(parse_ok("")));
    EXPECT_TRUE(command_needs_admin(parse_ok("SHOW FDS"))) << "PgBouncer: FDS shows cancel keys";
    for (std::string_view sql : {"PAUSE", "RESUME", "RECONNECT", "KILL app", "KILL_CLIENT 1", "SUSPEND", "RELOAD",
                                 "SHUTDOWN", "WAIT_CLOSE", "SET verbose = 1", "ENABLE app", "DISABLE app"}) {
        EXPECT_TRUE(command_needs_admin(parse_ok(sql))) << sql;
    }
}

TEST(admin_command, set_of_an_ignored_driver_parameter_needs_no_admin) {
    const auto cmd = parse_ok("SET client_encoding = 'UTF8'");
    EXPECT_FALSE(command_needs_admin(cmd));
    EXPECT_EQ(command_tag(cmd), "SET");
    EXPECT_TRUE(is_ignored_parameter("DateStyle"));
    EXPECT_FALSE(is_ignored_parameter("verbose"));
}

TEST(admin_command, command_tags_match_pgbouncer) {
    EXPECT_EQ(command_tag(parse_ok("SHOW POOLS")), "SHOW");
    EXPECT_EQ(command_tag(parse_ok("PAUSE app")), "PAUSE");
    EXPECT_EQ(command_tag(parse_ok("RESUME")), "RESUME");
    EXPECT_EQ(command_tag(parse_ok("RECONNECT")), "RECONNECT");
    EXPECT_EQ(command_tag(parse_ok("KILL")), "KILL");
    EXPECT_EQ(command_tag(parse_ok("KILL_CLIENT 5")), "KILL_CLIENT");
    EXPECT_EQ(command_tag(parse_ok("SUSPEND")), "SUSPEND");
    EXPECT_EQ(command_tag(parse_ok("RELOAD")), "RELOAD");
    EXPECT_EQ(command_tag(parse_ok("SHUTDOWN WAIT_FOR_CLIENTS")), "SHUTDOWN");
    EXPECT_EQ(command_tag(parse_ok("WAIT_CLOSE")), "WAIT_CLOSE");
    EXPECT_EQ(command_tag(parse_ok("ENABLE app")), "ENABLE");
    EXPECT_EQ(command_tag(parse_ok("DISABLE app")), "DISABLE");
    EXPECT_EQ(command_tag(parse_ok("set verbose TO '2'")), "SET verbose=2");
    EXPECT_EQ(command_tag(parse_ok("")), "");
}

}  // namespace
}  // namespace sluice::admin
