#include "auth/scram.hpp"

#include "auth/base64.hpp"
#include "auth/random.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <climits>

namespace sluice::auth {

namespace {

// PostgreSQL's SCRAM_RAW_NONCE_LEN: 18 random bytes, 24 characters of base64.
constexpr std::size_t raw_nonce_size = 18;

std::string random_nonce() {
    std::array<std::uint8_t, raw_nonce_size> raw{};
    fill_random(raw);
    return base64_encode(raw);
}

// RFC 5802 section 7: nonce = "r=" c-nonce [s-nonce], printable = %x21-2B / %x2D-7E (no ',').
bool is_valid_nonce(std::string_view nonce) noexcept {
    return !nonce.empty() &&
           std::all_of(nonce.begin(), nonce.end(), [](char c) { return c >= 0x21 && c <= 0x7E && c != ','; });
}

// One "<letter>=<value>" attribute of a SCRAM message.
struct attribute {
    char name = 0;
    std::string_view value;
};

// Reads the attribute at the start of `rest` (up to the next ',' or the end) and advances `rest` past it and its
// comma. `had_more` tells whether a comma followed: then another attribute is due, so a trailing comma ("a=1,")
// fails on the next read. Returns nullopt when `rest` does not start with ALPHA "=". Values view `rest`'s buffer.
std::optional<attribute> read_attribute(std::string_view& rest, bool& had_more) {
    if (rest.size() < 2 || rest[1] != '=' ||
        !((rest[0] >= 'a' && rest[0] <= 'z') || (rest[0] >= 'A' && rest[0] <= 'Z'))) {
        return std::nullopt;
    }
    const std::size_t comma = rest.find(',');
    attribute attr{rest[0], rest.substr(2, comma == std::string_view::npos ? std::string_view::npos : comma - 2)};
    had_more = comma != std::string_view::npos;
    rest = had_more ? rest.substr(comma + 1) : std::string_view{};
    return attr;
}

// Sequential reader over the comma-separated attributes of one message.
class attribute_reader {
  public:
    explicit attribute_reader(std::string_view message) : rest_(message), had_more_(!message.empty()) {}

    // The next attribute if it is named `name`; nullopt (without consuming) otherwise.
    std::optional<std::string_view> expect(char name) {
        std::string_view copy = rest_;
        bool more = false;
        if (!had_more_) {
            return std::nullopt;
        }
        auto attr = read_attribute(copy, more);
        if (!attr || attr->name != name) {
            return std::nullopt;
        }
        rest_ = copy;
        had_more_ = more;
        return attr->value;
    }

    // The next attribute, whatever its name.
    std::optional<attribute> next() {
        if (!had_more_) {
            return std::nullopt;
        }
        return read_attribute(rest_, had_more_);
    }

    [[nodiscard]] bool at_end() const noexcept { return !had_more_; }
    // The unread part (a suffix of the message), so callers can compute offsets into the message.
    [[nodiscard]] std::string_view rest() const noexcept { return rest_; }

  private:
    std::string_view rest_;
    bool had_more_;  // another attribute is due (start of message, or a ',' was consumed)
};

bool has_nul(std::string_view message) noexcept {
    return message.find('\0') != std::string_view::npos;
}

sha256_digest xor_digests(const sha256_digest& a, const sha256_digest& b) noexcept {
    sha256_digest out{};
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<std::uint8_t>(a[i] ^ b[i]);
    }
    return out;
}

// A per-process random key for doomed exchanges (PostgreSQL's mock_auth_nonce): salts of unknown users are stable
// within a process, unpredictable, and unrelated to any real secret.
const sha256_digest& doomed_exchange_key() {
    static const sha256_digest key = [] {
        sha256_digest k{};
        fill_random(k);
        return k;
    }();
    return key;
}

}  // namespace

sha256_digest derive_salted_password(std::string_view password, std::span<const std::uint8_t> salt, int iterations) {
    assert(iterations >= 1);
    return pbkdf2_hmac_sha256(as_bytes(password), salt, iterations);
}

scram_client_keys keys_from_salted_password(const sha256_digest& salted_password) {
    return {hmac_sha256(salted_password, as_bytes("Client Key")), hmac_sha256(salted_password, as_bytes("Server Key"))};
}

std::string_view to_string(scram_error error) noexcept {
    switch (error) {
        case scram_error::none:
            return "none";
        case scram_error::malformed:
            return "malformed";
        case scram_error::invalid_proof:
            return "invalid_proof";
        case scram_error::nonce_mismatch:
            return "nonce_mismatch";
        case scram_error::invalid_iteration_count:
            return "invalid_iteration_count";
        case scram_error::server_signature_mismatch:
            return "server_signature_mismatch";
        case scram_error::server_error:
            return "server_error";
    }
    return "unknown";
}

// ---------------------------------------------------------------------------------------------------------------
// scram_server_fsm

scram_server_fsm::scram_server_fsm(const secret& stored, std::string_view user)
    : scram_server_fsm(stored, user, random_nonce()) {}

scram_server_fsm::scram_server_fsm(const secret& stored, std::string_view user, std::string server_nonce)
    : server_nonce_(std::move(server_nonce)) {
    assert(is_valid_nonce(server_nonce_));
    switch (stored.type) {
        case secret::kind::scram_sha_256:
            verifier_ = stored.scram;
            break;
        case secret::kind::plain:
            if (stored.stored.empty()) {
                init_doomed(user);
            } else {
                std::array<std::uint8_t, scram_default_salt_size> salt{};
                fill_random(salt);
                verifier_ = derive_scram_verifier(stored.stored, salt, scram_default_iterations);
            }
            break;
        case secret::kind::md5:
            init_doomed(user);
            break;
    }
}

scram_server_fsm scram_server_fsm::for_unknown_user(std::string_view user) {
    scram_server_fsm fsm;
    fsm.server_nonce_ = random_nonce();
    fsm.init_doomed(user);
    return fsm;
}

void scram_server_fsm::init_doomed(std::string_view user) {
    doomed_ = true;
    std::string input = "salt:";
    input.append(user);
    const sha256_digest salt_source = hmac_sha256(doomed_exchange_key(), as_bytes(input));
    verifier_.salt.assign(salt_source.begin(), salt_source.begin() + scram_default_salt_size);
    verifier_.iterations = scram_default_iterations;
    fill_random(verifier_.stored_key);
    fill_random(verifier_.server_key);
}

scram_result scram_server_fsm::fail(scram_error error, std::string_view reason) {
    state_ = state::failed;
    return {error, {}, reason};
}

scram_result scram_server_fsm::on_client_first(std::string_view message) {
    if (state_ != state::expecting_client_first) {
        return fail(scram_error::malformed, "SCRAM client-first-message out of sequence");
    }
    if (has_nul(message)) {
        return fail(scram_error::malformed, "SCRAM message contains a NUL byte");
    }
    // gs2-header = gs2-cbind-flag "," [authzid] ","
    if (message.empty()) {
        return fail(scram_error::malformed, "empty SCRAM client-first-message");
    }
    switch (message[0]) {
        case 'n':
        case 'y':
            break;
        case 'p':
            return fail(scram_error::malformed,
                        "client requested SCRAM channel binding, but only SCRAM-SHA-256 (without channel binding) is "
                        "offered");
        default:
            return fail(scram_error::malformed, "malformed SCRAM gs2-cbind-flag");
    }
    if (message.size() < 2 || message[1] != ',') {
        return fail(scram_error::malformed, "malformed SCRAM gs2-header");
    }
    if (message.size() < 3 || message[2] != ',') {
        if (message.substr(2).starts_with("a=")) {
            return fail(scram_error::malformed, "SCRAM authorization identity is not supported");
        }
        return fail(scram_error::malformed, "malformed SCRAM gs2-header");
    }
    const std::string_view bare = message.substr(3);

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    attribute_reader reader(bare);
    if (reader.expect('m')) {
        return fail(scram_error::malformed, "SCRAM mandatory extensions are not supported");
    }
    if (!reader.expect('n')) {  // the name itself is ignored: the StartupMessage user counts
        return fail(scram_error::malformed, "SCRAM client-first-message lacks the user name attribute");
    }
    const auto client_nonce = reader.expect('r');
    if (!client_nonce) {
        return fail(scram_error::malformed, "SCRAM client-first-message lacks the nonce attribute");
    }
    if (!is_valid_nonce(*client_nonce)) {
        return fail(scram_error::malformed, "SCRAM client nonce is empty or not printable ASCII");
    }
    while (!reader.at_end()) {  // optional extensions, ignored
        if (!reader.next()) {
            return fail(scram_error::malformed, "malformed attribute in SCRAM client-first-message");
        }
    }

    gs2_header_ = std::string(message.substr(0, 3));
    client_first_bare_ = std::string(bare);
    combined_nonce_ = std::string(*client_nonce) + server_nonce_;
    server_first_message_ =
        "r=" + combined_nonce_ + ",s=" + base64_encode(verifier_.salt) + ",i=" + std::to_string(verifier_.iterations);
    state_ = state::expecting_client_final;
    return {scram_error::none, server_first_message_, {}};
}

scram_result scram_server_fsm::on_client_final(std::string_view message) {
    if (state_ != state::expecting_client_final) {
        return fail(scram_error::malformed, "SCRAM client-final-message out of sequence");
    }
    if (has_nul(message)) {
        return fail(scram_error::malformed, "SCRAM message contains a NUL byte");
    }
    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    attribute_reader reader(message);
    const auto channel_binding = reader.expect('c');
    if (!channel_binding) {
        return fail(scram_error::malformed, "SCRAM client-final-message lacks the channel binding attribute");
    }
    // Without channel binding, c= carries the base64 of the gs2-header of the client-first-message, unchanged.
    const auto cbind_input = base64_decode(*channel_binding);
    if (!cbind_input || !std::equal(cbind_input->begin(), cbind_input->end(), gs2_header_.begin(), gs2_header_.end(),
                                    [](std::uint8_t a, char b) { return a == static_cast<std::uint8_t>(b); })) {
        return fail(scram_error::malformed, "SCRAM channel binding does not match the gs2-header");
    }
    const auto nonce = reader.expect('r');
    if (!nonce) {
        return fail(scram_error::malformed, "SCRAM client-final-message lacks the nonce attribute");
    }
    if (*nonce != combined_nonce_) {
        return fail(scram_error::malformed, "SCRAM nonce in client-final-message does not match");
    }
    std::optional<std::string_view> proof_text;
    std::size_t without_proof_size = 0;
    while (!reader.at_end()) {
        // Offset of this attribute's comma: the end of client-final-message-without-proof if it is the proof.
        const std::size_t attribute_start = message.size() - reader.rest().size();
        const auto attr = reader.next();
        if (!attr) {
            return fail(scram_error::malformed, "malformed attribute in SCRAM client-final-message");
        }
        if (attr->name == 'p') {
            proof_text = attr->value;
            without_proof_size = attribute_start - 1;
            break;
        }
    }
    if (!proof_text) {
        return fail(scram_error::malformed, "SCRAM client-final-message lacks the proof attribute");
    }
    if (!reader.at_end()) {
        return fail(scram_error::malformed, "SCRAM client-final-message has attributes after the proof");
    }
    const auto proof = base64_decode(*proof_text);
    if (!proof || proof->size() != sha256_size) {
        return fail(scram_error::malformed, "SCRAM proof is not 32 bytes of base64");
    }

    // AuthMessage = client-first-message-bare "," server-first-message "," client-final-message-without-proof
    std::string auth_message;
    auth_message.reserve(client_first_bare_.size() + server_first_message_.size() + without_proof_size + 2);
    auth_message.append(client_first_bare_).append(",").append(server_first_message_).append(",");
    auth_message.append(message.substr(0, without_proof_size));

    const sha256_digest client_signature = hmac_sha256(verifier_.stored_key, as_bytes(auth_message));
    sha256_digest client_proof{};
    std::copy(proof->begin(), proof->end(), client_proof.begin());
    const sha256_digest client_key = xor_digests(client_proof, client_signature);
    const bool proof_matches = constant_time_equal(sha256(client_key), verifier_.stored_key);
    if (doomed_ || !proof_matches) {
        return fail(scram_error::invalid_proof, "SCRAM proof does not match the stored secret");
    }
    client_key_ = client_key;
    state_ = state::authenticated;
    const sha256_digest server_signature = hmac_sha256(verifier_.server_key, as_bytes(auth_message));
    return {scram_error::none, "v=" + base64_encode(server_signature), {}};
}

const sha256_digest& scram_server_fsm::client_key() const noexcept {
    assert(authenticated());
    return client_key_;
}

const sha256_digest& scram_server_fsm::server_key() const noexcept {
    assert(authenticated());
    return verifier_.server_key;
}

scram_client_keys scram_server_fsm::client_keys() const noexcept {
    return {client_key(), server_key()};
}

// ---------------------------------------------------------------------------------------------------------------
// scram_client_fsm

scram_client_fsm::scram_client_fsm(std::string password) : scram_client_fsm(std::move(password), random_nonce()) {}

scram_client_fsm::scram_client_fsm(const scram_client_keys& keys) : scram_client_fsm(keys, random_nonce()) {}

scram_client_fsm::scram_client_fsm(std::string password, std::string client_nonce)
    : password_(std::move(password)),
      client_nonce_(std::move(client_nonce)),
      client_first_message_("n,,n=,r=" + client_nonce_),
      client_first_bare_(client_first_message_.substr(3)) {
    assert(is_valid_nonce(client_nonce_));
}

scram_client_fsm::scram_client_fsm(const scram_client_keys& keys, std::string client_nonce)
    : scram_client_fsm(std::string{}, std::move(client_nonce)) {
    keys_ = keys;
}

void scram_client_fsm::set_cached_keys(scram_derived_keys cached) {
    cached_ = std::move(cached);
}

scram_result scram_client_fsm::fail(scram_error error, std::string_view reason) {
    state_ = state::failed;
    return {error, {}, reason};
}

scram_result scram_client_fsm::on_server_first(std::string_view message) {
    if (state_ != state::expecting_server_first) {
        return fail(scram_error::malformed, "SCRAM server-first-message out of sequence");
    }
    if (has_nul(message)) {
        return fail(scram_error::malformed, "SCRAM message contains a NUL byte");
    }
    // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
    attribute_reader reader(message);
    if (reader.expect('m')) {
        return fail(scram_error::malformed, "SCRAM mandatory extensions are not supported");
    }
    const auto nonce = reader.expect('r');
    if (!nonce) {
        return fail(scram_error::malformed, "SCRAM server-first-message lacks the nonce attribute");
    }
    if (!is_valid_nonce(*nonce)) {
        return fail(scram_error::malformed, "SCRAM server nonce is not printable ASCII");
    }
    // RFC 5802 section 5.1: the server appends its own non-empty part to the client's nonce.
    if (nonce->size() <= client_nonce_.size() || !nonce->starts_with(client_nonce_)) {
        return fail(scram_error::nonce_mismatch, "SCRAM server nonce does not extend the client nonce");
    }
    const auto salt_text = reader.expect('s');
    if (!salt_text) {
        return fail(scram_error::malformed, "SCRAM server-first-message lacks the salt attribute");
    }
    auto salt = base64_decode(*salt_text);
    if (!salt || salt->empty()) {
        return fail(scram_error::malformed, "SCRAM salt is empty or not base64");
    }
    const auto iterations_text = reader.expect('i');
    if (!iterations_text) {
        return fail(scram_error::malformed, "SCRAM server-first-message lacks the iteration count attribute");
    }
    long long iterations = 0;
    const char* const first = iterations_text->data();
    const char* const last = first + iterations_text->size();
    const auto [end, ec] = std::from_chars(first, last, iterations);
    if (iterations_text->empty() || end != last || (ec != std::errc{} && ec != std::errc::result_out_of_range)) {
        return fail(scram_error::malformed, "SCRAM iteration count is not a decimal number");
    }
    if (ec == std::errc::result_out_of_range || iterations < 1 || iterations > INT_MAX) {
        return fail(scram_error::invalid_iteration_count, "SCRAM iteration count is below 1 or too large");
    }
    while (!reader.at_end()) {  // optional extensions, ignored
        if (!reader.next()) {
            return fail(scram_error::malformed, "malformed attribute in SCRAM server-first-message");
        }
    }

    scram_client_keys keys;
    if (keys_) {
        keys = *keys_;
    } else {
        if (cached_ && cached_->iterations == iterations && cached_->salt == *salt) {
            keys = cached_->keys;
        } else {
            keys = keys_from_salted_password(derive_salted_password(password_, *salt, static_cast<int>(iterations)));
        }
        derived_keys_ = scram_derived_keys{std::move(*salt), static_cast<int>(iterations), keys};
    }

    // Without channel binding, c= is the base64 of our gs2-header "n,,".
    std::string final_message = "c=biws,r=" + std::string(*nonce);
    std::string auth_message = client_first_bare_;
    auth_message.append(",").append(message).append(",").append(final_message);

    const sha256_digest stored_key = sha256(keys.client_key);
    const sha256_digest client_signature = hmac_sha256(stored_key, as_bytes(auth_message));
    const sha256_digest proof = xor_digests(keys.client_key, client_signature);
    expected_server_signature_ = hmac_sha256(keys.server_key, as_bytes(auth_message));

    final_message.append(",p=").append(base64_encode(proof));
    state_ = state::expecting_server_final;
    return {scram_error::none, std::move(final_message), {}};
}

scram_result scram_client_fsm::on_server_final(std::string_view message) {
    if (state_ != state::expecting_server_final) {
        return fail(scram_error::malformed, "SCRAM server-final-message out of sequence");
    }
    if (has_nul(message)) {
        return fail(scram_error::malformed, "SCRAM message contains a NUL byte");
    }
    // server-final-message = (server-error / verifier) ["," extensions]
    attribute_reader reader(message);
    if (const auto server_error = reader.expect('e')) {
        state_ = state::failed;
        return {scram_error::server_error, std::string(*server_error), "the server rejected the SCRAM exchange"};
    }
    const auto verifier = reader.expect('v');
    if (!verifier) {
        return fail(scram_error::malformed, "SCRAM server-final-message lacks the verifier attribute");
    }
    const auto signature = base64_decode(*verifier);
    if (!signature || signature->size() != sha256_size) {
        return fail(scram_error::malformed, "SCRAM server signature is not 32 bytes of base64");
    }
    while (!reader.at_end()) {  // optional extensions, ignored
        if (!reader.next()) {
            return fail(scram_error::malformed, "malformed attribute in SCRAM server-final-message");
        }
    }
    if (!constant_time_equal(*signature, expected_server_signature_)) {
        return fail(scram_error::server_signature_mismatch, "SCRAM server signature does not match");
    }
    state_ = state::authenticated;
    return {};
}

}  // namespace sluice::auth
