#pragma once
// Exposes bridge pools and the process-wide async_to_sync statistics as metric families, read at scrape time from the
// pools' atomics (recording never takes a lock). Names, labels and help come from the SLUICE_BRIDGE_* lists in
// stats.hpp; every pool sample carries a `pool` label with the pool's name.

#include <vector>

#include "sluice/bridge/thread_pool.hpp"
#include "sluice/metrics/family.hpp"

namespace sluice::bridge {

class metrics_source final : public metrics::source {
  public:
    // The pools must outlive the source (or be removed before they die). Not thread-safe against add_pool during
    // collect: register pools at startup.
    void add_pool(const thread_pool& pool) { pools_.push_back(&pool); }
    void collect(std::vector<metrics::family>& out) override;

  private:
    std::vector<const thread_pool*> pools_;
};

}  // namespace sluice::bridge
