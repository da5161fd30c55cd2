#include "session/parameters.hpp"

#include <cctype>
#include <cstring>

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

parameter_set::parameter_set(const parameter_set& other) {
    *this = other;
}

parameter_set& parameter_set::operator=(const parameter_set& other) {
    if (this == &other)
        return *this;
    if (!other.packed_) {
        packed_.reset();
        return *this;
    }
    const std::size_t bytes = other.total_bytes();
    std::unique_ptr<char[]> copy(new char[bytes]);
    std::memcpy(copy.get(), other.packed_.get(), bytes);
    packed_ = std::move(copy);
    return *this;
}

std::uint32_t parameter_set::length(std::size_t index) const noexcept {
    std::uint32_t n;
    std::memcpy(&n, packed_.get() + index * sizeof(std::uint32_t), sizeof(n));
    return n;
}

std::size_t parameter_set::total_bytes() const noexcept {
    std::size_t bytes = header_bytes;
    for (std::size_t i = 0; i < tracked_parameter_names.size(); ++i) {
        if (const auto n = length(i); n != absent)
            bytes += n;
    }
    return bytes;
}

bool parameter_set::set(std::string_view name, std::string_view value) {
    const auto index = tracked_parameter_index(name);
    if (!index)
        return false;
    // Longer values cannot be sent in a startup packet or a ParameterStatus Sluice accepts; truncating is safer than
    // colliding with the `absent` marker.
    value = value.substr(0, absent - 1);
    std::array<std::optional<std::string_view>, tracked_parameter_names.size()> values;
    std::size_t bytes = header_bytes;
    for (std::size_t i = 0; i < values.size(); ++i) {
        values[i] = i == *index ? std::optional<std::string_view>(value) : get(i);
        if (values[i])
            bytes += values[i]->size();
    }
    std::unique_ptr<char[]> packed(new char[bytes]);
    char* out = packed.get() + header_bytes;
    for (std::size_t i = 0; i < values.size(); ++i) {
        const std::uint32_t n = values[i] ? static_cast<std::uint32_t>(values[i]->size()) : absent;
        std::memcpy(packed.get() + i * sizeof(std::uint32_t), &n, sizeof(n));
        if (values[i] && !values[i]->empty()) {
            std::memcpy(out, values[i]->data(), values[i]->size());
            out += values[i]->size();
        }
    }
    packed_ = std::move(packed);  // after the copy: `value` may point into the old block
    return true;
}

std::optional<std::string_view> parameter_set::get(std::size_t index) const noexcept {
    if (!packed_)
        return std::nullopt;
    const char* at = packed_.get() + header_bytes;
    for (std::size_t i = 0; i < index; ++i) {
        if (const auto n = length(i); n != absent)
            at += n;
    }
    const auto n = length(index);
    if (n == absent)
        return std::nullopt;
    return std::string_view(at, n);
}

std::optional<std::string_view> parameter_set::get(std::string_view name) const noexcept {
    const auto i = tracked_parameter_index(name);
    if (!i)
        return std::nullopt;
    return get(*i);
}

namespace {
std::string lower(std::string_view v) {
    std::string out;
    for (char c : v)
        out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    return out;
}
std::string upper(std::string_view v) {
    std::string out;
    for (char c : v)
        out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    return out;
}

std::string canonical_encoding(std::string_view value) {
    std::string key;
    for (char c : value) {
        if (c != '-' && c != '_')
            key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    if (key == "utf8" || key == "unicode")
        return "UTF8";
    if (key == "sqlascii")
        return "SQL_ASCII";
    return upper(value);
}

// DateStyle is "<style>, <order>" (datetime.c): either part may be given alone.
std::string canonical_datestyle(std::string_view value, std::string_view current) {
    std::string style;
    std::string order;
    std::string token;
    auto take = [&] {
        const auto t = lower(token);
        token.clear();
        if (t.empty())
            return;
        if (t == "iso")
            style = "ISO";
        else if (t == "sql")
            style = "SQL";
        else if (t == "postgres")
            style = "Postgres";
        else if (t == "german")
            style = "German";
        else if (t == "dmy" || t == "euro" || t == "european")
            order = "DMY";
        else if (t == "mdy" || t == "us" || t == "noneuro" || t == "noneuropean")
            order = "MDY";
        else if (t == "ymd")
            order = "YMD";
        else
            style = "?";
    };
    for (char c : value) {
        if (c == ',' || c == ' ') {
            take();
        } else {
            token.push_back(c);
        }
    }
    take();
    if (style == "?")
        return std::string(value);
    const auto comma = current.find(", ");
    if (style.empty())
        style = comma == std::string_view::npos ? "ISO" : std::string(current.substr(0, comma));
    if (order.empty())
        order = comma == std::string_view::npos ? "MDY" : std::string(current.substr(comma + 2));
    return style + ", " + order;
}
}  // namespace

std::string canonical_value(std::string_view name, std::string_view value, std::string_view current) {
    // Some drivers (asyncpg) send the value quoted as in SQL; PostgreSQL strips the quotes.
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'')
        value = value.substr(1, value.size() - 2);
    const auto index = tracked_parameter_index(name);
    if (!index)
        return std::string(value);
    const auto canonical_name = tracked_parameter_names[*index];
    if (canonical_name == "client_encoding")
        return canonical_encoding(value);
    if (canonical_name == "DateStyle")
        return canonical_datestyle(value, current);
    if (canonical_name == "TimeZone") {
        const auto l = lower(value);
        if (l == "utc" || l == "gmt" || l == "zulu")
            return upper(value);
        return std::string(value);
    }
    if (canonical_name == "IntervalStyle")
        return lower(value);
    if (canonical_name == "standard_conforming_strings") {
        const auto l = lower(value);
        if (l == "on" || l == "true" || l == "yes" || l == "1")
            return "on";
        if (l == "off" || l == "false" || l == "no" || l == "0")
            return "off";
    }
    return std::string(value);
}

void append_quoted_literal(std::string& out, std::string_view value) {
    // E'' reads the same whatever the server's standard_conforming_strings: a plain '' literal would let a
    // backslash in a client's value escape the quote when the setting is off.
    out.append("E'");
    for (char c : value) {
        if (c == '\'' || c == '\\')
            out.push_back(c);
        out.push_back(c);
    }
    out.push_back('\'');
}

bool append_parameter_sync(const parameter_set& client, const parameter_set& server, std::string& sql) {
    bool any = false;
    for (std::size_t i = 0; i < tracked_parameter_names.size(); ++i) {
        const auto want = client.get(i);
        if (!want)
            continue;
        const auto have = server.get(i);
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
