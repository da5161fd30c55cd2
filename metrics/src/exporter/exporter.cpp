// Converts families to prometheus-cpp's MetricFamily and serializes them with its TextSerializer (exposition format
// 0.0.4). prometheus-cpp's Registry, Family and Histogram are not used: they take a mutex per observation, and Sluice
// records into its own atomics instead (STYLE.md, "Stats declared once").

#include <prometheus/check_names.h>
#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/metrics/exporter.hpp"

namespace sluice::metrics {

namespace {

// Families dropped since the process started, reported with every scrape so a broken source is visible.
std::atomic<std::uint64_t> dropped_families{0};

// The exposition format carries UTF-8 (Prometheus rejects a scrape with an invalid label value); client-supplied
// strings such as application_name may be anything, so each invalid byte becomes U+FFFD.
std::string valid_utf8(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(in[i]); };
    const auto continuation = [&](std::size_t i) { return i < in.size() && (byte(i) & 0xC0) == 0x80; };
    for (std::size_t i = 0; i < in.size();) {
        const unsigned char b = byte(i);
        std::size_t len = 0;
        if (b < 0x80) {
            len = 1;
        } else if (b >= 0xC2 && b <= 0xDF) {
            len = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            // Excludes overlong forms (E0 80..9F) and UTF-16 surrogates (ED A0..BF).
            const bool ok =
                i + 1 < in.size() && !(b == 0xE0 && byte(i + 1) < 0xA0) && !(b == 0xED && byte(i + 1) > 0x9F);
            len = ok ? 3 : 0;
        } else if (b >= 0xF0 && b <= 0xF4) {
            // Excludes overlong forms (F0 80..8F) and code points above U+10FFFF (F4 90..).
            const bool ok =
                i + 1 < in.size() && !(b == 0xF0 && byte(i + 1) < 0x90) && !(b == 0xF4 && byte(i + 1) > 0x8F);
            len = ok ? 4 : 0;
        }
        bool valid = len > 0;
        for (std::size_t k = 1; valid && k < len; ++k)
            valid = continuation(i + k);
        if (valid) {
            out.append(in.substr(i, len));
            i += len;
        } else {
            out.append("\xEF\xBF\xBD");
            ++i;
        }
    }
    return out;
}

// HELP text may contain any character but backslash and newline must be escaped (exposition format 0.0.4);
// prometheus-cpp 1.0.1 writes help verbatim, so the escaping happens here.
std::string escape_help(std::string_view help) {
    std::string out;
    out.reserve(help.size());
    for (const char c : help) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

// Converts labels; false when a name is invalid or repeated, or is `reserved` (le for histograms).
[[nodiscard]] bool convert_labels(const label_set& in, std::vector<prometheus::ClientMetric::Label>& out,
                                  std::string_view reserved) {
    out.clear();
    out.reserve(in.size());
    for (const auto& l : in) {
        if (!prometheus::CheckLabelName(l.name) || l.name == reserved)
            return false;
        for (const auto& seen : out)
            if (seen.name == l.name)
                return false;
        out.push_back({l.name, valid_utf8(l.value)});
    }
    return true;
}

[[nodiscard]] bool consistent(const histogram_sample& h) {
    if (h.upper_bounds.size() != h.cumulative_counts.size())
        return false;
    for (std::size_t i = 0; i < h.upper_bounds.size(); ++i) {
        if (!std::isfinite(h.upper_bounds[i]) || (i > 0 && h.upper_bounds[i] <= h.upper_bounds[i - 1]))
            return false;
        if ((i > 0 && h.cumulative_counts[i] < h.cumulative_counts[i - 1]) || h.cumulative_counts[i] > h.count)
            return false;
    }
    return true;
}

[[nodiscard]] prometheus::MetricType to_prometheus(metric_type t) {
    switch (t) {
        case metric_type::counter:
            return prometheus::MetricType::Counter;
        case metric_type::gauge:
            return prometheus::MetricType::Gauge;
        case metric_type::histogram:
            return prometheus::MetricType::Histogram;
    }
    return prometheus::MetricType::Untyped;
}

// Appends the samples of `f` to `into`. Returns false when `f` must be dropped whole (bad name); bad samples inside a
// good family are dropped one by one.
[[nodiscard]] bool append_samples(const family& f, prometheus::MetricFamily& into) {
    std::vector<prometheus::ClientMetric::Label> labels;
    bool all_good = true;
    for (const auto& s : f.samples) {
        if (f.type == metric_type::histogram || !convert_labels(s.labels, labels, {})) {
            all_good = false;
            continue;
        }
        auto& m = into.metric.emplace_back();
        m.label = labels;
        if (f.type == metric_type::counter)
            m.counter.value = s.value;
        else
            m.gauge.value = s.value;
    }
    for (const auto& h : f.histograms) {
        if (f.type != metric_type::histogram || !consistent(h) || !convert_labels(h.labels, labels, "le")) {
            all_good = false;
            continue;
        }
        auto& m = into.metric.emplace_back();
        m.label = labels;
        m.histogram.sample_count = h.count;
        m.histogram.sample_sum = h.sum;
        m.histogram.bucket.reserve(h.upper_bounds.size() + 1);
        for (std::size_t i = 0; i < h.upper_bounds.size(); ++i)
            m.histogram.bucket.push_back({h.cumulative_counts[i], h.upper_bounds[i]});
        m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
    }
    return all_good;
}

}  // namespace

std::string render_text(std::vector<family> families) {
    std::vector<prometheus::MetricFamily> out;
    out.reserve(families.size() + 1);
    std::unordered_map<std::string, std::size_t> index;  // name -> position in `out`
    std::uint64_t dropped = 0;
    for (auto& f : families) {
        if (!prometheus::CheckMetricName(f.name)) {
            ++dropped;
            continue;
        }
        const auto [it, inserted] = index.try_emplace(f.name, out.size());
        if (inserted) {
            auto& pf = out.emplace_back();
            pf.name = std::move(f.name);
            pf.help = escape_help(valid_utf8(f.help));
            pf.type = to_prometheus(f.type);
        } else if (out[it->second].type != to_prometheus(f.type)) {
            ++dropped;
            continue;
        }
        if (!append_samples(f, out[it->second]))
            ++dropped;
    }
    dropped_families.fetch_add(dropped, std::memory_order_relaxed);

    auto& self = out.emplace_back();
    self.name = "sluice_metrics_dropped_families_total";
    self.help = "Families or samples left out of a scrape because a source produced an invalid name or histogram";
    self.type = prometheus::MetricType::Counter;
    self.metric.emplace_back().counter.value = static_cast<double>(dropped_families.load(std::memory_order_relaxed));

    // TextSerializer sets the classic locale and round-trip precision on the stream itself.
    std::ostringstream text;
    prometheus::TextSerializer{}.Serialize(text, out);
    return std::move(text).str();
}

std::string render_text(const std::vector<source*>& sources) {
    std::vector<family> families;
    for (source* s : sources)
        if (s != nullptr)
            s->collect(families);
    collect_process_metrics(families);
    return render_text(std::move(families));
}

}  // namespace sluice::metrics
