#pragma once
// Prometheus text exposition (format 0.0.4) of metric families. Provided by the target sluice_metrics_exporter, which
// only the executable and tests link; this header itself is std-only.
//
// Thread-safety: every function may be called from any thread; calls share no state.

#include <string>
#include <string_view>
#include <vector>

#include "sluice/metrics/family.hpp"

namespace sluice::metrics {

// The Content-Type of render_text()'s output.
inline constexpr std::string_view text_content_type = "text/plain; version=0.0.4; charset=utf-8";

// Collects every source once, appends the process metrics (collect_process_metrics) and serializes the lot.
// Families with one name are merged when their types agree; a family whose type disagrees with an earlier one of the
// same name, an invalid metric or label name, and a histogram with inconsistent buckets are dropped (and counted in
// sluice_metrics_dropped_families_total), so one bad source never makes the whole scrape unparseable.
// Null pointers in `sources` are skipped.
[[nodiscard]] std::string render_text(const std::vector<source*>& sources);

// Serializes exactly `families` (no process metrics), with the same merging and checks as above.
[[nodiscard]] std::string render_text(std::vector<family> families);

// Process metrics with the names every Prometheus client library uses (https://prometheus.io/docs/instrumenting/
// writing_clientlibs/#process-metrics), read from /proc/self: process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds. A value that cannot be read is left out rather than reported as 0.
void collect_process_metrics(std::vector<family>& out);

// collect_process_metrics() as a source.
class process_source final : public source {
  public:
    void collect(std::vector<family>& out) override { collect_process_metrics(out); }
};

}  // namespace sluice::metrics
