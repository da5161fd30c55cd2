#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/text.hpp"

// Scalar value syntax shared by [pgbouncer] settings, [databases] connection strings and [users] entries.
// Every parser takes the trimmed value text and returns the value or an error phrase without file, line or
// key (the caller adds those), in the form `expected <what>, got "<text>"`.
namespace sluice::config {

template <class T>
struct parsed {
    T value{};
    std::string error;  // empty on success

    [[nodiscard]] bool ok() const { return error.empty(); }
};

// Decimal integer in [min, max]; no sign for non-negative ranges, no unit suffix.
[[nodiscard]] parsed<std::int64_t> parse_integer(std::string_view text, std::int64_t min, std::int64_t max);

// PgBouncer booleans are integers (0 false, anything else true); Sluice also accepts on/off, true/false,
// yes/no in any case.
[[nodiscard]] parsed<bool> parse_bool(std::string_view text);

// PgBouncer time settings: a non-negative decimal number of seconds, fractions allowed ("0.5", "1e2").
// PgBouncer documents no unit suffixes and rejects "5min", so Sluice does too. Resolution is 1 microsecond;
// at most 10^9 seconds.
[[nodiscard]] parsed<std::chrono::microseconds> parse_seconds(std::string_view text);

// Formats like PgBouncer's SHOW CONFIG: "3600", "0.5".
[[nodiscard]] std::string format_seconds(std::chrono::microseconds value);

// A keyword of an enum, compared case-insensitively.
template <class E>
struct enum_name {
    std::string_view name;
    E value;
};

template <class E>
[[nodiscard]] parsed<E> parse_enum(std::string_view text, std::span<const enum_name<E>> names) {
    std::string expected;
    for (const auto& entry : names) {
        if (text::iequals(entry.name, text)) {
            return {entry.value, {}};
        }
        expected += expected.empty() ? "" : ", ";
        expected += entry.name;
    }
    return {{}, "expected one of " + expected + ", got " + text::quoted(text)};
}

template <class E>
[[nodiscard]] std::string_view enum_to_string(E value, std::span<const enum_name<E>> names) {
    for (const auto& entry : names) {
        if (entry.value == value) {
            return entry.name;
        }
    }
    return "?";
}

}  // namespace sluice::config
