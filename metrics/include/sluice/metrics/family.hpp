#pragma once
// The data model a metrics source fills at scrape time: metric families of samples, in Prometheus's terms but with no
// Prometheus dependency. Hot paths never build these: they record into instruments.hpp atomics and per-worker
// counters, and a `source` converts those into families only when an exporter asks (once per scrape).
//
// Names follow Prometheus conventions (https://prometheus.io/docs/practices/naming/): `sluice_` prefix, base units
// (seconds, bytes), `_total` on counters. The exporter checks names and drops what the text format cannot carry.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sluice/metrics/instruments.hpp"

namespace sluice::metrics {

enum class metric_type { counter, gauge, histogram };

struct label {
    std::string name;
    std::string value;  // any bytes: the exporter escapes it and replaces invalid UTF-8

    friend bool operator==(const label&, const label&) = default;
};
using label_set = std::vector<label>;

// One value of a counter or gauge.
struct sample {
    label_set labels;
    double value = 0;
};

// One histogram series. `upper_bounds` are finite and ascending; the +Inf bucket is implicit and holds `count`.
// `cumulative_counts[i]` counts observations <= upper_bounds[i], so it never decreases and never exceeds `count`.
struct histogram_sample {
    label_set labels;
    std::vector<double> upper_bounds;
    std::vector<std::uint64_t> cumulative_counts;  // same size as upper_bounds
    double sum = 0;
    std::uint64_t count = 0;
};

struct family {
    std::string name;
    std::string help;
    metric_type type = metric_type::gauge;
    std::vector<sample> samples;               // counter and gauge families
    std::vector<histogram_sample> histograms;  // histogram families

    // Appends a sample and returns *this, so a family reads as one expression.
    family& add(label_set labels, double value);
    family& add(histogram_sample h);
};

// Builds a histogram series from per-bucket (non-cumulative) counts where the last count is the +Inf bucket:
// `buckets.size()` must be `upper_bounds.size() + 1`. `count` is the sum of all buckets, so a snapshot whose total was
// read apart from its buckets still yields a consistent series (+Inf bucket == count).
[[nodiscard]] histogram_sample make_histogram(label_set labels, std::span<const double> upper_bounds,
                                              std::span<const std::uint64_t> buckets, double sum);

// The same from a live latency_histogram, in seconds, with latency_bounds_seconds as bounds.
[[nodiscard]] histogram_sample make_histogram(label_set labels, const latency_histogram& h);

// Something that contributes families to a scrape. The exporter calls collect() once per scrape, on its own thread;
// an implementation reads its atomics or a snapshot it was given and must not block. Families with the same name
// from several sources are merged by the exporter when their types agree.
class source {
  public:
    virtual ~source() = default;
    // Appends this source's families to `out`; never clears it.
    virtual void collect(std::vector<family>& out) = 0;

  protected:
    source() = default;
    source(const source&) = default;
    source& operator=(const source&) = default;
};

}  // namespace sluice::metrics
