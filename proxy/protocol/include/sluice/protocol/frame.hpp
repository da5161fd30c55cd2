#pragma once
// Framing of protocol 3.0 messages: a type byte, then an Int32 length that counts itself and the body but not the
// type byte (protocol-overview.html, "Messaging Overview"). The startup family has no type byte: an Int32 length
// counting itself, then an Int32 code (protocol-message-formats.html, StartupMessage).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace sluice::protocol {

inline constexpr std::size_t header_size = 5;               // type byte + Int32 length
inline constexpr std::size_t startup_header_size = 8;       // Int32 length + Int32 code
inline constexpr std::uint32_t max_startup_length = 10000;  // PostgreSQL's MAX_STARTUP_PACKET_LENGTH

[[nodiscard]] inline std::uint32_t load_u32(const char* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}
[[nodiscard]] inline std::uint16_t load_u16(const char* p) noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return __builtin_bswap16(v);
}
inline void store_u32(char* p, std::uint32_t v) noexcept {
    v = __builtin_bswap32(v);
    std::memcpy(p, &v, 4);
}
inline void store_u16(char* p, std::uint16_t v) noexcept {
    v = __builtin_bswap16(v);
    std::memcpy(p, &v, 2);
}

// PostgreSQL's own limits on frontend messages (PQ_LARGE_MESSAGE_LIMIT, PQ_SMALL_MESSAGE_LIMIT in postgres.c):
// statements, bind parameters, function calls and COPY data may be large; everything else is small.
inline constexpr std::uint32_t large_message_limit = 0x3fffffff;
inline constexpr std::uint32_t small_message_limit = 10000;
[[nodiscard]] constexpr std::uint32_t max_frontend_length(char type) noexcept {
    switch (type) {
        case 'Q':  // Query
        case 'P':  // Parse
        case 'B':  // Bind
        case 'F':  // FunctionCall
        case 'd':  // CopyData
        case 'f':  // CopyFail
        case 'p':  // password / SASL
            return large_message_limit;
        default:
            return small_message_limit;
    }
}

struct message_header {
    char type = 0;
    std::uint32_t length = 0;  // as on the wire: includes the 4 length bytes, excludes the type byte

    [[nodiscard]] std::size_t body_size() const noexcept { return length - 4; }
    [[nodiscard]] std::size_t total_size() const noexcept { return std::size_t{length} + 1; }
};

enum class header_status {
    ok,
    need_more,   // fewer than header_size bytes available; nothing consumed
    bad_length,  // length < 4 or above the caller's limit: a protocol violation (SQLSTATE 08P01)
};

struct header_result {
    header_status status;
    message_header header;
};

// Reads the 5-byte header at the start of `bytes`. `max_length` bounds the declared length, so that a peer cannot
// make us wait for (or allocate) an absurd amount of data.
[[nodiscard]] inline header_result read_header(std::span<const char> bytes, std::uint32_t max_length) noexcept {
    if (bytes.size() < header_size) {
        return {header_status::need_more, {}};
    }
    message_header h{bytes[0], load_u32(bytes.data() + 1)};
    if (h.length < 4 || h.length > max_length) {
        return {header_status::bad_length, h};
    }
    return {header_status::ok, h};
}

// A whole message lying in a buffer. `body` is a view into the caller's buffer: valid until the buffer is compacted,
// refilled or released.
struct message_view {
    char type = 0;
    std::span<const char> body;
};

}  // namespace sluice::protocol
