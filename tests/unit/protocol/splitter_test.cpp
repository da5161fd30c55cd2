// message_splitter: whole messages, "need more" that consumes nothing, streaming of messages larger than the buffer,
// and the length checks of protocol-overview.html ("Messaging Overview").

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sluice/protocol/error.hpp"
#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/splitter.hpp"
#include "sluice/protocol/writer.hpp"
#include "wire.hpp"

namespace sluice::protocol {
namespace {

using test::as_span;
using test::be32;
using test::cat;

split_policy policy_with(std::size_t capacity, std::uint32_t max_length = 0x7fffffff) {
    split_policy p;
    p.buffer_capacity = capacity;
    p.max_length = max_length;
    return p;
}

// A message of `type` with a body of `body_size` filler bytes.
std::string message_of(char type, std::size_t body_size) {
    return cat({std::string(1, type), be32(static_cast<std::uint32_t>(body_size + 4)), std::string(body_size, 'x')});
}

// A short backend exchange: RowDescription, two DataRows, CommandComplete, ErrorResponse, ReadyForQuery.
std::string small_exchange() {
    std::string out;
    const std::array<column, 2> columns{column{"id", oid_int4, 4}, column{"name", oid_text, -1}};
    write_row_description(out, columns);
    const std::array<std::optional<std::string>, 2> row1{std::string("1"), std::string("alice")};
    write_data_row(out, row1);
    const std::array<std::optional<std::string>, 2> row2{std::string("2"), std::nullopt};
    write_data_row(out, row2);
    write_command_complete(out, "SELECT 2");
    write_error(out, severity::error, "57014", "canceling statement due to user request");
    write_ready_for_query(out, transaction_status::idle);
    return out;
}
const std::string small_exchange_types = "TDDCEZ";

// Drains every whole message from the front of `buf`; returns the type bytes seen, in order.
std::string drain_whole(message_splitter& s, std::string& buf, const split_policy& policy) {
    std::string types;
    for (;;) {
        const auto p = s.next_piece(as_span(buf), policy);
        if (p.kind != piece_kind::whole) {
            EXPECT_EQ(p.kind, piece_kind::need_more);
            EXPECT_EQ(p.size, 0U);
            return types;
        }
        EXPECT_EQ(p.size, p.header.total_size());
        EXPECT_EQ(buf[0], p.header.type);
        types.push_back(p.header.type);
        buf.erase(0, p.size);
    }
}

TEST(message_splitter, several_whole_messages_in_one_buffer_come_out_in_order_with_exact_sizes) {
    const std::string stream = small_exchange();
    message_splitter s;
    const auto policy = policy_with(8192);
    std::size_t offset = 0;
    std::string types;
    for (;;) {
        const auto p = s.next_piece(as_span(stream).subspan(offset), policy);
        if (p.kind == piece_kind::need_more) {
            EXPECT_EQ(p.size, 0U);
            break;
        }
        ASSERT_EQ(p.kind, piece_kind::whole);
        EXPECT_TRUE(p.last);
        EXPECT_EQ(load_u32(stream.data() + offset + 1), p.header.length);
        types.push_back(p.header.type);
        offset += p.size;
    }
    EXPECT_EQ(types, small_exchange_types);
    EXPECT_EQ(offset, stream.size());
    EXPECT_FALSE(s.mid_message());
}

TEST(message_splitter, message_split_at_every_byte_boundary_needs_more_then_comes_out_whole) {
    std::string msg;
    write_error(msg, severity::fatal, "28P01", "password authentication failed for user \"bob\"");
    for (bool inspected : {false, true}) {
        auto policy = policy_with(8192);
        policy.set_inspect('E', inspected);
        for (std::size_t cut = 0; cut < msg.size(); ++cut) {
            message_splitter s;
            const std::string first = msg.substr(0, cut);
            const auto p1 = s.next_piece(as_span(first), policy);
            EXPECT_EQ(p1.kind, piece_kind::need_more) << "cut " << cut;
            EXPECT_EQ(p1.size, 0U) << "cut " << cut;
            EXPECT_FALSE(s.mid_message());
            const auto p2 = s.next_piece(as_span(msg), policy);  // the caller appended the second part
            ASSERT_EQ(p2.kind, piece_kind::whole) << "cut " << cut;
            EXPECT_EQ(p2.size, msg.size());
            EXPECT_EQ(p2.header.type, 'E');
        }
    }
}

TEST(message_splitter, need_more_after_five_bytes_reports_the_header_so_the_caller_knows_the_size) {
    const std::string msg = message_of('C', 20);
    message_splitter s;
    const auto p = s.next_piece(as_span(msg).first(header_size), policy_with(8192));
    EXPECT_EQ(p.kind, piece_kind::need_more);
    EXPECT_EQ(p.header.type, 'C');
    EXPECT_EQ(p.header.total_size(), msg.size());
}

TEST(message_splitter, sequence_split_at_every_byte_boundary_yields_the_same_messages) {
    const std::string stream = small_exchange();
    const auto policy = policy_with(8192);
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        message_splitter s;
        std::string buf = stream.substr(0, cut);
        std::string types = drain_whole(s, buf, policy);
        buf += stream.substr(cut);
        types += drain_whole(s, buf, policy);
        EXPECT_EQ(types, small_exchange_types) << "cut " << cut;
        EXPECT_TRUE(buf.empty()) << "cut " << cut;
    }
}

TEST(message_splitter, message_larger_than_the_buffer_streams_as_head_then_body_pieces_adding_up_to_its_size) {
    const std::string msg = message_of('D', 1000);
    constexpr std::size_t capacity = 64;
    const auto policy = policy_with(capacity);
    message_splitter s;
    std::size_t fed = 0;
    std::vector<piece> pieces;
    while (fed < msg.size()) {
        const std::string chunk = msg.substr(fed, capacity);
        const auto p = s.next_piece(as_span(chunk), policy);
        ASSERT_LE(p.size, chunk.size());
        ASSERT_GT(p.size, 0U);
        pieces.push_back(p);
        fed += p.size;
    }
    ASSERT_GE(pieces.size(), 2U);
    EXPECT_EQ(pieces.front().kind, piece_kind::stream_head);
    EXPECT_EQ(pieces.front().header.type, 'D');
    EXPECT_EQ(pieces.front().header.total_size(), msg.size());
    std::size_t total = 0;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
        if (i > 0) {
            EXPECT_EQ(pieces[i].kind, piece_kind::stream_body);
            EXPECT_EQ(pieces[i].header.type, 'D');
        }
        EXPECT_EQ(pieces[i].last, i + 1 == pieces.size()) << "piece " << i;
        total += pieces[i].size;
    }
    EXPECT_EQ(total, msg.size());
    EXPECT_FALSE(s.mid_message());
}

TEST(message_splitter, stream_head_may_be_just_the_five_byte_header) {
    const std::string msg = message_of('d', 100);
    message_splitter s;
    const auto p = s.next_piece(as_span(msg).first(header_size), policy_with(16));
    EXPECT_EQ(p.kind, piece_kind::stream_head);
    EXPECT_EQ(p.size, header_size);
    EXPECT_FALSE(p.last);
    EXPECT_TRUE(s.mid_message());
    EXPECT_EQ(s.streaming_header().type, 'd');
    EXPECT_EQ(s.streaming_header().length, 104U);
}

TEST(message_splitter, stream_body_stops_at_the_end_of_the_message_and_the_next_one_comes_out_whole) {
    std::string stream = message_of('d', 100);
    write_ready_for_query(stream, transaction_status::idle);
    message_splitter s;
    const auto policy = policy_with(32);
    const auto head = s.next_piece(as_span(stream).first(32), policy);
    ASSERT_EQ(head.kind, piece_kind::stream_head);
    ASSERT_EQ(head.size, 32U);
    const auto body = s.next_piece(as_span(stream).subspan(32), policy);  // the rest and the ReadyForQuery
    EXPECT_EQ(body.kind, piece_kind::stream_body);
    EXPECT_EQ(body.size, 105U - 32U);
    EXPECT_TRUE(body.last);
    EXPECT_FALSE(s.mid_message());
    const auto next = s.next_piece(as_span(stream).subspan(105), policy);
    EXPECT_EQ(next.kind, piece_kind::whole);
    EXPECT_EQ(next.header.type, 'Z');
    EXPECT_EQ(next.size, 6U);
}

TEST(message_splitter, empty_input_mid_stream_needs_more_and_stays_mid_message) {
    const std::string msg = message_of('d', 100);
    message_splitter s;
    ASSERT_EQ(s.next_piece(as_span(msg).first(10), policy_with(16)).kind, piece_kind::stream_head);
    const auto p = s.next_piece({}, policy_with(16));
    EXPECT_EQ(p.kind, piece_kind::need_more);
    EXPECT_EQ(p.size, 0U);
    EXPECT_TRUE(s.mid_message());
}

TEST(message_splitter, bytes_mid_stream_are_body_even_when_they_look_like_a_bad_header) {
    message_splitter s;
    const std::string msg = message_of('d', 100);
    ASSERT_EQ(s.next_piece(as_span(msg).first(10), policy_with(16)).kind, piece_kind::stream_head);
    const std::string looks_bad = cat({"Q", be32(1)});
    const auto p = s.next_piece(as_span(looks_bad), policy_with(16));
    EXPECT_EQ(p.kind, piece_kind::stream_body);
    EXPECT_EQ(p.size, looks_bad.size());
}

TEST(message_splitter, reset_abandons_a_streamed_message) {
    const std::string msg = message_of('d', 100);
    message_splitter s;
    ASSERT_EQ(s.next_piece(as_span(msg).first(10), policy_with(16)).kind, piece_kind::stream_head);
    s.reset();
    EXPECT_FALSE(s.mid_message());
    std::string rfq;
    write_ready_for_query(rfq, transaction_status::idle);
    EXPECT_EQ(s.next_piece(as_span(rfq), policy_with(16)).kind, piece_kind::whole);
}

TEST(message_splitter, inspected_type_larger_than_the_buffer_needs_more_so_the_caller_grows_it) {
    const std::string msg = message_of('E', 1000);
    auto policy = policy_with(64);
    policy.set_inspect('E');
    message_splitter s;
    const auto p = s.next_piece(as_span(msg).first(64), policy);
    EXPECT_EQ(p.kind, piece_kind::need_more);
    EXPECT_EQ(p.size, 0U);
    EXPECT_EQ(p.header.type, 'E');
    EXPECT_EQ(p.header.total_size(), msg.size());
    EXPECT_FALSE(s.mid_message());
    // After growing the buffer to header.total_size() the message arrives whole.
    const auto whole = s.next_piece(as_span(msg), policy);
    EXPECT_EQ(whole.kind, piece_kind::whole);
    EXPECT_EQ(whole.size, msg.size());
}

TEST(message_splitter, inspection_is_per_type_so_other_large_types_still_stream) {
    const std::string msg = message_of('D', 1000);
    auto policy = policy_with(64);
    policy.set_inspect('E');
    message_splitter s;
    EXPECT_EQ(s.next_piece(as_span(msg).first(64), policy).kind, piece_kind::stream_head);
}

TEST(message_splitter, message_exactly_the_buffer_capacity_is_buffered_and_one_byte_more_streams) {
    const std::string fits = message_of('D', 64 - header_size);
    ASSERT_EQ(fits.size(), 64U);
    message_splitter s;
    EXPECT_EQ(s.next_piece(as_span(fits).first(40), policy_with(64)).kind, piece_kind::need_more);
    const std::string too_big = message_of('D', 65 - header_size);
    EXPECT_EQ(s.next_piece(as_span(too_big).first(40), policy_with(64)).kind, piece_kind::stream_head);
}

TEST(message_splitter, length_3_is_bad_length_and_consumes_nothing) {
    const std::string msg = cat({"Q", be32(3), "abc"});
    message_splitter s;
    const auto p = s.next_piece(as_span(msg), policy_with(8192));
    EXPECT_EQ(p.kind, piece_kind::bad_length);
    EXPECT_EQ(p.size, 0U);
    EXPECT_EQ(p.header.type, 'Q');
    EXPECT_EQ(p.header.length, 3U);
    EXPECT_FALSE(s.mid_message());
}

TEST(message_splitter, length_above_max_length_is_bad_length_and_at_max_length_is_accepted) {
    message_splitter s;
    const auto policy = policy_with(8192, 1024);
    const std::string above = cat({"d", be32(1025)});
    const auto p = s.next_piece(as_span(above), policy);
    EXPECT_EQ(p.kind, piece_kind::bad_length);
    EXPECT_EQ(p.size, 0U);
    EXPECT_EQ(p.header.length, 1025U);
    const std::string at = message_of('d', 1020);
    EXPECT_EQ(s.next_piece(as_span(at), policy).kind, piece_kind::whole);
}

TEST(message_splitter, bad_length_of_an_inspected_type_above_max_length_is_not_need_more) {
    auto policy = policy_with(64, 1 << 20);
    policy.set_inspect('Q');
    const std::string msg = cat({"Q", be32((1 << 20) + 1)});
    message_splitter s;
    EXPECT_EQ(s.next_piece(as_span(msg), policy).kind, piece_kind::bad_length);
}

TEST(message_splitter, hundred_megabyte_data_row_in_64_kib_chunks_streams_without_any_piece_exceeding_its_input) {
    constexpr std::uint32_t body_size = 100U * 1024 * 1024;
    constexpr std::size_t chunk_size = 64 * 1024;
    constexpr std::uint64_t total = std::uint64_t{body_size} + header_size;
    const auto policy = policy_with(chunk_size);
    std::string rfq;
    write_ready_for_query(rfq, transaction_status::idle);

    message_splitter s;
    std::string chunk(chunk_size, '\x7f');
    std::uint64_t fed = 0;
    std::uint64_t covered = 0;
    std::size_t pieces = 0;
    bool saw_last = false;
    bool saw_rfq = false;
    while (fed < total) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, total - fed));
        chunk.assign(n, '\x7f');
        if (fed == 0) {
            chunk.replace(0, header_size, cat({"D", be32(body_size + 4)}));
        }
        if (fed + n == total) {
            chunk += rfq;  // the next message arrives in the same read
        }
        fed += n;
        std::size_t offset = 0;
        while (offset < chunk.size()) {
            const auto p = s.next_piece(as_span(chunk).subspan(offset), policy);
            ASSERT_NE(p.kind, piece_kind::need_more);
            ASSERT_NE(p.kind, piece_kind::bad_length);
            ASSERT_LE(p.size, chunk.size() - offset);
            if (p.kind == piece_kind::whole) {
                ASSERT_TRUE(saw_last);
                EXPECT_EQ(p.header.type, 'Z');
                saw_rfq = true;
            } else {
                EXPECT_EQ(p.kind, pieces == 0 ? piece_kind::stream_head : piece_kind::stream_body);
                EXPECT_EQ(p.header.type, 'D');
                EXPECT_EQ(p.header.length, body_size + 4);
                ASSERT_FALSE(saw_last);
                saw_last = p.last;
                covered += p.size;
                ++pieces;
            }
            offset += p.size;
        }
    }
    EXPECT_TRUE(saw_last);
    EXPECT_TRUE(saw_rfq);
    EXPECT_EQ(covered, total);
    EXPECT_EQ(pieces, 1601U);  // 1600 full chunks, then the last 5 bytes
    EXPECT_FALSE(s.mid_message());
}

}  // namespace
}  // namespace sluice::protocol
