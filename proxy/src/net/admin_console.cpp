// The admin console session: a client logged into the virtual database "pgbouncer" (or "sluice") sends commands
// with the simple Query protocol; SHOW results come from a snapshot gathered from all workers.
#include <unistd.h>
#include <algorithm>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <csignal>
#include <functional>

#include "admin/access.hpp"
#include "admin/command.hpp"
#include "admin/show.hpp"
#include "auth/random.hpp"
#include "net/app.hpp"
#include "net/client_connection.hpp"
#include "net/pool.hpp"
#include "sluice/protocol/error.hpp"
#include "sluice/protocol/reader.hpp"
#include "sluice/protocol/writer.hpp"
#include "util/log.hpp"

namespace sluice::net {

namespace {

// Runs `fn` on every worker's thread and resumes on `home` once all have run it. `fn` is copied before the first
// suspension; GCC 12 destroys class temporaries in a co_await expression twice, so callers pass a named function.
asio::awaitable<void> on_every_worker(runtime& rt, worker& home, const std::function<void(worker&)>& fn) {
    asio::steady_timer done(home.context(), steady_clock::time_point::max());
    auto remaining = std::make_shared<std::atomic<std::size_t>>(rt.worker_count());
    auto shared_fn = std::make_shared<std::function<void(worker&)>>(fn);
    for (std::size_t i = 0; i < rt.worker_count(); ++i) {
        auto& w = rt.worker_at(i);
        w.post([&w, &home, &done, shared_fn, remaining] {
            (*shared_fn)(w);
            if (remaining->fetch_sub(1) == 1)
                home.post([&done] { done.cancel(); });
        });
    }
    co_await done.async_wait(use_nothrow);  // cancelled by the last worker: the error is expected
}

// The pools a command names: those of `database`, or all when it is empty.
std::vector<std::shared_ptr<pool>> pools_of(runtime& rt, const std::string& database) {
    std::vector<std::shared_ptr<pool>> out;
    for (auto& p : rt.pools_snapshot()) {
        if (database.empty() || p->cfg().database == database)
            out.push_back(p);
    }
    return out;
}

bool names(std::string_view database, std::string_view name) {
    return database.empty() || database == name;
}

}  // namespace

asio::awaitable<std::shared_ptr<stats::snapshot>> client_connection::async_snapshot() {
    // The gather completes on this worker; a timer that is cancelled on completion is the awaitable event.
    asio::steady_timer done(worker_.context(), steady_clock::time_point::max());
    std::shared_ptr<stats::snapshot> result;
    auto finished = std::make_shared<bool>(false);
    rt().async_snapshot(worker_, [&done, &result, finished](std::shared_ptr<stats::snapshot> snap) {
        if (*finished)
            return;
        result = std::move(snap);
        done.cancel();
    });
    co_await done.async_wait(use_nothrow);  // cancelled by the completion: the error is expected
    *finished = true;
    co_return result;
}

asio::awaitable<void> client_connection::run_admin_console() {
    auto self = shared_from_this();
    if (!co_await authenticate())
        co_return;
    const auto& settings = config_->settings;
    const auto access = admin::console_access_for(settings, user());
    const bool admin = access == admin::console_access::admin;
    const bool stats_only = access == admin::console_access::stats;
    if (!admin && !stats_only) {
        {
            const std::string message_text = "not allowed to connect to the admin console: user \"" +
                                             std::string(user()) + "\" is in neither admin_users nor stats_users";
            co_await fail_login(protocol::sqlstate::insufficient_privilege, message_text);
        };
        co_return;
    }
    state_ = client_state::idle;
    std::string out;
    protocol::write_parameter_status(out, "server_version", "1.25.0/bouncer");
    protocol::write_parameter_status(out, "server_encoding", "UTF8");
    protocol::write_parameter_status(out, "client_encoding", "UTF8");
    protocol::write_parameter_status(out, "DateStyle", "ISO, MDY");
    protocol::write_parameter_status(out, "TimeZone", "UTC");
    protocol::write_parameter_status(out, "integer_datetimes", "on");
    protocol::write_parameter_status(out, "standard_conforming_strings", "on");
    protocol::write_parameter_status(out, "application_name", "");
    protocol::write_backend_key_data(out, auth::random_u32(), auth::random_u32());
    protocol::write_ready_for_query(out, protocol::transaction_status::idle);
    if (!co_await write_all(out)) {
        close("admin client disconnected");
        co_return;
    }
    SLUICE_LOG(info, log_prefix() << ": admin console login ok" << (stats_only ? " (stats only)" : ""));

    std::string body;
    for (;;) {
        char type = 0;
        // Commands are short; anything bigger than 1 MiB is not a console command.
        if (!co_await read_message(type, body, 1024 * 1024)) {
            close("admin client disconnected");
            co_return;
        }
        if (type == protocol::to_char(protocol::frontend::terminate)) {
            close("admin client sent Terminate");
            co_return;
        }
        if (type != protocol::to_char(protocol::frontend::query)) {
            co_await fail_login(protocol::sqlstate::protocol_violation,
                                "the admin console supports only the simple query protocol");
            co_return;
        }
        protocol::message_reader r(body);
        const auto sql = r.cstring();
        out.clear();
        auto parsed = admin::parse_command(sql);
        if (!parsed.ok()) {
            protocol::write_error(out, protocol::severity::error,
                                  parsed.sqlstate.empty() ? protocol::sqlstate::syntax_error : parsed.sqlstate,
                                  parsed.error);
        } else if (admin::command_needs_admin(*parsed.cmd) && !admin) {
            protocol::write_error(out, protocol::severity::error, protocol::sqlstate::insufficient_privilege,
                                  "admin access needed");
        } else {
            const auto& cmd = *parsed.cmd;
            SLUICE_LOG(info, log_prefix() << ": admin command: " << sql);
            if (cmd.kind == admin::command_kind::empty) {
                protocol::write_empty_query_response(out);
            } else if (cmd.kind == admin::command_kind::set) {
                if (!admin::is_ignored_parameter(cmd.key)) {
                    protocol::write_error(out, protocol::severity::error, protocol::sqlstate::feature_not_supported,
                                          "SET of " + cmd.key + " is not supported by Sluice yet");
                } else {
                    protocol::write_error(out, protocol::severity::notice, "00000", "SET ignored");
                    protocol::write_command_complete(out, admin::command_tag(cmd));
                }
            } else if (cmd.kind == admin::command_kind::show) {
                auto snap = co_await async_snapshot();
                admin::show_context context;
                const int state = rt().pause_state.load();
                context.state = state == 2   ? admin::pause_state::suspended
                                : state == 1 ? admin::pause_state::paused
                                             : admin::pause_state::active;
                if (!snap || !admin::render_show(cmd.subject, *snap, *rt().config(), context, out)) {
                    protocol::write_error(out, protocol::severity::error, protocol::sqlstate::syntax_error,
                                          "unknown SHOW subject: " + cmd.subject);
                }
            } else if (cmd.kind == admin::command_kind::reload) {
                auto loaded = config::load_config_file(rt().config()->path);
                std::shared_ptr<const credential_store> creds;
                std::string err;
                if (!loaded.ok()) {
                    for (const auto& e : loaded.errors) {
                        SLUICE_LOG(error, "RELOAD rejected: " << e.to_string());
                        err += (err.empty() ? "" : "; ") + e.to_string();
                    }
                    if (err.empty())
                        err = "invalid configuration";
                } else {
                    err = unsupported_settings(*loaded.value);
                    if (err.empty())
                        err = load_credentials(*loaded.value, creds);
                    if (!err.empty())
                        SLUICE_LOG(error, "RELOAD rejected: " << err);
                }
                if (err.empty()) {
                    rt().set_config(std::make_shared<const config::config>(std::move(*loaded.value)), creds);
                    SLUICE_LOG(info, "configuration reloaded by admin command");
                    protocol::write_command_complete(out, "RELOAD");
                } else {
                    protocol::write_error(out, protocol::severity::error, protocol::sqlstate::internal_error,
                                          "RELOAD rejected: " + err);
                }
            } else if (cmd.kind == admin::command_kind::pause || cmd.kind == admin::command_kind::suspend) {
                // PAUSE [db]: no new transactions start; returns once those running have finished.
                // SUSPEND: the same for every database, bounded by suspend_timeout (clients still in a transaction
                // then are disconnected, as PgBouncer drops connections whose buffers do not flush).
                const bool suspend = cmd.kind == admin::command_kind::suspend;
                const std::string database = suspend ? std::string() : cmd.database;
                if (database.empty()) {
                    rt().pause_state.store(suspend ? 2 : 1);
                } else {
                    rt().set_database_paused(database, true);
                }
                for (auto& p : pools_of(rt(), database))
                    p->set_paused(true);
                const auto deadline = steady_clock::now() + std::chrono::duration_cast<steady_clock::duration>(
                                                                rt().config()->settings.suspend_timeout);
                asio::steady_timer poll(worker_.context());
                bool timed_out = false;
                for (;;) {
                    auto snap = co_await async_snapshot();
                    int active = 0;
                    for (const auto& row : snap->pools) {
                        if (names(database, row.database))
                            active += row.sv_active;
                    }
                    if (active == 0)
                        break;
                    if (suspend && steady_clock::now() >= deadline) {
                        timed_out = true;
                        break;
                    }
                    poll.expires_after(std::chrono::milliseconds(20));
                    co_await poll.async_wait(use_nothrow);
                }
                if (timed_out) {
                    SLUICE_LOG(warning,
                               "SUSPEND: suspend_timeout expired, disconnecting clients still in a transaction");
                    const std::function<void(worker&)> drop = [](worker& w) {
                        for (auto it = w.clients().begin(); it != w.clients().end();) {
                            auto& c = *it++;
                            if (c.state() == client_state::active && c.server() != nullptr) {
                                auto keep = c.shared_from_this();
                                c.kill(protocol::sqlstate::admin_shutdown, "suspend_timeout expired");
                            }
                        }
                    };
                    co_await on_every_worker(rt(), worker_, drop);
                }
                protocol::write_command_complete(out, admin::command_tag(cmd));
            } else if (cmd.kind == admin::command_kind::resume) {
                if (rt().pause_state.load() == 2 && !cmd.database.empty()) {
                    protocol::write_error(out, protocol::severity::error, protocol::sqlstate::syntax_error,
                                          "pooler is suspended, use RESUME without arguments");
                } else {
                    if (cmd.database.empty()) {
                        rt().pause_state.store(0);
                        for (auto& p : rt().pools_snapshot())
                            rt().set_database_paused(p->cfg().database, false);
                    } else {
                        rt().set_database_paused(cmd.database, false);
                    }
                    for (auto& p : pools_of(rt(), cmd.database)) {
                        p->set_paused(false);
                        for (std::size_t i = 0; i < rt().worker_count(); ++i)
                            rt().worker_at(i).post([p, i] { p->shard(i).resume(); });
                    }
                    protocol::write_command_complete(out, "RESUME");
                }
            } else if (cmd.kind == admin::command_kind::kill) {
                // KILL [db]: every client and server of the database (all databases without one) is dropped at
                // once; new clients wait until RESUME.
                const std::string database = cmd.database;
                auto targets = pools_of(rt(), database);
                if (database.empty()) {
                    rt().pause_state.store(1);
                } else {
                    rt().set_database_paused(database, true);
                }
                for (auto& p : targets)
                    p->set_paused(true);
                const std::function<void(worker&)> drop = [targets, database](worker& w) {
                    for (auto it = w.clients().begin(); it != w.clients().end();) {
                        auto& c = *it++;
                        if (c.pool_ptr() && names(database, c.database())) {
                            auto keep = c.shared_from_this();
                            c.kill(protocol::sqlstate::protocol_violation, "database removed");
                        }
                    }
                    for (const auto& p : targets)
                        p->shard(w.index()).close_all(close_reason::admin);
                };
                co_await on_every_worker(rt(), worker_, drop);
                protocol::write_command_complete(out, "KILL");
            } else if (cmd.kind == admin::command_kind::kill_client) {
                const auto id = cmd.client_id;
                auto found = std::make_shared<std::atomic<bool>>(false);
                const std::function<void(worker&)> drop = [id, found](worker& w) {
                    for (auto it = w.clients().begin(); it != w.clients().end();) {
                        auto& c = *it++;
                        if (c.id() == id) {
                            auto keep = c.shared_from_this();
                            c.kill(protocol::sqlstate::protocol_violation, "client killed by admin");
                            found->store(true);
                        }
                    }
                };
                co_await on_every_worker(rt(), worker_, drop);
                if (found->load()) {
                    protocol::write_command_complete(out, "KILL_CLIENT");
                } else {
                    protocol::write_error(out, protocol::severity::error, protocol::sqlstate::syntax_error,
                                          "client not found");
                }
            } else if (cmd.kind == admin::command_kind::reconnect) {
                // RECONNECT [db]: every server is closed once released (idle ones now); new ones connect as needed.
                for (auto& p : pools_of(rt(), cmd.database)) {
                    p->mark_reconnect();
                    for (std::size_t i = 0; i < rt().worker_count(); ++i)
                        rt().worker_at(i).post([p, i] { p->shard(i).apply_config(); });
                }
                protocol::write_command_complete(out, "RECONNECT");
            } else if (cmd.kind == admin::command_kind::wait_close) {
                // WAIT_CLOSE [db]: returns once no server marked by RECONNECT or RELOAD (close_needed) is left.
                asio::steady_timer poll(worker_.context());
                for (;;) {
                    auto snap = co_await async_snapshot();
                    const bool pending = std::any_of(snap->servers.begin(), snap->servers.end(), [&](const auto& row) {
                        return row.close_needed && names(cmd.database, row.database);
                    });
                    if (!pending)
                        break;
                    poll.expires_after(std::chrono::milliseconds(50));
                    co_await poll.async_wait(use_nothrow);
                }
                protocol::write_command_complete(out, "WAIT_CLOSE");
            } else if (cmd.kind == admin::command_kind::enable || cmd.kind == admin::command_kind::disable) {
                rt().set_disabled(cmd.database, cmd.kind == admin::command_kind::disable);
                protocol::write_command_complete(out, admin::command_tag(cmd));
            } else if (cmd.kind == admin::command_kind::shutdown) {
                rt().drain_started_ticks.store(steady_clock::now().time_since_epoch().count());
                rt().shutting_down.store(true);
                ::kill(::getpid(), SIGTERM);
                protocol::write_command_complete(out, "SHUTDOWN");
            } else {
                protocol::write_error(out, protocol::severity::error, protocol::sqlstate::feature_not_supported,
                                      "command not supported by Sluice yet: " + std::string(sql));
            }
        }
        protocol::write_ready_for_query(out, protocol::transaction_status::idle);
        if (!co_await write_all(out)) {
            close("admin client disconnected");
            co_return;
        }
    }
}

}  // namespace sluice::net
