// The bridge's round trips against asgiref's, in one run: the median latency of single calls of
//   sync_to_async  (a coroutine on the event loop awaits a trivial callable run on a bridge thread), and
//   async_to_sync  (a plain thread blocks on a trivial awaitable run on the event loop),
// then the same three in asgiref (bench/bridge/asgiref_round_trips.py, run with /usr/bin/python3), and the ratios.
// Medians of single calls rather than Google Benchmark's per-batch means, so both sides are measured the same way.
// The two sides alternate in rounds, so that load from elsewhere on a shared machine hits both alike; each figure is
// the median of the round medians, and the ratio column also gives the worst and best round.
//
// Usage: bridge_vs_asgiref [--samples N (bridge calls per row and round)] [--rounds R] [--python PATH] [--script PATH]

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "sluice/bridge/bridge.hpp"

#ifndef SLUICE_ASGIREF_PYTHON
#define SLUICE_ASGIREF_PYTHON "/usr/bin/python3"
#endif
#ifndef SLUICE_ASGIREF_SCRIPT
#define SLUICE_ASGIREF_SCRIPT "bench/bridge/asgiref_round_trips.py"
#endif

namespace {

namespace asio = boost::asio;
namespace bridge = sluice::bridge;
using clock_type = std::chrono::steady_clock;

struct summary {
    double median_us = 0;
    double p90_us = 0;
    double p99_us = 0;
};

summary summarize(std::vector<std::chrono::nanoseconds> samples) {
    if (samples.empty()) {
        return {};
    }
    std::sort(samples.begin(), samples.end());
    auto at = [&](double q) {
        const auto i = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1));
        return static_cast<double>(samples[i].count()) / 1000.0;
    };
    return summary{at(0.5), at(0.9), at(0.99)};
}

constexpr int warmup = 500;

// Times `samples` awaits of make() inside one coroutine on io's thread.
template <class MakeAwaitable>
std::vector<std::chrono::nanoseconds> time_in_coroutine(asio::io_context& io, int samples, MakeAwaitable make) {
    auto done = asio::co_spawn(
        io,
        [&]() -> asio::awaitable<std::vector<std::chrono::nanoseconds>> {
            for (int i = 0; i < warmup; ++i) {
                (void)co_await make();
            }
            std::vector<std::chrono::nanoseconds> times;
            times.reserve(static_cast<std::size_t>(samples));
            for (int i = 0; i < samples; ++i) {
                const auto start = clock_type::now();
                (void)co_await make();
                times.push_back(clock_type::now() - start);
            }
            co_return times;
        },
        asio::use_future);
    return done.get();
}

template <class Call>
std::vector<std::chrono::nanoseconds> time_on_this_thread(int samples, Call call) {
    for (int i = 0; i < warmup; ++i) {
        call();
    }
    std::vector<std::chrono::nanoseconds> times;
    times.reserve(static_cast<std::size_t>(samples));
    for (int i = 0; i < samples; ++i) {
        const auto start = clock_type::now();
        call();
        times.push_back(clock_type::now() - start);
    }
    return times;
}

// The value of "key": <number> in the script's one-line JSON output.
std::optional<double> json_number(const std::string& json, const std::string& key) {
    const auto at = json.find("\"" + key + "\":");
    if (at == std::string::npos) {
        return std::nullopt;
    }
    return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
}

std::optional<std::string> json_string(const std::string& json, const std::string& key) {
    const auto at = json.find("\"" + key + "\": \"");
    if (at == std::string::npos) {
        return std::nullopt;
    }
    const auto begin = at + key.size() + 5;
    return json.substr(begin, json.find('"', begin) - begin);
}

std::optional<std::string> run_asgiref(const std::string& python, const std::string& script, int samples) {
    const std::string command = python + " " + script + " " + std::to_string(samples);
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return std::nullopt;
    }
    std::string out;
    char buf[512];
    while (std::fgets(buf, sizeof buf, pipe) != nullptr) {
        out += buf;
    }
    if (::pclose(pipe) != 0) {
        return std::nullopt;
    }
    return out;
}

double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

struct row {
    const char* name;
    const char* asgiref_key;
    double target;  // the bridge must take at most 1/target of asgiref's time
    std::vector<std::chrono::nanoseconds> samples;
    std::vector<double> ours_us;    // per round
    std::vector<double> theirs_us;  // per round
};

void print_row(const row& r) {
    const summary all = summarize(r.samples);
    const double ours = median_of(r.ours_us);
    std::printf("%-36s %8.2f %8.2f %8.2f", r.name, ours, all.p90_us, all.p99_us);
    if (r.theirs_us.size() != r.ours_us.size() || r.theirs_us.empty()) {
        std::printf("   (no asgiref figures)\n");
        return;
    }
    std::vector<double> ratios;
    for (std::size_t i = 0; i < r.ours_us.size(); ++i) {
        ratios.push_back(r.theirs_us[i] / r.ours_us[i]);
    }
    const double theirs = median_of(r.theirs_us);
    const double ratio = theirs / ours;
    std::printf(" %11.2f   1/%-5.1f (1/%.1f..1/%.1f)  <= 1/%-3.0f %s\n", theirs, ratio,
                *std::min_element(ratios.begin(), ratios.end()), *std::max_element(ratios.begin(), ratios.end()),
                r.target, ratio >= r.target ? "met" : "MISSED");
}

}  // namespace

int main(int argc, char** argv) {
    int samples = 4000;
    int rounds = 5;
    std::string python = SLUICE_ASGIREF_PYTHON;
    std::string script = SLUICE_ASGIREF_SCRIPT;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--samples") == 0) {
            samples = std::max(1, std::atoi(argv[i + 1]));
        } else if (std::strcmp(argv[i], "--rounds") == 0) {
            rounds = std::max(1, std::atoi(argv[i + 1]));
        } else if (std::strcmp(argv[i], "--python") == 0) {
            python = argv[i + 1];
        } else if (std::strcmp(argv[i], "--script") == 0) {
            script = argv[i + 1];
        }
    }
    const int asgiref_samples = std::max(samples / 4, 500);

    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread loop([&] { io.run(); });
    bridge::thread_pool pool({.name = "bench", .threads = 2, .max_queue = 1024});
    bridge::thread_scope scope(pool);

    std::array<row, 3> rows{{
        {"sync_to_async, thread-sensitive", "sync_to_async_thread_sensitive_ns", 6, {}, {}, {}},
        {"sync_to_async, any thread", "sync_to_async_any_thread_ns", 6, {}, {}, {}},
        {"async_to_sync, from a plain thread", "async_to_sync_plain_thread_ns", 15, {}, {}, {}},
    }};
    auto record = [](row& r, std::vector<std::chrono::nanoseconds> s) {
        r.ours_us.push_back(summarize(s).median_us);
        r.samples.insert(r.samples.end(), s.begin(), s.end());
    };
    std::string versions;
    bool asgiref_ok = true;
    for (int round = 0; round < rounds; ++round) {
        record(rows[0], time_in_coroutine(io, samples, [&] { return bridge::sync_to_async(scope, [] { return 1; }); }));
        record(rows[1], time_in_coroutine(io, samples, [&] {
                   return bridge::sync_to_async(
                       pool, [] { return 1; }, bridge::any_thread);
               }));
        record(rows[2], time_on_this_thread(samples, [&] {
                   return bridge::async_to_sync(io.get_executor(), []() -> asio::awaitable<int> { co_return 1; });
               }));
        const auto json = run_asgiref(python, script, asgiref_samples);
        if (!json) {
            asgiref_ok = false;
            continue;
        }
        versions = "asgiref " + json_string(*json, "asgiref_version").value_or("?") + " (Python " +
                   json_string(*json, "python").value_or("?") + ")";
        for (row& r : rows) {
            if (const auto ns = json_number(*json, r.asgiref_key)) {
                r.theirs_us.push_back(*ns / 1000.0);
            }
        }
    }
    work.reset();
    loop.join();
    if (!asgiref_ok) {
        std::fprintf(stderr, "could not run %s %s (needs python3-asgiref)\n", python.c_str(), script.c_str());
    }

    std::printf("bridge vs %s: %d interleaved rounds of %d bridge / %d asgiref calls per row\n", versions.c_str(),
                rounds, samples, asgiref_samples);
    std::printf("%-36s %8s %8s %8s %11s   %-24s %s\n", "round trip (us)", "median", "p90", "p99", "asgiref med",
                "ratio (worst..best round)", "target");
    for (const row& r : rows) {
        print_row(r);
    }
    return asgiref_ok ? 0 : 1;
}
