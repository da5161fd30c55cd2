#include "auth/random.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sluice::auth {

namespace {

void fill_from_openssl(std::span<std::uint8_t> out) noexcept {
    while (!out.empty()) {
        const std::size_t chunk = std::min<std::size_t>(out.size(), INT_MAX);
        if (RAND_bytes(out.data(), static_cast<int>(chunk)) != 1) {
            std::fputs("sluice: fatal: the OpenSSL CSPRNG (RAND_bytes) failed\n", stderr);
            std::abort();
        }
        out = out.subspan(chunk);
    }
}

// Small requests (a login's SCRAM nonce and cancel key: 26 bytes) are served from a per-thread block filled by one
// RAND_bytes call: each call costs OpenSSL's fork check (getpid) and DRBG locking, three times per login otherwise.
// Served bytes are wiped from the block. Sluice never forks after threads start, so no block is ever shared.
struct random_block {
    static constexpr std::size_t size = 256;
    std::array<std::uint8_t, size> bytes{};
    std::size_t used = size;  // bytes[used, size) are unserved
};

}  // namespace

void fill_random(std::span<std::uint8_t> out) noexcept {
    thread_local random_block block;
    if (out.size() > random_block::size / 4) {
        fill_from_openssl(out);
        return;
    }
    if (random_block::size - block.used < out.size()) {
        fill_from_openssl(block.bytes);
        block.used = 0;
    }
    std::memcpy(out.data(), block.bytes.data() + block.used, out.size());
    OPENSSL_cleanse(block.bytes.data() + block.used, out.size());
    block.used += out.size();
}

std::uint32_t random_u32() noexcept {
    std::array<std::uint8_t, 4> bytes{};
    fill_random(bytes);
    return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) | (std::uint32_t{bytes[2]} << 8) |
           bytes[3];
}

}  // namespace sluice::auth
