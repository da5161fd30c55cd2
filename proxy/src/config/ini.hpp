#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/diagnostic.hpp"

namespace sluice::config {

// A PgBouncer-style ini reader: no interpretation of keys or values, only structure.
//
// Format (PgBouncer's "ini" format, docs: pgbouncer.ini "Description" and "Include directive"):
//   [section]            section names are compared case-insensitively and stored lower-cased
//   key = value          key and value are trimmed; the value is kept verbatim (no unquoting, no escapes)
//   "a ""b"" c" = value  a key may be an SQL-style quoted identifier ("" stands for one "), used by
//                        [databases] for names with characters other than _0-9A-Za-z
//   ; comment, # comment only at the start of a line; later in a line ';' and '#' are ordinary text
//   %include path        textual inclusion: the included file continues the current section and may
//                        change it for the lines that follow
// Sluice choices that differ from PgBouncer: a relative %include path is resolved against the directory
// of the including file (PgBouncer uses its working directory); includes nest at most
// `max_include_depth` levels and a file that includes itself, directly or not, is an error.

inline constexpr int max_include_depth = 10;

struct ini_entry {
    std::string section;  // lower-cased
    std::string key;      // as written; for a quoted key, the unquoted name
    std::string value;    // trimmed, otherwise verbatim; may be empty
    std::string file;     // the file the line is in, as opened (relative include paths already resolved)
    int line = 0;         // 1-based
};

// A section header as it appeared, so that empty or unknown sections can be reported too.
struct ini_section {
    std::string name;  // lower-cased
    std::string file;
    int line = 0;
};

// Entries in file order with includes expanded in place. On any error the entries that did parse are
// still returned, so that the caller can report every problem at once; callers must not use a result
// with errors as a configuration.
struct ini_result {
    std::vector<ini_entry> entries;
    std::vector<ini_section> sections;
    std::vector<diagnostic> errors;
};

// Contents of a file, or why it could not be read (a strerror-style sentence, no file name).
struct read_outcome {
    std::optional<std::string> text;
    std::string error;
};

// How includes (and, for parse_ini_file, the main file) are read. Tests inject a map-backed reader.
using file_reader = std::function<read_outcome(const std::string& path)>;

// Reads a whole file from disk; refuses files larger than 16 MiB (a config file that big is a mistake).
[[nodiscard]] read_outcome read_file_from_disk(const std::string& path);

// Parses `text` as if it were the contents of `file_name`, which is used in diagnostics and as the base for
// relative %include paths. An empty `reader` makes every %include an error.
[[nodiscard]] ini_result parse_ini(std::string_view text, const std::string& file_name, const file_reader& reader);

// Reads `path` with `reader` and parses it; an unreadable main file is one error with line 0.
[[nodiscard]] ini_result parse_ini_file(const std::string& path, const file_reader& reader);

}  // namespace sluice::config
