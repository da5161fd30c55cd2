#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "config/config.hpp"

// Checks of the files shipped in deploy/ and docs/, found relative to this source file.
namespace sluice::config {
namespace {

const std::filesystem::path repo_root = std::filesystem::path(__FILE__).parent_path() / "../../..";

std::string read_repo_file(const std::string& relative) {
    const auto outcome = read_file_from_disk((repo_root / relative).string());
    EXPECT_TRUE(outcome.text.has_value()) << relative << ": " << outcome.error;
    return outcome.text.value_or("");
}

TEST(config_deploy, shipped_sluice_ini_loads_without_errors_or_warnings) {
    const auto path = (repo_root / "deploy/sluice.ini").lexically_normal();
    const auto result = load_config_file(path.string());
    ASSERT_TRUE(result.ok()) << result.errors[0].to_string();
    const auto& cfg = *result.value;
    for (const auto& warning : cfg.warnings) {
        ADD_FAILURE() << warning.to_string();
    }
    const auto& s = cfg.settings;
    EXPECT_EQ(s.listen_addr, std::vector<std::string>{"127.0.0.1"});
    EXPECT_EQ(s.listen_port, 6432);
    EXPECT_EQ(s.auth_type, auth_type::scram_sha_256);
    EXPECT_EQ(s.auth_file, std::optional<std::string>((path.parent_path() / "userlist.txt").string()));
    EXPECT_EQ(s.pool_mode, pool_mode::transaction);
    EXPECT_EQ(s.default_pool_size, 20);
    EXPECT_EQ(s.max_client_conn, 1000);
    EXPECT_EQ(s.admin_users, std::vector<std::string>{"sluice"});
    EXPECT_EQ(s.workers, 0);
    EXPECT_EQ(s.metrics_addr, "127.0.0.1");
    EXPECT_EQ(s.metrics_port, 9127);
    ASSERT_TRUE(cfg.fallback);
    EXPECT_EQ(cfg.fallback->hosts, std::vector<std::string>{"127.0.0.1"});
    EXPECT_EQ(cfg.fallback->port, 5432);
    EXPECT_TRUE(cfg.databases.empty());
}

std::vector<unsigned char> base64_decode(const std::string& text) {
    std::vector<unsigned char> out(text.size());
    const int length =
        EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    EXPECT_GE(length, 0) << text;
    const auto padding = static_cast<int>(std::count(text.begin(), text.end(), '='));
    out.resize(static_cast<std::size_t>(std::max(0, length - padding)));
    return out;
}

std::vector<unsigned char> hmac_sha256(const std::vector<unsigned char>& key, std::string_view message) {
    std::vector<unsigned char> out(SHA256_DIGEST_LENGTH);
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
         message.size(), out.data(), &length);
    out.resize(length);
    return out;
}

// RFC 5802 / PostgreSQL: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
TEST(config_deploy, shipped_userlist_holds_a_scram_secret_for_password_sluice) {
    const auto userlist = read_repo_file("deploy/userlist.txt");
    const std::string prefix = "\"sluice\" \"";
    const auto start = userlist.find("\n" + prefix);
    ASSERT_NE(start, std::string::npos);
    const auto secret_start = start + 1 + prefix.size();
    const auto secret = userlist.substr(secret_start, userlist.find('"', secret_start) - secret_start);

    const std::string scheme = "SCRAM-SHA-256$";
    ASSERT_EQ(secret.rfind(scheme, 0), 0U) << secret;
    const auto colon = secret.find(':');
    const auto dollar = secret.find('$', colon);
    const auto last_colon = secret.find(':', dollar);
    ASSERT_NE(last_colon, std::string::npos) << secret;
    const int iterations = std::stoi(secret.substr(scheme.size(), colon - scheme.size()));
    const auto salt = base64_decode(secret.substr(colon + 1, dollar - colon - 1));
    const auto stored_key = base64_decode(secret.substr(dollar + 1, last_colon - dollar - 1));
    const auto server_key = base64_decode(secret.substr(last_colon + 1));
    EXPECT_EQ(iterations, 4096);
    EXPECT_EQ(salt.size(), 16U);

    const std::string password = "sluice";
    std::vector<unsigned char> salted(SHA256_DIGEST_LENGTH);
    ASSERT_EQ(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                                static_cast<int>(salt.size()), iterations, EVP_sha256(),
                                static_cast<int>(salted.size()), salted.data()),
              1);
    const auto client_key = hmac_sha256(salted, "Client Key");
    std::vector<unsigned char> expected_stored_key(SHA256_DIGEST_LENGTH);
    SHA256(client_key.data(), client_key.size(), expected_stored_key.data());
    EXPECT_EQ(stored_key, expected_stored_key);
    EXPECT_EQ(server_key, hmac_sha256(salted, "Server Key"));
}

TEST(config_deploy, settings_reference_documents_every_setting) {
    const auto docs = read_repo_file("docs/settings.md");
    for (const auto& def : all_settings()) {
        EXPECT_NE(docs.find("| `" + std::string(def.name) + "` |"), std::string::npos) << def.name;
    }
    for (const auto& unused : accepted_unused_settings()) {
        EXPECT_NE(docs.find("`" + std::string(unused.name) + "`"), std::string::npos) << unused.name;
    }
}

}  // namespace
}  // namespace sluice::config
