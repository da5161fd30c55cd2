#pragma once

// The stored credential of a user, in any of the three forms PostgreSQL and PgBouncer know: as found in PgBouncer's
// auth_file, in a `password=` of a connection string, or in pg_authid.rolpassword / pg_shadow.passwd (returned by an
// auth_query).
//
// Forms, classified the way PostgreSQL's get_password_type() does:
//   "md5" followed by 32 lowercase hex digits             -> md5: "md5" + hex(md5(password + user))
//   "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (base64 fields) -> scram_sha_256 (RFC 5803 format)
//   anything else                                          -> plain (the password itself)

#include "auth/crypto.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::auth {

// PostgreSQL's defaults for new SCRAM secrets (scram_iterations, SCRAM_DEFAULT_SALT_LEN).
inline constexpr int scram_default_iterations = 4096;
inline constexpr std::size_t scram_default_salt_size = 16;

// The decoded fields of a SCRAM-SHA-256 secret: what a server needs to verify a client (RFC 5802 section 3).
struct scram_verifier {
    std::vector<std::uint8_t> salt;  // never empty
    int iterations = 0;              // >= 1
    sha256_digest stored_key{};      // H(ClientKey)
    sha256_digest server_key{};      // HMAC(SaltedPassword, "Server Key")

    friend bool operator==(const scram_verifier&, const scram_verifier&) = default;
};

struct secret {
    enum class kind { plain, md5, scram_sha_256 };

    kind type = kind::plain;
    // The credential exactly as stored: the plaintext password, "md5" + 32 hex digits, or the SCRAM string.
    std::string stored;
    // The decoded SCRAM fields; meaningful only when type == kind::scram_sha_256.
    scram_verifier scram;
};

// Classifies and decodes a stored credential. A string starting with "SCRAM-SHA-256$" that does not parse (bad
// base64, keys not 32 bytes, empty salt, iterations not a positive decimal int) yields nullopt rather than being
// taken as a plaintext password: a broken secret in a config file is an operator error worth reporting.
[[nodiscard]] std::optional<secret> parse_secret(std::string_view stored);

// True when `text` has the md5 form above (used by md5_response to tell a secret from a password).
[[nodiscard]] bool is_md5_secret(std::string_view text) noexcept;

// Derives the SCRAM verifier of `password` (PBKDF2 with `iterations` rounds: about 1-2 ms at 4096).
// The password is used as raw bytes, without SASLprep: see the note in scram.hpp. Precondition: iterations >= 1.
[[nodiscard]] scram_verifier derive_scram_verifier(std::string_view password, std::span<const std::uint8_t> salt,
                                                   int iterations);

// Formats a verifier the way PostgreSQL stores it in pg_authid.rolpassword.
[[nodiscard]] std::string format_scram_secret(const scram_verifier& verifier);

// A new SCRAM secret for `password` with a random 16-byte salt, in PostgreSQL's format, e.g. for an auth_file.
// Precondition: iterations >= 1.
[[nodiscard]] std::string make_scram_secret(std::string_view password, int iterations = scram_default_iterations);

// The same with a given salt (deterministic; tests and reproducing a known secret). Precondition: salt not empty.
[[nodiscard]] std::string make_scram_secret(std::string_view password, std::span<const std::uint8_t> salt,
                                            int iterations = scram_default_iterations);

// "md5" + hex(md5(password + user)): PostgreSQL's md5 secret, which is salted with the user name.
[[nodiscard]] std::string md5_secret(std::string_view password, std::string_view user);

}  // namespace sluice::auth
