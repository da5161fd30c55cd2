#include "session/parameters.hpp"

#include <cctype>

namespace sluice::session {

namespace {
bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}
}  // namespace

std::optional<std::size_t> tracked_parameter_index(std::string_view name) noexcept {
    for (std::size_t i = 0; i < tracked_parameter_names.size(); ++i) {
        if (iequals(tracked_parameter_names[i], name))
            return i;
    }
    return std::nullopt;
}

bool parameter_set::set(std::string_view name, std::string_view value) {
    const auto i = tracked_parameter_index(name);
    if (!i)
        return false;
    values_[*i] = std::string(value);
    return true;
}

std::optional<std::string_view> parameter_set::get(std::string_view name) const noexcept {
    const auto i = tracked_parameter_index(name);
    if (!i || !values_[*i])
        return std::nullopt;
    return std::string_view(*values_[*i]);
}

void append_quoted_literal(std::string& out, std::string_view value) {
    out.push_back('\'');
    for (char c : value) {
        if (c == '\'')
            out.push_back('\'');
        out.push_back(c);
    }
    out.push_back('\'');
}

bool append_parameter_sync(const parameter_set& client, const parameter_set& server, std::string& sql) {
    bool any = false;
    for (std::size_t i = 0; i < tracked_parameter_names.size(); ++i) {
        const auto& want = client.get(i);
        if (!want)
            continue;
        const auto& have = server.get(i);
        if (have && *have == *want)
            continue;
        sql.append("SET ").append(tracked_parameter_names[i]).append(" = ");
        append_quoted_literal(sql, *want);
        sql.append(";");
        any = true;
    }
    return any;
}

}  // namespace sluice::session
