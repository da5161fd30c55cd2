#pragma once

// MD5 password authentication (PostgreSQL protocol, "AuthenticationMD5Password") and verification of passwords sent
// in clear (auth_type=plain, or AuthenticationCleartextPassword).
//
// The MD5 challenge response is "md5" + hex(md5(hex(md5(password + user)) + salt)), where salt is the 4 random
// bytes of the AuthenticationMD5Password message. Knowing the md5 secret is therefore enough to answer it, which is
// how a pooler logs into a server holding only the md5 secret.

#include "auth/secret.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::auth {

using md5_salt = std::array<std::uint8_t, 4>;

// The PasswordMessage answering AuthenticationMD5Password(salt). `md5_secret_or_plain_password` is used as the
// secret when is_md5_secret() holds for it, and otherwise as the plaintext password (PostgreSQL and libpq apply the
// same rule, so a plaintext password that looks exactly like an md5 secret is ambiguous in both).
[[nodiscard]] std::string md5_response(std::string_view md5_secret_or_plain_password, std::string_view user,
                                       md5_salt salt);

// Verifies a client's PasswordMessage answering the AuthenticationMD5Password(salt) Sluice sent.
// A scram_sha_256 secret cannot verify an md5 response (the md5 secret cannot be derived from it): returns false,
// and callers should offer SCRAM instead, as PostgreSQL does for auth method md5 with a SCRAM secret.
// Returns false for an empty stored password. The comparison is constant-time.
[[nodiscard]] bool md5_verify(const secret& stored, std::string_view user, md5_salt salt,
                              std::string_view client_response);

// Verifies a password the client sent in clear (auth_type=plain, or a cleartext PasswordMessage):
//   plain: constant-time comparison with the stored password;
//   md5:   compares md5_secret(client_password, user) with the stored secret;
//   scram: derives the verifier with the secret's salt and iterations (PBKDF2, ~ms) and compares StoredKey.
// An empty client password, or an empty stored plain password, never verifies.
[[nodiscard]] bool plain_verify(const secret& stored, std::string_view user, std::string_view client_password);

}  // namespace sluice::auth
