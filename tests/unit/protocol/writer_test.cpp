// Every writer against protocol-message-formats.html, byte for byte. Where a capture exists, the expected bytes are
// what PostgreSQL 15.18 and its psql/libpq actually put on the wire (captured with a raw socket), so the encoding is
// checked against a real peer as well as against the documented layout.

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/message_types.hpp"
#include "sluice/protocol/writer.hpp"
#include "wire.hpp"

namespace sluice::protocol {
namespace {

using test::be16;
using test::be32;
using test::byte1;
using test::cat;
using test::cstr;
using test::from_hex;
using test::to_hex;

// --- Backend messages ---

TEST(backend_writer, authentication_ok_matches_postgres_capture) {
    std::string out;
    write_authentication_ok(out);
    EXPECT_EQ(to_hex(out), "520000000800000000");
}

TEST(backend_writer, authentication_cleartext_password_is_code_3) {
    std::string out;
    write_authentication_cleartext(out);
    EXPECT_EQ(to_hex(out), to_hex(cat({"R", be32(8), be32(3)})));
}

TEST(backend_writer, authentication_md5_password_is_code_5_followed_by_the_4_byte_salt) {
    std::string out;
    const std::array<std::uint8_t, 4> salt{0x01, 0xab, 0x00, 0xff};
    write_authentication_md5(out, salt);
    EXPECT_EQ(to_hex(out), to_hex(cat({"R", be32(12), be32(5), from_hex("01ab00ff")})));
}

TEST(backend_writer, authentication_sasl_lists_scram_sha_256_and_an_empty_terminator_as_postgres_does) {
    std::string out;
    write_authentication_sasl(out, {"SCRAM-SHA-256"});
    // PostgreSQL 15 over plain TCP: R, length 23, code 10, "SCRAM-SHA-256\0", "\0".
    EXPECT_EQ(to_hex(out), to_hex(from_hex("52 00000017 0000000a 534352414d2d5348412d323536 00 00")));
    EXPECT_EQ(out.substr(9), std::string("SCRAM-SHA-256\0\0", 15));
}

TEST(backend_writer, authentication_sasl_lists_each_mechanism_in_order) {
    std::string out;
    write_authentication_sasl(out, {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
    const std::string body = cat({be32(10), cstr("SCRAM-SHA-256-PLUS"), cstr("SCRAM-SHA-256"), byte1('\0')});
    EXPECT_EQ(to_hex(out), to_hex(cat({"R", be32(static_cast<std::uint32_t>(4 + body.size())), body})));
}

TEST(backend_writer, authentication_sasl_continue_is_code_11_with_raw_server_first_message) {
    std::string out;
    const std::string data = "r=abc,s=c2FsdA==,i=4096";
    write_authentication_sasl_continue(out, data);
    EXPECT_EQ(to_hex(out), to_hex(cat({"R", be32(static_cast<std::uint32_t>(8 + data.size())), be32(11), data})));
}

TEST(backend_writer, authentication_sasl_final_is_code_12_with_raw_server_final_message) {
    std::string out;
    const std::string data = "v=dmVyaWZpZXI=";
    write_authentication_sasl_final(out, data);
    EXPECT_EQ(to_hex(out), to_hex(cat({"R", be32(static_cast<std::uint32_t>(8 + data.size())), be32(12), data})));
}

TEST(backend_writer, parameter_status_matches_postgres_capture) {
    std::string out;
    write_parameter_status(out, "application_name", "psql");
    EXPECT_EQ(to_hex(out), to_hex(from_hex("53 0000001a 6170706c69636174696f6e5f6e616d6500 7073716c00")));
}

TEST(backend_writer, parameter_status_with_empty_value_keeps_both_terminators) {
    std::string out;
    write_parameter_status(out, "search_path", "");
    EXPECT_EQ(to_hex(out), to_hex(cat({"S", be32(4 + 12 + 1), cstr("search_path"), cstr("")})));
}

TEST(backend_writer, backend_key_data_matches_postgres_capture_with_high_bit_key) {
    std::string out;
    write_backend_key_data(out, 0x185f, 0xbb16d080);
    EXPECT_EQ(to_hex(out), "4b0000000c0000185fbb16d080");
}

TEST(backend_writer, ready_for_query_idle_is_z_length_5_status_i) {
    std::string out;
    write_ready_for_query(out, transaction_status::idle);
    EXPECT_EQ(to_hex(out), "5a0000000549");
}

TEST(backend_writer, ready_for_query_carries_in_transaction_and_failed_status_bytes) {
    std::string in_tx;
    write_ready_for_query(in_tx, transaction_status::in_transaction);
    EXPECT_EQ(to_hex(in_tx), "5a0000000554");
    std::string failed;
    write_ready_for_query(failed, transaction_status::failed);
    EXPECT_EQ(to_hex(failed), "5a0000000545");
}

TEST(backend_writer, command_complete_matches_postgres_capture) {
    std::string out;
    write_command_complete(out, "SELECT 1");
    EXPECT_EQ(to_hex(out), "430000000d53454c454354203100");
}

TEST(backend_writer, bodiless_messages_are_type_byte_and_length_4) {
    struct bodiless {
        void (*write)(std::string&);
        char type;
    };
    const bodiless cases[] = {
        {write_empty_query_response, 'I'}, {write_parse_complete, '1'}, {write_close_complete, '3'},
        {write_bind_complete, '2'},        {write_no_data, 'n'},
    };
    for (const auto& c : cases) {
        std::string out;
        c.write(out);
        EXPECT_EQ(to_hex(out), to_hex(cat({byte1(c.type), be32(4)}))) << "type " << c.type;
    }
}

TEST(backend_writer, negotiate_protocol_version_lists_newest_minor_and_each_unrecognized_option) {
    std::string out;
    const std::vector<std::string> options{"_pq_.compression", "_pq_.x"};
    write_negotiate_protocol_version(out, 0, options);
    const std::string body = cat({be32(0), be32(2), cstr("_pq_.compression"), cstr("_pq_.x")});
    EXPECT_EQ(to_hex(out), to_hex(cat({"v", be32(static_cast<std::uint32_t>(4 + body.size())), body})));
}

TEST(backend_writer, negotiate_protocol_version_without_options_has_zero_count) {
    std::string out;
    write_negotiate_protocol_version(out, 2, {});
    EXPECT_EQ(to_hex(out), to_hex(cat({"v", be32(12), be32(2), be32(0)})));
}

TEST(backend_writer, row_description_matches_postgres_capture_of_two_text_columns) {
    // SELECT 'x'::text AS a, NULL::text AS b: table OID 0, attnum 0, type 25, size -1, typmod -1, format 0.
    std::string out;
    const std::array<column, 2> columns{column{"a", oid_text, -1}, column{"b", oid_text, -1}};
    write_row_description(out, columns);
    EXPECT_EQ(to_hex(out), to_hex(from_hex("54 0000002e 0002"
                                           "6100 00000000 0000 00000019 ffff ffffffff 0000"
                                           "6200 00000000 0000 00000019 ffff ffffffff 0000")));
}

TEST(backend_writer, row_description_encodes_fixed_size_type_oid_and_size) {
    std::string out;
    const std::array<column, 1> columns{column{"cl_active", oid_int8, 8}};
    write_row_description(out, columns);
    const std::string field = cat({cstr("cl_active"), be32(0), be16(0), be32(20), be16(8), be32(0xffffffff), be16(0)});
    EXPECT_EQ(to_hex(out), to_hex(cat({"T", be32(static_cast<std::uint32_t>(4 + 2 + field.size())), be16(1), field})));
}

TEST(backend_writer, row_description_with_no_columns_has_zero_count) {
    std::string out;
    write_row_description(out, {});
    EXPECT_EQ(to_hex(out), to_hex(cat({"T", be32(6), be16(0)})));
}

TEST(backend_writer, data_row_matches_postgres_capture_with_a_null) {
    // SELECT 'x'::text AS a, NULL::text AS b: the NULL is length -1 with no bytes.
    std::string out;
    const std::array<std::optional<std::string>, 2> values{std::string("x"), std::nullopt};
    write_data_row(out, values);
    EXPECT_EQ(to_hex(out), "440000000f00020000000178ffffffff");
}

TEST(backend_writer, data_row_distinguishes_empty_string_from_null) {
    std::string out;
    const std::array<std::optional<std::string>, 3> values{std::nullopt, std::string(), std::string("42")};
    write_data_row(out, values);
    const std::string body = cat({be16(3), be32(0xffffffff), be32(0), be32(2), "42"});
    EXPECT_EQ(to_hex(out), to_hex(cat({"D", be32(static_cast<std::uint32_t>(4 + body.size())), body})));
}

TEST(backend_writer, data_row_value_may_contain_nul_bytes) {
    std::string out;
    const std::array<std::optional<std::string>, 1> values{std::string("a\0b", 3)};
    write_data_row(out, values);
    EXPECT_EQ(to_hex(out), to_hex(cat({"D", be32(4 + 2 + 4 + 3), be16(1), be32(3), std::string("a\0b", 3)})));
}

// --- Frontend messages ---

TEST(frontend_writer, startup_message_matches_psql_capture) {
    std::string out;
    const std::vector<std::pair<std::string, std::string>> params{
        {"user", "alice"}, {"database", "shop"}, {"application_name", "psql"}, {"client_encoding", "UTF8"}};
    write_startup_message(out, params);
    // psql 15 (PGCLIENTENCODING=UTF8) connecting as alice to shop: no type byte, length 77, version 3.0.
    EXPECT_EQ(to_hex(out), to_hex(from_hex("0000004d 00030000"
                                           "7573657200 616c69636500 646174616261736500 73686f7000"
                                           "6170706c69636174696f6e5f6e616d6500 7073716c00"
                                           "636c69656e745f656e636f64696e6700 5554463800 00")));
}

TEST(frontend_writer, startup_message_without_parameters_is_version_and_terminator) {
    std::string out;
    write_startup_message(out, {});
    EXPECT_EQ(to_hex(out), to_hex(cat({be32(9), be32(196608), byte1('\0')})));
}

TEST(frontend_writer, ssl_request_matches_psql_capture) {
    std::string out;
    write_ssl_request(out);
    EXPECT_EQ(to_hex(out), "0000000804d2162f");
}

TEST(frontend_writer, cancel_request_is_length_16_code_pid_and_key) {
    std::string out;
    write_cancel_request(out, 0x185f, 0xbb16d080);
    EXPECT_EQ(to_hex(out), to_hex(cat({be32(16), be32(80877102), be32(0x185f), be32(0xbb16d080)})));
}

TEST(frontend_writer, password_message_is_p_with_nul_terminated_password) {
    std::string out;
    write_password_message(out, "md5a3556571e93b0d20722ba62be61e8c2d");
    EXPECT_EQ(to_hex(out), to_hex(cat({"p", be32(4 + 36), cstr("md5a3556571e93b0d20722ba62be61e8c2d")})));
}

TEST(frontend_writer, sasl_initial_response_has_mechanism_int32_length_and_data) {
    std::string out;
    const std::string data = "n,,n=,r=rOprNGfwEbeRWgbNEkqO";
    write_sasl_initial_response(out, "SCRAM-SHA-256", data);
    const std::string body = cat({cstr("SCRAM-SHA-256"), be32(static_cast<std::uint32_t>(data.size())), data});
    EXPECT_EQ(to_hex(out), to_hex(cat({"p", be32(static_cast<std::uint32_t>(4 + body.size())), body})));
    EXPECT_EQ(out.size(), 1 + 4 + 14 + 4 + data.size());
}

TEST(frontend_writer, sasl_response_is_p_with_raw_data_and_no_terminator) {
    std::string out;
    const std::string data = "c=biws,r=abc,p=cHJvb2Y=";
    write_sasl_response(out, data);
    EXPECT_EQ(to_hex(out), to_hex(cat({"p", be32(static_cast<std::uint32_t>(4 + data.size())), data})));
}

TEST(frontend_writer, query_matches_psql_capture) {
    std::string out;
    write_query(out, "SELECT 1/0");
    EXPECT_EQ(to_hex(out), to_hex(from_hex("51 0000000f 53454c45435420312f3000")));
}

TEST(frontend_writer, sync_flush_and_terminate_are_type_byte_and_length_4) {
    std::string out;
    write_sync(out);
    write_flush(out);
    write_terminate(out);
    EXPECT_EQ(to_hex(out), to_hex(cat({"S", be32(4), "H", be32(4), "X", be32(4)})));
}

TEST(frontend_writer, parse_lists_statement_query_and_each_parameter_type_oid) {
    std::string out;
    const std::array<std::uint32_t, 2> types{oid_int4, oid_text};
    write_parse(out, "s1", "SELECT $1, $2", types);
    const std::string body = cat({cstr("s1"), cstr("SELECT $1, $2"), be16(2), be32(23), be32(25)});
    EXPECT_EQ(to_hex(out), to_hex(cat({"P", be32(static_cast<std::uint32_t>(4 + body.size())), body})));
}

TEST(frontend_writer, parse_of_unnamed_statement_without_types_has_empty_name_and_zero_count) {
    std::string out;
    write_parse(out, "", "SELECT 1", {});
    EXPECT_EQ(to_hex(out), to_hex(cat({"P", be32(4 + 1 + 9 + 2), byte1('\0'), cstr("SELECT 1"), be16(0)})));
}

TEST(frontend_writer, close_statement_is_c_then_s_then_name) {
    std::string out;
    write_close_statement(out, "s1");
    EXPECT_EQ(to_hex(out), to_hex(cat({"C", be32(4 + 1 + 3), "S", cstr("s1")})));
}

// --- message_writer and buffer reuse ---

TEST(message_writer, appends_after_existing_bytes_and_patches_only_its_own_length) {
    std::string out;
    write_ready_for_query(out, transaction_status::idle);
    write_command_complete(out, "BEGIN");
    write_ready_for_query(out, transaction_status::in_transaction);
    EXPECT_EQ(to_hex(out), to_hex(cat({"Z", be32(5), "I", "C", be32(10), cstr("BEGIN"), "Z", be32(5), "T"})));
}

TEST(message_writer, start_is_the_offset_of_the_type_byte) {
    std::string out = "xyz";
    message_writer w(out, 'Q');
    EXPECT_EQ(w.start(), 3U);
    w.cstring("");
    w.finish();
    EXPECT_EQ(to_hex(out), to_hex(cat({"xyz", "Q", be32(5), byte1('\0')})));
}

TEST(message_writer, startup_family_length_counts_itself_with_no_type_byte) {
    std::string out;
    message_writer w(out);
    w.i32(gssenc_request_code);
    w.finish();
    EXPECT_EQ(to_hex(out), "0000000804d21630");
}

TEST(message_writer, integers_are_big_endian_and_negative_values_are_twos_complement) {
    std::string out;
    message_writer w(out, 'x');
    w.i16(-2).i32(-2).i16(0x0102).i32(0x01020304).u8(0xfe);
    w.finish();
    EXPECT_EQ(to_hex(out),
              "7800000011"
              "fffe"
              "fffffffe"
              "0102"
              "01020304"
              "fe");
}

// --- Message type table ---

TEST(message_types, frontend_and_backend_tables_match_the_documented_type_bytes) {
    EXPECT_EQ(to_char(frontend::parse), 'P');
    EXPECT_EQ(to_char(frontend::password), 'p');
    EXPECT_EQ(to_char(backend::ready_for_query), 'Z');
    EXPECT_EQ(to_char(backend::negotiate_protocol_version), 'v');
    EXPECT_TRUE(is_frontend_type('Q'));
    EXPECT_FALSE(is_frontend_type('Z'));
    EXPECT_TRUE(is_backend_type('Z'));
    EXPECT_FALSE(is_backend_type('Q'));
    EXPECT_FALSE(is_backend_type('\0'));
    EXPECT_EQ(static_cast<std::int32_t>(auth_request::sasl_final), 12);
}

TEST(message_types, every_frontend_enumerator_is_a_frontend_type_and_every_backend_one_a_backend_type) {
    for (auto t : {frontend::bind, frontend::close, frontend::copy_data, frontend::copy_done, frontend::copy_fail,
                   frontend::describe, frontend::execute, frontend::flush, frontend::function_call, frontend::parse,
                   frontend::password, frontend::query, frontend::sync, frontend::terminate}) {
        EXPECT_TRUE(is_frontend_type(to_char(t))) << to_char(t);
    }
    for (auto t : {backend::authentication,
                   backend::backend_key_data,
                   backend::bind_complete,
                   backend::close_complete,
                   backend::command_complete,
                   backend::copy_data,
                   backend::copy_done,
                   backend::copy_in_response,
                   backend::copy_out_response,
                   backend::copy_both_response,
                   backend::data_row,
                   backend::empty_query_response,
                   backend::error_response,
                   backend::function_call_response,
                   backend::negotiate_protocol_version,
                   backend::no_data,
                   backend::notice_response,
                   backend::notification_response,
                   backend::parameter_description,
                   backend::parameter_status,
                   backend::parse_complete,
                   backend::portal_suspended,
                   backend::ready_for_query,
                   backend::row_description}) {
        EXPECT_TRUE(is_backend_type(to_char(t))) << to_char(t);
    }
}

}  // namespace
}  // namespace sluice::protocol
