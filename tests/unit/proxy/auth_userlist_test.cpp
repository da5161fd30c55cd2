#include "auth/userlist.hpp"

#include <gtest/gtest.h>

namespace sluice::auth {
namespace {

TEST(auth_userlist, parses_users_of_every_secret_kind) {
    const auto result = parse_userlist(
        "\"alice\" \"pencil\"\n"
        "\"bob\" \"md58bbf3f45673bf67d02e4214911f3417f\"\n"
        "\"carol\" \"SCRAM-SHA-256$4096:xI0mwPVmmH29E1ik0yYEWA==$2odxTA3TM3sFfD/dtbGEj3v0qMVTErNwob06ZH2nwos=:"
        "982PEhbn/XbU7MY2Pl0EAaU+r/Pj7oLLUu0FC4Ry5Mk=\"\n");
    ASSERT_TRUE(result.ok()) << result.error->reason;
    EXPECT_EQ(result.users.size(), 3U);
    ASSERT_NE(result.users.find("alice"), nullptr);
    EXPECT_EQ(result.users.find("alice")->type, secret::kind::plain);
    EXPECT_EQ(result.users.find("alice")->stored, "pencil");
    ASSERT_NE(result.users.find("bob"), nullptr);
    EXPECT_EQ(result.users.find("bob")->type, secret::kind::md5);
    ASSERT_NE(result.users.find("carol"), nullptr);
    EXPECT_EQ(result.users.find("carol")->type, secret::kind::scram_sha_256);
    EXPECT_EQ(result.users.find("carol")->scram.iterations, 4096);
}

TEST(auth_userlist, unknown_user_is_not_found) {
    const auto result = parse_userlist("\"alice\" \"pencil\"\n");
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result.users.find("bob"), nullptr);
    EXPECT_EQ(result.users.find("Alice"), nullptr);
    EXPECT_EQ(result.users.find("alic"), nullptr);
}

TEST(auth_userlist, doubled_quotes_stand_for_one_quote) {
    const auto result = parse_userlist(R"("we""ird" "pa""ss""""word")");
    ASSERT_TRUE(result.ok()) << result.error->reason;
    ASSERT_NE(result.users.find("we\"ird"), nullptr);
    EXPECT_EQ(result.users.find("we\"ird")->stored, "pa\"ss\"\"word");
}

TEST(auth_userlist, keeps_spaces_and_special_characters_inside_quotes) {
    const auto result = parse_userlist("\"a b\" \" p;#w \"\n");
    ASSERT_TRUE(result.ok());
    ASSERT_NE(result.users.find("a b"), nullptr);
    EXPECT_EQ(result.users.find("a b")->stored, " p;#w ");
}

TEST(auth_userlist, skips_comments_blank_lines_and_handles_crlf_tabs_and_extra_fields) {
    const auto result = parse_userlist(
        "; PgBouncer comment\r\n"
        "# another comment\n"
        "\n"
        "   \t\n"
        "  ; indented comment\n"
        "\t\"alice\"\t\"pencil\"\t\"extra\" field\r\n"
        "\"bob\"  \"secret\"");  // no final newline
    ASSERT_TRUE(result.ok()) << result.error->reason;
    EXPECT_EQ(result.users.size(), 2U);
    ASSERT_NE(result.users.find("alice"), nullptr);
    EXPECT_EQ(result.users.find("alice")->stored, "pencil");
    ASSERT_NE(result.users.find("bob"), nullptr);
    EXPECT_EQ(result.users.find("bob")->stored, "secret");
}

TEST(auth_userlist, empty_text_gives_empty_list) {
    const auto result = parse_userlist("");
    EXPECT_TRUE(result.ok());
    EXPECT_TRUE(result.users.empty());
}

TEST(auth_userlist, empty_password_is_kept_as_empty_plain_secret) {
    const auto result = parse_userlist("\"alice\" \"\"\n");
    ASSERT_TRUE(result.ok());
    ASSERT_NE(result.users.find("alice"), nullptr);
    EXPECT_EQ(result.users.find("alice")->type, secret::kind::plain);
    EXPECT_TRUE(result.users.find("alice")->stored.empty());
}

TEST(auth_userlist, later_entry_for_same_user_wins) {
    const auto result = parse_userlist("\"alice\" \"first\"\n\"alice\" \"second\"\n");
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result.users.size(), 1U);
    EXPECT_EQ(result.users.find("alice")->stored, "second");
}

struct bad_userlist {
    std::string_view text;
    std::size_t line;
};

TEST(auth_userlist, reports_first_error_with_its_line_number) {
    for (const auto& [text, line] : {
             bad_userlist{"alice \"pencil\"\n", 1},                       // unquoted user
             bad_userlist{"\"alice\" pencil\n", 1},                       // unquoted password
             bad_userlist{"# ok\n\"alice\"\n", 2},                        // missing password
             bad_userlist{"# ok\n\"alice\"   \r\n", 2},                   // missing password, trailing blanks
             bad_userlist{"\n\n\"alice\" \"pencil\n\"bob\" \"x\"\n", 3},  // unterminated quote (not across lines)
             bad_userlist{"\"alice\" \"pencil\"\n\"bob", 2},              // unterminated user
             bad_userlist{"\"alice\"\"pencil\"\n", 1},                    // read as user alice"pencil, no password
             bad_userlist{"\"alice\"x \"pencil\"\n", 1},                  // text glued to the closing quote
             bad_userlist{"\"alice\" \"pencil\"x\n", 1}, bad_userlist{"\"\" \"pencil\"\n", 1},  // empty user name
             bad_userlist{"\"a\" \"1\"\n\"b\" \"SCRAM-SHA-256$4096:bad\"\n", 2},  // malformed SCRAM secret
         }) {
        const auto result = parse_userlist(text);
        ASSERT_FALSE(result.ok()) << text;
        EXPECT_EQ(result.error->line, line) << text;
        EXPECT_FALSE(result.error->reason.empty());
    }
}

TEST(auth_userlist, set_replaces_a_secret) {
    userlist users;
    users.set("alice", *parse_secret("one"));
    users.set("alice", *parse_secret("two"));
    EXPECT_EQ(users.size(), 1U);
    EXPECT_EQ(users.find("alice")->stored, "two");
}

}  // namespace
}  // namespace sluice::auth
