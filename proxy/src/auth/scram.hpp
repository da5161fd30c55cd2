#pragma once

// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it (PostgreSQL docs, "SASL Authentication" and
// "SCRAM-SHA-256 Authentication" in the Frontend/Backend Protocol chapter). Pure state machines: they take the
// SASL payloads (the data inside SASLInitialResponse / SASLResponse / AuthenticationSASLContinue /
// AuthenticationSASLFinal) and return the next payload; framing, the mechanism list and the I/O belong to the caller.
//
// PostgreSQL's profile of SCRAM, honoured here:
// - The user name inside the SCRAM messages is ignored; the user is the one of the StartupMessage. Clients send
//   "n=" (empty) or any name.
// - No authorization identity ("a=") and no mandatory extensions ("m=").
// - Channel binding: only SCRAM-SHA-256 is offered (no TLS, so no SCRAM-SHA-256-PLUS); a client asking for it with
//   gs2 flag "p" is refused, flag "y" (client supports it but believes the server does not) is accepted. When TLS and
//   SCRAM-SHA-256-PLUS arrive, "y" must be refused whenever PLUS was offered (a downgrade, RFC 5802 section 6).
//
// SASLprep (RFC 4013): PostgreSQL normalizes passwords with SASLprep when they are valid UTF-8 and SASLprep
// succeeds, and otherwise uses the raw bytes. Sluice always uses the raw bytes. That is identical for pure-ASCII
// passwords and for UTF-8 passwords already in NFKC form without characters SASLprep maps (non-ASCII spaces, soft
// hyphen, zero-width characters, ...); other non-ASCII passwords would not match a secret computed by PostgreSQL.

#include "auth/crypto.hpp"
#include "auth/secret.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::auth {

// The mechanism name in AuthenticationSASL and SASLInitialResponse.
inline constexpr std::string_view scram_sha_256_mechanism = "SCRAM-SHA-256";

// What a client needs to log in with SCRAM: with these keys, salt and iteration count are not needed.
struct scram_client_keys {
    sha256_digest client_key{};  // HMAC(SaltedPassword, "Client Key")
    sha256_digest server_key{};  // HMAC(SaltedPassword, "Server Key"), to check the server's signature

    friend bool operator==(const scram_client_keys&, const scram_client_keys&) = default;
};

// Keys derived for one (salt, iterations): a cache entry that saves PBKDF2 on the next login to the same server.
struct scram_derived_keys {
    std::vector<std::uint8_t> salt;
    int iterations = 0;
    scram_client_keys keys;
};

// SaltedPassword = Hi(password, salt, iterations), i.e. PBKDF2-HMAC-SHA-256 (~1-2 ms at 4096 iterations).
// The password is used as raw bytes (see SASLprep above). Precondition: iterations >= 1.
[[nodiscard]] sha256_digest derive_salted_password(std::string_view password, std::span<const std::uint8_t> salt,
                                                   int iterations);

[[nodiscard]] scram_client_keys keys_from_salted_password(const sha256_digest& salted_password);

enum class scram_error {
    none,
    malformed,                  // the peer broke the SCRAM grammar or PostgreSQL's profile, or a call out of sequence
    invalid_proof,              // server side: well-formed, but the proof does not match the secret (wrong password)
    nonce_mismatch,             // client side: the server nonce does not extend the client nonce
    invalid_iteration_count,    // client side: the server sent i= below 1 (or beyond int)
    server_signature_mismatch,  // client side: the server does not know the secret (or is an impostor)
    server_error,               // client side: the server sent "e=<server-error-value>"
};

[[nodiscard]] std::string_view to_string(scram_error error) noexcept;

struct scram_result {
    scram_error error = scram_error::none;
    // On success: the next SASL payload to send (empty after on_server_final).
    // For scram_error::server_error: the server-error-value the server sent (e.g. "invalid-proof").
    std::string message;
    // On failure: a static human-readable cause for logs; never contains secrets or peer bytes.
    std::string_view reason;

    [[nodiscard]] bool ok() const noexcept { return error == scram_error::none; }
};

// Sluice as the SCRAM server, verifying a client against the user's stored secret.
//
// Flow: (send AuthenticationSASL "SCRAM-SHA-256") -> on_client_first(SASLInitialResponse data) -> send its message
// in AuthenticationSASLContinue -> on_client_final(SASLResponse data) -> send its message in AuthenticationSASLFinal,
// then AuthenticationOk. Any error is final: every later call fails with malformed.
// invalid_proof maps to SQLSTATE 28P01 ("password authentication failed for user"), malformed to 08P01.
// The fsm copies what it needs; the string_views passed in need only live for the call. Not thread-safe.
class scram_server_fsm {
  public:
    // `stored` may be:
    // - scram_sha_256: its salt, iterations and keys are used as they are;
    // - plain: the fsm derives a verifier with a fresh random salt and 4096 iterations, i.e. PBKDF2 in the
    //   constructor (~1-2 ms of CPU per login). Callers should pre-derive once with make_scram_secret() and cache the
    //   resulting scram secret for plaintext passwords (auth_file, auth_query results) instead;
    // - md5, or an empty plain password: cannot verify SCRAM. Like PostgreSQL, the fsm runs a doomed exchange that
    //   looks normal on the wire and ends with invalid_proof.
    // `user` is the StartupMessage user; it only seeds the doomed exchange's salt.
    scram_server_fsm(const secret& stored, std::string_view user);

    // For tests: fixes the server part of the nonce (appended to the client's nonce) instead of 18 random bytes.
    scram_server_fsm(const secret& stored, std::string_view user, std::string server_nonce);

    // A doomed exchange for a user Sluice does not know, so that a client cannot tell unknown users from wrong
    // passwords (PostgreSQL's "mock authentication"): the salt is derived from the user name and a per-process
    // random key, so it is stable across attempts; the exchange always ends with invalid_proof.
    [[nodiscard]] static scram_server_fsm for_unknown_user(std::string_view user);

    // Accepts client-first-message = gs2-header client-first-message-bare; returns server-first-message
    // "r=<client nonce><server nonce>,s=<salt>,i=<iterations>".
    [[nodiscard]] scram_result on_client_first(std::string_view client_first_message);

    // Accepts client-final-message "c=<cbind>,r=<nonce>[,ext...],p=<proof>"; returns server-final-message "v=...".
    [[nodiscard]] scram_result on_client_final(std::string_view client_final_message);

    [[nodiscard]] bool authenticated() const noexcept { return state_ == state::authenticated; }

    // The client's keys, recovered from its proof (ClientKey = ClientProof XOR ClientSignature) and the secret: enough
    // for scram_client_fsm to log into a PostgreSQL server holding the same SCRAM secret (same salt and iterations)
    // without the plaintext password, as PgBouncer does. Precondition: authenticated().
    [[nodiscard]] const sha256_digest& client_key() const noexcept;
    [[nodiscard]] const sha256_digest& server_key() const noexcept;
    [[nodiscard]] scram_client_keys client_keys() const noexcept;

  private:
    enum class state { expecting_client_first, expecting_client_final, authenticated, failed };

    scram_server_fsm() = default;
    scram_result fail(scram_error error, std::string_view reason);
    void init_doomed(std::string_view user);

    state state_ = state::expecting_client_first;
    scram_verifier verifier_;
    bool doomed_ = false;  // the exchange must fail whatever the client sends
    std::string server_nonce_;
    std::string gs2_header_;            // "n,," or "y,,"
    std::string client_first_bare_;     // for AuthMessage
    std::string server_first_message_;  // for AuthMessage
    std::string combined_nonce_;
    sha256_digest client_key_{};
};

// Sluice as the SCRAM client, logging into a PostgreSQL server.
//
// Flow: send SASLInitialResponse("SCRAM-SHA-256", client_first_message()) -> on_server_first(data of
// AuthenticationSASLContinue) -> send its message in SASLResponse -> on_server_final(data of AuthenticationSASLFinal)
// -> expect AuthenticationOk. Any error is final. Not thread-safe.
//
// PBKDF2 avoidance: with a password, the fsm derives keys for the salt and iteration count the server sends. After
// on_server_first, derived_keys() returns them; pass them to set_cached_keys() of the next fsm for the same server
// and user, and if the server still sends that salt and iteration count the derivation is skipped.
class scram_client_fsm {
  public:
    explicit scram_client_fsm(std::string password);
    // With the keys recovered by scram_server_fsm (or from a cache): the server's salt and iterations are not used.
    // The server accepts the proof only if its secret has the same keys.
    explicit scram_client_fsm(const scram_client_keys& keys);

    // For tests: a fixed client nonce (printable ASCII without ',') instead of 18 random bytes in base64.
    scram_client_fsm(std::string password, std::string client_nonce);
    scram_client_fsm(const scram_client_keys& keys, std::string client_nonce);

    // Offers keys derived earlier; used only if the server sends exactly this salt and iteration count. Call before
    // on_server_first. No effect on an fsm built from keys.
    void set_cached_keys(scram_derived_keys cached);

    // "n,,n=,r=<client nonce>": no channel binding, empty user name (the server uses the StartupMessage user).
    [[nodiscard]] const std::string& client_first_message() const noexcept { return client_first_message_; }

    // Accepts server-first-message "r=<nonce>,s=<salt>,i=<iterations>[,ext...]"; returns client-final-message
    // "c=biws,r=<nonce>,p=<proof>".
    [[nodiscard]] scram_result on_server_first(std::string_view server_first_message);

    // Accepts server-final-message "v=<signature>" (ok when it matches) or "e=<error>" (server_error).
    [[nodiscard]] scram_result on_server_final(std::string_view server_final_message);

    [[nodiscard]] bool authenticated() const noexcept { return state_ == state::authenticated; }

    // Password-built fsm, after a successful on_server_first: the salt, iterations and keys used for the proof
    // (freshly derived or taken from set_cached_keys), for caching. nullopt otherwise.
    [[nodiscard]] const std::optional<scram_derived_keys>& derived_keys() const noexcept { return derived_keys_; }

  private:
    enum class state { expecting_server_first, expecting_server_final, authenticated, failed };

    scram_result fail(scram_error error, std::string_view reason);

    state state_ = state::expecting_server_first;
    std::string password_;                   // used when keys_ is not given up front
    std::optional<scram_client_keys> keys_;  // given up front: no derivation
    std::optional<scram_derived_keys> cached_;
    std::optional<scram_derived_keys> derived_keys_;
    std::string client_nonce_;
    std::string client_first_message_;
    std::string client_first_bare_;
    sha256_digest expected_server_signature_{};
};

}  // namespace sluice::auth
