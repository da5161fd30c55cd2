#pragma once

// PgBouncer's auth_file ("userlist.txt"): one user per line,
//     "username" "password" [further fields, ignored]
// Fields are enclosed in double quotes; a double quote inside a field is written twice (""). Fields are separated
// by spaces or tabs. Blank lines and lines whose first non-blank character is ';' or '#' are ignored. The password
// is any stored form parse_secret() accepts: plaintext, md5 secret or SCRAM secret. A user listed twice keeps the
// last entry (as when PgBouncer reloads).

#include "auth/secret.hpp"

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::auth {

class userlist {
  public:
    // The user's secret, or nullptr. The pointer stays valid until the userlist is modified or destroyed.
    [[nodiscard]] const secret* find(std::string_view user) const;
    [[nodiscard]] std::size_t size() const noexcept { return users_.size(); }
    [[nodiscard]] bool empty() const noexcept { return users_.empty(); }

    // Adds or replaces a user's secret.
    void set(std::string user, secret user_secret);

  private:
    // Transparent hashing so that find() takes a string_view without allocating.
    struct name_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view name) const noexcept { return std::hash<std::string_view>{}(name); }
    };
    std::unordered_map<std::string, secret, name_hash, std::equal_to<>> users_;
};

struct userlist_error {
    std::size_t line = 0;  // 1-based
    std::string reason;
};

struct userlist_parse_result {
    userlist users;                       // the users parsed; complete only when ok()
    std::optional<userlist_error> error;  // the first error: parsing stops there

    [[nodiscard]] bool ok() const noexcept { return !error; }
};

// Parses the whole text of an auth_file. Lines may end in "\n" or "\r\n". Errors: a line not starting with '"', an
// unterminated quote, text glued to a closing quote, a missing password field, an empty user name, a malformed SCRAM
// secret.
[[nodiscard]] userlist_parse_result parse_userlist(std::string_view text);

}  // namespace sluice::auth
