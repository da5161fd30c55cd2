#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "config/ini.hpp"

namespace sluice::config {
namespace {

// Serves files from memory and records which paths were asked for.
struct fake_files {
    std::map<std::string, std::string> files;
    std::vector<std::string> requested;

    file_reader reader() {
        return [this](const std::string& path) -> read_outcome {
            requested.push_back(path);
            const auto found = files.find(path);
            if (found == files.end()) {
                return {std::nullopt, "No such file or directory"};
            }
            return {found->second, {}};
        };
    }
};

std::vector<std::string> error_strings(const ini_result& result) {
    std::vector<std::string> out;
    for (const auto& error : result.errors) {
        out.push_back(error.to_string());
    }
    return out;
}

TEST(config_ini, entries_keep_file_order_section_and_line) {
    const auto result = parse_ini("[databases]\nfoo = host=a\n\n[pgbouncer]\nlisten_port = 6432\n", "a.ini", {});
    ASSERT_TRUE(result.errors.empty());
    ASSERT_EQ(result.entries.size(), 2U);
    EXPECT_EQ(result.entries[0].section, "databases");
    EXPECT_EQ(result.entries[0].key, "foo");
    EXPECT_EQ(result.entries[0].value, "host=a");
    EXPECT_EQ(result.entries[0].file, "a.ini");
    EXPECT_EQ(result.entries[0].line, 2);
    EXPECT_EQ(result.entries[1].section, "pgbouncer");
    EXPECT_EQ(result.entries[1].line, 5);
    ASSERT_EQ(result.sections.size(), 2U);
    EXPECT_EQ(result.sections[1].line, 4);
}

TEST(config_ini, key_and_value_are_trimmed_and_value_kept_verbatim) {
    const auto result = parse_ini("[x]\n  key\t=   a ; b # c = d  \r\n", "a.ini", {});
    ASSERT_TRUE(result.errors.empty());
    ASSERT_EQ(result.entries.size(), 1U);
    EXPECT_EQ(result.entries[0].key, "key");
    // PgBouncer: ';' and '#' are only special at the start of a line.
    EXPECT_EQ(result.entries[0].value, "a ; b # c = d");
}

TEST(config_ini, empty_value_is_an_entry) {
    const auto result = parse_ini("[databases]\nfoodb =\n", "a.ini", {});
    ASSERT_EQ(result.entries.size(), 1U);
    EXPECT_EQ(result.entries[0].value, "");
}

TEST(config_ini, lines_starting_with_semicolon_or_hash_are_comments) {
    const auto result = parse_ini("; one\n# two\n[x]\n   ; indented = comment\n#k = v\nk = v\n", "a.ini", {});
    ASSERT_TRUE(result.errors.empty());
    ASSERT_EQ(result.entries.size(), 1U);
    EXPECT_EQ(result.entries[0].line, 6);
}

TEST(config_ini, section_names_are_lower_cased) {
    const auto result = parse_ini("[ PgBouncer ]\nk = v\n", "a.ini", {});
    ASSERT_EQ(result.entries.size(), 1U);
    EXPECT_EQ(result.entries[0].section, "pgbouncer");
}

TEST(config_ini, keys_keep_their_case) {
    const auto result = parse_ini("[databases]\nMyDb = host=a\n", "a.ini", {});
    ASSERT_EQ(result.entries.size(), 1U);
    EXPECT_EQ(result.entries[0].key, "MyDb");
}

TEST(config_ini, quoted_key_may_contain_equals_spaces_and_doubled_quotes) {
    const auto result = parse_ini("[databases]\n\"my \"\"odd\"\" = db\" = host=a\n", "a.ini", {});
    ASSERT_TRUE(result.errors.empty()) << error_strings(result)[0];
    ASSERT_EQ(result.entries.size(), 1U);
    EXPECT_EQ(result.entries[0].key, "my \"odd\" = db");
    EXPECT_EQ(result.entries[0].value, "host=a");
}

TEST(config_ini, unterminated_quoted_key_is_an_error) {
    const auto result = parse_ini("[databases]\n\"abc = host=a\n", "a.ini", {});
    EXPECT_EQ(error_strings(result), std::vector<std::string>{"a.ini:2: unterminated quoted name"});
}

TEST(config_ini, crlf_line_endings_and_byte_order_mark_are_accepted) {
    const auto result = parse_ini("\xEF\xBB\xBF[x]\r\nk = v\r\n", "a.ini", {});
    ASSERT_TRUE(result.errors.empty());
    ASSERT_EQ(result.entries.size(), 1U);
    EXPECT_EQ(result.entries[0].section, "x");
    EXPECT_EQ(result.entries[0].value, "v");
}

TEST(config_ini, entry_before_any_section_is_an_error_with_line) {
    const auto result = parse_ini("\nk = v\n", "a.ini", {});
    EXPECT_EQ(error_strings(result), std::vector<std::string>{"a.ini:2: 'k' appears before any [section]"});
}

TEST(config_ini, malformed_lines_are_errors_and_parsing_continues) {
    const auto result = parse_ini("[x]\njust words\n[broken\n= v\nk = v\n", "a.ini", {});
    EXPECT_EQ(error_strings(result), (std::vector<std::string>{
                                         "a.ini:2: expected 'key = value', a [section] or %include",
                                         "a.ini:3: section header must end with ']'",
                                         "a.ini:4: missing key before '='",
                                     }));
    ASSERT_EQ(result.entries.size(), 1U);
    EXPECT_EQ(result.entries[0].line, 5);
}

TEST(config_ini, include_path_is_relative_to_the_including_file) {
    fake_files fs;
    fs.files["/etc/sluice/conf.d/db.ini"] = "[databases]\nfoo = host=a\n%include more.ini\n";
    fs.files["/etc/sluice/conf.d/more.ini"] = "bar = host=b\n";
    const auto result = parse_ini("[pgbouncer]\n%include conf.d/db.ini\n", "/etc/sluice/sluice.ini", fs.reader());
    ASSERT_TRUE(result.errors.empty()) << error_strings(result)[0];
    EXPECT_EQ(fs.requested, (std::vector<std::string>{"/etc/sluice/conf.d/db.ini", "/etc/sluice/conf.d/more.ini"}));
    ASSERT_EQ(result.entries.size(), 2U);
    EXPECT_EQ(result.entries[0].file, "/etc/sluice/conf.d/db.ini");
    EXPECT_EQ(result.entries[0].line, 2);
    EXPECT_EQ(result.entries[1].file, "/etc/sluice/conf.d/more.ini");
    EXPECT_EQ(result.entries[1].line, 1);
}

TEST(config_ini, absolute_include_path_is_used_as_is) {
    fake_files fs;
    fs.files["/abs/x.ini"] = "k = v\n";
    const auto result = parse_ini("[x]\n%include /abs/x.ini\n", "dir/a.ini", fs.reader());
    ASSERT_TRUE(result.errors.empty());
    EXPECT_EQ(fs.requested, std::vector<std::string>{"/abs/x.ini"});
}

TEST(config_ini, included_file_continues_and_can_change_the_current_section) {
    fake_files fs;
    fs.files["inc.ini"] = "inner = 1\n[users]\n";
    const auto result = parse_ini("[databases]\n%include inc.ini\nafter = 2\n", "main.ini", fs.reader());
    ASSERT_TRUE(result.errors.empty());
    ASSERT_EQ(result.entries.size(), 2U);
    EXPECT_EQ(result.entries[0].section, "databases");
    EXPECT_EQ(result.entries[1].section, "users");
}

TEST(config_ini, include_cycle_is_an_error_at_the_closing_include) {
    fake_files fs;
    fs.files["/c/a.ini"] = "[x]\n%include b.ini\n";
    fs.files["/c/b.ini"] = "k = v\n%include ./a.ini\n";
    const auto result = parse_ini_file("/c/a.ini", fs.reader());
    EXPECT_EQ(error_strings(result),
              std::vector<std::string>{"/c/b.ini:2: %include cycle: \"/c/a.ini\" is already being read"});
    EXPECT_EQ(result.entries.size(), 1U);
}

TEST(config_ini, file_including_itself_is_an_error) {
    fake_files fs;
    const auto result = parse_ini("[x]\n%include self.ini\n", "self.ini", fs.reader());
    EXPECT_EQ(error_strings(result),
              std::vector<std::string>{"self.ini:2: %include cycle: \"self.ini\" is already being read"});
    EXPECT_TRUE(fs.requested.empty());
}

// f0 includes f1, which includes f2, ... up to f<levels>, which defines one entry.
fake_files include_chain(int levels) {
    fake_files fs;
    for (int i = 0; i < levels; ++i) {
        fs.files["f" + std::to_string(i) + ".ini"] = "%include f" + std::to_string(i + 1) + ".ini\n";
    }
    fs.files["f" + std::to_string(levels) + ".ini"] = "k = v\n";
    return fs;
}

TEST(config_ini, includes_nest_up_to_ten_levels) {
    auto fs = include_chain(max_include_depth);
    const auto result = parse_ini("[x]\n%include f1.ini\n", "f0.ini", fs.reader());
    EXPECT_TRUE(result.errors.empty()) << error_strings(result)[0];
    EXPECT_EQ(result.entries.size(), 1U);
}

TEST(config_ini, eleventh_include_level_is_an_error) {
    auto fs = include_chain(max_include_depth + 1);
    const auto result = parse_ini("[x]\n%include f1.ini\n", "f0.ini", fs.reader());
    EXPECT_EQ(error_strings(result), std::vector<std::string>{"f10.ini:1: %include nested more than 10 levels deep"});
    EXPECT_TRUE(result.entries.empty());
}

TEST(config_ini, unreadable_include_reports_including_file_and_line) {
    fake_files fs;
    const auto result = parse_ini("[x]\n\n%include missing.ini\n", "dir/a.ini", fs.reader());
    EXPECT_EQ(error_strings(result), std::vector<std::string>{"dir/a.ini:3: cannot read included file "
                                                              "\"dir/missing.ini\": No such file or directory"});
}

TEST(config_ini, include_without_reader_is_an_error) {
    const auto result = parse_ini("[x]\n%include a.ini\n", "m.ini", {});
    ASSERT_EQ(result.errors.size(), 1U);
    EXPECT_EQ(result.errors[0].line, 2);
}

TEST(config_ini, include_needs_a_file_name_and_other_directives_are_errors) {
    const auto result = parse_ini("[x]\n%include   \n%define a b\n%includes x\n", "a.ini", {});
    EXPECT_EQ(error_strings(result), (std::vector<std::string>{
                                         "a.ini:2: %include needs a file name",
                                         "a.ini:3: unknown directive; only %include is supported",
                                         "a.ini:4: unknown directive; only %include is supported",
                                     }));
}

TEST(config_ini, unreadable_main_file_is_one_error_without_line) {
    fake_files fs;
    const auto result = parse_ini_file("nope.ini", fs.reader());
    EXPECT_EQ(error_strings(result),
              std::vector<std::string>{"nope.ini: cannot read config file: No such file or directory"});
}

TEST(config_ini, reading_a_missing_file_from_disk_reports_the_system_error) {
    const auto outcome = read_file_from_disk("/nonexistent-sluice-dir/sluice.ini");
    EXPECT_FALSE(outcome.text.has_value());
    EXPECT_EQ(outcome.error, "No such file or directory");
}

TEST(config_diagnostic, to_string_omits_empty_parts) {
    EXPECT_EQ((diagnostic{"a.ini", 12, "listen_port", "bad"}.to_string()), "a.ini:12: listen_port: bad");
    EXPECT_EQ((diagnostic{"a.ini", 0, "listen_port", "bad"}.to_string()), "a.ini: listen_port: bad");
    EXPECT_EQ((diagnostic{"a.ini", 3, "", "bad"}.to_string()), "a.ini:3: bad");
    EXPECT_EQ((diagnostic{"", 0, "", "bad"}.to_string()), "bad");
}

}  // namespace
}  // namespace sluice::config
