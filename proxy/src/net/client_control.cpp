// Pool control on a client connection: the query_wait_notify notice and the admin console's KILL.
#include <algorithm>

#include "net/client_connection.hpp"
#include "util/log.hpp"

namespace sluice::net {

void client_connection::send_wait_notice(std::string_view notice) {
    if (state_ != client_state::waiting || wait_notified())
        return;
    if (down().writing())
        return;  // the previous reply is still going out: try again on the next tick
    wait_notified_ = true;
    down().queue_injected(notice);
    flush_down();
    SLUICE_LOG(info, log_prefix() << ": told the client it is queued for a server (query_wait_notify)");
}

void client_connection::kill(std::string_view sqlstate, std::string_view message) {
    if (state_ == client_state::closed)
        return;
    if (state_ == client_state::active && server_) {
        // The server is closed by the caller (KILL closes the pool's servers): never hand it on.
        auto server = std::move(server_);
        detach_server_from(server);
        server->shard().discard(*server, close_reason::admin);
        state_ = client_state::idle;
    }
    send_error_and_close(sqlstate, message);
}

bool client_connection::drain_done(steady_clock::time_point now) const noexcept {
    const auto started =
        steady_clock::time_point(steady_clock::duration(rt().drain_started_ticks.load(std::memory_order_relaxed)));
    if (last_ready_ > started)
        return true;  // finished a transaction (or a statement) since the drain began
    return now - std::max(last_activity_, started) > runtime::drain_idle_grace;
}

}  // namespace sluice::net
