// The mapping from the proxy's stats::snapshot to metric families, checked through the rendered exposition text.

#include "stats/metrics_source.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "exposition.hpp"
#include "sluice/metrics/exporter.hpp"
#include "snapshot.hpp"

namespace sluice::stats {
namespace {

using metrics::testing::exposition;
using metrics::testing::parse_exposition;

class snapshot_mapping : public ::testing::Test {
  protected:
    snapshot snap_ = testing::sample_snapshot();
    snapshot_metrics source_{snap_};
    std::string text_ = metrics::render_text(std::vector<metrics::source*>{&source_});
    exposition parsed_ = parse_exposition(text_);

    [[nodiscard]] std::optional<double> app(const std::string& name, std::map<std::string, std::string> match = {}) {
        match["database"] = "app";
        match["user"] = "alice";
        return parsed_.value(name, match);
    }
};

TEST_F(snapshot_mapping, renders_well_formed_text) {
    EXPECT_TRUE(parsed_.errors.empty()) << ::testing::PrintToString(parsed_.errors) << text_;
}

TEST_F(snapshot_mapping, passes_promtool_check_metrics) {
    SLUICE_EXPECT_PROMTOOL_ACCEPTS_METRICS(text_);
}

TEST_F(snapshot_mapping, clients_by_disjoint_state) {
    EXPECT_EQ(app("sluice_clients", {{"state", "active"}}), 5) << "cl_active minus the idle ones";
    EXPECT_EQ(app("sluice_clients", {{"state", "idle"}}), 2);
    EXPECT_EQ(app("sluice_clients", {{"state", "waiting"}}), 3);
    EXPECT_EQ(app("sluice_clients", {{"state", "active_cancel_req"}}), 1);
    EXPECT_EQ(app("sluice_clients", {{"state", "waiting_cancel_req"}}), 0);
    EXPECT_EQ(parsed_.families.at("sluice_clients").type, "gauge");
}

TEST_F(snapshot_mapping, clients_pinned_by_session_state) {
    EXPECT_EQ(app("sluice_clients_pinned"), 1);
    EXPECT_EQ(parsed_.families.at("sluice_clients_pinned").type, "gauge");
}

TEST_F(snapshot_mapping, servers_by_state) {
    EXPECT_EQ(app("sluice_servers", {{"state", "active"}}), 5);
    EXPECT_EQ(app("sluice_servers", {{"state", "idle"}}), 1);
    EXPECT_EQ(app("sluice_servers", {{"state", "used"}}), 2);
    EXPECT_EQ(app("sluice_servers", {{"state", "tested"}}), 1);
    EXPECT_EQ(app("sluice_servers", {{"state", "login"}}), 1);
    EXPECT_EQ(app("sluice_servers", {{"state", "active_cancel"}}), 0);
    EXPECT_EQ(app("sluice_servers", {{"state", "being_canceled"}}), 1);
}

TEST_F(snapshot_mapping, pool_configuration_and_limits) {
    EXPECT_EQ(app("sluice_pool_size"), 5);
    EXPECT_EQ(app("sluice_pool_min_size"), 1);
    EXPECT_EQ(app("sluice_pool_reserve_size"), 2);
    EXPECT_EQ(app("sluice_pool_max_db_connections"), 10);
    EXPECT_EQ(app("sluice_pool_max_user_connections"), 0);
    EXPECT_EQ(app("sluice_pool_paused"), 0);
    EXPECT_EQ(parsed_.value("sluice_pool_paused", {{"database", "reports"}, {"user", "bob"}}), 1);
    EXPECT_EQ(app("sluice_pool_info", {{"pool_mode", "transaction"}}), 1);
    EXPECT_EQ(parsed_.value("sluice_pool_info", {{"database", "reports"}, {"pool_mode", "session"}}), 1);
}

TEST_F(snapshot_mapping, ages_and_waits_are_in_seconds) {
    EXPECT_EQ(app("sluice_client_max_wait_seconds"), 1.5);
    EXPECT_EQ(app("sluice_oldest_transaction_age_seconds"), 12);
    EXPECT_EQ(app("sluice_oldest_idle_in_transaction_age_seconds"), 3);
}

TEST_F(snapshot_mapping, counters_carry_the_totals) {
    EXPECT_EQ(app("sluice_pool_exhaustion_events_total"), 17);
    EXPECT_EQ(app("sluice_server_assignments_total"), 90);
    EXPECT_EQ(app("sluice_transactions_total"), 100);
    EXPECT_EQ(app("sluice_queries_total"), 250);
    EXPECT_EQ(app("sluice_received_bytes_total"), 123'456);
    EXPECT_EQ(app("sluice_sent_bytes_total"), 7'654'321);
    EXPECT_EQ(app("sluice_client_parses_total"), 11);
    EXPECT_EQ(app("sluice_server_parses_total"), 12);
    EXPECT_EQ(app("sluice_binds_total"), 13);
    EXPECT_EQ(app("sluice_server_connects_total"), 20);
    EXPECT_EQ(app("sluice_server_connect_failures_total"), 2);
    for (const auto& [name, f] : parsed_.families) {
        if (f.type == "counter") {
            EXPECT_TRUE(name.ends_with("_total")) << name;
        }
    }
}

TEST_F(snapshot_mapping, timeouts_by_kind_including_login_timeouts_without_a_pool) {
    EXPECT_EQ(app("sluice_timeouts_total", {{"kind", "query_wait_timeout"}}), 3);
    EXPECT_EQ(app("sluice_timeouts_total", {{"kind", "query_timeout"}}), 4);
    EXPECT_EQ(app("sluice_timeouts_total", {{"kind", "idle_transaction_timeout"}}), 5);
    EXPECT_EQ(app("sluice_timeouts_total", {{"kind", "client_idle_timeout"}}), 6);
    EXPECT_EQ(app("sluice_timeouts_total", {{"kind", "transaction_timeout"}}), 14);
    const auto login = parsed_.find("sluice_timeouts_total", {{"kind", "client_login_timeout"}});
    ASSERT_EQ(login.size(), 1u);
    EXPECT_EQ(login[0].value, 2);
    EXPECT_EQ(login[0].labels.count("database"), 0u);
}

TEST_F(snapshot_mapping, server_closes_by_reason) {
    EXPECT_EQ(app("sluice_server_closed_total", {{"reason", "lifetime"}}), 7);
    EXPECT_EQ(app("sluice_server_closed_total", {{"reason", "idle"}}), 8);
    EXPECT_EQ(app("sluice_server_closed_total", {{"reason", "error"}}), 9);
    EXPECT_EQ(app("sluice_server_closed_total", {{"reason", "client_dirty"}}), 10);
    EXPECT_EQ(app("sluice_server_closed_total", {{"reason", "reload"}}), 1);
}

TEST_F(snapshot_mapping, wait_time_histogram_is_cumulative_in_seconds) {
    const auto bucket = [&](const std::string& le) { return app("sluice_client_wait_seconds_bucket", {{"le", le}}); };
    EXPECT_EQ(bucket("0.0001"), 4);
    EXPECT_EQ(bucket("0.5"), 4);
    EXPECT_EQ(bucket("1"), 6);
    EXPECT_EQ(bucket("60"), 6);
    EXPECT_EQ(bucket("+Inf"), 7);
    EXPECT_EQ(app("sluice_client_wait_seconds_count"), 7);
    EXPECT_EQ(app("sluice_client_wait_seconds_sum"), 62);
    EXPECT_EQ(app("sluice_transaction_duration_seconds_bucket", {{"le", "0.005"}}), 100);
    EXPECT_EQ(app("sluice_transaction_duration_seconds_sum"), 0.4);
    EXPECT_EQ(app("sluice_query_duration_seconds_count"), 0);
    EXPECT_EQ(app("sluice_server_connect_duration_seconds_bucket", {{"le", "0.001"}}), 20);
}

TEST_F(snapshot_mapping, servers_held_counts_linked_active_clients_by_application_name) {
    EXPECT_EQ(app("sluice_servers_held", {{"application_name", "billing"}}), 2);
    EXPECT_EQ(app("sluice_servers_held", {{"application_name", "web"}}), 1);
    EXPECT_EQ(parsed_.find("sluice_servers_held").size(), 2u);
}

TEST_F(snapshot_mapping, database_rows_and_process_wide_counts) {
    EXPECT_EQ(parsed_.value("sluice_database_server_connections", {{"database", "app"}}), 11);
    EXPECT_EQ(parsed_.value("sluice_database_server_connections_limit", {{"database", "app"}}), 10);
    EXPECT_EQ(parsed_.value("sluice_database_client_connections", {{"database", "app"}}), 10);
    EXPECT_EQ(parsed_.value("sluice_database_client_connections_limit", {{"database", "app"}}), 50);
    EXPECT_EQ(parsed_.value("sluice_database_paused", {{"database", "app"}}), 0);
    EXPECT_EQ(parsed_.value("sluice_database_disabled", {{"database", "app"}}), 0);
    EXPECT_EQ(parsed_.value("sluice_client_connections"), 12);
    EXPECT_EQ(parsed_.value("sluice_client_connections_limit"), 100);
    EXPECT_EQ(parsed_.value("sluice_client_rejections_total", {{"reason", "max_client_conn"}}), 4);
    EXPECT_EQ(parsed_.value("sluice_login_failures_total"), 1);
}

TEST_F(snapshot_mapping, every_family_is_prefixed_and_documented_by_help) {
    std::vector<metrics::family> families;
    source_.collect(families);
    std::set<std::string> names;
    for (const auto& f : families) {
        EXPECT_TRUE(f.name.starts_with("sluice_")) << f.name;
        EXPECT_FALSE(f.help.empty()) << f.name;
        EXPECT_TRUE(names.insert(f.name).second) << "one family per name: " << f.name;
    }
}

TEST(snapshot_metrics, empty_snapshot_still_declares_the_families) {
    const snapshot empty;
    snapshot_metrics source(empty);
    const auto parsed = parse_exposition(metrics::render_text(std::vector<metrics::source*>{&source}));
    ASSERT_TRUE(parsed.errors.empty()) << ::testing::PrintToString(parsed.errors);
    EXPECT_TRUE(parsed.families.count("sluice_clients"));
    EXPECT_TRUE(parsed.families.count("sluice_client_wait_seconds"));
    EXPECT_EQ(parsed.value("sluice_client_connections"), 0);
}

}  // namespace
}  // namespace sluice::stats
