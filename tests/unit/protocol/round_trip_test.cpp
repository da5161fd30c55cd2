// Property: whatever the chunking of the byte stream and the size of the caller's buffer, the splitter returns the
// messages the writers produced, with the same boundaries, types and bytes. Fixed seeds make failures reproducible
// (with the same standard library: distributions are implementation-defined); a failure names the seed and round.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "sluice/protocol/error.hpp"
#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/splitter.hpp"
#include "sluice/protocol/writer.hpp"
#include "wire.hpp"

namespace sluice::protocol {
namespace {

using test::as_span;

struct message {
    char type;
    std::string bytes;  // header included
};

class generator {
  public:
    explicit generator(std::uint32_t seed) : rng_(seed) {}

    std::size_t uniform(std::size_t lo, std::size_t hi) {
        return std::uniform_int_distribution<std::size_t>(lo, hi)(rng_);
    }

    // Any byte, NUL and 'Z' included, so bodies contain things that look like headers.
    std::string bytes(std::size_t max_size) {
        std::string s(uniform(0, max_size), '\0');
        for (auto& c : s)
            c = static_cast<char>(uniform(0, 255));
        return s;
    }
    // Text without NUL, for String fields.
    std::string text(std::size_t max_size) {
        std::string s(uniform(0, max_size), 'a');
        for (auto& c : s)
            c = static_cast<char>(uniform(1, 255));
        return s;
    }

    message next() {
        std::string out;
        switch (uniform(0, 16)) {
            case 0:
                write_ready_for_query(out, transaction_status::in_transaction);
                break;
            case 1:
                write_command_complete(out, text(30));
                break;
            case 2: {
                std::vector<std::optional<std::string>> values(uniform(0, 6));
                for (auto& v : values) {
                    if (uniform(0, 3) != 0) {
                        v = bytes(uniform(0, 1) == 0 ? 8 : 400);  // otherwise NULL
                    }
                }
                write_data_row(out, values);
                break;
            }
            case 3: {
                std::vector<std::string> names(uniform(0, 4));
                std::vector<column> columns;
                for (auto& n : names) {
                    n = text(20);
                    columns.push_back(column{n, oid_text, -1});
                }
                write_row_description(out, columns);
                break;
            }
            case 4:
                write_error(out, severity::error, "XX000", text(100), text(50), text(50));
                break;
            case 5:
                write_error(out, severity::notice, "00000", text(100));
                break;
            case 6:
                write_parameter_status(out, text(20), text(40));
                break;
            case 7:
                write_backend_key_data(out, static_cast<std::uint32_t>(rng_()), static_cast<std::uint32_t>(rng_()));
                break;
            case 8:
                write_query(out, text(uniform(0, 1) == 0 ? 10 : 2000));
                break;
            case 9: {
                std::vector<std::uint32_t> types(uniform(0, 5), oid_int8);
                write_parse(out, text(10), text(200), types);
                break;
            }
            case 10:
                write_sync(out);
                break;
            case 11:
                write_flush(out);
                break;
            case 12:
                write_authentication_sasl_continue(out, bytes(120));
                break;
            case 13:
                write_close_statement(out, text(16));
                break;
            case 14:
                write_bind_complete(out);
                break;
            case 15: {
                message_writer w(out, 'd');  // CopyData: arbitrary payload, possibly large
                const std::string payload = bytes(uniform(0, 1) == 0 ? 16 : 3000);
                w.bytes(std::string_view(payload));
                w.finish();
                break;
            }
            default:
                write_empty_query_response(out);
                break;
        }
        return {out[0], std::move(out)};
    }

  private:
    std::mt19937 rng_;
};

// A caller in the style of the session code: a buffer of `capacity` bytes that it fills by "reads" of random size,
// forwarding streamed pieces and growing the buffer only when told an inspected message does not fit.
struct reassembly {
    std::vector<message> messages;
    std::size_t stream_pieces = 0;
    std::size_t grows = 0;
};

void split_stream(const std::string& stream, std::size_t base_capacity, const split_policy& base_policy,
                  std::size_t max_read, generator& g, reassembly& out) {
    message_splitter s;
    split_policy policy = base_policy;
    policy.buffer_capacity = base_capacity;
    std::size_t capacity = base_capacity;
    std::string buf;
    std::size_t pos = 0;
    std::optional<message> streaming;
    std::size_t guard = 0;
    while (pos < stream.size() || !buf.empty()) {
        ASSERT_LT(++guard, 10'000'000U) << "no progress";
        ASSERT_LE(buf.size(), capacity);
        const std::size_t room = capacity - buf.size();
        if (room > 0 && pos < stream.size()) {
            const std::size_t n = g.uniform(1, std::min({room, stream.size() - pos, max_read}));
            buf.append(stream, pos, n);
            pos += n;
        }
        for (;;) {
            const std::size_t available = buf.size();
            const piece p = s.next_piece(as_span(buf), policy);
            ASSERT_LE(p.size, available);
            if (p.kind == piece_kind::need_more) {
                ASSERT_EQ(p.size, 0U);
                if (!buf.empty()) {
                    ASSERT_LT(pos, stream.size()) << "splitter waits for bytes that will never come";
                }
                if (buf.size() == capacity) {
                    // Only an inspected message too large for the buffer may stall a full buffer.
                    ASSERT_TRUE(policy.inspects(p.header.type)) << p.header.type;
                    ASSERT_GT(p.header.total_size(), capacity);
                    capacity = p.header.total_size();
                    ++out.grows;
                }
                break;
            }
            ASSERT_NE(p.kind, piece_kind::bad_length);
            ASSERT_GT(p.size, 0U);
            switch (p.kind) {
                case piece_kind::whole:
                    ASSERT_FALSE(streaming.has_value());
                    ASSERT_EQ(p.size, p.header.total_size());
                    out.messages.push_back({p.header.type, buf.substr(0, p.size)});
                    capacity = base_capacity;  // a grown buffer is released after its message
                    break;
                case piece_kind::stream_head:
                    ASSERT_FALSE(streaming.has_value());
                    ASSERT_FALSE(policy.inspects(p.header.type));
                    ASSERT_GT(p.header.total_size(), base_capacity);
                    ASSERT_FALSE(p.last);
                    streaming = message{p.header.type, buf.substr(0, p.size)};
                    ++out.stream_pieces;
                    break;
                case piece_kind::stream_body:
                    ASSERT_TRUE(streaming.has_value());
                    ASSERT_EQ(p.header.type, streaming->type);
                    streaming->bytes.append(buf, 0, p.size);
                    ++out.stream_pieces;
                    if (p.last) {
                        ASSERT_EQ(streaming->bytes.size(), p.header.total_size());
                        out.messages.push_back(std::move(*streaming));
                        streaming.reset();
                    }
                    break;
                default:
                    FAIL() << "unexpected piece kind";
            }
            buf.erase(0, p.size);
        }
    }
    ASSERT_FALSE(streaming.has_value()) << "stream ended mid-message";
    ASSERT_FALSE(s.mid_message());
}

void expect_same_messages(const std::vector<message>& sent, const std::vector<message>& got, const std::string& where) {
    ASSERT_EQ(got.size(), sent.size()) << where;
    for (std::size_t i = 0; i < sent.size(); ++i) {
        ASSERT_EQ(got[i].type, sent[i].type) << where << " message " << i;
        ASSERT_EQ(got[i].bytes.size(), sent[i].bytes.size()) << where << " message " << i;
        ASSERT_TRUE(got[i].bytes == sent[i].bytes) << where << " message " << i << " bytes differ";
    }
}

TEST(splitter_round_trip, random_messages_in_random_chunks_reassemble_with_the_same_boundaries_types_and_bytes) {
    constexpr std::uint32_t seed = 20240611;
    generator g(seed);
    split_policy inspect_some;
    for (char t : {'Z', 'E', 'S', 'K', 'R', 'Q', 'P'})
        inspect_some.set_inspect(t);
    const std::array<std::size_t, 6> capacities{5, 6, 17, 64, 512, 65536};
    std::size_t total_stream_pieces = 0;
    std::size_t total_grows = 0;
    std::size_t total_messages = 0;
    for (int round = 0; round < 400; ++round) {
        std::vector<message> sent(g.uniform(1, 40));
        std::string stream;
        for (auto& m : sent) {
            m = g.next();
            stream += m.bytes;
        }
        const std::size_t capacity = capacities[g.uniform(0, capacities.size() - 1)];
        const std::size_t max_read = g.uniform(0, 1) == 0 ? 7 : 4096;
        reassembly got;
        const std::string where = "seed " + std::to_string(seed) + " round " + std::to_string(round) + " capacity " +
                                  std::to_string(capacity);
        split_stream(stream, capacity, inspect_some, max_read, g, got);
        ASSERT_FALSE(HasFatalFailure()) << where;
        expect_same_messages(sent, got.messages, where);
        ASSERT_FALSE(HasFatalFailure()) << where;
        total_stream_pieces += got.stream_pieces;
        total_grows += got.grows;
        total_messages += sent.size();
    }
    // The run must have exercised every path, or it proves less than it claims.
    EXPECT_GT(total_stream_pieces, 1000U);
    EXPECT_GT(total_grows, 100U);
    EXPECT_GT(total_messages, 5000U);
}

TEST(splitter_round_trip, with_nothing_inspected_and_a_header_sized_buffer_every_larger_message_streams) {
    constexpr std::uint32_t seed = 7;
    generator g(seed);
    for (int round = 0; round < 100; ++round) {
        std::vector<message> sent(g.uniform(1, 30));
        std::string stream;
        for (auto& m : sent) {
            m = g.next();
            stream += m.bytes;
        }
        reassembly got;
        const std::string where = "seed " + std::to_string(seed) + " round " + std::to_string(round);
        split_stream(stream, header_size, split_policy{}, 3, g, got);
        ASSERT_FALSE(HasFatalFailure()) << where;
        expect_same_messages(sent, got.messages, where);
        ASSERT_FALSE(HasFatalFailure()) << where;
        EXPECT_EQ(got.grows, 0U) << where;
    }
}

}  // namespace
}  // namespace sluice::protocol
