#include "auth/random.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdio>
#include <cstdlib>

namespace sluice::auth {

void fill_random(std::span<std::uint8_t> out) noexcept {
    while (!out.empty()) {
        const std::size_t chunk = std::min<std::size_t>(out.size(), INT_MAX);
        if (RAND_bytes(out.data(), static_cast<int>(chunk)) != 1) {
            std::fputs("sluice: fatal: the OpenSSL CSPRNG (RAND_bytes) failed\n", stderr);
            std::abort();
        }
        out = out.subspan(chunk);
    }
}

std::uint32_t random_u32() noexcept {
    std::array<std::uint8_t, 4> bytes{};
    fill_random(bytes);
    return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) | (std::uint32_t{bytes[2]} << 8) |
           bytes[3];
}

}  // namespace sluice::auth
