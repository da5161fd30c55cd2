#include "session/parameters.hpp"

#include <string>

#include <gtest/gtest.h>

namespace sluice::session {
namespace {

std::string quoted(std::string_view value) {
    std::string out;
    append_quoted_literal(out, value);
    return out;
}

std::string sync_sql(const parameter_set& client, const parameter_set& server) {
    std::string sql;
    const bool appended = append_parameter_sync(client, server, sql);
    EXPECT_EQ(appended, !sql.empty());
    return sql;
}

TEST(session_parameters, tracks_the_six_reported_session_parameters) {
    for (const auto name : {"client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "standard_conforming_strings",
                            "application_name"}) {
        EXPECT_TRUE(tracked_parameter_index(name).has_value()) << name;
    }
    for (const auto name : {"server_version", "integer_datetimes", "is_superuser", "search_path", "", "TimeZon",
                            "TimeZone ", "application_name\n"}) {
        EXPECT_FALSE(tracked_parameter_index(name).has_value()) << name;
    }
}

TEST(session_parameters, names_match_case_insensitively) {
    EXPECT_EQ(tracked_parameter_index("datestyle"), tracked_parameter_index("DateStyle"));
    EXPECT_EQ(tracked_parameter_index("TIMEZONE"), tracked_parameter_index("TimeZone"));
    EXPECT_EQ(tracked_parameter_index("Application_Name"), tracked_parameter_index("application_name"));
    EXPECT_NE(tracked_parameter_index("timezone"), tracked_parameter_index("datestyle"));

    parameter_set set;
    EXPECT_TRUE(set.set("timezone", "Asia/Tokyo"));
    EXPECT_EQ(set.get("TimeZone"), "Asia/Tokyo");
    EXPECT_EQ(set.get("TIMEZONE"), "Asia/Tokyo");
    EXPECT_TRUE(set.set("TimeZone", "UTC"));
    EXPECT_EQ(set.get("timezone"), "UTC");
}

TEST(session_parameters, untracked_names_are_not_stored) {
    parameter_set set;
    EXPECT_FALSE(set.set("search_path", "public"));
    EXPECT_EQ(set.get("search_path"), std::nullopt);
    EXPECT_EQ(set.get("TimeZone"), std::nullopt);
}

TEST(session_parameters, empty_value_is_a_value) {
    parameter_set set;
    EXPECT_TRUE(set.set("application_name", ""));
    ASSERT_TRUE(set.get("application_name").has_value());
    EXPECT_EQ(*set.get("application_name"), "");
}

TEST(session_parameters, packed_values_keep_their_neighbours_through_updates_and_copies) {
    // The values share one packed block: replacing one (longer, shorter, from a view of the set itself) must leave
    // the others intact, and a copy must keep its values when the original changes.
    parameter_set set;
    EXPECT_TRUE(set.set("DateStyle", "ISO, MDY"));
    EXPECT_TRUE(set.set("application_name", "first"));
    EXPECT_TRUE(set.set("client_encoding", "UTF8"));
    EXPECT_TRUE(set.set("application_name", "a much longer application name than before"));
    EXPECT_TRUE(set.set("DateStyle", "ISO"));
    const auto own = *set.get("application_name");
    EXPECT_TRUE(set.set("TimeZone", own));
    parameter_set copy = set;
    EXPECT_TRUE(set.set("client_encoding", "LATIN1"));
    EXPECT_EQ(set.get("DateStyle"), "ISO");
    EXPECT_EQ(set.get("TimeZone"), "a much longer application name than before");
    EXPECT_EQ(set.get("client_encoding"), "LATIN1");
    EXPECT_EQ(copy.get("client_encoding"), "UTF8");
    EXPECT_EQ(copy.get("application_name"), "a much longer application name than before");
    EXPECT_EQ(copy.get("IntervalStyle"), std::nullopt);
    EXPECT_EQ(copy.get(std::size_t{3}), std::nullopt);
}

TEST(session_parameters, values_reads_every_parameter_as_get_does) {
    // values() walks the packed block once; it must find each value where get(i) does, absent ones included.
    parameter_set set;
    EXPECT_EQ(set.values(), parameter_set::values_type{});
    EXPECT_TRUE(set.set("application_name", "app"));
    EXPECT_TRUE(set.set("DateStyle", ""));
    EXPECT_TRUE(set.set("client_encoding", "UTF8"));
    EXPECT_TRUE(set.set("IntervalStyle", "postgres"));
    const auto values = set.values();
    for (std::size_t i = 0; i < tracked_parameter_names.size(); ++i)
        EXPECT_EQ(values[i], set.get(i)) << tracked_parameter_names[i];
    EXPECT_EQ(values[*tracked_parameter_index("TimeZone")], std::nullopt);
    EXPECT_EQ(values[*tracked_parameter_index("DateStyle")], "");
    EXPECT_EQ(values[*tracked_parameter_index("IntervalStyle")], "postgres");
}

TEST(session_parameters, copies_share_one_block_until_one_changes) {
    parameter_set set;
    EXPECT_TRUE(set.set("TimeZone", "UTC"));
    EXPECT_TRUE(set.set("application_name", "app"));
    parameter_set copy = set;
    EXPECT_TRUE(copy.shares_block_with(set));
    EXPECT_TRUE(copy.set("timezone", "UTC"));  // the value it has: the block stays shared
    EXPECT_TRUE(copy.shares_block_with(set));
    EXPECT_TRUE(copy.set("TimeZone", "Asia/Tokyo"));
    EXPECT_FALSE(copy.shares_block_with(set));
    EXPECT_EQ(set.get("TimeZone"), "UTC");
    EXPECT_EQ(copy.get("TimeZone"), "Asia/Tokyo");
    EXPECT_EQ(copy.get("application_name"), "app");
    EXPECT_FALSE(copy == set);

    // Equal values compare equal whatever order they were set in; an absent value differs from an empty one.
    parameter_set same;
    EXPECT_TRUE(same.set("application_name", "app"));
    EXPECT_TRUE(same.set("TimeZone", "UTC"));
    EXPECT_TRUE(same == set);
    EXPECT_FALSE(same.shares_block_with(set));
    same = set;
    EXPECT_TRUE(same.shares_block_with(set));
    parameter_set empty_value = set;
    EXPECT_TRUE(empty_value.set("DateStyle", ""));
    EXPECT_FALSE(empty_value == set);
    EXPECT_TRUE(parameter_set() == parameter_set());
    EXPECT_FALSE(parameter_set() == set);

    // A moved set keeps its values, and so does a set assigned to itself.
    parameter_set moved = std::move(copy);
    EXPECT_EQ(moved.get("TimeZone"), "Asia/Tokyo");
    const parameter_set& alias = moved;
    moved = alias;
    EXPECT_EQ(moved.get("TimeZone"), "Asia/Tokyo");
}

TEST(session_parameters, quoting_doubles_single_quotes) {
    EXPECT_EQ(quoted(""), "E''");
    EXPECT_EQ(quoted("plain"), "E'plain'");
    EXPECT_EQ(quoted("it's"), "E'it''s'");
    EXPECT_EQ(quoted("''"), "E''''''");
    EXPECT_EQ(quoted("'; DROP TABLE t; --"), "E'''; DROP TABLE t; --'");
    // Backslashes are doubled so that E'' reads them literally, whatever standard_conforming_strings says.
    EXPECT_EQ(quoted("a\\b"), "E'a\\\\b'");
    EXPECT_EQ(quoted("\\'; --"), "E'\\\\''; --'");
}

TEST(session_parameters, quoting_appends_to_what_is_there) {
    std::string out = "SET x = ";
    append_quoted_literal(out, "a'b");
    EXPECT_EQ(out, "SET x = E'a''b'");
}

TEST(session_parameters, sync_is_empty_when_the_client_has_no_values) {
    parameter_set client;
    parameter_set server;
    server.set("TimeZone", "UTC");
    EXPECT_EQ(sync_sql(client, server), "");
}

TEST(session_parameters, sync_is_empty_when_server_already_matches) {
    parameter_set client;
    parameter_set server;
    for (auto* set : {&client, &server}) {
        set->set("TimeZone", "UTC");
        set->set("application_name", "app");
    }
    EXPECT_EQ(sync_sql(client, server), "");
}

TEST(session_parameters, sync_sets_only_the_parameters_that_differ) {
    parameter_set client;
    parameter_set server;
    client.set("TimeZone", "Asia/Tokyo");
    client.set("DateStyle", "ISO, MDY");
    server.set("TimeZone", "UTC");
    server.set("DateStyle", "ISO, MDY");
    EXPECT_EQ(sync_sql(client, server), "SET TimeZone = E'Asia/Tokyo';");
}

TEST(session_parameters, sync_sets_parameters_the_server_has_not_reported) {
    parameter_set client;
    client.set("application_name", "a");
    EXPECT_EQ(sync_sql(client, parameter_set{}), "SET application_name = E'a';");
}

TEST(session_parameters, sync_resets_to_an_empty_value) {
    parameter_set client;
    parameter_set server;
    client.set("application_name", "");
    server.set("application_name", "a");
    EXPECT_EQ(sync_sql(client, server), "SET application_name = E'';");
}

TEST(session_parameters, sync_compares_values_case_sensitively) {
    parameter_set client;
    parameter_set server;
    client.set("application_name", "App");
    server.set("application_name", "app");
    EXPECT_EQ(sync_sql(client, server), "SET application_name = E'App';");
}

TEST(session_parameters, sync_issues_sets_in_tracked_order_with_canonical_names) {
    parameter_set client;
    client.set("application_name", "a");
    client.set("standard_conforming_strings", "on");
    client.set("intervalstyle", "iso_8601");
    client.set("timezone", "UTC");
    client.set("DATESTYLE", "ISO, DMY");
    client.set("Client_Encoding", "UTF8");
    EXPECT_EQ(sync_sql(client, parameter_set{}),
              "SET client_encoding = E'UTF8';SET DateStyle = E'ISO, DMY';SET TimeZone = E'UTC';"
              "SET IntervalStyle = E'iso_8601';SET standard_conforming_strings = E'on';SET application_name = E'a';");
}

TEST(session_parameters, sync_quotes_values_holding_quotes) {
    parameter_set client;
    client.set("application_name", "it's; RESET ALL; --");
    EXPECT_EQ(sync_sql(client, parameter_set{}), "SET application_name = E'it''s; RESET ALL; --';");
}

TEST(session_parameters, sync_appends_after_existing_text) {
    parameter_set client;
    client.set("TimeZone", "UTC");
    std::string sql = "-- sync\n";
    EXPECT_TRUE(append_parameter_sync(client, parameter_set{}, sql));
    EXPECT_EQ(sql, "-- sync\nSET TimeZone = E'UTC';");
}

}  // namespace
}  // namespace sluice::session
