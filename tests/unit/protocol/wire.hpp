#pragma once
// Helpers that spell expected wire bytes the way protocol-message-formats.html does: Byte1, Int16, Int32, String.
// They are written independently of sluice::protocol's writer so that a test compares two separate encodings.

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace sluice::protocol::test {

// Int32 in network byte order.
inline std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
// Int16 in network byte order.
inline std::string be16(std::uint16_t v) {
    return {static_cast<char>(v >> 8), static_cast<char>(v)};
}
// A String: the text and its NUL terminator.
inline std::string cstr(std::string_view s) {
    std::string r(s);
    r.push_back('\0');
    return r;
}
inline std::string byte1(char c) {
    return std::string(1, c);
}

inline std::string cat(std::initializer_list<std::string_view> parts) {
    std::string r;
    for (auto p : parts)
        r.append(p);
    return r;
}

// "5a 00000005 49" -> bytes; spaces are ignored so captures can be grouped by field.
inline std::string from_hex(std::string_view hex) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
            return c - 'A' + 10;
        return -1;
    };
    std::string r;
    int hi = -1;
    for (char c : hex) {
        const int n = nibble(c);
        if (n < 0)
            continue;
        if (hi < 0) {
            hi = n;
        } else {
            r.push_back(static_cast<char>(hi << 4 | n));
            hi = -1;
        }
    }
    return r;
}

// Lower-case hex with no separators: comparing hex strings makes a failing byte comparison readable.
inline std::string to_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string r;
    r.reserve(bytes.size() * 2);
    for (char c : bytes) {
        const auto u = static_cast<unsigned char>(c);
        r.push_back(digits[u >> 4]);
        r.push_back(digits[u & 0xf]);
    }
    return r;
}

inline std::span<const char> as_span(std::string_view s) {
    return {s.data(), s.size()};
}
inline std::string_view as_view(std::span<const char> s) {
    return {s.data(), s.size()};
}

}  // namespace sluice::protocol::test
