#include "session/session_state.hpp"

#include <algorithm>
#include <cstring>

#include "session/parameters.hpp"

namespace sluice::session {

namespace {

bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
char lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
bool is_word_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
}
bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}
bool iequals_at(std::string_view s, std::size_t at, std::string_view word) noexcept {
    if (at + word.size() > s.size())
        return false;
    for (std::size_t i = 0; i < word.size(); ++i) {
        if (lower(s[at + i]) != word[i])
            return false;
    }
    return true;
}

// Where the statement starting at `from` ends: the index of its ';' or s.size(); npos when the text cannot be split
// safely (an unterminated quote or comment). Honours '' and E'' strings, "identifiers", $tag$ quotes and comments
// (sql-syntax-lexical.html); a backslash in a plain '' string is read as standard_conforming_strings = on does.
std::size_t statement_end(std::string_view s, std::size_t from) noexcept {
    std::size_t i = from;
    while (i < s.size()) {
        const char c = s[i];
        if (c == ';')
            return i;
        if (c == '\'') {
            const bool escapes = i > 0 && lower(s[i - 1]) == 'e' && (i == 1 || !is_word_char(s[i - 2]));
            ++i;
            for (;;) {
                if (i >= s.size())
                    return std::string_view::npos;
                if (escapes && s[i] == '\\') {
                    i += 2;
                    continue;
                }
                if (s[i] == '\'') {
                    if (i + 1 < s.size() && s[i + 1] == '\'') {
                        i += 2;
                        continue;
                    }
                    ++i;
                    break;
                }
                ++i;
            }
        } else if (c == '"') {
            const auto close = s.find('"', i + 1);
            if (close == std::string_view::npos)
                return std::string_view::npos;
            i = close + 1;
        } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
            const auto nl = s.find('\n', i);
            i = nl == std::string_view::npos ? s.size() : nl + 1;
        } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
            int depth = 1;
            i += 2;
            while (depth > 0) {
                if (i + 1 >= s.size())
                    return std::string_view::npos;
                if (s[i] == '/' && s[i + 1] == '*') {
                    ++depth;
                    i += 2;
                } else if (s[i] == '*' && s[i + 1] == '/') {
                    --depth;
                    i += 2;
                } else {
                    ++i;
                }
            }
        } else if (c == '$' && (i == 0 || !is_word_char(s[i - 1])) && i + 1 < s.size() && !is_digit(s[i + 1])) {
            // $tag$ ... $tag$ (the tag may be empty); $1 is a parameter.
            std::size_t j = i + 1;
            while (j < s.size() && is_word_char(s[j]) && s[j] != '$')
                ++j;
            if (j >= s.size() || s[j] != '$') {
                i = j;
                continue;
            }
            const auto tag = s.substr(i, j - i + 1);
            const auto close = s.find(tag, j + 1);
            if (close == std::string_view::npos)
                return std::string_view::npos;
            i = close + tag.size();
        } else {
            ++i;
        }
    }
    return s.size();
}

// A cursor over one statement's text (no ';' inside, quotes aside).
struct cursor {
    std::string_view s;
    std::size_t i = 0;

    // Skips whitespace and comments.
    void skip_space() noexcept {
        for (;;) {
            while (i < s.size() && is_space(s[i]))
                ++i;
            if (i + 1 < s.size() && s[i] == '-' && s[i + 1] == '-') {
                const auto nl = s.find('\n', i);
                i = nl == std::string_view::npos ? s.size() : nl + 1;
            } else if (i + 1 < s.size() && s[i] == '/' && s[i + 1] == '*') {
                const auto close = s.find("*/", i + 2);
                i = close == std::string_view::npos ? s.size() : close + 2;
            } else {
                return;
            }
        }
    }
    // Consumes `word` (lower case) if it comes next as a whole word.
    bool keyword(std::string_view word) noexcept {
        skip_space();
        if (!iequals_at(s, i, word) || (i + word.size() < s.size() && is_word_char(s[i + word.size()])))
            return false;
        i += word.size();
        return true;
    }
    bool punct(char c) noexcept {
        skip_space();
        if (i < s.size() && s[i] == c) {
            ++i;
            return true;
        }
        return false;
    }
    // An unquoted, possibly dotted name, lower-cased (PostgreSQL folds unquoted names); empty if none.
    std::string name() {
        skip_space();
        std::string out;
        while (i < s.size() && (is_word_char(s[i]) || (s[i] == '.' && !out.empty()))) {
            if (static_cast<unsigned char>(s[i]) >= 0x80)
                return {};
            out.push_back(lower(s[i++]));
        }
        if (!out.empty() && (is_digit(out[0]) || out.back() == '.'))
            return {};
        return out;
    }
    [[nodiscard]] bool at_end() noexcept {
        skip_space();
        return i >= s.size();
    }
    // A plain '...' literal without backslashes (whose meaning would depend on standard_conforming_strings).
    bool string_literal(std::string& out) {
        skip_space();
        if (i >= s.size() || s[i] != '\'')
            return false;
        out.clear();
        for (std::size_t j = i + 1; j < s.size(); ++j) {
            if (s[j] == '\\')
                return false;
            if (s[j] == '\'') {
                if (j + 1 < s.size() && s[j + 1] == '\'') {
                    out.push_back('\'');
                    ++j;
                    continue;
                }
                i = j + 1;
                return true;
            }
            out.push_back(s[j]);
        }
        return false;
    }
};

// A SET value replayed verbatim, so only a strict subset of the grammar is accepted: a comma-separated list of
// words/numbers ([+-]?[A-Za-z0-9_.]+), plain '...' strings without backslashes and "identifiers". Nothing accepted
// can end the statement or open a comment inside Sluice's own query.
bool valid_set_value(std::string_view v) noexcept {
    if (v.empty() || v.size() > session_state::max_value_bytes)
        return false;
    std::size_t i = 0;
    for (;;) {
        while (i < v.size() && is_space(v[i]))
            ++i;
        if (i >= v.size())
            return false;
        if (v[i] == '\'' || v[i] == '"') {
            const char q = v[i];
            ++i;
            for (;;) {
                if (i >= v.size() || v[i] == '\\')
                    return false;
                if (v[i] == q) {
                    if (i + 1 < v.size() && v[i + 1] == q) {
                        i += 2;
                        continue;
                    }
                    ++i;
                    break;
                }
                ++i;
            }
        } else {
            if (v[i] == '+' || v[i] == '-')
                ++i;
            const std::size_t start = i;
            while (i < v.size() && (is_word_char(v[i]) || v[i] == '.') && static_cast<unsigned char>(v[i]) < 0x80)
                ++i;
            if (i == start)
                return false;
        }
        while (i < v.size() && is_space(v[i]))
            ++i;
        if (i >= v.size())
            return true;
        if (v[i] != ',')
            return false;
        ++i;
    }
}

std::string_view trim(std::string_view v) noexcept {
    while (!v.empty() && is_space(v.front()))
        v.remove_prefix(1);
    while (!v.empty() && is_space(v.back()))
        v.remove_suffix(1);
    return v;
}

using change = session_state::change;

// SET [SESSION | LOCAL] name {TO | =} value (sql-set.html). `c` is past SET.
change scan_set(cursor& c) {
    change out;
    out.expects_tag = true;  // whatever it is, PostgreSQL answers "SET"
    bool local = false;
    if (c.keyword("local")) {
        local = true;
    } else if (c.keyword("session")) {
        if (c.keyword("characteristics") || c.keyword("authorization"))
            return out;  // not remembered: the SET tag marks the server dirty
    }
    if (c.keyword("transaction"))
        return out;  // this transaction only
    std::string name;
    if (c.keyword("time")) {
        if (!c.keyword("zone"))
            return out;
        name = "timezone";
    } else {
        name = c.name();
        if (name.empty() || !(c.keyword("to") || c.punct('=')))
            return out;
    }
    if (local || tracked_parameter_index(name))
        return out;  // SET LOCAL ends with the transaction; reported parameters follow ParameterStatus
    const auto value = trim(c.s.substr(c.i));
    if (name == "timezone" || !valid_set_value(value))
        return out;
    if (value.size() == 7 && iequals_at(value, 0, "default")) {
        out.what = change::op::reset;
    } else {
        out.what = change::op::set_sql;
        out.value = std::string(value);
    }
    out.name = std::move(name);
    return out;
}

// RESET {name | ALL}. `c` is past RESET.
change scan_reset(cursor& c) {
    change out;
    out.expects_tag = true;
    if (c.keyword("all")) {
        out.what = change::op::reset_all;
        return out;
    }
    std::string name;
    if (c.keyword("time")) {
        if (!c.keyword("zone"))
            return out;
        name = "timezone";
    } else if (c.keyword("session")) {
        return out;  // RESET SESSION AUTHORIZATION: not remembered
    } else {
        name = c.name();
    }
    if (name.empty() || !c.at_end() || tracked_parameter_index(name))
        return out;
    out.what = change::op::reset;
    out.name = std::move(name);
    return out;
}

// LISTEN channel / UNLISTEN {channel | *} (sql-listen.html, sql-unlisten.html). `c` is past the keyword.
template <class Record>
void scan_listen(cursor& c, bool listen, Record& record, scan_result& result,
                 const std::unique_ptr<session_state>& state) {
    change ch;
    ch.expects_tag = true;  // "LISTEN" / "UNLISTEN"
    result.listen = true;
    if (!listen && c.punct('*') && c.at_end()) {
        ch.what = change::op::unlisten_all;
        record(std::move(ch));
        return;
    }
    c.skip_space();
    auto name = channel_name(trim(c.s.substr(c.i)));
    if (!name) {
        result.listen_refusal = "Sluice cannot read this channel name";
        return;
    }
    if (listen && state && state->channels().size() >= session_state::max_channels) {
        result.listen_refusal = "too many channels for one client";
        return;
    }
    ch.what = listen ? change::op::listen : change::op::unlisten;
    if (listen)
        result.listen_channels.push_back(*name);
    ch.name = std::move(*name);
    record(std::move(ch));
}

// One statement: its setting change (recorded) and pins (into `result`).
void scan_statement(std::string_view text, std::uint64_t ready, scan_result& result,
                    std::unique_ptr<session_state>& state) {
    cursor c{text};
    auto record = [&](change ch) {
        if (ch.what == change::op::none && !ch.expects_tag)
            return;
        ch.ready = ready;
        if (!state)
            state = std::make_unique<session_state>();
        state->add_pending(std::move(ch));
    };
    c.skip_space();
    if (c.i >= text.size())
        return;
    switch (lower(text[c.i])) {
        case 's':
            if (c.keyword("set"))
                record(scan_set(c));
            return;
        case 'r':
            if (c.keyword("reset"))
                record(scan_reset(c));
            return;
        case 'd':
            if (c.keyword("discard")) {
                if (c.keyword("all")) {
                    change ch;
                    ch.what = change::op::discard_all;
                    record(std::move(ch));
                    result.unpins |= pin_all;
                } else if (c.keyword("temp") || c.keyword("temporary")) {
                    result.unpins |= pin_temp_table;
                }
            } else if (c.keyword("drop")) {
                result.may_unpin |= pin_temp_table;  // DROP TABLE/VIEW/SEQUENCE of a temporary one
            } else if (c.keyword("deallocate")) {
                (void)c.keyword("prepare");
                if (c.keyword("all")) {
                    result.unpins |= pin_prepared;
                } else {
                    result.may_unpin |= pin_prepared;
                }
            } else if (c.keyword("declare")) {
                // DECLARE name [BINARY] [ASENSITIVE | INSENSITIVE] [[NO] SCROLL] CURSOR [{WITH | WITHOUT} HOLD] FOR
                while (!c.at_end() && !c.keyword("for")) {
                    if (c.keyword("with")) {
                        if (c.keyword("hold"))
                            result.pins |= pin_hold_cursor;
                        continue;
                    }
                    if (c.name().empty())
                        break;
                }
            }
            return;
        case 'c':
            if (c.keyword("create")) {
                if (c.keyword("or"))
                    (void)c.keyword("replace");
                if (!c.keyword("global"))
                    (void)c.keyword("local");
                if (c.keyword("temp") || c.keyword("temporary"))
                    result.pins |= pin_temp_table;
            } else if (c.keyword("close")) {
                if (c.keyword("all")) {
                    result.unpins |= pin_hold_cursor;
                } else {
                    result.may_unpin |= pin_hold_cursor;
                }
            }
            return;
        case 'p':
            if (c.keyword("prepare") && !c.keyword("transaction"))
                result.pins |= pin_prepared;
            return;
        case 'l':
            if (c.keyword("listen"))
                scan_listen(c, /*listen=*/true, record, result, state);
            return;
        case 'u':
            if (c.keyword("unlisten"))
                scan_listen(c, /*listen=*/false, record, result, state);
            return;
        default:
            return;
    }
}

// set_config(name, value, is_local) after the word at `at` (sql-set.html, functions-admin.html).
void scan_set_config(std::string_view text, std::size_t at, std::uint64_t ready, scan_result& result,
                     std::unique_ptr<session_state>& state) {
    result.server_dirty = true;  // unless it is local, which cannot be told before parsing: be safe
    cursor c{text, at};
    change ch;
    ch.what = change::op::set_string;
    std::string value;
    if (!c.punct('(') || !c.string_literal(ch.name) || !c.punct(',') || !c.string_literal(value) || !c.punct(','))
        return;
    if (c.keyword("true"))
        return;
    if (!c.keyword("false") || !c.punct(')'))
        return;
    std::transform(ch.name.begin(), ch.name.end(), ch.name.begin(), lower);
    if (ch.name.empty() || tracked_parameter_index(ch.name) || value.size() > session_state::max_value_bytes)
        return;
    ch.value = std::move(value);
    ch.ready = ready;
    if (!state)
        state = std::make_unique<session_state>();
    state->add_pending(std::move(ch));
}

}  // namespace

std::optional<std::string> channel_name(std::string_view identifier) {
    std::string out;
    if (!identifier.empty() && identifier.front() == '"') {
        std::size_t i = 1;
        bool closed = false;
        while (i < identifier.size()) {
            if (identifier[i] == '"') {
                if (i + 1 < identifier.size() && identifier[i + 1] == '"') {
                    out.push_back('"');
                    i += 2;
                    continue;
                }
                closed = true;
                ++i;
                break;
            }
            out.push_back(identifier[i++]);
        }
        if (!closed || i != identifier.size() || out.empty())
            return std::nullopt;  // unterminated, empty (""), or text after the closing quote
    } else {
        // PostgreSQL folds ASCII letters only (downcase_identifier); other bytes of a UTF-8 name stay.
        for (const char ch : identifier) {
            if (!is_word_char(ch) && ch != '$')
                return std::nullopt;
            out.push_back(lower(ch));
        }
        if (out.empty() || is_digit(out.front()) || out.front() == '$')
            return std::nullopt;
    }
    constexpr std::size_t max_identifier_bytes = 63;  // NAMEDATALEN - 1: longer names are truncated
    if (out.size() > max_identifier_bytes) {
        std::size_t cut = max_identifier_bytes;
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80)
            --cut;
        out.resize(cut);
    }
    return out;
}

std::string describe_pins(std::uint8_t pins) {
    std::string out;
    auto add = [&](std::uint8_t bit, std::string_view what) {
        if ((pins & bit) == 0)
            return;
        if (!out.empty())
            out.append(", ");
        out.append(what);
    };
    add(pin_advisory_lock, "session advisory lock");
    add(pin_temp_table, "temporary table");
    add(pin_hold_cursor, "WITH HOLD cursor");
    add(pin_prepared, "SQL prepared statement");
    return out;
}

scan_result session_state::scan(std::string_view sql, std::uint64_t ready, std::unique_ptr<session_state>& state) {
    scan_result result;
    // Statements: with no ';' before the end (almost every query) the text is one statement, and only its first
    // keyword is looked at; otherwise split it as the server's lexer would.
    std::size_t from = 0;
    const auto* semicolon = static_cast<const char*>(std::memchr(sql.data(), ';', sql.size()));
    if (semicolon == nullptr ||
        std::all_of(semicolon + 1, sql.data() + sql.size(), [](char c) { return is_space(c); })) {
        scan_statement(
            sql.substr(0, semicolon == nullptr ? sql.size() : static_cast<std::size_t>(semicolon - sql.data())), ready,
            result, state);
        from = sql.size();
    }
    while (from < sql.size()) {
        const auto end = statement_end(sql, from);
        if (end == std::string_view::npos) {
            if (from == 0)
                scan_statement(sql, ready, result, state);
            break;
        }
        scan_statement(sql.substr(from, end - from), ready, result, state);
        from = end + 1;
    }
    // Functions, wherever they are called: pg_[try_]advisory_lock[_shared], pg_advisory_unlock_all, set_config.
    for (const char* p = static_cast<const char*>(std::memchr(sql.data(), '_', sql.size())); p != nullptr;) {
        const auto at = static_cast<std::size_t>(p - sql.data());
        if (at >= 8 && iequals_at(sql, at - 8, "advisory")) {
            if (iequals_at(sql, at + 1, "lock")) {
                result.pins |= pin_advisory_lock;
            } else if (iequals_at(sql, at + 1, "unlock_all")) {
                result.unpins |= pin_advisory_lock;
            } else if (iequals_at(sql, at + 1, "unlock")) {
                result.may_unpin |= pin_advisory_lock;  // pg_advisory_unlock[_shared](key): maybe the last one
            }
        } else if (at >= 3 && iequals_at(sql, at - 3, "set") && (at == 3 || !is_word_char(sql[at - 4])) &&
                   iequals_at(sql, at + 1, "config") && (at + 7 >= sql.size() || !is_word_char(sql[at + 7]))) {
            scan_set_config(sql, at + 7, ready, result, state);
        }
        const auto next = at + 1;
        if (next >= sql.size())
            break;
        p = static_cast<const char*>(std::memchr(sql.data() + next, '_', sql.size() - next));
    }
    return result;
}

void session_state::expect_pins(std::uint8_t pins, std::uint8_t unpins, std::uint8_t may_unpin, std::uint64_t ready,
                                std::unique_ptr<session_state>& state) {
    if (pins == 0 && unpins == 0 && (may_unpin == 0 || !state || state->pins_ == 0))
        return;
    if (!state)
        state = std::make_unique<session_state>();
    auto add = [&](change::op what, std::uint8_t kinds) {
        if (kinds == 0)
            return;
        change ch;
        ch.what = what;
        ch.pins = kinds;
        ch.ready = ready;
        state->add_pending(std::move(ch));
    };
    // In this order at their ReadyForQuery: a pin taken after a release in the same Query holds.
    add(change::op::may_unpin, may_unpin);
    add(change::op::unpin, unpins);
    add(change::op::pin, pins);
}

bool session_state::on_pin_check_tag(std::uint64_t ready, std::string_view tag) noexcept {
    if (pin_check_ready_ == 0 || ready != pin_check_ready_ || !tag.starts_with("SELECT "))
        return false;
    pin_check_ready_ = 0;
    tag.remove_prefix(7);
    if (!tag.empty() && tag.back() == '\0')
        tag.remove_suffix(1);
    if (tag != "0" || pins_ == 0)
        return false;
    pins_ = 0;
    return true;
}

void session_state::add_pending(change c) {
    if (pending_.size() >= max_pending)
        return;  // its tag finds no match: the server is reset and the value not remembered
    pending_.push_back(std::move(c));
}

bool session_state::on_set_tag(std::uint64_t ready) noexcept {
    for (auto& c : pending_) {
        if (c.ready == ready && c.expects_tag && !c.tag_seen) {
            c.tag_seen = true;
            return true;
        }
    }
    return false;
}

bool session_state::on_ready(std::uint64_t ready, protocol::transaction_status status) {
    const bool error = error_;
    error_ = false;
    const auto pins_before = pins_;
    std::size_t done = 0;
    while (done < pending_.size() && pending_[done].ready <= ready)
        ++done;
    for (std::size_t i = 0; i < done; ++i) {
        auto& c = pending_[i];
        if (c.what == change::op::pin) {
            pins_ |= c.pins;
        } else if (c.what == change::op::unpin) {
            if (!error)
                pins_ &= static_cast<std::uint8_t>(~c.pins);
        } else if (c.what == change::op::may_unpin) {
            // Even after an error: a statement before it in the same Query may have released something.
            pin_check_wanted_ = pin_check_wanted_ || (pins_ & c.pins) != 0;
        } else if (!error && c.what != change::op::none && (!c.expects_tag || c.tag_seen)) {
            uncommitted_.push_back(std::move(c));
        }
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(done));
    if (status == protocol::transaction_status::idle) {
        pin_check_due_ = pin_check_wanted_ && pins_ != 0;
        pin_check_wanted_ = false;
        if (!error) {
            for (const auto& c : uncommitted_)
                apply(c);
        }
        uncommitted_.clear();
    }
    return pins_ != pins_before;
}

void session_state::apply(const change& c) {
    auto find = [&](std::string_view name) {
        return std::find_if(values_.begin(), values_.end(), [&](const setting& s) { return s.name == name; });
    };
    switch (c.what) {
        case change::op::set_sql:
        case change::op::set_string: {
            auto it = find(c.name);
            if (it == values_.end()) {
                if (values_.size() >= max_values)
                    return;
                values_.push_back({c.name, c.value, c.what == change::op::set_string});
            } else {
                it->value = c.value;
                it->string_literal = c.what == change::op::set_string;
            }
            return;
        }
        case change::op::reset: {
            auto it = find(c.name);
            if (it != values_.end())
                values_.erase(it);
            return;
        }
        case change::op::reset_all:
            values_.clear();
            return;
        case change::op::discard_all:
            values_.clear();
            pins_ = 0;
            channels_changed_ = channels_changed_ || !channels_.empty();
            channels_.clear();
            return;
        case change::op::listen: {
            const auto at = std::lower_bound(channels_.begin(), channels_.end(), c.name);
            if ((at == channels_.end() || *at != c.name) && channels_.size() < max_channels) {
                channels_.insert(at, c.name);
                channels_changed_ = true;
            }
            return;
        }
        case change::op::unlisten: {
            const auto at = std::lower_bound(channels_.begin(), channels_.end(), c.name);
            if (at != channels_.end() && *at == c.name) {
                channels_.erase(at);
                channels_changed_ = true;
            }
            return;
        }
        case change::op::unlisten_all:
            channels_changed_ = channels_changed_ || !channels_.empty();
            channels_.clear();
            return;
        default:
            return;
    }
}

bool session_state::append_restore(std::string& sql) const {
    for (const auto& s : values_) {
        if (s.string_literal) {
            sql.append("SELECT pg_catalog.set_config(");
            append_quoted_literal(sql, s.name);
            sql.append(", ");
            append_quoted_literal(sql, s.value);
            sql.append(", false);");
        } else {
            sql.append("SET ").append(s.name).append(" = ").append(s.value).append(";");
        }
    }
    return !values_.empty();
}

std::optional<std::string_view> session_state::value(std::string_view name) const noexcept {
    for (const auto& s : values_) {
        if (s.name == name)
            return std::string_view(s.value);
    }
    return std::nullopt;
}

}  // namespace sluice::session
