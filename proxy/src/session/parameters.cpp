#include "session/parameters.hpp"

#include <cctype>
#include <cstring>
#include <new>

namespace sluice::session {

namespace {
// ASCII only, as PostgreSQL compares setting names (pg_strcasecmp), and without std::tolower's locale lookup: every
// login compares each of the server's parameter names with the tracked ones.
char ascii_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
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

parameter_set::parameter_set(const parameter_set& other) noexcept : block_(other.block_) {
    if (block_)
        references().fetch_add(1, std::memory_order_relaxed);
}

parameter_set& parameter_set::operator=(const parameter_set& other) noexcept {
    char* const block = other.block_;  // before release(): `other` may be this set
    if (block)
        other.references().fetch_add(1, std::memory_order_relaxed);
    release();
    block_ = block;
    return *this;
}

parameter_set& parameter_set::operator=(parameter_set&& other) noexcept {
    if (this != &other) {
        release();
        block_ = std::exchange(other.block_, nullptr);
    }
    return *this;
}

std::atomic<std::uint32_t>& parameter_set::references() const noexcept {
    return *std::launder(reinterpret_cast<std::atomic<std::uint32_t>*>(block_));
}

void parameter_set::release() noexcept {
    if (block_ && references().fetch_sub(1, std::memory_order_acq_rel) == 1)
        ::operator delete(block_);
    block_ = nullptr;
}

parameter_set::length_type parameter_set::length(std::size_t index) const noexcept {
    length_type n;
    std::memcpy(&n, block_ + lengths_offset + index * sizeof(length_type), sizeof(n));
    return n;
}

bool parameter_set::operator==(const parameter_set& other) const noexcept {
    if (block_ == other.block_)
        return true;
    if (!block_ || !other.block_)
        return false;
    const std::size_t bytes = total_bytes();
    return bytes == other.total_bytes() &&
           std::memcmp(block_ + lengths_offset, other.block_ + lengths_offset, bytes - lengths_offset) == 0;
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
    set(*index, value);
    return true;
}

void parameter_set::set(std::size_t index, std::string_view value) {
    // Longer values cannot come from a startup packet or from PostgreSQL (see length_type); truncating is safer than
    // colliding with the `absent` marker.
    value = value.substr(0, absent - 1);
    auto values = this->values();
    if (values[index] && *values[index] == value)
        return;
    values[index] = value;
    std::size_t bytes = header_bytes;
    for (const auto& v : values) {
        if (v)
            bytes += v->size();
    }
    char* const block = static_cast<char*>(::operator new(bytes));
    new (block) std::atomic<std::uint32_t>(1);
    char* out = block + header_bytes;
    for (std::size_t i = 0; i < values.size(); ++i) {
        const length_type n = values[i] ? static_cast<length_type>(values[i]->size()) : absent;
        std::memcpy(block + lengths_offset + i * sizeof(length_type), &n, sizeof(n));
        if (values[i] && !values[i]->empty()) {
            std::memcpy(out, values[i]->data(), values[i]->size());
            out += values[i]->size();
        }
    }
    release();  // after the copy: `value` may point into the old block
    block_ = block;
}

std::optional<std::string_view> parameter_set::get(std::size_t index) const noexcept {
    if (!block_)
        return std::nullopt;
    const char* at = block_ + header_bytes;
    for (std::size_t i = 0; i < index; ++i) {
        if (const auto n = length(i); n != absent)
            at += n;
    }
    const auto n = length(index);
    if (n == absent)
        return std::nullopt;
    return std::string_view(at, n);
}

parameter_set::values_type parameter_set::values() const noexcept {
    values_type out{};
    if (!block_)
        return out;
    const char* at = block_ + header_bytes;
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (const auto n = length(i); n != absent) {
            out[i] = std::string_view(at, n);
            at += n;
        }
    }
    return out;
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
    // Runs at every server assignment: one walk of each block rather than get(i) per parameter.
    if (client == server)  // the usual case once a server served clients like this one: one memcmp
        return false;
    const auto wanted = client.values();
    const auto had = server.values();
    bool any = false;
    for (std::size_t i = 0; i < tracked_parameter_names.size(); ++i) {
        const auto& want = wanted[i];
        if (!want)
            continue;
        if (had[i] && *had[i] == *want)
            continue;
        sql.append("SET ").append(tracked_parameter_names[i]).append(" = ");
        append_quoted_literal(sql, *want);
        sql.append(";");
        any = true;
    }
    return any;
}

}  // namespace sluice::session
