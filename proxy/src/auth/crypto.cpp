#include "auth/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sluice::auth {

namespace {

// OpenSSL only fails these one-shot calls on allocation failure or a broken provider setup; neither is something
// a caller could handle, and returning a zeroed digest would be a security bug.
[[noreturn]] void crypto_failure(const char* what) noexcept {
    std::fprintf(stderr, "sluice: fatal: OpenSSL %s failed\n", what);
    std::abort();
}

// SHA-256 fetched from the default provider once. OpenSSL 3 resolves EVP_sha256() and HMAC()'s "HMAC" by name at
// every call (a locked lookup, string compares, parameter parsing): that was most of the pooler's OpenSSL time per
// SCRAM login. A fetched EVP_MD needs no lookup; it is immutable and shared by all threads.
const EVP_MD* fetched_sha256() {
    static EVP_MD* const md = [] {
        EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
        if (fetched == nullptr)
            crypto_failure("EVP_MD_fetch(SHA2-256)");
        return fetched;
    }();
    return md;
}

// One digest context per thread, reused (EVP_DigestInit_ex resets it).
EVP_MD_CTX* thread_digest_context() {
    struct holder {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        ~holder() { EVP_MD_CTX_free(ctx); }
    };
    thread_local holder h;
    if (h.ctx == nullptr)
        crypto_failure("EVP_MD_CTX_new");
    return h.ctx;
}

void digest_two(EVP_MD_CTX* ctx, std::span<const std::uint8_t> a, std::span<const std::uint8_t> b, std::uint8_t* out) {
    unsigned int length = 0;
    if (EVP_DigestInit_ex(ctx, fetched_sha256(), nullptr) != 1 || EVP_DigestUpdate(ctx, a.data(), a.size()) != 1 ||
        EVP_DigestUpdate(ctx, b.data(), b.size()) != 1 || EVP_DigestFinal_ex(ctx, out, &length) != 1 ||
        length != sha256_size) {
        crypto_failure("EVP_Digest(SHA-256)");
    }
}

}  // namespace

std::span<const std::uint8_t> as_bytes(std::string_view text) noexcept {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

sha256_digest sha256(std::span<const std::uint8_t> data) {
    sha256_digest digest{};
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), digest.data(), &length, fetched_sha256(), nullptr) != 1 ||
        length != digest.size()) {
        crypto_failure("EVP_Digest(SHA-256)");
    }
    return digest;
}

sha256_digest hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) {
    // RFC 2104 over the fetched SHA-256: H((K ^ opad) || H((K ^ ipad) || data)), K padded to the 64-byte block.
    constexpr std::size_t block_size = 64;
    std::array<std::uint8_t, block_size> padded_key{};
    if (key.size() > block_size) {
        const auto hashed = sha256(key);
        std::memcpy(padded_key.data(), hashed.data(), hashed.size());
    } else if (!key.empty()) {
        std::memcpy(padded_key.data(), key.data(), key.size());
    }
    std::array<std::uint8_t, block_size> pad{};
    for (std::size_t i = 0; i < block_size; ++i)
        pad[i] = padded_key[i] ^ 0x36;
    EVP_MD_CTX* ctx = thread_digest_context();
    sha256_digest inner{};
    digest_two(ctx, pad, data, inner.data());
    for (std::size_t i = 0; i < block_size; ++i)
        pad[i] = padded_key[i] ^ 0x5c;
    sha256_digest digest{};
    digest_two(ctx, pad, inner, digest.data());
    OPENSSL_cleanse(padded_key.data(), padded_key.size());
    OPENSSL_cleanse(pad.data(), pad.size());
    OPENSSL_cleanse(inner.data(), inner.size());
    return digest;
}

sha256_digest pbkdf2_hmac_sha256(std::span<const std::uint8_t> password, std::span<const std::uint8_t> salt,
                                 int iterations) {
    sha256_digest derived{};
    if (PKCS5_PBKDF2_HMAC(reinterpret_cast<const char*>(password.data()), static_cast<int>(password.size()),
                          salt.data(), static_cast<int>(salt.size()), iterations, EVP_sha256(),
                          static_cast<int>(derived.size()), derived.data()) != 1) {
        crypto_failure("PKCS5_PBKDF2_HMAC");
    }
    return derived;
}

std::string md5_hex(std::span<const std::uint8_t> data) {
    std::array<std::uint8_t, 16> digest{};
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_md5(), nullptr) != 1 ||
        length != digest.size()) {
        crypto_failure("EVP_Digest(MD5)");
    }
    constexpr std::string_view hex_digits = "0123456789abcdef";
    std::string hex;
    hex.reserve(2 * digest.size());
    for (const std::uint8_t byte : digest) {
        hex += hex_digits[byte >> 4];
        hex += hex_digits[byte & 0x0F];
    }
    return hex;
}

bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace sluice::auth
