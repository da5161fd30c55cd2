#include "auth/md5.hpp"

namespace sluice::auth {

std::string md5_response(std::string_view md5_secret_or_plain_password, std::string_view user, md5_salt salt) {
    const std::string secret_text = is_md5_secret(md5_secret_or_plain_password)
                                        ? std::string(md5_secret_or_plain_password)
                                        : md5_secret(md5_secret_or_plain_password, user);
    std::string input = secret_text.substr(3);  // the 32 hex digits after "md5"
    input.append(reinterpret_cast<const char*>(salt.data()), salt.size());
    return "md5" + md5_hex(as_bytes(input));
}

bool md5_verify(const secret& stored, std::string_view user, md5_salt salt, std::string_view client_response) {
    if (stored.type == secret::kind::scram_sha_256 || stored.stored.empty()) {
        return false;
    }
    const std::string expected = md5_response(stored.stored, user, salt);
    // The expected response has a fixed public length (35), so comparing lengths first leaks nothing secret.
    return constant_time_equal(as_bytes(expected), as_bytes(client_response));
}

bool plain_verify(const secret& stored, std::string_view user, std::string_view client_password) {
    if (client_password.empty()) {
        return false;
    }
    switch (stored.type) {
        case secret::kind::plain:
            if (stored.stored.empty()) {
                return false;
            }
            // Hash both sides first so that neither the comparison time nor an early length mismatch reveals the
            // stored password's length.
            return constant_time_equal(sha256(as_bytes(stored.stored)), sha256(as_bytes(client_password)));
        case secret::kind::md5:
            return constant_time_equal(as_bytes(md5_secret(client_password, user)), as_bytes(stored.stored));
        case secret::kind::scram_sha_256: {
            const scram_verifier derived =
                derive_scram_verifier(client_password, stored.scram.salt, stored.scram.iterations);
            return constant_time_equal(derived.stored_key, stored.scram.stored_key);
        }
    }
    return false;
}

}  // namespace sluice::auth
