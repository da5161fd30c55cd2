// The admin console session: a client logged into the virtual database "pgbouncer" (or "sluice") sends commands
// with the simple Query protocol; SHOW results come from a snapshot gathered from all workers.
#include <unistd.h>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <csignal>

#include "admin/access.hpp"
#include "admin/command.hpp"
#include "admin/show.hpp"
#include "auth/random.hpp"
#include "net/app.hpp"
#include "net/client_connection.hpp"
#include "sluice/protocol/error.hpp"
#include "sluice/protocol/reader.hpp"
#include "sluice/protocol/writer.hpp"
#include "util/log.hpp"

namespace sluice::net {

asio::awaitable<std::shared_ptr<stats::snapshot>> client_connection::async_snapshot() {
    // The gather completes on this worker; a timer that is cancelled on completion is the awaitable event.
    asio::steady_timer done(worker_.context(), steady_clock::time_point::max());
    std::shared_ptr<stats::snapshot> result;
    auto finished = std::make_shared<bool>(false);
    rt_.async_snapshot(worker_, [&done, &result, finished](std::shared_ptr<stats::snapshot> snap) {
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
    const auto access = admin::console_access_for(settings, user_);
    const bool admin = access == admin::console_access::admin;
    const bool stats_only = access == admin::console_access::stats;
    if (!admin && !stats_only) {
        {
            const std::string message_text = "not allowed to connect to the admin console: user \"" + user_ +
                                             "\" is in neither admin_users nor stats_users";
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
                if (!snap || !admin::render_show(cmd.subject, *snap, *rt_.config(), out)) {
                    protocol::write_error(out, protocol::severity::error, protocol::sqlstate::syntax_error,
                                          "unknown SHOW subject: " + cmd.subject);
                }
            } else if (cmd.kind == admin::command_kind::reload) {
                auto loaded = config::load_config_file(rt_.config()->path);
                std::shared_ptr<const credential_store> creds;
                std::string err;
                if (!loaded.ok()) {
                    err = loaded.errors.empty() ? "invalid configuration" : loaded.errors.front().to_string();
                } else {
                    err = unsupported_settings(*loaded.value);
                    if (err.empty())
                        err = load_credentials(*loaded.value, creds);
                }
                if (err.empty()) {
                    rt_.set_config(std::make_shared<const config::config>(std::move(*loaded.value)), creds);
                    SLUICE_LOG(info, "configuration reloaded by admin command");
                    protocol::write_command_complete(out, "RELOAD");
                } else {
                    SLUICE_LOG(error, "RELOAD rejected: " << err);
                    protocol::write_error(out, protocol::severity::error, protocol::sqlstate::internal_error,
                                          "RELOAD rejected: " + err);
                }
            } else if (cmd.kind == admin::command_kind::pause || cmd.kind == admin::command_kind::resume) {
                const bool pause = cmd.kind == admin::command_kind::pause;
                std::vector<std::shared_ptr<pool>> targets;
                for (auto& p : rt_.pools_snapshot()) {
                    if (cmd.database.empty() || p->cfg().database == cmd.database)
                        targets.push_back(p);
                }
                for (auto& p : targets)
                    p->set_paused(pause);
                if (!pause) {
                    for (auto& p : targets) {
                        for (std::size_t i = 0; i < rt_.worker_count(); ++i) {
                            rt_.worker_at(i).post([p, i] { p->shard(i).resume(); });
                        }
                    }
                } else {
                    // PAUSE returns once every server of the paused pools is back (transactions finished).
                    asio::steady_timer poll(worker_.context());
                    for (;;) {
                        auto snap = co_await async_snapshot();
                        int active = 0;
                        for (const auto& row : snap->pools) {
                            if (cmd.database.empty() || row.database == cmd.database)
                                active += row.sv_active;
                        }
                        if (active == 0)
                            break;
                        poll.expires_after(std::chrono::milliseconds(20));
                        co_await poll.async_wait(use_nothrow);
                    }
                }
                protocol::write_command_complete(out, admin::command_tag(cmd));
            } else if (cmd.kind == admin::command_kind::shutdown) {
                rt_.shutting_down.store(true);
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
