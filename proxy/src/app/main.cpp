// sluice: a PostgreSQL connection pooler. See README.md.
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "net/app.hpp"
#include "net/runtime.hpp"
#include "net/worker.hpp"
#include "sluice/bridge/metrics_source.hpp"
#include "sluice/metrics/exporter.hpp"
#include "sluice/metrics/http_server.hpp"
#include "stats/metrics_source.hpp"
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
    for (const auto& w : sluice::net::unimplemented_setting_warnings(*loaded.value)) {
        std::fprintf(stderr, "sluice: warning: %s\n", w.c_str());
    }
    if (auto err = sluice::net::unsupported_settings(*loaded.value); !err.empty()) {
        std::fprintf(stderr, "sluice: %s\n", err.c_str());
        return 1;
    }
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
        const std::string metrics_addr = loaded.value->settings.metrics_addr;
        const int metrics_port = loaded.value->settings.metrics_port;
        sluice::net::app app(std::move(*loaded.value));
        std::unique_ptr<sluice::metrics::http_server> metrics_server;
        app.on_started([&](sluice::net::runtime& rt) {
            if (metrics_port == 0)
                return;
            auto& w0 = rt.worker_at(0);
            sluice::metrics::http_handlers handlers;
            auto bridge_source = std::make_shared<sluice::bridge::metrics_source>();
            bridge_source->add_pool(rt.auth_pool());
            handlers.render = [&rt, &w0, bridge_source](sluice::metrics::http_handlers::reply_fn reply) {
                rt.async_snapshot(
                    w0, [reply = std::move(reply), bridge_source](std::shared_ptr<sluice::stats::snapshot> snap) {
                        sluice::stats::snapshot_metrics source(*snap);
                        reply(sluice::metrics::render_text({&source, bridge_source.get()}));
                    });
            };
            handlers.ready = [&rt] {
                if (!rt.accepting.load() || rt.shutting_down.load())
                    return false;
                // Not ready while the latest server login failed to reach the backend (connection-class error) and
                // none succeeded since, for 30 s after that failure: an unready replica gets no clients, so
                // readiness must come back by itself for the next login to try again.
                const auto failed = rt.last_server_login_failed_unix_s.load();
                const auto ok = rt.last_server_login_ok_unix_s.load();
                const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count();
                return !(failed > ok && now - failed < 30);
            };
            try {
                boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address(metrics_addr),
                                                  static_cast<unsigned short>(metrics_port));
                metrics_server = std::make_unique<sluice::metrics::http_server>(w0.context().get_executor(), ep,
                                                                                std::move(handlers));
                metrics_server->start();
                SLUICE_LOG(info, "metrics on http://" << metrics_addr << ":" << metrics_port << "/metrics");
            } catch (const std::exception& e) {
                SLUICE_LOG(error, "metrics endpoint " << metrics_addr << ":" << metrics_port << ": " << e.what());
            }
        });
        app.on_stopping([&] {
            if (metrics_server)
                metrics_server->stop();
        });
        return app.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sluice: %s\n", e.what());
        return 1;
    }
}
