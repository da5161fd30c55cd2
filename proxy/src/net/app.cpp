#include "net/app.hpp"

#include <sys/resource.h>

#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>

#include "auth/userlist.hpp"
#include "net/listen_relay.hpp"
#include "net/listener.hpp"
#include "net/pool.hpp"
#include "net/runtime.hpp"
#include "net/worker.hpp"
#include "util/log.hpp"
#include "util/sd_notify.hpp"

namespace sluice::net {

std::string load_credentials(const config::config& cfg, std::shared_ptr<const credential_store>& out) {
    auth::userlist users;
    if (cfg.settings.auth_file) {
        std::ifstream in(*cfg.settings.auth_file);
        if (!in)
            return "cannot read auth_file " + *cfg.settings.auth_file;
        std::stringstream text;
        text << in.rdbuf();
        auto parsed = auth::parse_userlist(text.str());
        if (!parsed.ok()) {
            return *cfg.settings.auth_file + ":" + std::to_string(parsed.error->line) + ": " + parsed.error->reason;
        }
        users = std::move(parsed.users);
    }
    out = std::make_shared<credential_store>(std::move(users), cfg.settings.scram_iterations);
    return {};
}

std::string unsupported_settings(const config::config& /*cfg*/) {
    // Every TLS mode is implemented (net/tls.hpp): nothing is refused at the moment.
    return {};
}

std::vector<std::string> unimplemented_setting_warnings(const config::config& cfg) {
    // Keep this list honest: remove a name in the change that implements it.
    static constexpr std::string_view not_yet[] = {
        "server_round_robin", "tcp_keepalive", "tcp_keepidle", "tcp_keepintvl",     "tcp_keepcnt",  "tcp_user_timeout",
        "dns_max_ttl",        "user",          "pidfile",      "unix_socket_group", "stats_period",
    };
    const config::settings defaults{};
    std::vector<std::string> out;
    for (const auto& def : config::all_settings()) {
        for (auto name : not_yet) {
            if (def.name == name && def.format(cfg.settings) != def.format(defaults)) {
                out.push_back(std::string(name) + " is set but not implemented by this version of Sluice yet");
            }
        }
    }
    return out;
}

struct app::impl {
    std::unique_ptr<runtime> rt;
    std::unique_ptr<listener> listen;
    asio::io_context control;
};

app::app(config::config cfg) : impl_(std::make_unique<impl>()) {
    auto shared = std::make_shared<const config::config>(std::move(cfg));
    impl_->rt = std::make_unique<runtime>(shared);
    std::shared_ptr<const credential_store> creds;
    if (auto err = load_credentials(*shared, creds); !err.empty())
        throw std::runtime_error(err);
    impl_->rt->set_config(shared, creds);
    // At startup a TLS setting that cannot be applied is fatal; on RELOAD the previous contexts stay.
    if (auto err = impl_->rt->tls_error(); !err.empty())
        throw std::runtime_error(err);
}

app::~app() = default;

namespace {
// Every client and server connection is a descriptor: raise the soft limit to the hard one, as PgBouncer does with
// its own settings in mind (1024, a common soft default, is below max_client_conn in many deployments).
void raise_descriptor_limit(const config::settings& s) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return;
    const rlim_t before = lim.rlim_cur;
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
            SLUICE_LOG(warning, "cannot raise the open file limit from " << before << ": " << std::strerror(errno));
            return;
        }
        SLUICE_LOG(info, "raised the open file limit (RLIMIT_NOFILE) from " << before << " to " << lim.rlim_cur);
    }
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < static_cast<rlim_t>(s.max_client_conn) + 100) {
        SLUICE_LOG(warning, "open file limit " << lim.rlim_cur << " is below max_client_conn (" << s.max_client_conn
                                               << ") plus the server connections");
    }
}
}  // namespace

int app::run() {
    auto& rt = *impl_->rt;
    ::signal(SIGPIPE, SIG_IGN);
    raise_descriptor_limit(rt.config()->settings);
    // Before anything can announce readiness: a SIGHUP right after READY=1 must reach a handler, not kill us.
    asio::signal_set signals(impl_->control, SIGINT, SIGTERM, SIGHUP);
    impl_->listen = std::make_unique<listener>(rt);
    if (auto err = impl_->listen->open(); !err.empty()) {
        SLUICE_LOG(fatal, err);
        return 1;
    }
    for (auto& w : rt.workers())
        w->start();
    // Each listening socket accepts on its own worker (listener.hpp); start() posts there.
    rt.worker_at(0).post([this] { impl_->listen->start(); });
    rt.accepting.store(true);
    SLUICE_LOG(info, "sluice started with " << rt.worker_count() << " workers");
    if (started_hook_)
        started_hook_(rt);
    util::sd_notify("READY=1\nSTATUS=accepting connections");

    int exit_code = 0;
    bool graceful = false;
    std::function<void()> wait_signal;
    wait_signal = [&] {
        signals.async_wait([&](const error_code& ec, int signo) {
            if (ec)
                return;
            if (signo == SIGHUP) {
                util::sd_notify("RELOADING=1");
                const auto current = rt.config();
                auto loaded = config::load_config_file(current->path);
                if (!loaded.ok()) {
                    for (const auto& e : loaded.errors)
                        SLUICE_LOG(error, "reload rejected: " << e.to_string());
                } else {
                    std::shared_ptr<const credential_store> creds;
                    auto err = unsupported_settings(*loaded.value);
                    if (err.empty())
                        err = load_credentials(*loaded.value, creds);
                    if (!err.empty()) {
                        SLUICE_LOG(error, "reload rejected: " << err);
                    } else {
                        rt.set_config(std::make_shared<const config::config>(std::move(*loaded.value)), creds);
                        SLUICE_LOG(info, "configuration reloaded");
                    }
                }
                util::sd_notify("READY=1");
                wait_signal();
                return;
            }
            if (signo == SIGTERM && !graceful) {
                graceful = true;
                SLUICE_LOG(info, "SIGTERM: no new connections, waiting for transactions to finish");
                util::sd_notify("STOPPING=1");
                rt.drain_started_ticks.store(steady_clock::now().time_since_epoch().count());
                rt.shutting_down.store(true);
                rt.accepting.store(false);
                rt.worker_at(0).post([this] { impl_->listen->stop(); });
                for (auto& w : rt.workers())
                    w->post([wp = w.get()] { wp->notify_shutdown(true); });
                wait_signal();
                return;
            }
            SLUICE_LOG(info, "shutting down now");
            impl_->control.stop();
        });
    };
    wait_signal();

    // Graceful shutdown: poll until no client holds a server or shutdown_timeout passes.
    asio::steady_timer poll(impl_->control);
    steady_clock::time_point deadline{};
    std::function<void()> check;
    check = [&] {
        poll.expires_after(std::chrono::milliseconds(50));
        poll.async_wait([&](const error_code& ec) {
            if (ec)
                return;
            if (graceful) {
                if (deadline == steady_clock::time_point{}) {
                    deadline = steady_clock::now() + std::chrono::duration_cast<steady_clock::duration>(
                                                         rt.config()->settings.shutdown_timeout);
                }
                // Every client has finished (the tick closes each at its first idle moment after its last
                // transaction), or none holds a server and the stragglers (logins that stall) had their grace, or
                // time is up.
                const auto now = steady_clock::now();
                const auto drain_start =
                    steady_clock::time_point(steady_clock::duration(rt.drain_started_ticks.load()));
                const bool stragglers_only =
                    rt.active_clients.load() == 0 && now - drain_start > 2 * runtime::drain_idle_grace;
                if (rt.client_count.load() == 0 || stragglers_only || now >= deadline) {
                    SLUICE_LOG(info, "shutdown complete");
                    impl_->control.stop();
                    return;
                }
            }
            check();
        });
    };
    check();
    impl_->control.run();
    rt.accepting.store(false);
    // Every remaining client is told 57P01 before the workers stop (bounded: a worker that does not answer within a
    // second is stopped anyway).
    {
        std::vector<std::future<void>> done;
        for (auto& w : rt.workers()) {
            auto promise = std::make_shared<std::promise<void>>();
            done.push_back(promise->get_future());
            w->post([wp = w.get(), promise] {
                wp->notify_shutdown(false);
                promise->set_value();
            });
        }
        for (auto& f : done)
            f.wait_for(std::chrono::seconds(1));
    }
    for (const auto& p : rt.pools_snapshot()) {
        if (auto relay = p->existing_listen_relay())
            relay->stop();
    }
    if (stopping_hook_)
        stopping_hook_();
    rt.worker_at(0).post([this] { impl_->listen->stop(); });
    for (auto& w : rt.workers())
        w->stop_and_join();
    impl_->listen.reset();
    return exit_code;
}

}  // namespace sluice::net
