#pragma once
// The proxy's Prometheus metrics: a stats::snapshot turned into metric families at scrape time. Std-only (compiled
// into sluice_proxy_core); the exporter (sluice_metrics_exporter) serializes the families, the net layer gathers the
// snapshot and serves it (sluice_metrics_http). docs/metrics.md lists every family.
//
// Per pool, labels are database and user. Names follow Prometheus conventions: `sluice_` prefix, base units (seconds,
// bytes), `_total` on counters. Gauges that PgBouncer reports in microseconds are converted to seconds.
//
// Other sources join a scrape next to this one: render_text({&snapshot_source, &bridge_source, ...}). The bridge's
// pools (bridge::pool_stats_snapshot, std-only) will be one such source, with families named sluice_bridge_*.

#include <vector>

#include "sluice/metrics/family.hpp"
#include "stats/snapshot.hpp"

namespace sluice::stats {

// Appends the families of `snap` to `out`. Pure: same snapshot, same families.
void append_snapshot_families(const snapshot& snap, std::vector<metrics::family>& out);

// append_snapshot_families() as a metrics::source, for render_text.
class snapshot_metrics final : public metrics::source {
  public:
    // Views `snap`, which must outlive this object (build, render, discard: all within one scrape).
    explicit snapshot_metrics(const snapshot& snap) noexcept : snap_(&snap) {}

    void collect(std::vector<metrics::family>& out) override { append_snapshot_families(*snap_, out); }

  private:
    const snapshot* snap_;
};

}  // namespace sluice::stats
