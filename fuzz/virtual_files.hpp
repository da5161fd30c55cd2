#pragma once
// An in-memory file system for the config targets: the input is NUL-separated parts; part 0 is the main file and
// "%include x3.ini" (any path whose last digit is 3) reads part 3 modulo the number of parts. A path without a digit
// does not exist. Includes are expanded in place, so a file that includes another twice, which includes a third twice,
// and so on, expands exponentially (2^10 copies at the nesting limit); config files are trusted, so the parser does
// not bound that, and the reader fails after `max_reads` reads instead to keep every run short.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "config/ini.hpp"
#include "fuzz_support.hpp"

namespace sluice::fuzz {

inline constexpr const char* main_file = "/etc/sluice/sluice.ini";

class virtual_files {
  public:
    static constexpr int max_reads = 32;

    explicit virtual_files(std::string_view input) : parts_(split(input, '\0')) {}

    [[nodiscard]] std::string_view main() const { return parts_[0]; }

    // A file_reader over the parts; the object must outlive every use of the reader.
    [[nodiscard]] config::file_reader reader() {
        return [this](const std::string& path) -> config::read_outcome {
            SLUICE_FUZZ_CHECK(!path.empty());
            if (++reads_ > max_reads) {
                return {std::nullopt, "too many reads"};
            }
            const auto digit = path.find_last_of("0123456789");
            if (digit == std::string::npos) {
                return {std::nullopt, "No such file or directory"};
            }
            const auto& part = parts_[static_cast<std::size_t>(path[digit] - '0') % parts_.size()];
            lines_ += count_lines(part);
            return {std::string(part), {}};
        };
    }

    // Lines of every text handed out so far, the main file included: no parser yields more entries than that.
    [[nodiscard]] std::size_t lines_read() const { return lines_ + count_lines(parts_[0]); }

  private:
    static std::size_t count_lines(std::string_view text) {
        std::size_t n = 1;
        for (const char c : text) {
            n += c == '\n' ? 1 : 0;
        }
        return n;
    }

    std::vector<std::string_view> parts_;
    int reads_ = 0;
    std::size_t lines_ = 0;
};

}  // namespace sluice::fuzz
