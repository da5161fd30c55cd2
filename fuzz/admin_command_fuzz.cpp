// Fuzz target for the admin console's command parser (parse_command): the text of any Query a client of the
// `pgbouncer` database sends, before any privilege check.
//
// Input: the query string. Checks that every input yields either a command or PgBouncer's syntax error, and that
// what a parsed command carries is consistent with its kind.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "admin/command.hpp"
#include "fuzz_support.hpp"

namespace {

using namespace sluice::admin;

bool is_lower(std::string_view s) {
    for (const char c : s) {
        if (c >= 'A' && c <= 'Z') {
            return false;
        }
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto sql = sluice::fuzz::as_text(data, size);
    const auto result = parse_command(sql);
    if (!result.ok()) {
        SLUICE_FUZZ_CHECK(result.sqlstate == "42601");
        SLUICE_FUZZ_CHECK(!result.error.empty() && result.error.size() <= 1023);  // PgBouncer's message buffer
        return 0;
    }
    SLUICE_FUZZ_CHECK(result.error.empty());
    const command& cmd = *result.cmd;
    switch (cmd.kind) {
        case command_kind::empty:
            for (const char c : sql) {
                SLUICE_FUZZ_CHECK(c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';');
            }
            break;
        case command_kind::show:
            SLUICE_FUZZ_CHECK(is_lower(cmd.subject));
            SLUICE_FUZZ_CHECK(is_show_subject(cmd.subject));
            break;
        case command_kind::enable:
        case command_kind::disable:
            SLUICE_FUZZ_CHECK(!cmd.database.empty());
            break;
        case command_kind::set:
            SLUICE_FUZZ_CHECK(!cmd.key.empty());
            break;
        default:
            break;
    }
    // A parsed command stays within what the query said: no field is longer than the query itself.
    SLUICE_FUZZ_CHECK(cmd.subject.size() <= sql.size() && cmd.database.size() <= sql.size());
    SLUICE_FUZZ_CHECK(cmd.key.size() <= sql.size() && cmd.value.size() <= sql.size());
    const std::string tag = command_tag(cmd);
    SLUICE_FUZZ_CHECK(tag.empty() == (cmd.kind == command_kind::empty));
    static_cast<void>(command_needs_admin(cmd));
    return 0;
}
