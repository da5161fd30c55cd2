#include "config/values.hpp"

#include <charconv>
#include <cmath>

namespace sluice::config {

parsed<std::int64_t> parse_integer(std::string_view text, std::int64_t min, std::int64_t max) {
    std::int64_t value = 0;
    const auto* const end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end || value < min || value > max) {
        std::string range;
        if (max == INT64_MAX || max == INT32_MAX) {
            range = min == 0 ? "a non-negative integer" : "an integer >= " + std::to_string(min);
        } else {
            range = "an integer " + std::to_string(min) + ".." + std::to_string(max);
        }
        return {0, "expected " + range + ", got " + text::quoted(text)};
    }
    return {value, {}};
}

parsed<bool> parse_bool(std::string_view text) {
    for (std::string_view yes : {"on", "true", "yes"}) {
        if (text::iequals(text, yes)) {
            return {true, {}};
        }
    }
    for (std::string_view no : {"off", "false", "no"}) {
        if (text::iequals(text, no)) {
            return {false, {}};
        }
    }
    const auto number = parse_integer(text, 0, INT64_MAX);
    if (!number.ok()) {
        return {false, "expected a boolean (0 or 1, on/off, true/false, yes/no), got " + text::quoted(text)};
    }
    return {number.value != 0, {}};
}

parsed<std::chrono::microseconds> parse_seconds(std::string_view text) {
    constexpr double max_seconds = 1e9;
    double seconds = 0;
    const auto* const end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, seconds);
    if (text.empty() || ec != std::errc{} || ptr != end || !std::isfinite(seconds) || seconds < 0 ||
        seconds > max_seconds) {
        return {{},
                "expected a non-negative number of seconds (fractions allowed, e.g. 0.5), got " + text::quoted(text)};
    }
    return {std::chrono::microseconds(std::llround(seconds * 1e6)), {}};
}

std::string format_seconds(std::chrono::microseconds value) {
    const auto count = value.count();
    std::string out = std::to_string(count / 1'000'000);
    if (const auto fraction = count % 1'000'000; fraction != 0) {
        auto digits = std::to_string(fraction);
        digits.insert(0, 6 - digits.size(), '0');
        while (digits.back() == '0') {
            digits.pop_back();
        }
        out += '.' + digits;
    }
    return out;
}

}  // namespace sluice::config
