#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "sluice/bridge/metrics_source.hpp"
#include "sluice/bridge/sync_to_async.hpp"

namespace sluice::bridge {
namespace {

const metrics::family* find(const std::vector<metrics::family>& families, std::string_view name) {
    for (const auto& f : families) {
        if (f.name == name)
            return &f;
    }
    return nullptr;
}

boost::asio::awaitable<int> one_call(thread_pool& pool) {
    auto work = [] { return 7; };
    co_return co_await sync_to_async(pool, std::move(work), any_thread);
}

TEST(bridge_metrics_source, a_finished_call_shows_in_the_pool_labelled_families) {
    pool_options options;
    options.name = "probe";
    options.threads = 1;
    thread_pool pool(options);
    boost::asio::io_context io;
    auto result = boost::asio::co_spawn(io, one_call(pool), boost::asio::use_future);
    io.run();
    ASSERT_EQ(result.get(), 7);

    metrics_source source;
    source.add_pool(pool);
    std::vector<metrics::family> families;
    source.collect(families);

    const auto* calls = find(families, "sluice_bridge_calls_total");
    ASSERT_NE(calls, nullptr);
    EXPECT_EQ(calls->type, metrics::metric_type::counter);
    double ok = -1;
    for (const auto& s : calls->samples) {
        if (s.labels == metrics::label_set{{"pool", "probe"}, {"outcome", "ok"}})
            ok = s.value;
    }
    EXPECT_EQ(ok, 1);
    const auto* run = find(families, "sluice_bridge_run_seconds");
    ASSERT_NE(run, nullptr);
    ASSERT_EQ(run->histograms.size(), 1u);
    EXPECT_EQ(run->histograms[0].count, 1u);
    EXPECT_NE(find(families, "sluice_bridge_misuse_total"), nullptr);
    pool.stop();
}

}  // namespace
}  // namespace sluice::bridge
