// Fuzz target for the PgBouncer-format ini reader (parse_ini): sections, keys, quoted names, comments and %include.
//
// Input: the main file and the files it may include, NUL-separated (see virtual_files.hpp). Checks the structural
// promises of ini_entry and ini_section for whatever the parser accepts.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/ini.hpp"
#include "config/text.hpp"
#include "fuzz_support.hpp"
#include "virtual_files.hpp"

namespace {

bool has_upper(std::string_view s) {
    for (const char c : s) {
        if (c >= 'A' && c <= 'Z') {
            return true;
        }
    }
    return false;
}

bool is_trimmed(std::string_view s) {
    return s.empty() || (!sluice::config::text::is_space(s.front()) && !sluice::config::text::is_space(s.back()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    sluice::fuzz::virtual_files files(sluice::fuzz::as_text(data, size));
    const auto result = sluice::config::parse_ini(files.main(), sluice::fuzz::main_file, files.reader());

    SLUICE_FUZZ_CHECK(result.entries.size() + result.sections.size() <= files.lines_read());
    for (const auto& entry : result.entries) {
        SLUICE_FUZZ_CHECK(!entry.section.empty() && !has_upper(entry.section));
        SLUICE_FUZZ_CHECK(!entry.key.empty());
        SLUICE_FUZZ_CHECK(is_trimmed(entry.value));
        SLUICE_FUZZ_CHECK(entry.value.find('\n') == std::string_view::npos);
        SLUICE_FUZZ_CHECK(!entry.file.empty() && entry.line >= 1);
    }
    for (const auto& section : result.sections) {
        SLUICE_FUZZ_CHECK(!section.name.empty() && !has_upper(section.name) && is_trimmed(section.name));
        SLUICE_FUZZ_CHECK(!section.file.empty() && section.line >= 1);
    }
    for (const auto& error : result.errors) {
        SLUICE_FUZZ_CHECK(!error.message.empty() && error.line >= 0);
        SLUICE_FUZZ_CHECK(!error.to_string().empty());
    }
    return 0;
}
