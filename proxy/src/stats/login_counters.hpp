#pragma once
// Process-wide counters of client logins that ended before the client had a pool. Written by any worker on the login
// path (once per connection, never per message: a relaxed fetch_add, no lock, no allocation) and read at scrape or
// SHOW time.

#include <atomic>
#include <cstdint>

#include "stats/snapshot.hpp"

namespace sluice::stats {

class login_counters {
  public:
    // A client refused at max_client_conn (53300).
    void count_max_client_conn_rejection() noexcept { max_client_conn_rejections_.fetch_add(1, relaxed); }
    // A client closed by client_login_timeout before it finished logging in.
    void count_login_timeout() noexcept { client_login_timeouts_.fetch_add(1, relaxed); }
    // A login refused for any other reason: authentication, unknown database or user, protocol error.
    void count_login_failure() noexcept { login_failures_.fetch_add(1, relaxed); }

    // Copies the totals into the snapshot's process-wide fields.
    void fill(snapshot& snap) const noexcept {
        snap.max_client_conn_rejections = max_client_conn_rejections_.load(relaxed);
        snap.client_login_timeouts = client_login_timeouts_.load(relaxed);
        snap.login_failures = login_failures_.load(relaxed);
    }

  private:
    static constexpr auto relaxed = std::memory_order_relaxed;
    std::atomic<std::uint64_t> max_client_conn_rejections_{0};
    std::atomic<std::uint64_t> client_login_timeouts_{0};
    std::atomic<std::uint64_t> login_failures_{0};
};

}  // namespace sluice::stats
