#pragma once

#include <string>
#include <string_view>
#include <vector>

// Small string helpers shared by the config parsers. ASCII only: config keywords are ASCII, and values that
// are not keywords are never case-folded.
namespace sluice::config::text {

[[nodiscard]] bool is_space(char c);
[[nodiscard]] std::string_view trim(std::string_view s);
[[nodiscard]] std::string to_lower(std::string_view s);
[[nodiscard]] bool iequals(std::string_view a, std::string_view b);

// Splits on commas, trims each item and drops empty items: "a, b,,c " -> {"a", "b", "c"}.
[[nodiscard]] std::vector<std::string> split_list(std::string_view s);

// `"value"` with embedded double quotes doubled, for diagnostics that show what was written.
[[nodiscard]] std::string quoted(std::string_view s);

}  // namespace sluice::config::text
