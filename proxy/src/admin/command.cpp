#include "admin/command.hpp"

#include <algorithm>
#include <array>
#include <charconv>

#include "sluice/protocol/error.hpp"

namespace sluice::admin {

namespace {

// PgBouncer 1.25's SHOW subjects (admin.c show_map), lower case.
constexpr std::array<std::string_view, 22> show_subjects{
    "active_sockets", "clients", "config", "databases",      "dns_hosts",    "dns_zones", "fds",
    "help",           "lists",   "mem",    "peer_pools",     "peers",        "pools",     "servers",
    "sockets",        "state",   "stats",  "stats_averages", "stats_totals", "totals",    "users",
    "version",
};

// PgBouncer's fake_param_list: parameters drivers SHOW or SET on connect.
constexpr std::array<std::string_view, 6> ignored_parameters{
    "client_encoding",    "default_transaction_isolation", "standard_conforming_strings", "datestyle", "timezone",
    "extra_float_digits",
};

// PgBouncer formats errors into a 1024-byte buffer; a longer query is cut there.
constexpr std::size_t max_message_size = 1023;

bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool is_word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

// A cursor over the query text; every method either advances past what it recognised or leaves the position alone.
class scanner {
  public:
    explicit scanner(std::string_view text) : text_(text) {}

    // Skips whitespace; true if there was any.
    bool skip_ws() {
        const auto start = pos_;
        while (pos_ < text_.size() && is_ws(text_[pos_]))
            ++pos_;
        return pos_ != start;
    }

    // True at the optional terminator: [";" ws*] then the end. Does not advance.
    [[nodiscard]] bool at_end_of_command() const {
        auto p = pos_;
        if (p < text_.size() && text_[p] == ';') {
            ++p;
            while (p < text_.size() && is_ws(text_[p]))
                ++p;
        }
        return p == text_.size();
    }

    // A bare word ([A-Za-z0-9_]+) or a double-quoted one with "" standing for one quote; the text goes to `out`
    // unquoted. False (nothing consumed) if there is no word or the quote is not closed.
    bool word(std::string& out) {
        if (pos_ < text_.size() && text_[pos_] == '"')
            return quoted('"', out);
        auto end = pos_;
        while (end < text_.size() && is_word_char(text_[end]))
            ++end;
        if (end == pos_)
            return false;
        out.assign(text_.substr(pos_, end - pos_));
        pos_ = end;
        return true;
    }

    // A single-quoted string with '' standing for one quote.
    bool string_literal(std::string& out) { return pos_ < text_.size() && text_[pos_] == '\'' && quoted('\'', out); }

    // The bare keyword `kw` (case-insensitive) not followed by another word character.
    bool keyword(std::string_view kw) {
        if (text_.size() - pos_ < kw.size() || !iequals(text_.substr(pos_, kw.size()), kw))
            return false;
        if (pos_ + kw.size() < text_.size() && is_word_char(text_[pos_ + kw.size()]))
            return false;
        pos_ += kw.size();
        return true;
    }

    bool consume(char c) {
        if (pos_ < text_.size() && text_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }

  private:
    bool quoted(char q, std::string& out) {
        std::string value;
        for (auto p = pos_ + 1; p < text_.size(); ++p) {
            if (text_[p] != q) {
                value.push_back(text_[p]);
            } else if (p + 1 < text_.size() && text_[p + 1] == q) {
                value.push_back(q);
                ++p;
            } else {
                out = std::move(value);
                pos_ = p + 1;
                return true;
            }
        }
        return false;
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

parse_result failure(std::string message) {
    if (message.size() > max_message_size) {
        message.resize(max_message_size);
        // Do not leave half a UTF-8 sequence at the end: drop continuation bytes, then their lead byte.
        while (!message.empty() && (static_cast<unsigned char>(message.back()) & 0xC0) == 0x80)
            message.pop_back();
        if (!message.empty() && static_cast<unsigned char>(message.back()) >= 0xC0)
            message.pop_back();
    }
    return {std::nullopt, protocol::sqlstate::syntax_error, std::move(message)};
}

parse_result invalid_command(std::string_view sql) {
    return failure("invalid command '" + std::string(sql) + "', use SHOW HELP;");
}

parse_result success(command cmd) {
    return {std::move(cmd), {}, {}};
}

// SET key (= | TO) value, after "set" and its whitespace.
parse_result parse_set(scanner& s, std::string_view sql) {
    command cmd;
    cmd.kind = command_kind::set;
    if (!s.word(cmd.key))
        return invalid_command(sql);
    s.skip_ws();
    // TO is a word of its own: a bare key swallows adjacent word characters, so "set keyto 1" has no TO.
    if (!s.consume('=') && !s.keyword("to"))
        return invalid_command(sql);
    s.skip_ws();
    if (!s.string_literal(cmd.value) && !s.word(cmd.value))
        return invalid_command(sql);
    s.skip_ws();
    if (!s.at_end_of_command())
        return invalid_command(sql);
    if (cmd.key.empty())
        return failure("bad arguments");
    return success(std::move(cmd));
}

// Decimal digits only, within uint64 (PgBouncer reads it with %llu).
std::optional<std::uint64_t> parse_client_id(std::string_view text) {
    if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

}  // namespace

parse_result parse_command(std::string_view sql) {
    scanner s(sql);
    s.skip_ws();
    if (s.at_end_of_command())
        return success(command{});

    {
        scanner set_scanner = s;
        if (set_scanner.keyword("set") && set_scanner.skip_ws())
            return parse_set(set_scanner, sql);
    }

    std::string name;
    std::string arg;
    if (!s.word(name))
        return invalid_command(sql);
    const bool ws_after_name = s.skip_ws();
    if (!s.at_end_of_command()) {
        if (!ws_after_name || !s.word(arg))
            return invalid_command(sql);
        s.skip_ws();
        if (!s.at_end_of_command())
            return invalid_command(sql);
    }
    // As in PgBouncer, an empty quoted argument ("") counts as no argument.

    const std::string verb = to_lower(name);
    command cmd;
    if (verb == "show" || verb == "select") {
        cmd.kind = command_kind::show;
        cmd.subject = to_lower(arg);
        if (!is_show_subject(cmd.subject))
            return invalid_command(sql);
    } else if (verb == "pause" || verb == "resume" || verb == "reconnect" || verb == "kill" || verb == "wait_close") {
        cmd.kind = verb == "pause"       ? command_kind::pause
                   : verb == "resume"    ? command_kind::resume
                   : verb == "reconnect" ? command_kind::reconnect
                   : verb == "kill"      ? command_kind::kill
                                         : command_kind::wait_close;
        cmd.database = std::move(arg);
    } else if (verb == "enable" || verb == "disable") {
        cmd.kind = verb == "enable" ? command_kind::enable : command_kind::disable;
        if (arg.empty())
            return failure("a database is required");
        cmd.database = std::move(arg);
    } else if (verb == "kill_client") {
        cmd.kind = command_kind::kill_client;
        const auto id = parse_client_id(arg);
        if (!id)
            return failure("invalid client pointer supplied");
        cmd.client_id = *id;
    } else if (verb == "suspend" || verb == "reload") {
        cmd.kind = verb == "suspend" ? command_kind::suspend : command_kind::reload;
        if (!arg.empty())
            return invalid_command(sql);
    } else if (verb == "shutdown") {
        cmd.kind = command_kind::shutdown;
        if (arg.empty()) {
            cmd.shutdown = shutdown_mode::immediate;
        } else if (iequals(arg, "wait_for_servers")) {
            cmd.shutdown = shutdown_mode::wait_for_servers;
        } else if (iequals(arg, "wait_for_clients")) {
            cmd.shutdown = shutdown_mode::wait_for_clients;
        } else {
            return invalid_command(sql);
        }
    } else {
        return invalid_command(sql);
    }
    return success(std::move(cmd));
}

bool command_needs_admin(const command& cmd) {
    switch (cmd.kind) {
        case command_kind::empty:
            return false;
        case command_kind::show:
            return cmd.subject == "fds";
        case command_kind::set:
            return !is_ignored_parameter(cmd.key);
        default:
            return true;
    }
}

std::string command_tag(const command& cmd) {
    switch (cmd.kind) {
        case command_kind::empty:
            return {};
        case command_kind::show:
            return "SHOW";
        case command_kind::pause:
            return "PAUSE";
        case command_kind::resume:
            return "RESUME";
        case command_kind::reconnect:
            return "RECONNECT";
        case command_kind::kill:
            return "KILL";
        case command_kind::kill_client:
            return "KILL_CLIENT";
        case command_kind::suspend:
            return "SUSPEND";
        case command_kind::reload:
            return "RELOAD";
        case command_kind::shutdown:
            return "SHUTDOWN";
        case command_kind::wait_close:
            return "WAIT_CLOSE";
        case command_kind::set:
            return is_ignored_parameter(cmd.key) ? std::string("SET") : "SET " + cmd.key + "=" + cmd.value;
        case command_kind::enable:
            return "ENABLE";
        case command_kind::disable:
            return "DISABLE";
    }
    return {};
}

bool is_ignored_parameter(std::string_view name) {
    return std::any_of(ignored_parameters.begin(), ignored_parameters.end(),
                       [&](std::string_view p) { return iequals(p, name); });
}

bool is_show_subject(std::string_view lower_case_subject) {
    return std::find(show_subjects.begin(), show_subjects.end(), lower_case_subject) != show_subjects.end() ||
           std::find(ignored_parameters.begin(), ignored_parameters.end(), lower_case_subject) !=
               ignored_parameters.end();
}

}  // namespace sluice::admin
