#pragma once

// Cryptographically secure randomness for nonces, salts and cancel keys (BackendKeyData). Backed by OpenSSL's
// RAND_bytes, which is thread-safe and reseeds itself (small requests are served from a per-thread block of its
// output, see random.cpp).

#include <cstdint>
#include <span>

namespace sluice::auth {

// Fills `out` with CSPRNG bytes. A CSPRNG failure aborts the process: continuing with predictable nonces or cancel
// keys would silently break authentication, and there is no meaningful recovery.
void fill_random(std::span<std::uint8_t> out) noexcept;

// A uniformly distributed 32-bit value from the same CSPRNG (e.g. a BackendKeyData secret key).
[[nodiscard]] std::uint32_t random_u32() noexcept;

}  // namespace sluice::auth
