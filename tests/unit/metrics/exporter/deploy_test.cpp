// The deploy files and the documentation agree with the metrics Sluice exports: alert rules and dashboard queries
// are valid PromQL (promtool), the alert rules pass their unit tests, and every metric they or docs/metrics.md name
// is one the exporter produces.

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "exposition.hpp"
#include "sluice/metrics/exporter.hpp"
#include "snapshot.hpp"
#include "stats/metrics_source.hpp"

namespace sluice::metrics {
namespace {

using testing::find_program;
using testing::run_command;
using testing::temp_file;

const std::string source_dir = SLUICE_SOURCE_DIR;
const std::string alerts_path = source_dir + "/deploy/prometheus/sluice-alerts.yml";
const std::string alerts_test_path = source_dir + "/tests/unit/metrics/exporter/sluice-alerts.test.yml";
const std::string dashboard_path = source_dir + "/deploy/grafana/sluice-dashboard.json";
const std::string docs_path = source_dir + "/docs/metrics.md";

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// Family names of a full scrape: a snapshot with pools, clients and databases, plus process and exporter metrics.
std::set<std::string> exported_families() {
    const auto snap = stats::testing::sample_snapshot();
    stats::snapshot_metrics source(snap);
    const auto parsed = testing::parse_exposition(render_text(std::vector<metrics::source*>{&source}));
    std::set<std::string> names;
    for (const auto& [name, f] : parsed.families)
        names.insert(name);
    return names;
}

// The metric names `text` mentions: identifiers starting with sluice_ or process_, histogram suffixes removed.
std::set<std::string> metric_names_in(const std::string& text, const std::set<std::string>& known) {
    static const std::regex name(R"(\b(sluice|process)_[a-z_]+)");
    std::set<std::string> out;
    for (std::sregex_iterator it(text.begin(), text.end(), name), end; it != end; ++it) {
        std::string n = it->str();
        for (const std::string suffix : {"_bucket", "_sum", "_count"})
            if (n.ends_with(suffix) && known.count(n.substr(0, n.size() - suffix.size())))
                n.resize(n.size() - suffix.size());
        out.insert(n);
    }
    return out;
}

// The "expr" strings of the dashboard, JSON-unescaped.
std::vector<std::string> dashboard_exprs() {
    const auto json = read_file(dashboard_path);
    static const std::regex expr(R"re("expr":\s*"((?:[^"\\]|\\.)*)")re");
    std::vector<std::string> out;
    for (std::sregex_iterator it(json.begin(), json.end(), expr), end; it != end; ++it) {
        const std::string escaped = (*it)[1];
        std::string plain;
        for (std::size_t i = 0; i < escaped.size(); ++i) {
            if (escaped[i] == '\\' && i + 1 < escaped.size())
                ++i;
            plain += escaped[i];
        }
        out.push_back(plain);
    }
    return out;
}

#define SLUICE_REQUIRE_PROMTOOL(var)                  \
    const std::string var = find_program("promtool"); \
    if (var.empty())                                  \
    GTEST_SKIP() << "promtool not installed (apt-get install prometheus)"

TEST(alert_rules, pass_promtool_check_rules) {
    SLUICE_REQUIRE_PROMTOOL(promtool);
    const auto r = run_command(promtool + " check rules " + alerts_path);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << r.output;
}

TEST(alert_rules, pass_their_promtool_unit_tests) {
    SLUICE_REQUIRE_PROMTOOL(promtool);
    const auto r = run_command(promtool + " test rules " + alerts_test_path);
    EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(alert_rules, name_only_exported_metrics) {
    const auto known = exported_families();
    for (const auto& n : metric_names_in(read_file(alerts_path), known))
        EXPECT_TRUE(known.count(n)) << n << " is not exported";
}

TEST(dashboard, is_valid_json) {
    const std::string python = find_program("python3");
    if (python.empty())
        GTEST_SKIP() << "python3 not installed";
    const auto r = run_command(python + " -c 'import json, sys; json.load(open(sys.argv[1]))' " + dashboard_path);
    EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(dashboard, queries_are_valid_promql) {
    SLUICE_REQUIRE_PROMTOOL(promtool);
    const auto exprs = dashboard_exprs();
    ASSERT_GE(exprs.size(), 20u);
    // promtool checks expressions in rule files: make each query a recording rule, with Grafana's interval variable
    // replaced by a duration.
    std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
    for (std::size_t i = 0; i < exprs.size(); ++i) {
        const auto e = std::regex_replace(exprs[i], std::regex(R"(\$__rate_interval)"), "5m");
        rules += "      - record: dashboard:query_" + std::to_string(i) + "\n        expr: |\n          " + e + "\n";
    }
    const temp_file file("dashboard-rules.yml", rules);
    const auto r = run_command(promtool + " check rules " + file.path().string());
    EXPECT_EQ(r.exit_code, 0) << r.output << rules;
}

TEST(dashboard, names_only_exported_metrics) {
    const auto known = exported_families();
    const auto names = metric_names_in(read_file(dashboard_path), known);
    EXPECT_TRUE(names.count("sluice_client_wait_seconds"));
    EXPECT_TRUE(names.count("sluice_servers_held"));
    for (const auto& n : names)
        EXPECT_TRUE(known.count(n)) << n << " is not exported";
}

TEST(docs, list_every_exported_metric_and_nothing_else) {
    const auto known = exported_families();
    const auto docs = read_file(docs_path);
    // Table rows name one metric in their first cell.
    static const std::regex row(R"(\n\| `((?:sluice|process)_[a-z_]+)` \|)");
    std::set<std::string> documented;
    for (std::sregex_iterator it(docs.begin(), docs.end(), row), end; it != end; ++it)
        documented.insert((*it)[1]);
    for (const auto& n : known)
        EXPECT_TRUE(documented.count(n)) << n << " is exported but not documented";
    for (const auto& n : documented)
        EXPECT_TRUE(known.count(n)) << n << " is documented but not exported";
}

}  // namespace
}  // namespace sluice::metrics
