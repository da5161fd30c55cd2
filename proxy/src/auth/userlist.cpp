#include "auth/userlist.hpp"

namespace sluice::auth {

const secret* userlist::find(std::string_view user) const {
    const auto it = users_.find(user);
    return it == users_.end() ? nullptr : &it->second;
}

void userlist::set(std::string user, secret user_secret) {
    users_.insert_or_assign(std::move(user), std::move(user_secret));
}

namespace {

bool is_blank(char c) noexcept {
    return c == ' ' || c == '\t';
}

void skip_blanks(std::string_view& rest) noexcept {
    while (!rest.empty() && is_blank(rest.front())) {
        rest.remove_prefix(1);
    }
}

struct field_result {
    std::optional<std::string> value;
    std::string_view error;  // when !value
};

// Reads a quoted field at the start of `rest` and advances past it. After the closing quote only a blank or the end
// of the line may follow.
field_result read_quoted_field(std::string_view& rest) {
    if (rest.empty() || rest.front() != '"') {
        return {std::nullopt, "expected a double-quoted field"};
    }
    rest.remove_prefix(1);
    std::string value;
    while (true) {
        const std::size_t quote = rest.find('"');
        if (quote == std::string_view::npos) {
            return {std::nullopt, "unterminated double-quoted field"};
        }
        value.append(rest.substr(0, quote));
        rest.remove_prefix(quote + 1);
        if (!rest.empty() && rest.front() == '"') {  // "" stands for one literal quote
            value += '"';
            rest.remove_prefix(1);
            continue;
        }
        break;
    }
    if (!rest.empty() && !is_blank(rest.front())) {
        return {std::nullopt, "unexpected character after a closing double quote"};
    }
    return {std::move(value), {}};
}

}  // namespace

userlist_parse_result parse_userlist(std::string_view text) {
    userlist_parse_result result;
    std::size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        const std::size_t newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }

        skip_blanks(line);
        if (line.empty() || line.front() == ';' || line.front() == '#') {
            continue;
        }
        auto fail = [&](std::string_view reason) {
            result.error = userlist_error{line_number, std::string(reason)};
            return std::move(result);
        };

        auto user = read_quoted_field(line);
        if (!user.value) {
            return fail(user.error);
        }
        if (user.value->empty()) {
            return fail("empty user name");
        }
        skip_blanks(line);
        if (line.empty()) {
            return fail("missing password field");
        }
        auto password = read_quoted_field(line);
        if (!password.value) {
            return fail(password.error);
        }
        // Anything after the password (PgBouncer allows further fields) is ignored.
        auto parsed = parse_secret(*password.value);
        if (!parsed) {
            return fail("malformed SCRAM secret");
        }
        result.users.set(std::move(*user.value), std::move(*parsed));
    }
    return result;
}

}  // namespace sluice::auth
