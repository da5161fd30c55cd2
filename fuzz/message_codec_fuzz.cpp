// Fuzz target for the wire codec: read_header, message_splitter, message_reader and parse_error_fields.
//
// Input: an 8-byte control block, then a byte stream as a peer would send it.
//   control[0]     which message types the split policy inspects (none, all, the ones Sluice inspects, or random)
//   control[1]     the largest declared length accepted (one of the limits Sluice uses, or a tiny one)
//   control[2..3]  the receive buffer's capacity (at least one header)
//   control[4..7]  the seed of every other choice: how the stream arrives in chunks and which reads parse a body
// The target plays the caller of message_splitter: it fills a bounded buffer chunk by chunk, takes pieces, grows the
// buffer only for an inspected message larger than it, and checks the result against the stream framed in one go.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "sluice/protocol/error.hpp"
#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/reader.hpp"
#include "sluice/protocol/splitter.hpp"

namespace {

using namespace sluice::protocol;
using sluice::fuzz::choices;

constexpr std::size_t control_size = 8;

split_policy make_policy(const std::uint8_t* control, choices& rng) {
    split_policy policy;
    switch (control[0] % 4) {
        case 0:
            break;
        case 1:
            policy.inspect.set();
            break;
        case 2:
            for (char type : {'E', 'N', 'S', 'Z', 'K', 'R', 'C', 'Q', 'P', 'B', 'X', 'p'}) {
                policy.set_inspect(type);
            }
            break;
        default:
            for (int i = 0; i < 256; ++i) {
                policy.inspect.set(static_cast<std::size_t>(i), rng.below(4) == 0);
            }
            break;
    }
    constexpr std::uint32_t limits[] = {4,          5,     16,         small_message_limit, large_message_limit,
                                        0x7fffffff, 65536, 0xffffffffU};
    policy.max_length = limits[control[1] % std::size(limits)];
    policy.buffer_capacity = header_size + (static_cast<std::size_t>(control[2]) << 8U | control[3]) % 4096;
    return policy;
}

// Reads `body` with a random sequence of field reads and checks message_reader's contract: never outside the span,
// sticky errors, positions that only move forward.
void exercise_reader(std::span<const char> body, choices& rng) {
    message_reader r(body);
    const std::size_t steps = rng.below(12);
    for (std::size_t i = 0; i < steps; ++i) {
        const bool was_ok = r.ok();
        const std::size_t before = r.position();
        SLUICE_FUZZ_CHECK(before <= body.size());
        SLUICE_FUZZ_CHECK(r.remaining() == body.size() - before);
        switch (rng.below(6)) {
            case 0: {
                const auto v = r.u8();
                SLUICE_FUZZ_CHECK(r.ok() || v == 0);
                SLUICE_FUZZ_CHECK(!r.ok() || r.position() == before + 1);
                break;
            }
            case 1: {
                const auto v = r.i16();
                SLUICE_FUZZ_CHECK(r.ok() || v == 0);
                SLUICE_FUZZ_CHECK(!r.ok() || r.position() == before + 2);
                break;
            }
            case 2: {
                const auto v = r.i32();
                SLUICE_FUZZ_CHECK(r.ok() || v == 0);
                SLUICE_FUZZ_CHECK(!r.ok() || r.position() == before + 4);
                break;
            }
            case 3: {
                const auto s = r.cstring();
                SLUICE_FUZZ_CHECK(sluice::fuzz::within(s, body));
                SLUICE_FUZZ_CHECK(s.find('\0') == std::string_view::npos);
                SLUICE_FUZZ_CHECK(r.ok() || s.empty());
                SLUICE_FUZZ_CHECK(!r.ok() || r.position() == before + s.size() + 1);
                break;
            }
            case 4: {
                const std::size_t n = rng.below(body.size() + 3);
                const auto s = r.bytes(n);
                SLUICE_FUZZ_CHECK(sluice::fuzz::within(std::string_view(s.data(), s.size()), body));
                SLUICE_FUZZ_CHECK(r.ok() ? s.size() == n && r.position() == before + n : s.empty());
                break;
            }
            default: {
                const auto s = r.rest();
                SLUICE_FUZZ_CHECK(sluice::fuzz::within(std::string_view(s.data(), s.size()), body));
                SLUICE_FUZZ_CHECK(r.ok() ? r.at_end() && s.size() == body.size() - before : s.empty());
                break;
            }
        }
        SLUICE_FUZZ_CHECK(was_ok || !r.ok());  // errors are sticky
        SLUICE_FUZZ_CHECK(r.position() >= before && r.position() <= body.size());
        SLUICE_FUZZ_CHECK(r.ok() || r.position() == before);
    }
}

void exercise_error_fields(std::span<const char> body) {
    const auto f = parse_error_fields(body);
    for (std::string_view field : {f.severity, f.sqlstate, f.message, f.detail, f.hint}) {
        SLUICE_FUZZ_CHECK(sluice::fuzz::within(field, body));
        SLUICE_FUZZ_CHECK(field.find('\0') == std::string_view::npos);
    }
}

// A message as framed from the whole stream at once: the reference the chunked run must reproduce.
struct framed {
    char type;
    std::uint32_t length;
};

// Frames `stream` with everything in memory. Stops at the first bad length (recorded in `bad`) or at a message the
// stream does not hold completely.
std::vector<framed> frame_in_one_go(std::span<const char> stream, std::uint32_t max_length, bool& bad) {
    std::vector<framed> out;
    bad = false;
    while (true) {
        const auto h = read_header(stream, max_length);
        if (h.status == header_status::need_more) {
            SLUICE_FUZZ_CHECK(stream.size() < header_size);
            return out;
        }
        if (h.status == header_status::bad_length) {
            SLUICE_FUZZ_CHECK(h.header.length < 4 || h.header.length > max_length);
            bad = true;
            return out;
        }
        SLUICE_FUZZ_CHECK(h.header.length >= 4 && h.header.length <= max_length);
        SLUICE_FUZZ_CHECK(h.header.type == stream[0]);
        SLUICE_FUZZ_CHECK(h.header.total_size() == std::size_t{h.header.length} + 1);
        SLUICE_FUZZ_CHECK(h.header.body_size() == std::size_t{h.header.length} - 4);
        out.push_back({h.header.type, h.header.length});
        if (h.header.total_size() > stream.size()) {
            return out;  // a partial last message: the chunked run may stream it or wait for it
        }
        stream = stream.subspan(h.header.total_size());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < control_size) {
        return 0;
    }
    std::uint64_t seed = 0;
    for (std::size_t i = 4; i < control_size; ++i) {
        seed = seed << 8U | data[i];
    }
    choices rng(seed);
    const split_policy policy = make_policy(data, rng);
    const std::span<const char> stream(reinterpret_cast<const char*>(data) + control_size, size - control_size);

    bool reference_bad = false;
    const auto reference = frame_in_one_go(stream, policy.max_length, reference_bad);

    // The caller's receive buffer: unconsumed bytes, at most `capacity` of them.
    std::string buffer;
    std::size_t capacity = policy.buffer_capacity;
    std::size_t fed = 0;       // stream bytes appended to the buffer so far
    std::size_t consumed = 0;  // stream bytes covered by pieces so far
    std::size_t message_index = 0;
    std::size_t message_start = 0;  // stream offset of the message being streamed
    bool saw_bad = false;
    message_splitter splitter;

    while (true) {
        const piece p = splitter.next_piece(buffer, policy);
        SLUICE_FUZZ_CHECK(p.size <= buffer.size());
        switch (p.kind) {
            case piece_kind::need_more: {
                SLUICE_FUZZ_CHECK(p.size == 0);
                if (fed == stream.size()) {
                    break;  // the stream ended: whatever is buffered is an incomplete message
                }
                if (buffer.size() == capacity) {
                    // Only an inspected message larger than the buffer may leave a full buffer waiting.
                    SLUICE_FUZZ_CHECK(!splitter.mid_message());
                    SLUICE_FUZZ_CHECK(policy.inspects(p.header.type));
                    SLUICE_FUZZ_CHECK(p.header.total_size() > capacity);
                    capacity = p.header.total_size();
                }
                const std::size_t chunk = 1 + rng.below(rng.below(4) == 0 ? 4096 : 64);
                const std::size_t n = std::min({chunk, capacity - buffer.size(), stream.size() - fed});
                SLUICE_FUZZ_CHECK(n > 0);
                buffer.append(stream.data() + fed, n);
                fed += n;
                continue;
            }
            case piece_kind::whole: {
                SLUICE_FUZZ_CHECK(!splitter.mid_message());
                SLUICE_FUZZ_CHECK(p.last);
                SLUICE_FUZZ_CHECK(p.size == p.header.total_size());
                SLUICE_FUZZ_CHECK(p.header.type == buffer[0]);
                SLUICE_FUZZ_CHECK(message_index < reference.size());
                SLUICE_FUZZ_CHECK(reference[message_index].type == p.header.type);
                SLUICE_FUZZ_CHECK(reference[message_index].length == p.header.length);
                const std::span<const char> body(buffer.data() + header_size, p.header.body_size());
                exercise_reader(body, rng);
                exercise_error_fields(body);
                ++message_index;
                break;
            }
            case piece_kind::stream_head: {
                SLUICE_FUZZ_CHECK(!policy.inspects(p.header.type));
                SLUICE_FUZZ_CHECK(p.header.total_size() > policy.buffer_capacity);
                SLUICE_FUZZ_CHECK(p.header.total_size() > buffer.size());
                SLUICE_FUZZ_CHECK(p.size == buffer.size() && p.size >= header_size);
                SLUICE_FUZZ_CHECK(!p.last && splitter.mid_message());
                SLUICE_FUZZ_CHECK(message_index < reference.size());
                SLUICE_FUZZ_CHECK(reference[message_index].type == p.header.type);
                SLUICE_FUZZ_CHECK(reference[message_index].length == p.header.length);
                message_start = consumed;
                break;
            }
            case piece_kind::stream_body: {
                SLUICE_FUZZ_CHECK(p.size > 0);
                SLUICE_FUZZ_CHECK(p.header.type == reference[message_index].type);
                SLUICE_FUZZ_CHECK(p.header.length == reference[message_index].length);
                const std::size_t end = consumed + p.size;
                SLUICE_FUZZ_CHECK(end - message_start <= p.header.total_size());
                SLUICE_FUZZ_CHECK(p.last == (end - message_start == p.header.total_size()));
                SLUICE_FUZZ_CHECK(p.last != splitter.mid_message());
                if (p.last) {
                    ++message_index;
                }
                break;
            }
            case piece_kind::bad_length:
                SLUICE_FUZZ_CHECK(p.size == 0);
                SLUICE_FUZZ_CHECK(p.header.length < 4 || p.header.length > policy.max_length);
                saw_bad = true;
                break;
        }
        if (p.kind == piece_kind::need_more || p.kind == piece_kind::bad_length) {
            break;
        }
        buffer.erase(0, p.size);
        consumed += p.size;
    }

    // Every byte is accounted for: pieces plus what is left in the buffer plus what was never fed.
    SLUICE_FUZZ_CHECK(consumed + buffer.size() == fed);
    SLUICE_FUZZ_CHECK(fed <= stream.size());
    SLUICE_FUZZ_CHECK(saw_bad == reference_bad);
    if (saw_bad) {
        SLUICE_FUZZ_CHECK(fed == stream.size() || buffer.size() >= header_size);
        SLUICE_FUZZ_CHECK(message_index == reference.size());
    } else {
        SLUICE_FUZZ_CHECK(fed == stream.size());
        // The last reference message may be partial: then it was either streamed in part or is still buffered.
        SLUICE_FUZZ_CHECK(message_index == reference.size() ||
                          (message_index + 1 == reference.size() && (splitter.mid_message() || !buffer.empty())));
    }
    return 0;
}
