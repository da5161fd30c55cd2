#include "auth/secret.hpp"

#include "auth/base64.hpp"
#include "auth/random.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace sluice::auth {

namespace {

constexpr std::string_view scram_prefix = "SCRAM-SHA-256$";

// Parses "<iterations>:<salt>$<StoredKey>:<ServerKey>" (the part after the prefix).
std::optional<scram_verifier> parse_scram_fields(std::string_view text) {
    const std::size_t colon1 = text.find(':');
    const std::size_t dollar = text.find('$');
    if (colon1 == std::string_view::npos || dollar == std::string_view::npos || dollar < colon1) {
        return std::nullopt;
    }
    const std::size_t colon2 = text.find(':', dollar + 1);
    if (colon2 == std::string_view::npos) {
        return std::nullopt;
    }
    const std::string_view iterations_text = text.substr(0, colon1);
    const std::string_view salt_text = text.substr(colon1 + 1, dollar - colon1 - 1);
    const std::string_view stored_key_text = text.substr(dollar + 1, colon2 - dollar - 1);
    const std::string_view server_key_text = text.substr(colon2 + 1);

    scram_verifier verifier;
    const char* const first = iterations_text.data();
    const char* const last = first + iterations_text.size();
    // from_chars also accepts a leading '-', which the > 0 check then rejects.
    const auto [end, ec] = std::from_chars(first, last, verifier.iterations);
    if (iterations_text.empty() || ec != std::errc{} || end != last || verifier.iterations < 1) {
        return std::nullopt;
    }

    auto salt = base64_decode(salt_text);
    auto stored_key = base64_decode(stored_key_text);
    auto server_key = base64_decode(server_key_text);
    if (!salt || salt->empty() || !stored_key || stored_key->size() != sha256_size || !server_key ||
        server_key->size() != sha256_size) {
        return std::nullopt;
    }
    verifier.salt = std::move(*salt);
    std::copy(stored_key->begin(), stored_key->end(), verifier.stored_key.begin());
    std::copy(server_key->begin(), server_key->end(), verifier.server_key.begin());
    return verifier;
}

}  // namespace

bool is_md5_secret(std::string_view text) noexcept {
    return text.size() == 35 && text.starts_with("md5") && std::all_of(text.begin() + 3, text.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

std::optional<secret> parse_secret(std::string_view stored) {
    secret result;
    result.stored = std::string(stored);
    if (stored.starts_with(scram_prefix)) {
        auto verifier = parse_scram_fields(stored.substr(scram_prefix.size()));
        if (!verifier) {
            return std::nullopt;
        }
        result.type = secret::kind::scram_sha_256;
        result.scram = std::move(*verifier);
    } else if (is_md5_secret(stored)) {
        result.type = secret::kind::md5;
    } else {
        result.type = secret::kind::plain;
    }
    return result;
}

scram_verifier derive_scram_verifier(std::string_view password, std::span<const std::uint8_t> salt, int iterations) {
    const sha256_digest salted_password = pbkdf2_hmac_sha256(as_bytes(password), salt, iterations);
    scram_verifier verifier;
    verifier.salt.assign(salt.begin(), salt.end());
    verifier.iterations = iterations;
    verifier.stored_key = sha256(hmac_sha256(salted_password, as_bytes("Client Key")));
    verifier.server_key = hmac_sha256(salted_password, as_bytes("Server Key"));
    return verifier;
}

std::string format_scram_secret(const scram_verifier& verifier) {
    std::string text(scram_prefix);
    text += std::to_string(verifier.iterations);
    text += ':';
    text += base64_encode(verifier.salt);
    text += '$';
    text += base64_encode(verifier.stored_key);
    text += ':';
    text += base64_encode(verifier.server_key);
    return text;
}

std::string make_scram_secret(std::string_view password, int iterations) {
    std::array<std::uint8_t, scram_default_salt_size> salt{};
    fill_random(salt);
    return make_scram_secret(password, salt, iterations);
}

std::string make_scram_secret(std::string_view password, std::span<const std::uint8_t> salt, int iterations) {
    return format_scram_secret(derive_scram_verifier(password, salt, iterations));
}

std::string md5_secret(std::string_view password, std::string_view user) {
    std::string input;
    input.reserve(password.size() + user.size());
    input.append(password).append(user);
    return "md5" + md5_hex(as_bytes(input));
}

}  // namespace sluice::auth
