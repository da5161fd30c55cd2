// The Prometheus endpoint of a live Sluice under real load: the saturation metrics move when a pool is exhausted,
// agree with SHOW POOLS taken at the same moment, the timeout and refusal counters count what happened, and a scrape
// passes `promtool check metrics`.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proxy_test_support.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::test::proxy {
namespace {

using labels = std::map<std::string, std::string>;

struct sample {
    std::string name;
    labels label_set;
    double value = 0;
};

// The samples of a text exposition (format 0.0.4); comments and blank lines are skipped.
std::vector<sample> parse_samples(std::string_view text) {
    std::vector<sample> out;
    while (!text.empty()) {
        const auto eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        if (line.empty() || line.front() == '#')
            continue;
        sample s;
        std::size_t i = line.find_first_of("{ ");
        s.name = std::string(line.substr(0, i));
        if (i != std::string_view::npos && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                const auto eq = line.find('=', i);
                std::string key(line.substr(i, eq - i));
                std::string value;
                i = eq + 2;  // past ="
                for (; i < line.size() && line[i] != '"'; ++i) {
                    if (line[i] == '\\' && i + 1 < line.size())
                        ++i;
                    value += line[i];
                }
                ++i;  // past the closing quote
                if (i < line.size() && line[i] == ',')
                    ++i;
                s.label_set.emplace(std::move(key), std::move(value));
            }
            ++i;  // past }
        }
        s.value = std::strtod(std::string(line.substr(i)).c_str(), nullptr);
        out.push_back(std::move(s));
    }
    return out;
}

// One scrape of /metrics.
class scrape {
  public:
    explicit scrape(std::string body) : body_(std::move(body)), samples_(parse_samples(body_)) {}

    // The value of the only sample named `name` whose labels include `want`; nullopt when there is none or several.
    [[nodiscard]] std::optional<double> value(std::string_view name, const labels& want = {}) const {
        std::optional<double> found;
        for (const auto& s : samples_) {
            if (s.name != name)
                continue;
            bool match = true;
            for (const auto& [k, v] : want) {
                const auto it = s.label_set.find(k);
                match = match && it != s.label_set.end() && it->second == v;
            }
            if (!match)
                continue;
            if (found)
                return std::nullopt;
            found = s.value;
        }
        return found;
    }
    // value() of a pool metric of the test pool; -1 when missing (so that a comparison fails visibly).
    [[nodiscard]] double pool(std::string_view name, labels extra = {}) const {
        extra.emplace("database", "sluice_test");
        extra.emplace("user", "sluice_test");
        return value(name, extra).value_or(-1);
    }
    [[nodiscard]] const std::string& body() const { return body_; }

  private:
    std::string body_;
    std::vector<sample> samples_;
};

// GET `path` on 127.0.0.1:`port`; the body of a 200 answer, or std::runtime_error.
std::string http_get(std::uint16_t port, std::string_view path) {
    auto conn = raw_connection::tcp(port);
    if (!conn.send("GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
        throw std::runtime_error("metrics endpoint closed the connection");
    const std::string response = conn.read_bytes(std::size_t{64} << 20, 15s);
    const auto end_of_headers = response.find("\r\n\r\n");
    if (!response.starts_with("HTTP/1.1 200") || end_of_headers == std::string::npos)
        throw std::runtime_error("unexpected answer to GET " + std::string(path) + ": " + response.substr(0, 200));
    return response.substr(end_of_headers + 4);
}

pooler_options metrics_options(int pool_size, std::vector<std::pair<std::string, std::string>> extra = {}) {
    pooler_options options;
    options.pool_size = pool_size;
    // Any metrics_port other than 0: the harness replaces it with a free one.
    options.settings = {{"admin_users", "sluice_test"}, {"metrics_port", "9127"}};
    options.settings.insert(options.settings.end(), extra.begin(), extra.end());
    return options;
}

class proxy_metrics : public ::testing::Test {
  protected:
    // The metrics endpoint may open a moment after the client listeners the pooler waits for.
    explicit proxy_metrics(const pooler_options& options = metrics_options(2)) : sluice_(options) {
        EXPECT_TRUE(wait_until(
            [&] {
                try {
                    return !http_get(sluice_.process().metrics_port(), "/healthz").empty();
                } catch (const std::exception&) {
                    return false;
                }
            },
            10s));
    }

    [[nodiscard]] scrape metrics() { return scrape(http_get(sluice_.process().metrics_port(), "/metrics")); }

    // SHOW POOLS' row of the test pool, column name -> value.
    [[nodiscard]] std::map<std::string, std::string> show_pools() {
        if (!admin_)
            admin_ = connect_or_throw(sluice_.conninfo({}, "sluice_test", "pgbouncer"));
        const auto res = exec(admin_.get(), "SHOW POOLS");
        if (PQresultStatus(res.get()) != PGRES_TUPLES_OK)
            throw std::runtime_error(std::string("SHOW POOLS: ") + PQerrorMessage(admin_.get()));
        std::map<std::string, std::string> row;
        for (int r = 0; r < PQntuples(res.get()); ++r) {
            if (std::string_view(PQgetvalue(res.get(), r, 0)) != "sluice_test")
                continue;
            for (int c = 0; c < PQnfields(res.get()); ++c)
                row[PQfname(res.get(), c)] = PQgetvalue(res.get(), r, c);
        }
        return row;
    }
    [[nodiscard]] int show_pools_int(const std::string& column) {
        const auto row = show_pools();
        const auto it = row.find(column);
        return it == row.end() ? -1 : std::stoi(it->second);
    }

    pooler sluice_;
    connection admin_;
};

constexpr int held_servers = 2;  // pool_size of the fixture
constexpr int waiters = 4;

TEST_F(proxy_metrics, exhausted_pool_moves_the_saturation_metrics_and_agrees_with_show_pools) {
    // Warm the pool: both servers exist, so every later wait is for a server held by a client.
    std::vector<connection> holders;
    for (int i = 0; i < held_servers; ++i) {
        holders.push_back(connect_or_throw(sluice_.conninfo()));
        run(holders.back().get(), "BEGIN");
        EXPECT_EQ(scalar(holders.back().get(), "SELECT 'held'"), "held");
    }
    const scrape before = metrics();
    EXPECT_EQ(before.pool("sluice_clients", {{"state", "waiting"}}), 0);
    EXPECT_EQ(before.pool("sluice_servers", {{"state", "active"}}), held_servers);
    EXPECT_EQ(before.pool("sluice_pool_size"), held_servers);

    // More transactions than servers: each waiter's pg_sleep transaction queues behind the holders.
    std::vector<connection> queued;
    for (int i = 0; i < waiters; ++i) {
        queued.push_back(connect_or_throw(sluice_.conninfo()));
        ASSERT_TRUE(PQsendQuery(queued.back().get(), "BEGIN; SELECT pg_sleep(0.05); COMMIT"));
        ASSERT_EQ(PQflush(queued.back().get()), 0);
    }
    ASSERT_TRUE(wait_until([&] { return show_pools_int("cl_waiting") == waiters; }, 20s))
        << "SHOW POOLS: cl_waiting=" << show_pools_int("cl_waiting") << "\n"
        << sluice_.log();
    // Let the waits grow well past the low histogram buckets and past one second (maxwait's whole seconds).
    const auto all_queued = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until([&] { return std::chrono::steady_clock::now() - all_queued > 1200ms; }, 5s));

    // While the pool is held, SHOW POOLS and /metrics describe the same state (SHOW first: maxwait only grows).
    const auto pools = show_pools();
    const scrape held = metrics();
    ASSERT_FALSE(pools.empty()) << "no SHOW POOLS row for sluice_test";
    EXPECT_EQ(std::stoi(pools.at("cl_waiting")), waiters);
    EXPECT_EQ(held.pool("sluice_clients", {{"state", "waiting"}}), waiters);
    EXPECT_EQ(std::stoi(pools.at("sv_active")), held_servers);
    EXPECT_EQ(held.pool("sluice_servers", {{"state", "active"}}), held_servers);
    // PgBouncer's cl_active counts idle logged-in clients too; the exported states split it.
    EXPECT_EQ(std::stoi(pools.at("cl_active")), held_servers);
    EXPECT_EQ(held.pool("sluice_clients", {{"state", "active"}}) + held.pool("sluice_clients", {{"state", "idle"}}),
              std::stoi(pools.at("cl_active")));
    EXPECT_EQ(held.pool("sluice_clients", {{"state", "active"}}), held_servers);
    EXPECT_EQ(std::stoi(pools.at("sv_idle")), 0);
    EXPECT_EQ(held.pool("sluice_servers", {{"state", "idle"}}), 0);
    const double show_maxwait = std::stod(pools.at("maxwait")) + std::stod(pools.at("maxwait_us")) / 1e6;
    EXPECT_GE(show_maxwait, 1.0);
    EXPECT_GE(held.pool("sluice_client_max_wait_seconds"), show_maxwait);
    EXPECT_LT(held.pool("sluice_client_max_wait_seconds"), show_maxwait + 5);
    EXPECT_EQ(held.pool("sluice_servers_held", {{"application_name", ""}}), held_servers);
    // Every waiter queued because the pool was at its limit.
    EXPECT_EQ(held.pool("sluice_pool_exhaustion_events_total") - before.pool("sluice_pool_exhaustion_events_total"),
              waiters);
    EXPECT_GE(held.pool("sluice_oldest_transaction_age_seconds"), 1.0);
    EXPECT_GE(held.pool("sluice_oldest_idle_in_transaction_age_seconds"), 1.0);
    // Every client, the admin console's included.
    EXPECT_EQ(held.value("sluice_client_connections"), std::optional<double>(held_servers + waiters + 1));

    // Release the holders: the waiters are served in turn.
    for (auto& conn : holders)
        run(conn.get(), "COMMIT");
    for (auto& conn : queued) {
        const auto res = last_result(conn.get());
        EXPECT_EQ(PQresultStatus(res.get()), PGRES_COMMAND_OK) << PQerrorMessage(conn.get());
    }
    ASSERT_TRUE(wait_until([&] { return show_pools_int("cl_waiting") == 0; }, 10s));
    const scrape after = metrics();
    EXPECT_EQ(after.pool("sluice_clients", {{"state", "waiting"}}), 0);
    EXPECT_EQ(after.pool("sluice_client_max_wait_seconds"), 0);
    EXPECT_EQ(after.pool("sluice_servers", {{"state", "active"}}), 0);
    EXPECT_EQ(after.pool("sluice_clients", {{"state", "idle"}}), held_servers + waiters);
    // The wait histogram got one observation per waiter, each above a second: none in the buckets up to 1 s.
    const double waits = after.pool("sluice_client_wait_seconds_count") - held.pool("sluice_client_wait_seconds_count");
    EXPECT_GE(waits, waiters);
    const double long_waits_before = before.pool("sluice_client_wait_seconds_count") -
                                     before.pool("sluice_client_wait_seconds_bucket", {{"le", "1"}});
    const double long_waits_after =
        after.pool("sluice_client_wait_seconds_count") - after.pool("sluice_client_wait_seconds_bucket", {{"le", "1"}});
    EXPECT_EQ(long_waits_after - long_waits_before, waiters) << after.body();
    EXPECT_GE(after.pool("sluice_client_wait_seconds_sum") - held.pool("sluice_client_wait_seconds_sum"),
              waiters * 1.0);
    EXPECT_EQ(after.pool("sluice_pool_exhaustion_events_total"), held.pool("sluice_pool_exhaustion_events_total"));
    EXPECT_GE(after.pool("sluice_transactions_total") - before.pool("sluice_transactions_total"),
              held_servers + waiters);
}

TEST_F(proxy_metrics, a_client_with_listen_channels_is_counted_while_it_listens) {
    auto listener = connect_or_throw(sluice_.conninfo());
    EXPECT_EQ(metrics().pool("sluice_clients_listening"), 0);
    run(listener.get(), "LISTEN sluice_metrics_channel");
    EXPECT_EQ(metrics().pool("sluice_clients_listening"), 1);
    run(listener.get(), "UNLISTEN *");
    EXPECT_EQ(metrics().pool("sluice_clients_listening"), 0);
}

TEST_F(proxy_metrics, a_live_scrape_under_load_passes_promtool_check_metrics) {
    const char* candidates[] = {"/usr/bin/promtool", "/usr/local/bin/promtool"};
    std::string promtool;
    for (const char* c : candidates)
        if (::access(c, X_OK) == 0)
            promtool = c;
    if (promtool.empty())
        GTEST_SKIP() << "promtool not installed (apt-get install prometheus)";
    // Something in every family: servers active and waiting clients, an application_name, finished transactions.
    auto holder = connect_or_throw(sluice_.conninfo("application_name='promtool \"check\"'"));
    run(holder.get(), "BEGIN");
    auto other = connect_or_throw(sluice_.conninfo());
    run(other.get(), "BEGIN");
    auto waiter = connect_or_throw(sluice_.conninfo());
    ASSERT_TRUE(PQsendQuery(waiter.get(), "SELECT 1"));
    ASSERT_TRUE(wait_until([&] { return show_pools_int("cl_waiting") == 1; }, 20s));
    const scrape live = metrics();
    run(holder.get(), "COMMIT");
    run(other.get(), "COMMIT");
    EXPECT_EQ(PQresultStatus(last_result(waiter.get()).get()), PGRES_TUPLES_OK);

    const auto file = sluice_.process().dir() / "scrape.txt";
    std::ofstream(file) << live.body();
    const std::string command = promtool + " check metrics < " + file.string() + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string output;
    char buffer[4096];
    while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe))
        output.append(buffer, n);
    const int status = ::pclose(pipe);
    EXPECT_EQ(status, 0) << output;
    EXPECT_EQ(output, "") << "promtool reported problems";
    EXPECT_EQ(live.pool("sluice_servers_held", {{"application_name", "promtool \"check\""}}), 1) << live.body();
    EXPECT_GT(live.value("process_resident_memory_bytes").value_or(0), 0);
}

class proxy_metrics_query_wait_timeout : public proxy_metrics {
  protected:
    proxy_metrics_query_wait_timeout() : proxy_metrics(metrics_options(1, {{"query_wait_timeout", "1"}})) {}
};

TEST_F(proxy_metrics_query_wait_timeout, a_client_timed_out_in_the_queue_is_counted_by_kind) {
    auto holder = connect_or_throw(sluice_.conninfo());
    run(holder.get(), "BEGIN");
    const scrape before = metrics();
    auto waiter = connect_or_throw(sluice_.conninfo());
    const auto begin = std::chrono::steady_clock::now();
    const auto res = exec(waiter.get(), "SELECT 'never served'");
    EXPECT_NE(PQresultStatus(res.get()), PGRES_TUPLES_OK);
    EXPECT_THAT(PQerrorMessage(waiter.get()), ::testing::HasSubstr("query_wait_timeout"));
    EXPECT_GE(std::chrono::steady_clock::now() - begin, 900ms);
    const scrape after = metrics();
    const labels kind = {{"kind", "query_wait_timeout"}};
    EXPECT_EQ(after.pool("sluice_timeouts_total", kind) - before.pool("sluice_timeouts_total", kind), 1);
    EXPECT_EQ(after.pool("sluice_pool_exhaustion_events_total") - before.pool("sluice_pool_exhaustion_events_total"),
              1);
    EXPECT_EQ(after.pool("sluice_clients", {{"state", "waiting"}}), 0);
    // A timed-out wait was never served: no observation in the wait histogram.
    EXPECT_EQ(after.pool("sluice_client_wait_seconds_count"), before.pool("sluice_client_wait_seconds_count"));
    EXPECT_EQ(after.pool("sluice_timeouts_total", {{"kind", "query_timeout"}}), 0);
    // The holder is untouched.
    EXPECT_EQ(scalar(holder.get(), "SELECT 'still held'"), "still held");
    run(holder.get(), "COMMIT");
}

class proxy_metrics_refusals : public proxy_metrics {
  protected:
    proxy_metrics_refusals()
        : proxy_metrics(metrics_options(2, {{"max_client_conn", "3"}, {"client_login_timeout", "1"}})) {}
};

TEST_F(proxy_metrics_refusals, login_failures_login_timeouts_and_max_client_conn_rejections_are_counted) {
    const scrape before = metrics();
    EXPECT_EQ(before.value("sluice_client_connections_limit"), std::optional<double>(3));

    // A wrong password: a login failure.
    auto wrong = connect(sluice_.conninfo({}, "wrong_password"));
    EXPECT_NE(PQstatus(wrong.get()), CONNECTION_OK);
    wrong.reset();
    // A client that never finishes its startup packet: client_login_timeout.
    {
        auto stalled = raw_connection::tcp(sluice_.port());
        ASSERT_TRUE(stalled.send(std::string("\0\0", 2)));
        EXPECT_TRUE(stalled.wait_closed(10s));
    }
    ASSERT_TRUE(wait_until([&] { return metrics().value("sluice_client_connections") == 0.0; }, 10s));
    // Three clients fill max_client_conn (the admin connection is one of them); a fourth is refused.
    auto first = connect_or_throw(sluice_.conninfo());
    ASSERT_EQ(show_pools_int("cl_waiting"), 0);
    auto second = connect_or_throw(sluice_.conninfo());
    auto refused = connect(sluice_.conninfo());
    EXPECT_NE(PQstatus(refused.get()), CONNECTION_OK);
    EXPECT_THAT(PQerrorMessage(refused.get()), ::testing::HasSubstr("max_client_conn"));
    refused.reset();

    const scrape after = metrics();
    const labels login_timeout = {{"kind", "client_login_timeout"}};
    EXPECT_EQ(after.value("sluice_timeouts_total", login_timeout).value_or(-1) -
                  before.value("sluice_timeouts_total", login_timeout).value_or(-1),
              1);
    EXPECT_EQ(after.value("sluice_client_rejections_total", {{"reason", "max_client_conn"}}).value_or(-1) -
                  before.value("sluice_client_rejections_total", {{"reason", "max_client_conn"}}).value_or(-1),
              1);
    EXPECT_EQ(after.value("sluice_login_failures_total").value_or(-1) -
                  before.value("sluice_login_failures_total").value_or(-1),
              1);
    EXPECT_EQ(after.value("sluice_client_connections"), std::optional<double>(3));
}

}  // namespace
}  // namespace sluice::test::proxy
