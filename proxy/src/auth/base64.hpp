#pragma once

// Base64 (RFC 4648 section 4, standard alphabet, with padding) as SCRAM uses it for salts, nonces, proofs and
// signatures (RFC 5802 section 7) and PostgreSQL stores it in SCRAM secrets.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::auth {

// Encodes `bytes` with '=' padding; the result's length is 4 * ceil(size / 3).
[[nodiscard]] std::string base64_encode(std::span<const std::uint8_t> bytes);

// Strict decoding: the length must be a multiple of 4, only the standard alphabet is accepted, '=' may appear only as
// the final one or two characters, and the unused bits of the last group must be zero (so every byte string has
// exactly one accepted encoding). No whitespace is skipped. Returns nullopt on any violation. "" decodes to {}.
[[nodiscard]] std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);

}  // namespace sluice::auth
