#include "sluice/bridge/metrics_source.hpp"

#include <map>
#include <string>
#include <string_view>

namespace sluice::bridge {

namespace {

// `outcome="ok"` -> {outcome, ok}; empty -> none.
void append_label(metrics::label_set& labels, std::string_view spec) {
    const auto eq = spec.find('=');
    if (eq == std::string_view::npos)
        return;
    auto value = spec.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
    labels.push_back({std::string(spec.substr(0, eq)), std::string(value)});
}

class family_set {
  public:
    explicit family_set(std::vector<metrics::family>& out) : out_(out) {}

    metrics::family& get(std::string_view name, std::string_view help, metrics::metric_type type) {
        auto [it, inserted] = index_.try_emplace(std::string(name), out_.size());
        if (inserted) {
            metrics::family f;
            f.name = std::string(name);
            f.help = std::string(help);
            f.type = type;
            out_.push_back(std::move(f));
        }
        return out_[it->second];
    }

  private:
    std::vector<metrics::family>& out_;
    std::map<std::string, std::size_t> index_;
};

metrics::histogram_sample to_histogram(metrics::label_set labels, const histogram_snapshot& h) {
    std::vector<double> bounds;
    bounds.reserve(duration_bucket_bounds.size());
    for (auto b : duration_bucket_bounds)
        bounds.push_back(static_cast<double>(b.count()) / 1e6);
    return metrics::make_histogram(std::move(labels), bounds, h.buckets, static_cast<double>(h.sum.count()) / 1e9);
}

}  // namespace

void metrics_source::collect(std::vector<metrics::family>& out) {
    family_set families(out);
    for (const auto* pool : pools_) {
        const auto snap = pool->stats();
        const metrics::label_set base{{"pool", pool->options().name}};
#define SLUICE_BRIDGE_EMIT(field, name, label, help, type)                                      \
    {                                                                                           \
        auto labels = base;                                                                     \
        append_label(labels, label);                                                            \
        families.get(name, help, type).add(std::move(labels), static_cast<double>(snap.field)); \
    }
#define SLUICE_BRIDGE_EMIT_COUNTER(field, name, label, help) \
    SLUICE_BRIDGE_EMIT(field, name, label, help, metrics::metric_type::counter)
#define SLUICE_BRIDGE_EMIT_GAUGE(field, name, label, help) \
    SLUICE_BRIDGE_EMIT(field, name, label, help, metrics::metric_type::gauge)
#define SLUICE_BRIDGE_EMIT_HISTOGRAM(field, name, label, help)                                                      \
    {                                                                                                               \
        auto labels = base;                                                                                         \
        append_label(labels, label);                                                                                \
        families.get(name, help, metrics::metric_type::histogram).add(to_histogram(std::move(labels), snap.field)); \
    }
        SLUICE_BRIDGE_POOL_COUNTERS(SLUICE_BRIDGE_EMIT_COUNTER)
        SLUICE_BRIDGE_POOL_GAUGES(SLUICE_BRIDGE_EMIT_GAUGE)
        SLUICE_BRIDGE_POOL_HISTOGRAMS(SLUICE_BRIDGE_EMIT_HISTOGRAM)
    }
    const auto global = bridge_global_stats().snapshot();
    const metrics::label_set base{};
    {
        const auto& snap = global;
        SLUICE_BRIDGE_GLOBAL_COUNTERS(SLUICE_BRIDGE_EMIT_COUNTER)
        SLUICE_BRIDGE_GLOBAL_HISTOGRAMS(SLUICE_BRIDGE_EMIT_HISTOGRAM)
    }
#undef SLUICE_BRIDGE_EMIT_HISTOGRAM
#undef SLUICE_BRIDGE_EMIT_GAUGE
#undef SLUICE_BRIDGE_EMIT_COUNTER
#undef SLUICE_BRIDGE_EMIT
}

}  // namespace sluice::bridge
