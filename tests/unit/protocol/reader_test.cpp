// message_reader (sticky errors, bounds) and read_header (the 5-byte type + Int32 length framing of
// protocol-overview.html, "Messaging Overview").

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/reader.hpp"
#include "wire.hpp"

namespace sluice::protocol {
namespace {

using test::as_span;
using test::as_view;
using test::be16;
using test::be32;
using test::cat;
using test::cstr;

// --- message_reader ---

TEST(message_reader, reads_big_endian_fields_in_order) {
    const std::string body = cat({"\x7f", be16(0xfffe), be32(0x80000001), cstr("name"), "tail"});
    message_reader r(as_span(body));
    EXPECT_EQ(r.u8(), 0x7f);
    EXPECT_EQ(r.i16(), -2);
    EXPECT_EQ(r.i32(), static_cast<std::int32_t>(0x80000001));
    EXPECT_EQ(r.cstring(), "name");
    EXPECT_EQ(r.remaining(), 4U);
    EXPECT_EQ(as_view(r.bytes(2)), "ta");
    EXPECT_EQ(as_view(r.rest()), "il");
    EXPECT_TRUE(r.ok());
    EXPECT_TRUE(r.at_end());
}

TEST(message_reader, cstring_view_excludes_terminator_and_points_into_the_body) {
    const std::string body = cstr("abc");
    message_reader r(as_span(body));
    const auto s = r.cstring();
    EXPECT_EQ(s, "abc");
    EXPECT_EQ(s.data(), body.data());
    EXPECT_EQ(r.position(), 4U);
    EXPECT_TRUE(r.at_end());
}

TEST(message_reader, empty_cstring_is_ok_and_consumes_only_the_terminator) {
    const std::string body = cat({cstr(""), cstr("x")});
    message_reader r(as_span(body));
    EXPECT_EQ(r.cstring(), "");
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.cstring(), "x");
    EXPECT_TRUE(r.at_end());
}

TEST(message_reader, cstring_without_terminator_fails_and_consumes_nothing) {
    const std::string body = "unterminated";
    message_reader r(as_span(body));
    EXPECT_EQ(r.cstring(), "");
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.position(), 0U);
}

TEST(message_reader, error_is_sticky_so_later_reads_that_would_fit_return_empty) {
    // Two bytes: i32 fails; a u8, i16 and a 1-byte read would otherwise all succeed.
    const std::string body = cat({be16(0x4142)});
    message_reader r(as_span(body));
    EXPECT_EQ(r.i32(), 0);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.u8(), 0);
    EXPECT_EQ(r.i16(), 0);
    EXPECT_TRUE(r.bytes(1).empty());
    EXPECT_FALSE(r.ok());
}

TEST(message_reader, cstring_after_a_failed_read_returns_empty_even_when_a_nul_follows) {
    const std::string body = cstr("ab");
    message_reader r(as_span(body));
    (void)r.bytes(4);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.cstring(), "");
    EXPECT_FALSE(r.ok());
}

TEST(message_reader, rest_after_a_failed_read_returns_empty) {
    // The contract: "once a read runs past the end, every later read returns an empty value". rest() is a read.
    const std::string body = cat({be16(0x4142)});
    message_reader r(as_span(body));
    (void)r.i32();
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.rest().empty());
}

TEST(message_reader, rest_after_an_unterminated_cstring_returns_empty) {
    const std::string body = "no-nul";
    message_reader r(as_span(body));
    (void)r.cstring();
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.rest().empty());
}

TEST(message_reader, reading_past_the_end_of_an_empty_body_never_crashes) {
    message_reader r(std::span<const char>{});
    EXPECT_TRUE(r.at_end());
    EXPECT_EQ(r.u8(), 0);
    EXPECT_EQ(r.i16(), 0);
    EXPECT_EQ(r.i32(), 0);
    EXPECT_EQ(r.cstring(), "");
    EXPECT_TRUE(r.bytes(1).empty());
    EXPECT_TRUE(r.rest().empty());
    EXPECT_FALSE(r.ok());
}

TEST(message_reader, every_field_read_truncated_at_every_length_fails_without_reading_outside) {
    const std::string full = cat({"\x01", be16(2), be32(3), cstr("four"), "five"});
    for (std::size_t n = 0; n < full.size(); ++n) {
        // Exact-size copy so that an over-read would leave the allocation (visible under ASan).
        const std::string prefix = full.substr(0, n);
        message_reader r(as_span(prefix));
        (void)r.u8();
        (void)r.i16();
        (void)r.i32();
        (void)r.cstring();
        (void)r.bytes(4);
        EXPECT_FALSE(r.ok()) << "prefix length " << n;
        EXPECT_LE(r.position(), n);
    }
    message_reader whole(as_span(full));
    (void)whole.u8();
    (void)whole.i16();
    (void)whole.i32();
    (void)whole.cstring();
    (void)whole.bytes(4);
    EXPECT_TRUE(whole.ok());
    EXPECT_TRUE(whole.at_end());
}

TEST(message_reader, bytes_with_a_huge_count_fails_instead_of_overflowing) {
    const std::string body = "abc";
    message_reader r(as_span(body));
    (void)r.u8();
    EXPECT_TRUE(r.bytes(static_cast<std::size_t>(-1)).empty());
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.position(), 1U);
}

TEST(message_reader, bytes_of_exactly_the_remainder_succeeds_and_reaches_the_end) {
    const std::string body = "abc";
    message_reader r(as_span(body));
    EXPECT_EQ(as_view(r.bytes(3)), "abc");
    EXPECT_TRUE(r.ok());
    EXPECT_TRUE(r.at_end());
    EXPECT_TRUE(r.bytes(0).empty());
    EXPECT_TRUE(r.ok());
}

// --- read_header ---

TEST(read_header, fewer_than_five_bytes_need_more) {
    const std::string msg = cat({"Z", be32(5), "I"});
    for (std::size_t n = 0; n < header_size; ++n) {
        EXPECT_EQ(read_header(as_span(msg.substr(0, n)), 1 << 20).status, header_status::need_more) << n;
    }
}

TEST(read_header, five_bytes_with_a_valid_length_are_ok_even_before_the_body_arrives) {
    const std::string head = cat({"D", be32(1000)});
    const auto h = read_header(as_span(head), 1 << 20);
    EXPECT_EQ(h.status, header_status::ok);
    EXPECT_EQ(h.header.type, 'D');
    EXPECT_EQ(h.header.length, 1000U);
    EXPECT_EQ(h.header.body_size(), 996U);
    EXPECT_EQ(h.header.total_size(), 1001U);
}

TEST(read_header, length_4_is_an_empty_body) {
    const std::string msg = cat({"S", be32(4)});
    const auto h = read_header(as_span(msg), 1 << 20);
    EXPECT_EQ(h.status, header_status::ok);
    EXPECT_EQ(h.header.body_size(), 0U);
    EXPECT_EQ(h.header.total_size(), 5U);
}

TEST(read_header, length_below_4_is_bad_length) {
    for (std::uint32_t len : {0U, 1U, 2U, 3U}) {
        const std::string msg = cat({"Q", be32(len)});
        const auto h = read_header(as_span(msg), 1 << 20);
        EXPECT_EQ(h.status, header_status::bad_length) << len;
        EXPECT_EQ(h.header.length, len);
    }
}

TEST(read_header, length_above_the_limit_is_bad_length_and_at_the_limit_is_ok) {
    const std::string at_limit = cat({"Q", be32(8192)});
    EXPECT_EQ(read_header(as_span(at_limit), 8192).status, header_status::ok);
    const std::string above = cat({"Q", be32(8193)});
    const auto h = read_header(as_span(above), 8192);
    EXPECT_EQ(h.status, header_status::bad_length);
    EXPECT_EQ(h.header.type, 'Q');
    EXPECT_EQ(h.header.length, 8193U);
}

TEST(read_header, length_with_the_top_bit_set_is_bad_length_not_a_huge_allocation) {
    const std::string msg = cat({"D", be32(0xfffffff0)});
    EXPECT_EQ(read_header(as_span(msg), 0x7fffffff).status, header_status::bad_length);
}

TEST(read_header, total_size_of_the_largest_length_does_not_wrap) {
    const message_header h{'d', 0xffffffff};
    EXPECT_EQ(h.total_size(), std::size_t{0x100000000});
}

}  // namespace
}  // namespace sluice::protocol
