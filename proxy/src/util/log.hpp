#pragma once
// Operator log. One line per event, PgBouncer-like: timestamp, pid, level, the connection it concerns
// ("C-<id> db/user@addr" or "S-<id> db/user@host:port") and the message. Secrets never go through here: callers log
// user names and SQLSTATEs, never passwords, SCRAM messages or query texts.
//
// Thread-safety: log lines are written with a single write(2) each, so lines from several workers never interleave.

#include <atomic>
#include <sstream>
#include <string>
#include <string_view>

namespace sluice::log {

enum class level { debug = 0, info = 1, warning = 2, error = 3, fatal = 4 };

// Minimum level printed; `verbose` in the config lowers it to debug.
void set_min_level(level l) noexcept;
[[nodiscard]] bool enabled(level l) noexcept;
// Redirect to a file (logfile setting); empty means stderr. Returns false if the file cannot be opened.
[[nodiscard]] bool set_file(const std::string& path);
void write(level l, std::string_view line) noexcept;

}  // namespace sluice::log

// Usage: SLUICE_LOG(info, "C-" << id << " " << db << "/" << user << ": login ok");
// The stream expression is evaluated only when the level is enabled.
#define SLUICE_LOG(lvl, expr)                                                          \
    do {                                                                               \
        if (::sluice::log::enabled(::sluice::log::level::lvl)) {                       \
            std::ostringstream sluice_log_stream_;                                     \
            sluice_log_stream_ << expr;                                                \
            ::sluice::log::write(::sluice::log::level::lvl, sluice_log_stream_.str()); \
        }                                                                              \
    } while (0)
