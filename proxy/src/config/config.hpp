#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/databases.hpp"
#include "config/diagnostic.hpp"
#include "config/ini.hpp"
#include "config/settings.hpp"

namespace sluice::config {

// A whole configuration: PgBouncer's file format, read once at startup and again on RELOAD. Immutable once
// loaded; share it between threads as a const object (e.g. shared_ptr<const config>).
//
// Sections: [pgbouncer] (alias [sluice]) holds settings, [databases] and [users] the per-database and
// per-user entries, [peers] is accepted and ignored with a warning; any other section is an error.
// Setting keys are case-insensitive (PgBouncer 1.18 compares them exactly; accepting more is harmless).
// Unknown setting keys are warnings, so that a file written for a newer PgBouncer still loads; PgBouncer
// refuses them.
struct config {
    ::sluice::config::settings settings;
    std::vector<database_entry> databases;   // file order, without "*"; later duplicates replace earlier ones
    std::optional<database_entry> fallback;  // the "*" entry, used for any database name not listed
    std::vector<user_entry> users;
    std::vector<diagnostic> warnings;  // unknown or unused keys, ignored sections, replaced entries
    std::string path;                  // the main file as given to the loader
};

// Either a configuration or every error found; a file with any error is rejected as a whole, so a bad
// RELOAD leaves the running configuration untouched.
struct load_result {
    std::optional<::sluice::config::config> value;
    std::vector<diagnostic> errors;

    [[nodiscard]] bool ok() const { return value.has_value(); }
};

// Loads `path` from disk; %include files are read from disk too.
[[nodiscard]] load_result load_config_file(const std::string& path);

// Loads `path` and its includes through `reader`.
[[nodiscard]] load_result load_config_file(const std::string& path, const file_reader& reader);

// Loads `text` as the contents of `virtual_name`, which appears in diagnostics and is the base for relative
// %include and setting paths. %include goes through `reader`; an empty reader makes %include an error.
[[nodiscard]] load_result load_config_string(std::string_view text, const std::string& virtual_name,
                                             const file_reader& reader = file_reader(read_file_from_disk));

// The entry for the database name a client asked for: the exact (case-sensitive) [databases] name, else the
// "*" fallback, else nullptr. The pointer is valid as long as `cfg`.
[[nodiscard]] const database_entry* find_database(const config& cfg, std::string_view name);

// Like find_database, but returns a copy completed for the request: `name` is the requested name and `dbname`
// is set (a fallback or an entry without dbname= uses the requested name, as PgBouncer does).
[[nodiscard]] std::optional<database_entry> resolve_database(const config& cfg, std::string_view name);

// The [users] entry for `name` (case-sensitive), or nullptr.
[[nodiscard]] const user_entry* find_user(const config& cfg, std::string_view name);

}  // namespace sluice::config
