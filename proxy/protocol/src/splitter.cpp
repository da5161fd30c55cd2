#include "sluice/protocol/splitter.hpp"

#include <algorithm>

namespace sluice::protocol {

piece message_splitter::next_piece(std::span<const char> available, const split_policy& policy) noexcept {
    if (remaining_ != 0) {
        if (available.empty()) {
            return {piece_kind::need_more, streaming_, 0, false};
        }
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, available.size()));
        remaining_ -= n;
        return {piece_kind::stream_body, streaming_, n, remaining_ == 0};
    }
    const auto h = read_header(available, policy.max_length);
    switch (h.status) {
        case header_status::need_more:
            return {piece_kind::need_more, {}, 0, false};
        case header_status::bad_length:
            return {piece_kind::bad_length, h.header, 0, false};
        case header_status::ok:
            break;
    }
    const std::size_t total = h.header.total_size();
    if (total <= available.size()) {
        return {piece_kind::whole, h.header, total, true};
    }
    if (policy.inspects(h.header.type) || total <= policy.buffer_capacity) {
        return {piece_kind::need_more, h.header, 0, false};
    }
    // Too large to hold: forward what we have and stream the rest.
    streaming_ = h.header;
    remaining_ = total - available.size();
    return {piece_kind::stream_head, h.header, available.size(), false};
}

}  // namespace sluice::protocol
