#pragma once

#include <string>

namespace sluice::config {

// One configuration error or warning, pointing at the line that caused it.
// `line` is 1-based; 0 means the problem concerns the file as a whole (e.g. it cannot be read).
// `key` names the setting, database or user the line defines; empty for structural problems.
struct diagnostic {
    std::string file;
    int line = 0;
    std::string key;
    std::string message;

    // "file:line: key: message", omitting the parts that are empty or zero.
    [[nodiscard]] std::string to_string() const;

    friend bool operator==(const diagnostic&, const diagnostic&) = default;
};

}  // namespace sluice::config
