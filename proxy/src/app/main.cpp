// sluice: a PostgreSQL connection pooler. See README.md.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "config/config.hpp"
#include "net/app.hpp"
#include "util/log.hpp"

namespace {

constexpr const char* usage_text =
    "Usage: sluice [OPTIONS] CONFIG.ini\n"
    "\n"
    "A PostgreSQL connection pooler that reads PgBouncer's configuration format.\n"
    "\n"
    "Options:\n"
    "  -h, --help       show this help and exit\n"
    "  -V, --version    show the version and exit\n"
    "  -c, --check      validate CONFIG.ini (and its auth_file) and exit: 0 if valid\n"
    "  -v, --verbose    log debug messages\n"
    "\n"
    "Signals: SIGHUP reloads the configuration, SIGTERM shuts down after running transactions finish\n"
    "(shutdown_timeout), SIGINT shuts down at once.\n";

}  // namespace

int main(int argc, char** argv) {
    bool check_only = false;
    bool verbose = false;
    std::string config_path;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::fputs(usage_text, stdout);
            return 0;
        }
        if (arg == "-V" || arg == "--version") {
            std::puts("sluice 0.1.0");
            return 0;
        }
        if (arg == "-c" || arg == "--check") {
            check_only = true;
        } else if (arg == "-v" || arg == "--verbose") {
            verbose = true;
        } else if (!arg.empty() && arg[0] == '-') {
            std::fprintf(stderr, "sluice: unknown option %s (see --help)\n", arg.c_str());
            return 2;
        } else if (config_path.empty()) {
            config_path = arg;
        } else {
            std::fprintf(stderr, "sluice: unexpected argument %s (see --help)\n", arg.c_str());
            return 2;
        }
    }
    if (config_path.empty()) {
        std::fprintf(stderr, "sluice: missing CONFIG.ini (see --help)\n");
        return 2;
    }

    auto loaded = sluice::config::load_config_file(config_path);
    if (!loaded.ok()) {
        for (const auto& e : loaded.errors)
            std::fprintf(stderr, "sluice: %s\n", e.to_string().c_str());
        return 1;
    }
    for (const auto& w : loaded.value->warnings)
        std::fprintf(stderr, "sluice: warning: %s\n", w.to_string().c_str());
    std::shared_ptr<const sluice::net::credential_store> creds;
    if (auto err = sluice::net::load_credentials(*loaded.value, creds); !err.empty()) {
        std::fprintf(stderr, "sluice: %s\n", err.c_str());
        return 1;
    }
    if (check_only) {
        std::printf("%s: configuration is valid\n", config_path.c_str());
        return 0;
    }
    if (verbose || loaded.value->settings.verbose > 0)
        sluice::log::set_min_level(sluice::log::level::debug);
    if (loaded.value->settings.logfile && !sluice::log::set_file(*loaded.value->settings.logfile)) {
        std::fprintf(stderr, "sluice: cannot open logfile %s\n", loaded.value->settings.logfile->c_str());
        return 1;
    }
    try {
        sluice::net::app app(std::move(*loaded.value));
        return app.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sluice: %s\n", e.what());
        return 1;
    }
}
