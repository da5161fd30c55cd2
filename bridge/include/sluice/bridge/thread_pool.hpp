#pragma once

// Bounded thread pools and sticky thread scopes for sync_to_async.
//
// A thread_pool owns a fixed number of threads and one bounded queue. A call either starts on an available thread, or
// takes a queue slot, or meets a full queue: then the pool's overflow_policy rejects it (errc::queue_full) or lets it
// wait for a slot up to full_wait (errc::queue_timeout). A call cancelled before it starts leaves the queue and never
// runs.
//
// A thread_scope is the thread-sensitive unit (asgiref's ThreadSensitiveContext): its calls run one at a time, in
// order, on one thread that it leases from its pool at its first call and returns when destroyed. Use one per
// thread-bound resource or per request (a libpq connection, a library with thread-local state).

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/any_io_executor.hpp>
#include <boost/smart_ptr/intrusive_ptr.hpp>

#include "sluice/bridge/detail/ref_counted.hpp"
#include "sluice/bridge/scheduler_fsm.hpp"
#include "sluice/bridge/stats.hpp"

namespace sluice::bridge {

class thread_pool;
class thread_scope;

namespace detail {
class pool_core;
class scope_core;
// Accessors for the bridge's own machinery.
[[nodiscard]] pool_core& pool_core_of(thread_pool& pool) noexcept;
[[nodiscard]] scope_core& scope_core_of(thread_scope& scope) noexcept;
}  // namespace detail

struct pool_options {
    std::string name = "bridge";  // the metrics' pool label
    std::size_t threads = 4;      // started by the constructor, at least 1
    std::size_t max_queue = 256;  // calls admitted to wait for a thread, over all scopes
    overflow_policy when_full = overflow_policy::reject;
    std::chrono::milliseconds full_wait{1000};  // overflow_policy::wait: how long a call may wait for a queue slot
    // How long an idle thread polls for its next call before it sleeps: lower latency for calls that follow each
    // other closely, for that much CPU per idle period. 0 sleeps at once.
    std::chrono::microseconds spin{50};
};

// Thread-safe. Destroying the pool stops it and joins its threads: not from one of them, nor from a thread its calls
// wait for. Destroy it before the io_contexts of the coroutines awaiting it (their completions are posted there).
class thread_pool {
  public:
    explicit thread_pool(pool_options options = {});
    ~thread_pool();
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    // Refuses new calls (errc::pool_stopped), fails queued ones the same way and signals the stop_token of running
    // ones. Returns at once; the destructor waits for running calls to return.
    void stop() noexcept;

    [[nodiscard]] pool_stats_snapshot stats() const noexcept;
    [[nodiscard]] const pool_options& options() const noexcept;

  private:
    friend class thread_scope;
    friend detail::pool_core& detail::pool_core_of(thread_pool& pool) noexcept;

    boost::intrusive_ptr<detail::pool_core> core_;
};

// A sticky-thread lease: its calls run one at a time, in order, on one thread of its pool, leased at the first call
// and held, idle or not, until the scope is destroyed. Thread-safe to submit through. Calls already submitted when it
// is destroyed still run on its thread, which then returns to the pool. May outlive its thread_pool (calls then fail
// with errc::pool_stopped).
class thread_scope {
  public:
    explicit thread_scope(thread_pool& pool);
    ~thread_scope();
    thread_scope(const thread_scope&) = delete;
    thread_scope& operator=(const thread_scope&) = delete;

    // The leased thread, or nullopt before the first call starts.
    [[nodiscard]] std::optional<std::thread::id> thread_id() const;

  private:
    friend detail::scope_core& detail::scope_core_of(thread_scope& scope) noexcept;

    boost::intrusive_ptr<detail::scope_core> core_;
};

// An executor that runs like ex, for coroutines co_spawned with it: their thread-sensitive sync_to_async(pool, f) calls
// run on the scope's thread. The scope's state stays alive as long as the executor (or a copy) does. Copies of an
// io_context executor wrapped this way never allocate; other executors (strands) allocate per derived executor.
[[nodiscard]] boost::asio::any_io_executor bind_scope(thread_scope& scope, const boost::asio::any_io_executor& ex);

}  // namespace sluice::bridge
