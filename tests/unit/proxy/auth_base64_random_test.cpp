#include "auth/base64.hpp"
#include "auth/random.hpp"

#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string>
#include <vector>

namespace sluice::auth {
namespace {

std::vector<std::uint8_t> bytes_of(std::string_view text) {
    return {text.begin(), text.end()};
}

TEST(auth_base64, encodes_rfc4648_test_vectors) {
    EXPECT_EQ(base64_encode(bytes_of("")), "");
    EXPECT_EQ(base64_encode(bytes_of("f")), "Zg==");
    EXPECT_EQ(base64_encode(bytes_of("fo")), "Zm8=");
    EXPECT_EQ(base64_encode(bytes_of("foo")), "Zm9v");
    EXPECT_EQ(base64_encode(bytes_of("foob")), "Zm9vYg==");
    EXPECT_EQ(base64_encode(bytes_of("fooba")), "Zm9vYmE=");
    EXPECT_EQ(base64_encode(bytes_of("foobar")), "Zm9vYmFy");
    EXPECT_EQ(base64_encode(bytes_of("n,,")), "biws");
}

TEST(auth_base64, decodes_rfc4648_test_vectors) {
    EXPECT_EQ(base64_decode(""), std::vector<std::uint8_t>{});
    EXPECT_EQ(base64_decode("Zg=="), bytes_of("f"));
    EXPECT_EQ(base64_decode("Zm8="), bytes_of("fo"));
    EXPECT_EQ(base64_decode("Zm9vYmFy"), bytes_of("foobar"));
    EXPECT_EQ(base64_decode("eSws"), bytes_of("y,,"));
}

TEST(auth_base64, round_trips_every_byte_value_and_length) {
    std::vector<std::uint8_t> data;
    for (int i = 0; i < 256; ++i) {
        data.push_back(static_cast<std::uint8_t>(255 - i));
        const auto decoded = base64_decode(base64_encode(data));
        ASSERT_TRUE(decoded.has_value()) << "length " << data.size();
        EXPECT_EQ(*decoded, data);
    }
}

TEST(auth_base64, rejects_malformed_input) {
    EXPECT_FALSE(base64_decode("Zg="));        // length not a multiple of 4
    EXPECT_FALSE(base64_decode("Zm9v Zg=="));  // whitespace
    EXPECT_FALSE(base64_decode("Zm9v\nZg=="));
    EXPECT_FALSE(base64_decode("Zm-v"));  // base64url alphabet
    EXPECT_FALSE(base64_decode("Zm_v"));
    EXPECT_FALSE(base64_decode("Z==="));  // three padding characters
    EXPECT_FALSE(base64_decode("===="));
    EXPECT_FALSE(base64_decode("Zg==Zm9v"));  // padding in the middle
    EXPECT_FALSE(base64_decode("Z=g="));
    EXPECT_FALSE(base64_decode("Zh=="));  // non-zero unused bits: not the canonical encoding of "f"
    EXPECT_FALSE(base64_decode("Zm9="));
    EXPECT_FALSE(base64_decode(std::string_view("Zm9\0", 4)));
}

TEST(auth_random, fills_the_whole_buffer_and_differs_between_calls) {
    std::array<std::uint8_t, 64> first{};
    std::array<std::uint8_t, 64> second{};
    fill_random(first);
    fill_random(second);
    // 2^-512 chance of a false failure.
    EXPECT_NE(first, second);
    // A buffer left untouched would stay all-zero; 64 random bytes are all zero with probability 2^-512.
    EXPECT_NE(first, (std::array<std::uint8_t, 64>{}));
}

TEST(auth_random, random_u32_is_not_constant) {
    std::set<std::uint32_t> seen;
    for (int i = 0; i < 16; ++i) {
        seen.insert(random_u32());
    }
    EXPECT_GT(seen.size(), 1U);
}

}  // namespace
}  // namespace sluice::auth
