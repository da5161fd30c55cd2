#include "config/ini.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/text.hpp"

namespace sluice::config {

std::string diagnostic::to_string() const {
    std::string out = file;
    if (line > 0) {
        out += ':' + std::to_string(line);
    }
    if (!key.empty()) {
        out += (out.empty() ? "" : ": ") + key;
    }
    out += (out.empty() ? "" : ": ") + message;
    return out;
}

read_outcome read_file_from_disk(const std::string& path) {
    constexpr std::uintmax_t max_size = 16U << 20U;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return {std::nullopt, std::strerror(errno)};
    }
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        return {std::nullopt, "is a directory"};
    }
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec && size > max_size) {
        return {std::nullopt, "larger than 16 MiB"};
    }
    std::ostringstream contents;
    contents << in.rdbuf();
    if (in.bad()) {
        return {std::nullopt, "read error"};
    }
    return {std::move(contents).str(), {}};
}

namespace {

// Expands one file at a time; the current section is shared across includes (textual inclusion).
class ini_parser {
  public:
    explicit ini_parser(const file_reader& reader) : reader_(reader) {}

    void parse_text(std::string_view text, const std::string& file_name) {
        include_stack_.push_back(normalized(file_name));
        int line_number = 0;
        bool first_line = true;
        while (!text.empty()) {
            const auto newline = text.find('\n');
            auto line = text.substr(0, newline);
            text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
            ++line_number;
            if (first_line && line.starts_with("\xEF\xBB\xBF")) {
                line.remove_prefix(3);  // UTF-8 byte order mark written by some editors
            }
            first_line = false;
            parse_line(text::trim(line), file_name, line_number);
        }
        include_stack_.pop_back();
    }

    ini_result take_result() { return std::move(result_); }

    void error(const std::string& file, int line, std::string message) {
        result_.errors.push_back({file, line, {}, std::move(message)});
    }

  private:
    static std::string normalized(const std::string& path) {
        return std::filesystem::path(path).lexically_normal().generic_string();
    }

    void parse_line(std::string_view line, const std::string& file, int line_number) {
        if (line.empty() || line.front() == ';' || line.front() == '#') {
            return;
        }
        if (line.front() == '[') {
            parse_section(line, file, line_number);
        } else if (line.front() == '%') {
            parse_directive(line, file, line_number);
        } else {
            parse_key_value(line, file, line_number);
        }
    }

    void parse_section(std::string_view line, const std::string& file, int line_number) {
        if (line.back() != ']') {
            error(file, line_number, "section header must end with ']'");
            return;
        }
        const auto name = text::trim(line.substr(1, line.size() - 2));
        if (name.empty()) {
            error(file, line_number, "empty section name");
            return;
        }
        section_ = text::to_lower(name);
        result_.sections.push_back({section_, file, line_number});
    }

    void parse_directive(std::string_view line, const std::string& file, int line_number) {
        constexpr std::string_view include = "%include";
        if (!line.starts_with(include) || (line.size() > include.size() && !text::is_space(line[include.size()]))) {
            error(file, line_number, "unknown directive; only %include is supported");
            return;
        }
        const auto target = text::trim(line.substr(include.size()));
        if (target.empty()) {
            error(file, line_number, "%include needs a file name");
            return;
        }
        include_file(std::string(target), file, line_number);
    }

    void include_file(const std::string& target, const std::string& from_file, int line_number) {
        std::filesystem::path path(target);
        if (path.is_relative()) {
            path = std::filesystem::path(from_file).parent_path() / path;
        }
        const auto path_name = path.lexically_normal().string();
        if (std::find(include_stack_.begin(), include_stack_.end(), normalized(path_name)) != include_stack_.end()) {
            error(from_file, line_number, "%include cycle: " + text::quoted(path_name) + " is already being read");
            return;
        }
        // The stack holds the main file plus one entry per nesting level.
        if (static_cast<int>(include_stack_.size()) > max_include_depth) {
            error(from_file, line_number,
                  "%include nested more than " + std::to_string(max_include_depth) + " levels deep");
            return;
        }
        if (!reader_) {
            error(from_file, line_number, "cannot read included file " + text::quoted(path_name) + ": no file reader");
            return;
        }
        const auto contents = reader_(path_name);
        if (!contents.text) {
            error(from_file, line_number,
                  "cannot read included file " + text::quoted(path_name) + ": " + contents.error);
            return;
        }
        parse_text(*contents.text, path_name);
    }

    void parse_key_value(std::string_view line, const std::string& file, int line_number) {
        std::string key;
        std::string_view rest;
        if (line.front() == '"') {
            // SQL identifier quoting: "" inside the quotes is one literal double quote.
            std::size_t i = 1;
            bool closed = false;
            while (i < line.size()) {
                if (line[i] == '"') {
                    if (i + 1 < line.size() && line[i + 1] == '"') {
                        key += '"';
                        i += 2;
                        continue;
                    }
                    closed = true;
                    ++i;
                    break;
                }
                key += line[i++];
            }
            if (!closed) {
                error(file, line_number, "unterminated quoted name");
                return;
            }
            rest = text::trim(line.substr(i));
            if (rest.empty() || rest.front() != '=') {
                error(file, line_number, "expected '=' after quoted name");
                return;
            }
            rest.remove_prefix(1);
        } else {
            const auto equals = line.find('=');
            if (equals == std::string_view::npos) {
                error(file, line_number, "expected 'key = value', a [section] or %include");
                return;
            }
            key = std::string(text::trim(line.substr(0, equals)));
            rest = line.substr(equals + 1);
        }
        if (key.empty()) {
            error(file, line_number, "missing key before '='");
            return;
        }
        if (section_.empty()) {
            error(file, line_number, "'" + key + "' appears before any [section]");
            return;
        }
        result_.entries.push_back({section_, std::move(key), std::string(text::trim(rest)), file, line_number});
    }

    const file_reader& reader_;
    std::string section_;
    std::vector<std::string> include_stack_;
    ini_result result_;
};

}  // namespace

ini_result parse_ini(std::string_view text, const std::string& file_name, const file_reader& reader) {
    ini_parser parser(reader);
    parser.parse_text(text, file_name);
    return parser.take_result();
}

ini_result parse_ini_file(const std::string& path, const file_reader& reader) {
    if (!reader) {
        return {{}, {}, {{path, 0, {}, "cannot read config file: no file reader"}}};
    }
    const auto contents = reader(path);
    if (!contents.text) {
        return {{}, {}, {{path, 0, {}, "cannot read config file: " + contents.error}}};
    }
    return parse_ini(*contents.text, path, reader);
}

}  // namespace sluice::config
