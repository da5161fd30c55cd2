#pragma once
// The RFC 7677 section 3 exchange (user "user", password "pencil") shared by the SCRAM targets, so that the seed
// corpus holds a complete successful exchange for both sides and mutations start from the authenticated path.

#include <string_view>

namespace sluice::fuzz::rfc7677 {

inline constexpr std::string_view client_nonce = "rOprNGfwEbeRWgbNEkqO";
inline constexpr std::string_view server_nonce_part = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
inline constexpr std::string_view salt = "W22ZaJ0SNY7soEsUEjb6gQ==";
inline constexpr int iterations = 4096;
// ClientKey and ServerKey of "pencil" with the salt above (tests/unit/proxy/auth_scram_test.cpp).
inline constexpr std::string_view client_key = "pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos=";
inline constexpr std::string_view server_key = "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

}  // namespace sluice::fuzz::rfc7677
