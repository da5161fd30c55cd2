// Fuzz target for the whole configuration load from text (load_config_string): the ini reader, every [pgbouncer]
// setting's value parser, [databases] and [users] connection strings, and the cross-checks between them.
//
// Input: the main file and the files it may include, NUL-separated (see virtual_files.hpp). Checks that a load either
// yields a configuration or errors, and that a loaded configuration answers lookups of the names it defines.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.hpp"
#include "config/databases.hpp"
#include "config/settings.hpp"
#include "fuzz_support.hpp"
#include "virtual_files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace sluice::config;
    sluice::fuzz::virtual_files files(sluice::fuzz::as_text(data, size));
    const auto result = load_config_string(files.main(), sluice::fuzz::main_file, files.reader());

    SLUICE_FUZZ_CHECK(result.ok() == result.errors.empty());
    for (const auto& error : result.errors) {
        SLUICE_FUZZ_CHECK(!error.message.empty() && !error.to_string().empty());
    }
    if (!result.ok()) {
        return 0;
    }
    const config& cfg = *result.value;
    SLUICE_FUZZ_CHECK(cfg.path == sluice::fuzz::main_file);
    SLUICE_FUZZ_CHECK(cfg.databases.size() + cfg.users.size() <= files.lines_read());
    for (const auto& db : cfg.databases) {
        SLUICE_FUZZ_CHECK(!db.name.empty() && db.name != "*");
        const database_entry* found = find_database(cfg, db.name);
        SLUICE_FUZZ_CHECK(found != nullptr && found->name == db.name);
        const auto resolved = resolve_database(cfg, db.name);
        SLUICE_FUZZ_CHECK(resolved && resolved->name == db.name && resolved->dbname);
    }
    if (cfg.fallback) {
        const auto resolved = resolve_database(cfg, "\x01not listed\x02");
        SLUICE_FUZZ_CHECK(resolved && resolved->dbname);
    }
    for (const auto& user : cfg.users) {
        const user_entry* found = find_user(cfg, user.name);
        SLUICE_FUZZ_CHECK(found != nullptr && found->name == user.name);
    }
    SLUICE_FUZZ_CHECK(diff_settings(cfg.settings, cfg.settings).empty());
    return 0;
}
