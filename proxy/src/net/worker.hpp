#pragma once
// A worker: one thread running one io_context, plus a janitor tick that enforces timeouts for everything the worker
// owns. Timeouts are checked by the tick (PgBouncer's approach) instead of a timer per connection, so an idle client
// costs no timer.

#include <boost/intrusive/list.hpp>
#include <functional>
#include <optional>
#include <thread>

#include "config/config.hpp"
#include "net/asio_fwd.hpp"

namespace sluice::net {

class runtime;
class client_connection;

struct worker_list_tag;
using worker_hook = boost::intrusive::list_base_hook<boost::intrusive::tag<worker_list_tag>,
                                                     boost::intrusive::link_mode<boost::intrusive::safe_link>>;

class worker {
  public:
    worker(runtime& rt, unsigned index);
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;
    ~worker();

    [[nodiscard]] asio::io_context& context() noexcept { return context_; }
    [[nodiscard]] unsigned index() const noexcept { return index_; }
    [[nodiscard]] runtime& rt() noexcept { return rt_; }
    [[nodiscard]] bool on_this_thread() const noexcept { return std::this_thread::get_id() == thread_id_; }

    void start();
    // Stops the io_context and joins the thread. Precondition: called from another thread.
    void stop_and_join();

    // Clients living on this worker (every state), for timeouts and SHOW CLIENTS. Touched only on this thread.
    using client_list = boost::intrusive::list<client_connection, boost::intrusive::base_hook<worker_hook>,
                                               boost::intrusive::constant_time_size<true>>;
    client_list& clients() noexcept { return clients_; }

    // Sends every client of this worker 57P01 and closes it (only those between transactions if `idle_only`).
    // On this worker's thread.
    void notify_shutdown(bool idle_only);

    // Runs `fn` on this worker's thread.
    template <class Fn>
    void post(Fn&& fn) {
        asio::post(context_, std::forward<Fn>(fn));
    }

    static constexpr std::chrono::milliseconds tick_interval{100};

    // The configuration as of this worker's last tick (RELOAD reaches every client's timeouts within one tick).
    // On this worker's thread.
    [[nodiscard]] const config::config& tick_config() const noexcept { return *tick_config_; }

  private:
    void schedule_tick();
    void tick();

    runtime& rt_;
    unsigned index_;
    asio::io_context context_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
    asio::steady_timer ticker_;
    std::thread thread_;
    std::thread::id thread_id_;
    client_list clients_;
    std::shared_ptr<const config::config> tick_config_;
};

}  // namespace sluice::net
