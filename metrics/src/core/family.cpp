#include "sluice/metrics/family.hpp"

#include <array>
#include <cassert>
#include <utility>

namespace sluice::metrics {

family& family::add(label_set labels, double value) {
    assert(type != metric_type::histogram);
    samples.push_back(sample{std::move(labels), value});
    return *this;
}

family& family::add(histogram_sample h) {
    assert(type == metric_type::histogram);
    histograms.push_back(std::move(h));
    return *this;
}

histogram_sample make_histogram(label_set labels, std::span<const double> upper_bounds,
                                std::span<const std::uint64_t> buckets, double sum) {
    assert(buckets.size() == upper_bounds.size() + 1);
    histogram_sample h;
    h.labels = std::move(labels);
    h.upper_bounds.assign(upper_bounds.begin(), upper_bounds.end());
    h.cumulative_counts.reserve(upper_bounds.size());
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        running += buckets[i];
        if (i < upper_bounds.size())
            h.cumulative_counts.push_back(running);
    }
    h.count = running;
    h.sum = sum;
    return h;
}

histogram_sample make_histogram(label_set labels, const latency_histogram& h) {
    std::array<std::uint64_t, latency_histogram::bucket_count> buckets{};
    for (std::size_t i = 0; i < buckets.size(); ++i)
        buckets[i] = h.bucket(i);
    return make_histogram(std::move(labels), latency_bounds_seconds, buckets,
                          static_cast<double>(h.sum_microseconds()) / 1e6);
}

}  // namespace sluice::metrics
