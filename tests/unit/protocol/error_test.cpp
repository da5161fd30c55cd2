// ErrorResponse / NoticeResponse: parse_error_fields over real PostgreSQL bodies and write_error byte for byte
// (protocol-message-formats.html ErrorResponse/NoticeResponse, protocol-error-fields.html).

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "sluice/protocol/error.hpp"
#include "sluice/protocol/frame.hpp"
#include "wire.hpp"

namespace sluice::protocol {
namespace {

using test::as_span;
using test::be32;
using test::byte1;
using test::cat;
using test::cstr;
using test::from_hex;
using test::to_hex;

// The body (after type byte and length) of what PostgreSQL 15.18 sent for `SELECT 1/0`.
const std::string division_by_zero_body = from_hex(
    "534552524f5200 564552524f5200 43323230313200 4d6469766973696f6e206279207a65726f00"
    "46696e742e6300 4c38363900 52696e743464697600 00");

// RAISE NOTICE 'hello' USING HINT = 'h', DETAIL = 'd' in a DO block (PostgreSQL 15.18), including the W (context),
// F, L and R fields that Sluice does not extract.
const std::string notice_body = from_hex(
    "534e4f5449434500 564e4f5449434500 43303030303000 4d68656c6c6f00 446400 486800"
    "57504c2f706753514c2066756e6374696f6e20696e6c696e655f636f64655f626c6f636b206c696e652031206174205241495345 00"
    "46706c5f657865632e6300 4c3338393100 52657865635f73746d745f726169736500 00");

bool points_into(std::string_view field, const std::string& body) {
    return field.data() >= body.data() && field.data() + field.size() <= body.data() + body.size();
}

TEST(parse_error_fields, real_error_response_body_yields_severity_sqlstate_and_message) {
    const auto f = parse_error_fields(as_span(division_by_zero_body));
    EXPECT_EQ(f.severity, "ERROR");
    EXPECT_EQ(f.sqlstate, "22012");
    EXPECT_EQ(f.message, "division by zero");
    EXPECT_EQ(f.detail, "");
    EXPECT_EQ(f.hint, "");
    EXPECT_TRUE(points_into(f.message, division_by_zero_body));
}

TEST(parse_error_fields, real_notice_body_yields_detail_and_hint_and_skips_unknown_fields) {
    const auto f = parse_error_fields(as_span(notice_body));
    EXPECT_EQ(f.severity, "NOTICE");
    EXPECT_EQ(f.sqlstate, "00000");
    EXPECT_EQ(f.message, "hello");
    EXPECT_EQ(f.detail, "d");
    EXPECT_EQ(f.hint, "h");
}

TEST(parse_error_fields, real_fatal_for_a_missing_database_is_3d000) {
    // PostgreSQL 15.18's answer to a StartupMessage for database "nosuchdb", without its 5-byte header.
    const std::string body = from_hex(
        "53464154414c00 56464154414c00 43334430303000"
        "4d646174616261736520226e6f7375636864622220646f6573206e6f7420657869737400"
        "46706f7374696e69742e6300 4c39343800 52496e6974506f73746772657300 00");
    const auto f = parse_error_fields(as_span(body));
    EXPECT_EQ(f.severity, "FATAL");
    EXPECT_EQ(f.sqlstate, sqlstate::invalid_catalog_name);
    EXPECT_EQ(f.message, "database \"nosuchdb\" does not exist");
}

TEST(parse_error_fields, non_localized_v_wins_over_localized_s_in_either_order) {
    const std::string s_first = cat({"S", cstr("FEHLER"), "V", cstr("ERROR"), byte1('\0')});
    EXPECT_EQ(parse_error_fields(as_span(s_first)).severity, "ERROR");
    const std::string v_first = cat({"V", cstr("ERROR"), "S", cstr("FEHLER"), byte1('\0')});
    EXPECT_EQ(parse_error_fields(as_span(v_first)).severity, "ERROR");
}

TEST(parse_error_fields, localized_s_is_used_when_v_is_absent) {
    // Servers before 9.6 send no V field.
    const std::string body = cat({"S", cstr("FEHLER"), "C", cstr("42601"), byte1('\0')});
    const auto f = parse_error_fields(as_span(body));
    EXPECT_EQ(f.severity, "FEHLER");
    EXPECT_EQ(f.sqlstate, "42601");
}

TEST(parse_error_fields, missing_fields_are_empty) {
    const std::string body = cat({"M", cstr("only a message"), byte1('\0')});
    const auto f = parse_error_fields(as_span(body));
    EXPECT_EQ(f.message, "only a message");
    EXPECT_EQ(f.severity, "");
    EXPECT_EQ(f.sqlstate, "");
    EXPECT_EQ(f.detail, "");
    EXPECT_EQ(f.hint, "");
}

TEST(parse_error_fields, empty_body_yields_no_fields) {
    const auto f = parse_error_fields({});
    EXPECT_EQ(f.severity, "");
    EXPECT_EQ(f.message, "");
}

TEST(parse_error_fields, value_without_nul_is_dropped_and_earlier_fields_kept) {
    const std::string body = cat({"S", cstr("ERROR"), "C", cstr("XX000"), "M", "truncated message"});
    const auto f = parse_error_fields(as_span(body));
    EXPECT_EQ(f.severity, "ERROR");
    EXPECT_EQ(f.sqlstate, "XX000");
    EXPECT_EQ(f.message, "");
}

TEST(parse_error_fields, lone_field_code_without_value_yields_nothing) {
    const std::string body = "M";
    EXPECT_EQ(parse_error_fields(as_span(body)).message, "");
}

TEST(parse_error_fields, fields_after_the_terminator_are_ignored) {
    const std::string body = cat({"C", cstr("22012"), byte1('\0'), "M", cstr("after the end")});
    const auto f = parse_error_fields(as_span(body));
    EXPECT_EQ(f.sqlstate, "22012");
    EXPECT_EQ(f.message, "");
}

TEST(parse_error_fields, body_missing_its_final_terminator_still_yields_complete_fields) {
    const std::string body = cat({"C", cstr("22012"), "M", cstr("division by zero")});
    const auto f = parse_error_fields(as_span(body));
    EXPECT_EQ(f.sqlstate, "22012");
    EXPECT_EQ(f.message, "division by zero");
}

TEST(parse_error_fields, every_truncation_of_a_real_body_never_reads_outside_it) {
    for (std::size_t n = 0; n <= notice_body.size(); ++n) {
        const std::string prefix = notice_body.substr(0, n);
        const auto f = parse_error_fields(as_span(prefix));
        for (auto field : {f.severity, f.sqlstate, f.message, f.detail, f.hint}) {
            EXPECT_TRUE(field.empty() || points_into(field, prefix)) << n;
        }
    }
}

// --- write_error ---

TEST(write_error, error_response_has_s_v_c_m_d_h_fields_and_the_terminating_nul) {
    std::string out;
    write_error(out, severity::error, sqlstate::duplicate_prepared_statement,
                "prepared statement \"s1\" already exists", "detail text", "hint text");
    const std::string body = cat({"S", cstr("ERROR"), "V", cstr("ERROR"), "C", cstr("42P05"), "M",
                                  cstr("prepared statement \"s1\" already exists"), "D", cstr("detail text"), "H",
                                  cstr("hint text"), byte1('\0')});
    EXPECT_EQ(to_hex(out), to_hex(cat({"E", be32(static_cast<std::uint32_t>(4 + body.size())), body})));
}

TEST(write_error, empty_detail_and_hint_are_omitted) {
    std::string out;
    write_error(out, severity::error, "08P01", "bad");
    const std::string body =
        cat({"S", cstr("ERROR"), "V", cstr("ERROR"), "C", cstr("08P01"), "M", cstr("bad"), byte1('\0')});
    EXPECT_EQ(to_hex(out), to_hex(cat({"E", be32(static_cast<std::uint32_t>(4 + body.size())), body})));
}

TEST(write_error, hint_without_detail_writes_only_h) {
    std::string out;
    write_error(out, severity::error, "08P01", "m", {}, "try again");
    EXPECT_EQ(out.find(std::string("\0D", 2)), std::string::npos);
    EXPECT_TRUE(out.ends_with(cat({"H", cstr("try again"), byte1('\0')})));
}

TEST(write_error, fatal_is_an_error_response_with_fatal_severity) {
    std::string out;
    write_error(out, severity::fatal, sqlstate::too_many_connections, "no more connections allowed");
    const std::string body = cat({"S", cstr("FATAL"), "V", cstr("FATAL"), "C", cstr("53300"), "M",
                                  cstr("no more connections allowed"), byte1('\0')});
    EXPECT_EQ(to_hex(out), to_hex(cat({"E", be32(static_cast<std::uint32_t>(4 + body.size())), body})));
}

TEST(write_error, notice_severity_writes_a_notice_response) {
    std::string out;
    write_error(out, severity::notice, "00000", "hello", "d", "h");
    const std::string body = cat({"S", cstr("NOTICE"), "V", cstr("NOTICE"), "C", cstr("00000"), "M", cstr("hello"), "D",
                                  cstr("d"), "H", cstr("h"), byte1('\0')});
    EXPECT_EQ(to_hex(out), to_hex(cat({"N", be32(static_cast<std::uint32_t>(4 + body.size())), body})));
}

TEST(write_error, warning_and_log_severities_are_notice_responses_too) {
    std::string warning;
    write_error(warning, severity::warning, "01000", "w");
    EXPECT_EQ(warning[0], 'N');
    EXPECT_EQ(parse_error_fields(as_span(warning).subspan(header_size)).severity, "WARNING");
    std::string log;
    write_error(log, severity::log, "00000", "l");
    EXPECT_EQ(log[0], 'N');
    EXPECT_EQ(parse_error_fields(as_span(log).subspan(header_size)).severity, "LOG");
}

TEST(write_error, output_parses_back_with_parse_error_fields) {
    std::string out;
    write_error(out, severity::fatal, sqlstate::invalid_password, "password authentication failed for user \"bob\"",
                "Connection matched pg_hba.conf line 1", "check the password");
    ASSERT_EQ(load_u32(out.data() + 1), out.size() - 1);
    const auto f = parse_error_fields(as_span(out).subspan(header_size));
    EXPECT_EQ(f.severity, "FATAL");
    EXPECT_EQ(f.sqlstate, "28P01");
    EXPECT_EQ(f.message, "password authentication failed for user \"bob\"");
    EXPECT_EQ(f.detail, "Connection matched pg_hba.conf line 1");
    EXPECT_EQ(f.hint, "check the password");
}

TEST(severity_name, names_are_the_non_localized_postgres_words) {
    EXPECT_EQ(severity_name(severity::error), "ERROR");
    EXPECT_EQ(severity_name(severity::fatal), "FATAL");
    EXPECT_EQ(severity_name(severity::notice), "NOTICE");
    EXPECT_EQ(severity_name(severity::warning), "WARNING");
    EXPECT_EQ(severity_name(severity::log), "LOG");
}

}  // namespace
}  // namespace sluice::protocol
