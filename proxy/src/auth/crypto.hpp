#pragma once

// Thin wrappers over the OpenSSL primitives the authentication code needs. Internal to auth/: other modules use the
// higher-level functions in secret.hpp, scram.hpp and md5.hpp.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sluice::auth {

inline constexpr std::size_t sha256_size = 32;
using sha256_digest = std::array<std::uint8_t, sha256_size>;

[[nodiscard]] std::span<const std::uint8_t> as_bytes(std::string_view text) noexcept;

[[nodiscard]] sha256_digest sha256(std::span<const std::uint8_t> data);
[[nodiscard]] sha256_digest hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data);

// PBKDF2-HMAC-SHA-256 (RFC 8018) producing one 32-byte block, i.e. SCRAM's Hi() (RFC 5802 section 2.2).
// Precondition: iterations >= 1.
[[nodiscard]] sha256_digest pbkdf2_hmac_sha256(std::span<const std::uint8_t> password,
                                               std::span<const std::uint8_t> salt, int iterations);

// 32 lowercase hex digits of the MD5 digest of `data`.
[[nodiscard]] std::string md5_hex(std::span<const std::uint8_t> data);

// Compares without a data-dependent early exit (CRYPTO_memcmp). Different lengths compare unequal immediately: only
// use it where the length is public (fixed-size digests, or values hashed to a fixed size first).
[[nodiscard]] bool constant_time_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept;

}  // namespace sluice::auth
