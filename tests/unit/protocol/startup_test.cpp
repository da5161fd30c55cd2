// parse_startup_packet against the untyped first packets of protocol-message-formats.html (StartupMessage,
// SSLRequest, GSSENCRequest, CancelRequest) and PostgreSQL's ProcessStartupPacket rules.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/startup.hpp"
#include "sluice/protocol/writer.hpp"
#include "wire.hpp"

namespace sluice::protocol {
namespace {

using test::as_span;
using test::be32;
using test::byte1;
using test::cat;
using test::cstr;
using test::from_hex;

// What psql 15.18 sent (captured): user alice, database shop, application_name psql, client_encoding UTF8.
const std::string psql_startup = from_hex(
    "0000004d 00030000"
    "7573657200 616c69636500 646174616261736500 73686f7000"
    "6170706c69636174696f6e5f6e616d6500 7073716c00"
    "636c69656e745f656e636f64696e6700 5554463800 00");

// A startup-family packet: Int32 length counting itself, Int32 code, then `rest`.
std::string packet(std::uint32_t code, std::string_view rest) {
    return cat({be32(static_cast<std::uint32_t>(8 + rest.size())), be32(code), rest});
}

std::string with_length_patched(std::string p) {
    if (p.size() >= 4) {
        const std::string len = be32(static_cast<std::uint32_t>(p.size()));
        p.replace(0, 4, len);
    }
    return p;
}

constexpr std::uint32_t v3_0 = 3 << 16;

TEST(parse_startup_packet, psql_startup_message_yields_version_3_0_and_parameters_in_wire_order) {
    const auto r = parse_startup_packet(as_span(psql_startup));
    ASSERT_EQ(r.error, startup_error::none) << r.reason;
    EXPECT_EQ(r.packet.kind, startup_kind::startup);
    EXPECT_EQ(r.packet.major, 3);
    EXPECT_EQ(r.packet.minor, 0);
    const std::vector<std::pair<std::string, std::string>> expected{
        {"user", "alice"}, {"database", "shop"}, {"application_name", "psql"}, {"client_encoding", "UTF8"}};
    EXPECT_EQ(r.packet.parameters, expected);
    EXPECT_EQ(r.packet.parameter("user"), "alice");
    EXPECT_EQ(r.packet.parameter("database"), "shop");
    EXPECT_FALSE(r.packet.parameter("options").has_value());
    EXPECT_TRUE(r.packet.protocol_options.empty());
}

TEST(parse_startup_packet, write_startup_message_output_parses_back_to_the_same_parameters) {
    const std::vector<std::pair<std::string, std::string>> params{{"user", "bob"}, {"options", "-c work_mem=64MB"}};
    std::string out;
    write_startup_message(out, params);
    const auto r = parse_startup_packet(as_span(out));
    ASSERT_EQ(r.error, startup_error::none) << r.reason;
    EXPECT_EQ(r.packet.parameters, params);
}

TEST(parse_startup_packet, ssl_request_capture_is_an_ssl_request) {
    const auto r = parse_startup_packet(as_span(from_hex("00000008 04d2162f")));
    EXPECT_EQ(r.error, startup_error::none);
    EXPECT_EQ(r.packet.kind, startup_kind::ssl_request);
}

TEST(parse_startup_packet, gssenc_request_is_a_gssenc_request) {
    const auto r = parse_startup_packet(as_span(packet(80877104, "")));
    EXPECT_EQ(r.error, startup_error::none);
    EXPECT_EQ(r.packet.kind, startup_kind::gssenc_request);
}

TEST(parse_startup_packet, ssl_and_gssenc_requests_with_extra_bytes_are_bad_length) {
    const auto ssl = parse_startup_packet(as_span(packet(80877103, be32(0))));
    EXPECT_EQ(ssl.error, startup_error::bad_length);
    EXPECT_EQ(ssl.packet.kind, startup_kind::ssl_request);
    const auto gss = parse_startup_packet(as_span(packet(80877104, "x")));
    EXPECT_EQ(gss.error, startup_error::bad_length);
}

TEST(parse_startup_packet, cancel_request_carries_process_id_and_secret_key) {
    const auto r = parse_startup_packet(as_span(from_hex("00000010 04d2162e 0000185f bb16d080")));
    ASSERT_EQ(r.error, startup_error::none) << r.reason;
    EXPECT_EQ(r.packet.kind, startup_kind::cancel_request);
    EXPECT_EQ(r.packet.process_id, 0x185fU);
    EXPECT_EQ(r.packet.secret_key, 0xbb16d080U);
}

TEST(parse_startup_packet, write_cancel_request_output_parses_back) {
    std::string out;
    write_cancel_request(out, 4242, 0xdeadbeef);
    const auto r = parse_startup_packet(as_span(out));
    ASSERT_EQ(r.error, startup_error::none);
    EXPECT_EQ(r.packet.process_id, 4242U);
    EXPECT_EQ(r.packet.secret_key, 0xdeadbeefU);
}

TEST(parse_startup_packet, cancel_request_shorter_or_longer_than_16_bytes_is_bad_length) {
    EXPECT_EQ(parse_startup_packet(as_span(packet(80877102, be32(1)))).error, startup_error::bad_length);
    EXPECT_EQ(parse_startup_packet(as_span(packet(80877102, cat({be32(1), be32(2), be32(3)})))).error,
              startup_error::bad_length);
    EXPECT_EQ(parse_startup_packet(as_span(packet(80877102, ""))).error, startup_error::bad_length);
}

TEST(parse_startup_packet, protocol_3_2_is_accepted_and_keeps_the_minor_version) {
    const auto r = parse_startup_packet(as_span(packet(v3_0 | 2, cat({cstr("user"), cstr("alice"), byte1('\0')}))));
    ASSERT_EQ(r.error, startup_error::none) << r.reason;
    EXPECT_EQ(r.packet.major, 3);
    EXPECT_EQ(r.packet.minor, 2);
}

TEST(parse_startup_packet, pq_options_are_collected_apart_from_parameters) {
    const auto r = parse_startup_packet(
        as_span(packet(v3_0, cat({cstr("user"), cstr("alice"), cstr("_pq_.compression"), cstr("on"), cstr("database"),
                                  cstr("d"), cstr("_pq_.test_protocol_negotiation"), cstr(""), byte1('\0')}))));
    ASSERT_EQ(r.error, startup_error::none) << r.reason;
    const std::vector<std::string> options{"_pq_.compression", "_pq_.test_protocol_negotiation"};
    EXPECT_EQ(r.packet.protocol_options, options);
    const std::vector<std::pair<std::string, std::string>> params{{"user", "alice"}, {"database", "d"}};
    EXPECT_EQ(r.packet.parameters, params);
}

TEST(parse_startup_packet, version_2_0_is_unsupported_version) {
    const auto r = parse_startup_packet(as_span(packet(2 << 16, cat({cstr("user"), cstr("alice"), byte1('\0')}))));
    EXPECT_EQ(r.error, startup_error::unsupported_version);
    EXPECT_EQ(r.packet.major, 2);
    EXPECT_FALSE(r.reason.empty());
}

TEST(parse_startup_packet, unknown_request_code_is_unsupported_version) {
    // 1234.5677 is not one of the special codes (…5678 cancel, …5679 SSL, …5680 GSSENC).
    const auto r = parse_startup_packet(as_span(packet((1234U << 16) | 5677U, "")));
    EXPECT_EQ(r.error, startup_error::unsupported_version);
}

TEST(parse_startup_packet, missing_user_is_malformed) {
    const auto r = parse_startup_packet(as_span(packet(v3_0, cat({cstr("database"), cstr("shop"), byte1('\0')}))));
    EXPECT_EQ(r.error, startup_error::malformed);
    EXPECT_FALSE(r.reason.empty());
}

TEST(parse_startup_packet, empty_user_is_malformed) {
    const auto r = parse_startup_packet(as_span(packet(v3_0, cat({cstr("user"), cstr(""), byte1('\0')}))));
    EXPECT_EQ(r.error, startup_error::malformed);
}

TEST(parse_startup_packet, parameter_list_of_only_the_terminator_is_malformed_for_lack_of_user) {
    EXPECT_EQ(parse_startup_packet(as_span(packet(v3_0, byte1('\0')))).error, startup_error::malformed);
}

TEST(parse_startup_packet, missing_terminator_is_malformed) {
    const auto r = parse_startup_packet(as_span(packet(v3_0, cat({cstr("user"), cstr("alice")}))));
    EXPECT_EQ(r.error, startup_error::malformed);
}

TEST(parse_startup_packet, version_without_any_parameter_bytes_is_malformed) {
    EXPECT_EQ(parse_startup_packet(as_span(packet(v3_0, ""))).error, startup_error::malformed);
}

TEST(parse_startup_packet, value_without_nul_is_malformed) {
    const auto r = parse_startup_packet(as_span(packet(v3_0, cat({cstr("user"), "alice"}))));
    EXPECT_EQ(r.error, startup_error::malformed);
}

TEST(parse_startup_packet, bytes_after_the_terminator_are_malformed) {
    const auto r = parse_startup_packet(as_span(packet(v3_0, cat({cstr("user"), cstr("alice"), byte1('\0'), "x"}))));
    EXPECT_EQ(r.error, startup_error::malformed);
}

TEST(parse_startup_packet, length_field_not_matching_the_packet_size_is_bad_length) {
    std::string longer_claim = psql_startup;
    longer_claim.replace(0, 4, be32(static_cast<std::uint32_t>(psql_startup.size() + 1)));
    EXPECT_EQ(parse_startup_packet(as_span(longer_claim)).error, startup_error::bad_length);
    std::string shorter_claim = psql_startup;
    shorter_claim.replace(0, 4, be32(static_cast<std::uint32_t>(psql_startup.size() - 1)));
    EXPECT_EQ(parse_startup_packet(as_span(shorter_claim)).error, startup_error::bad_length);
}

TEST(parse_startup_packet, packet_shorter_than_8_bytes_is_bad_length_even_if_its_length_field_agrees) {
    EXPECT_EQ(parse_startup_packet(as_span(be32(4))).error, startup_error::bad_length);
    EXPECT_EQ(parse_startup_packet(as_span(cat({be32(7), "abc"}))).error, startup_error::bad_length);
}

// A valid StartupMessage of exactly `total` bytes: user plus an options value padded to size.
std::string startup_of_size(std::size_t total) {
    const std::string fixed = cat({cstr("user"), cstr("alice"), cstr("options"), byte1('\0')});
    const std::size_t pad = total - 8 - fixed.size() - 1;
    return packet(v3_0,
                  cat({cstr("user"), cstr("alice"), cstr("options"), std::string(pad, 'x'), byte1('\0'), byte1('\0')}));
}

TEST(parse_startup_packet, packet_of_max_startup_length_is_accepted) {
    const std::string p = startup_of_size(max_startup_length);
    ASSERT_EQ(p.size(), 10000U);
    EXPECT_EQ(parse_startup_packet(as_span(p)).error, startup_error::none);
}

TEST(parse_startup_packet, packet_of_10001_bytes_is_bad_length) {
    const std::string p = startup_of_size(10001);
    ASSERT_EQ(p.size(), 10001U);
    EXPECT_EQ(parse_startup_packet(as_span(p)).error, startup_error::bad_length);
}

TEST(parse_startup_packet, every_truncation_of_a_startup_message_is_an_error) {
    for (std::size_t n = 0; n < psql_startup.size(); ++n) {
        // Exact-size copies, so that an over-read leaves the allocation (caught under ASan).
        const std::string as_received = psql_startup.substr(0, n);
        EXPECT_NE(parse_startup_packet(as_span(as_received)).error, startup_error::none) << "length " << n;
        // Same prefix with a consistent length field, so the parameter parser itself sees the cut.
        const std::string consistent = with_length_patched(as_received);
        const auto r = parse_startup_packet(as_span(consistent));
        EXPECT_NE(r.error, startup_error::none) << "patched length " << n;
        EXPECT_FALSE(r.reason.empty());
    }
}

TEST(parse_startup_packet, every_truncation_of_a_cancel_request_is_an_error) {
    const std::string cancel = from_hex("00000010 04d2162e 0000185f bb16d080");
    for (std::size_t n = 0; n < cancel.size(); ++n) {
        const std::string consistent = with_length_patched(cancel.substr(0, n));
        EXPECT_EQ(parse_startup_packet(as_span(consistent)).error, startup_error::bad_length) << n;
    }
}

}  // namespace
}  // namespace sluice::protocol
