// Fuzz target for PgBouncer's auth_file format (parse_userlist) and, through it, the stored-secret parser.
//
// Input: the file's text. Checks that a parse either succeeds or stops at a line that exists with a reason, and that
// a successful parse holds no more users than lines and never an empty user name.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "auth/secret.hpp"
#include "auth/userlist.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto text = sluice::fuzz::as_text(data, size);
    const auto result = sluice::auth::parse_userlist(text);
    std::size_t lines = 1;
    for (const char c : text) {
        lines += c == '\n' ? 1 : 0;
    }
    if (!result.ok()) {
        SLUICE_FUZZ_CHECK(result.error->line >= 1 && result.error->line <= lines);
        SLUICE_FUZZ_CHECK(!result.error->reason.empty());
        return 0;
    }
    SLUICE_FUZZ_CHECK(result.users.size() <= lines);
    SLUICE_FUZZ_CHECK(result.users.find("") == nullptr);
    return 0;
}
