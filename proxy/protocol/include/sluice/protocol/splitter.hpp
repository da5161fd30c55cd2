#pragma once
// Splits a byte stream into protocol messages without requiring whole messages in memory.
//
// Flow: the caller appends received bytes to its buffer and calls next_piece() repeatedly on the unconsumed part.
// Each piece is either a whole message (its type is one the caller inspects, or it fits in the buffer), the head of a
// message too large to buffer (the caller forwards it and then receives the rest as stream_body pieces), or a
// request for more bytes. "Need more" never consumes anything, so the buffer stays intact (the Envoy filter's rule).
// This is how a 100 MB DataRow or CopyData passes through with bounded memory while small messages can be inspected.

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <span>

#include "sluice/protocol/frame.hpp"

namespace sluice::protocol {

enum class piece_kind {
    need_more,    // not enough bytes to decide; consume nothing
    whole,        // a complete message of header.total_size() bytes
    stream_head,  // header plus the first part of a message larger than the buffer; `size` bytes consumed
    stream_body,  // continuation bytes of the message whose head was returned earlier; `size` bytes consumed
    bad_length,   // the declared length is < 4 or above the limit: protocol violation
};

struct piece {
    piece_kind kind = piece_kind::need_more;
    message_header header;  // for whole, stream_head and bad_length; for stream_body the streamed message's header
    std::size_t size = 0;   // bytes of the input this piece covers
    bool last = false;      // for stream_head/stream_body: this piece completes the message
};

// Which message types must be seen whole (so their fields can be parsed) whatever their size, up to max_length.
struct split_policy {
    std::bitset<256> inspect;  // 32 bytes: every idle client holds two policies
    std::uint32_t max_length = 0x7fffffff;  // largest declared length accepted (max_packet_size)
    std::size_t buffer_capacity = 0;        // what the caller's buffer can hold; larger non-inspected messages stream

    void set_inspect(char type, bool on = true) noexcept { inspect.set(static_cast<unsigned char>(type), on); }
    [[nodiscard]] bool inspects(char type) const noexcept { return inspect[static_cast<unsigned char>(type)]; }
};

class message_splitter {
  public:
    // Returns the next piece of `available` (the caller's unconsumed bytes). A caller that receives need_more for an
    // inspected message larger than its buffer must grow the buffer to header.total_size() before reading again.
    [[nodiscard]] piece next_piece(std::span<const char> available, const split_policy& policy) noexcept;

    // True while a streamed message is only partly through.
    [[nodiscard]] bool mid_message() const noexcept { return remaining_ != 0; }
    [[nodiscard]] const message_header& streaming_header() const noexcept { return streaming_; }
    void reset() noexcept { remaining_ = 0; }

  private:
    std::uint64_t remaining_ = 0;  // bytes of the streamed message still to come
    message_header streaming_;
};

}  // namespace sluice::protocol
