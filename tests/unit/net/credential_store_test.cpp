// credential_store: find() never runs PBKDF2 (it is called on event-loop threads); derive() does, once per user.
#include <gtest/gtest.h>

#include <string>

#include "auth/userlist.hpp"
#include "net/runtime.hpp"

namespace sluice::net {
namespace {

credential_store make_store() {
    auto parsed = auth::parse_userlist(
        "\"plain_user\" \"secret\"\n"
        "\"scram_user\" \"SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n");
    EXPECT_TRUE(parsed.ok());
    return credential_store(std::move(parsed.users), 16);
}

TEST(credential_store, find_leaves_a_plain_password_underived) {
    const auto store = make_store();
    const auto c = store.find("plain_user");
    ASSERT_TRUE(c.has_value());
    EXPECT_TRUE(c->needs_derivation());
    EXPECT_EQ(c->stored.type, auth::secret::kind::plain);
    EXPECT_EQ(c->scram.type, auth::secret::kind::plain);
}

TEST(credential_store, derive_makes_a_scram_secret_once_and_find_returns_it_afterwards) {
    const auto store = make_store();
    const auto derived = store.derive("plain_user");
    ASSERT_TRUE(derived.has_value());
    EXPECT_FALSE(derived->needs_derivation());
    EXPECT_EQ(derived->stored.stored, "secret");
    ASSERT_EQ(derived->scram.type, auth::secret::kind::scram_sha_256);
    EXPECT_EQ(derived->scram.scram.iterations, 16);

    const auto found = store.find("plain_user");
    ASSERT_TRUE(found.has_value());
    EXPECT_FALSE(found->needs_derivation());
    EXPECT_EQ(found->scram.stored, derived->scram.stored) << "the cached secret, not a second derivation";
    EXPECT_EQ(store.derive("plain_user")->scram.stored, derived->scram.stored);
}

TEST(credential_store, scram_secrets_and_unknown_users_need_no_derivation) {
    const auto store = make_store();
    const auto c = store.find("scram_user");
    ASSERT_TRUE(c.has_value());
    EXPECT_FALSE(c->needs_derivation());
    EXPECT_EQ(c->scram.type, auth::secret::kind::scram_sha_256);
    EXPECT_FALSE(store.find("nobody").has_value());
    EXPECT_FALSE(store.derive("nobody").has_value());
}

}  // namespace
}  // namespace sluice::net
