// render_text: the text exposition format, merging and dropping of families, process metrics.

#include "sluice/metrics/exporter.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "exposition.hpp"

namespace sluice::metrics {
namespace {

using testing::parse_exposition;

family make(std::string name, std::string help, metric_type type) {
    family f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
}

// A source that appends fixed families.
class fixed_source final : public source {
  public:
    explicit fixed_source(std::vector<family> families) : families_(std::move(families)) {}
    void collect(std::vector<family>& out) override { out.insert(out.end(), families_.begin(), families_.end()); }

  private:
    std::vector<family> families_;
};

TEST(render_text, writes_help_type_and_samples_of_counters_and_gauges) {
    std::vector<family> fs;
    fs.push_back(make("sluice_test_events_total", "Events seen", metric_type::counter));
    fs.back().add({{"kind", "a"}}, 3).add({{"kind", "b"}}, 4);
    fs.push_back(make("sluice_test_level", "A level", metric_type::gauge));
    fs.back().add({}, 2.5);
    const auto text = render_text(fs);

    EXPECT_NE(text.find("# HELP sluice_test_events_total Events seen\n# TYPE sluice_test_events_total counter\n"),
              std::string::npos)
        << text;
    const auto parsed = parse_exposition(text);
    EXPECT_TRUE(parsed.errors.empty()) << ::testing::PrintToString(parsed.errors) << text;
    EXPECT_EQ(parsed.value("sluice_test_events_total", {{"kind", "a"}}), 3);
    EXPECT_EQ(parsed.value("sluice_test_events_total", {{"kind", "b"}}), 4);
    EXPECT_EQ(parsed.value("sluice_test_level"), 2.5);
    EXPECT_EQ(parsed.families.at("sluice_test_level").type, "gauge");
    EXPECT_EQ(parsed.families.at("sluice_test_level").help, "A level");
}

TEST(render_text, histogram_buckets_are_cumulative_and_end_with_inf_equal_to_count) {
    auto f = make("sluice_test_seconds", "Durations", metric_type::histogram);
    const std::vector<double> bounds = {0.1, 1, 10};
    const std::vector<std::uint64_t> buckets = {2, 0, 5, 1};  // per bucket; the last is +Inf
    f.add(make_histogram({{"pool", "p"}}, bounds, buckets, 42.5));
    const auto text = render_text(std::vector<family>{f});
    const auto parsed = parse_exposition(text);
    ASSERT_TRUE(parsed.errors.empty()) << ::testing::PrintToString(parsed.errors) << text;

    const auto bucket = [&](const std::string& le) { return parsed.value("sluice_test_seconds_bucket", {{"le", le}}); };
    EXPECT_EQ(bucket("0.1"), 2);
    EXPECT_EQ(bucket("1"), 2);
    EXPECT_EQ(bucket("10"), 7);
    EXPECT_EQ(bucket("+Inf"), 8);
    EXPECT_EQ(parsed.value("sluice_test_seconds_count"), 8);
    EXPECT_EQ(parsed.value("sluice_test_seconds_sum"), 42.5);
    EXPECT_EQ(parsed.find("sluice_test_seconds_bucket").size(), 4u) << "one +Inf bucket, not two";
    for (const auto& s : parsed.find("sluice_test_seconds_bucket"))
        EXPECT_EQ(s.labels.at("pool"), "p");
}

TEST(render_text, latency_histogram_bounds_render_as_seconds) {
    latency_histogram h;
    h.observe_microseconds(100);         // le 0.0001
    h.observe_microseconds(200);         // le 0.00025
    h.observe_microseconds(70'000'000);  // above 60 s
    auto f = make("sluice_test_latency_seconds", "Latency", metric_type::histogram);
    f.add(make_histogram({}, h));
    const auto parsed = parse_exposition(render_text(std::vector<family>{f}));
    ASSERT_TRUE(parsed.errors.empty()) << ::testing::PrintToString(parsed.errors);
    EXPECT_EQ(parsed.value("sluice_test_latency_seconds_bucket", {{"le", "0.0001"}}), 1);
    EXPECT_EQ(parsed.value("sluice_test_latency_seconds_bucket", {{"le", "0.00025"}}), 2);
    EXPECT_EQ(parsed.value("sluice_test_latency_seconds_bucket", {{"le", "60"}}), 2);
    EXPECT_EQ(parsed.value("sluice_test_latency_seconds_bucket", {{"le", "+Inf"}}), 3);
    EXPECT_DOUBLE_EQ(*parsed.value("sluice_test_latency_seconds_sum"), 70.0003);
}

TEST(render_text, escapes_backslash_quote_and_newline_in_label_values) {
    const std::string nasty = "a\\b\"c\nd";
    auto f = make("sluice_test_info", "Info", metric_type::gauge);
    f.add({{"application_name", nasty}}, 1);
    const auto text = render_text(std::vector<family>{f});
    EXPECT_NE(text.find(R"(application_name="a\\b\"c\nd")"), std::string::npos) << text;
    const auto parsed = parse_exposition(text);
    ASSERT_TRUE(parsed.errors.empty()) << ::testing::PrintToString(parsed.errors);
    EXPECT_EQ(parsed.value("sluice_test_info", {{"application_name", nasty}}), 1);
}

TEST(render_text, escapes_backslash_and_newline_in_help) {
    auto f = make("sluice_test_info", "C:\\path\nsecond \"line\"", metric_type::gauge);
    f.add({}, 1);
    const auto text = render_text(std::vector<family>{f});
    EXPECT_NE(text.find("# HELP sluice_test_info C:\\\\path\\nsecond \"line\"\n"), std::string::npos) << text;
    const auto parsed = parse_exposition(text);
    ASSERT_TRUE(parsed.errors.empty()) << ::testing::PrintToString(parsed.errors);
    EXPECT_EQ(parsed.families.at("sluice_test_info").help, "C:\\path\nsecond \"line\"");
    SLUICE_EXPECT_PROMTOOL_ACCEPTS_METRICS(text);
}

TEST(render_text, replaces_invalid_utf8_in_label_values) {
    auto f = make("sluice_test_info", "Info", metric_type::gauge);
    f.add({{"application_name", "ok\xff\xc3(\xe2\x82\xac"}}, 1);  // stray byte, truncated sequence, then a valid euro
    const auto parsed = parse_exposition(render_text(std::vector<family>{f}));
    ASSERT_TRUE(parsed.errors.empty());
    EXPECT_EQ(parsed.value("sluice_test_info", {{"application_name", "ok\xEF\xBF\xBD\xEF\xBF\xBD(\xe2\x82\xac"}}), 1);
}

TEST(render_text, prints_values_exactly_enough_to_round_trip) {
    auto f = make("sluice_test_bytes_total", "Bytes", metric_type::counter);
    f.add({{"n", "big"}}, 123456789012345.0).add({{"n", "small"}}, 0.000123);
    const auto parsed = parse_exposition(render_text(std::vector<family>{f}));
    ASSERT_TRUE(parsed.errors.empty());
    EXPECT_EQ(parsed.value("sluice_test_bytes_total", {{"n", "big"}}), 123456789012345.0);
    EXPECT_EQ(parsed.value("sluice_test_bytes_total", {{"n", "small"}}), 0.000123);
}

TEST(render_text, merges_families_of_one_name_from_several_sources) {
    auto a = make("sluice_test_events_total", "Events", metric_type::counter);
    a.add({{"from", "a"}}, 1);
    auto b = make("sluice_test_events_total", "Events", metric_type::counter);
    b.add({{"from", "b"}}, 2);
    fixed_source sa({a}), sb({b});
    const auto text = render_text(std::vector<source*>{&sa, nullptr, &sb});
    const auto parsed = parse_exposition(text);
    ASSERT_TRUE(parsed.errors.empty()) << ::testing::PrintToString(parsed.errors) << text;
    EXPECT_EQ(parsed.find("sluice_test_events_total").size(), 2u);
}

TEST(render_text, drops_and_counts_a_family_whose_type_conflicts_or_whose_name_is_invalid) {
    const auto dropped_before =
        parse_exposition(render_text(std::vector<family>{})).value("sluice_metrics_dropped_families_total");
    ASSERT_TRUE(dropped_before);

    std::vector<family> fs;
    fs.push_back(make("sluice_test_thing", "A gauge", metric_type::gauge));
    fs.back().add({}, 1);
    fs.push_back(make("sluice_test_thing", "Now a counter", metric_type::counter));
    fs.back().add({{"x", "y"}}, 2);
    fs.push_back(make("sluice test bad name", "Bad", metric_type::gauge));
    fs.back().add({}, 3);
    fs.push_back(make("sluice_test_bad_label", "Bad label", metric_type::gauge));
    fs.back().add({{"bad-label", "v"}}, 4).add({{"good", "v"}}, 5);
    auto hist = make("sluice_test_broken_seconds", "Broken histogram", metric_type::histogram);
    histogram_sample broken;
    broken.upper_bounds = {1, 0.5};  // not ascending
    broken.cumulative_counts = {1, 2};
    broken.count = 2;
    hist.add(broken);
    fs.push_back(hist);

    const auto text = render_text(fs);
    const auto parsed = parse_exposition(text);
    ASSERT_TRUE(parsed.errors.empty()) << ::testing::PrintToString(parsed.errors) << text;
    EXPECT_EQ(parsed.families.at("sluice_test_thing").type, "gauge");
    EXPECT_EQ(parsed.find("sluice_test_thing").size(), 1u);
    EXPECT_EQ(parsed.find("sluice_test_bad_label").size(), 1u) << "the good sample stays";
    EXPECT_TRUE(parsed.find("sluice_test_broken_seconds_bucket").empty());
    EXPECT_EQ(*parsed.value("sluice_metrics_dropped_families_total"), *dropped_before + 4);
}

TEST(render_text, histogram_samples_may_not_carry_an_le_label) {
    auto f = make("sluice_test_seconds", "Durations", metric_type::histogram);
    const std::vector<double> bounds = {1};
    const std::vector<std::uint64_t> buckets = {1, 0};
    f.add(make_histogram({{"le", "oops"}}, bounds, buckets, 0.5));
    const auto parsed = parse_exposition(render_text(std::vector<family>{f}));
    ASSERT_TRUE(parsed.errors.empty());
    EXPECT_TRUE(parsed.find("sluice_test_seconds_bucket").empty());
}

TEST(render_text, appends_process_metrics_with_plausible_values) {
    const auto parsed = parse_exposition(render_text(std::vector<source*>{}));
    ASSERT_TRUE(parsed.errors.empty()) << ::testing::PrintToString(parsed.errors);
    EXPECT_EQ(parsed.families.at("process_cpu_seconds_total").type, "counter");
    EXPECT_GE(*parsed.value("process_cpu_seconds_total"), 0);
    EXPECT_GT(*parsed.value("process_resident_memory_bytes"), 1024 * 1024);
    EXPECT_GE(*parsed.value("process_virtual_memory_bytes"), *parsed.value("process_resident_memory_bytes"));
    EXPECT_GE(*parsed.value("process_open_fds"), 3);  // at least stdin, stdout, stderr
    EXPECT_GE(*parsed.value("process_max_fds"), *parsed.value("process_open_fds"));
    const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    const double start = *parsed.value("process_start_time_seconds");
    EXPECT_LE(start, now + 1);
    EXPECT_GT(start, now - 24 * 3600) << "this test process started less than a day ago";
}

TEST(render_text, open_fds_counts_a_newly_opened_descriptor) {
    const auto before = *parse_exposition(render_text(std::vector<source*>{})).value("process_open_fds");
    const int fd = ::dup(1);
    ASSERT_GE(fd, 0);
    const auto after = *parse_exposition(render_text(std::vector<source*>{})).value("process_open_fds");
    ::close(fd);
    EXPECT_EQ(after, before + 1);
}

TEST(render_text, output_passes_promtool_check_metrics) {
    std::vector<family> fs;
    fs.push_back(make("sluice_test_events_total", "Events seen", metric_type::counter));
    fs.back().add({{"kind", "a\"quoted\""}}, 3);
    fs.push_back(make("sluice_test_duration_seconds", "Durations", metric_type::histogram));
    fs.back().add(make_histogram({{"pool", "p"}}, latency_histogram{}));
    fixed_source s(fs);
    SLUICE_EXPECT_PROMTOOL_ACCEPTS_METRICS(render_text(std::vector<source*>{&s}));
}

}  // namespace
}  // namespace sluice::metrics
