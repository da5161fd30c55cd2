#include "net/worker.hpp"

#include "net/client_connection.hpp"
#include "net/pool.hpp"
#include "net/runtime.hpp"
#include "util/log.hpp"

namespace sluice::net {

worker::worker(runtime& rt, unsigned index) : rt_(rt), index_(index), context_(1), ticker_(context_) {}

worker::~worker() {
    if (thread_.joinable())
        stop_and_join();
    clients_.clear();
}

void worker::start() {
    tick_config_ = rt_.config();
    work_.emplace(context_.get_executor());
    schedule_tick();
    thread_ = std::thread([this] {
        thread_id_ = std::this_thread::get_id();
        for (;;) {
            try {
                context_.run();
                break;
            } catch (const std::exception& e) {
                // Nothing should escape a handler; if something does, log it and keep serving the others.
                SLUICE_LOG(error, "worker " << index_ << ": unhandled exception: " << e.what());
            }
        }
    });
}

void worker::stop_and_join() {
    work_.reset();
    context_.stop();
    if (thread_.joinable())
        thread_.join();
}

void worker::schedule_tick() {
    ticker_.expires_after(tick_interval);
    ticker_.async_wait([this](const error_code& ec) {
        if (ec)
            return;
        tick();
        schedule_tick();
    });
}

void worker::notify_shutdown(bool idle_only) {
    // Closing a client unlinks it from the list: advance before acting. Keep each alive through its close.
    for (auto it = clients_.begin(); it != clients_.end();) {
        auto& c = *it++;
        auto keep = c.shared_from_this();
        c.shutdown_notice(idle_only);
    }
}

void worker::tick() {
    tick_config_ = rt_.config();
    const auto now = steady_clock::now();
    // Iterate over a stable snapshot: a tick may close clients, which unlinks them.
    for (auto it = clients_.begin(); it != clients_.end();) {
        auto& c = *it++;
        c.tick(now);
    }
    for (const auto& p : rt_.pools_snapshot())
        p->shard(index_).tick(now);
}

}  // namespace sluice::net
