#include "auth/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <cstdlib>

namespace sluice::auth {

namespace {

// OpenSSL only fails these one-shot calls on allocation failure or a broken provider setup; neither is something
// a caller could handle, and returning a zeroed digest would be a security bug.
[[noreturn]] void crypto_failure(const char* what) noexcept {
    std::fprintf(stderr, "sluice: fatal: OpenSSL %s failed\n", what);
    std::abort();
}

}  // namespace

std::span<const std::uint8_t> as_bytes(std::string_view text) noexcept {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

sha256_digest sha256(std::span<const std::uint8_t> data) {
    sha256_digest digest{};
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1 ||
        length != digest.size()) {
        crypto_failure("EVP_Digest(SHA-256)");
    }
    return digest;
}

sha256_digest hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) {
    sha256_digest digest{};
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), digest.data(),
             &length) == nullptr ||
        length != digest.size()) {
        crypto_failure("HMAC(SHA-256)");
    }
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
