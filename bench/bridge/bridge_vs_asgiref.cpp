// The bridge's round trips against asgiref's, in one run: the median latency of single calls of
//   sync_to_async  (a coroutine on the event loop awaits a trivial callable run on a bridge thread), and
//   async_to_sync  (a plain thread blocks on a trivial awaitable run on the event loop),
// then the same three in asgiref (bench/bridge/asgiref_round_trips.py, run with /usr/bin/python3), and the ratios.
// Medians of single calls rather than Google Benchmark's per-batch means, so both sides are measured the same way.
//
// Usage: bridge_vs_asgiref [--samples N] [--python PATH] [--script PATH]

#include <algorithm>
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
summary time_in_coroutine(asio::io_context& io, int samples, MakeAwaitable make) {
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
    return summarize(done.get());
}

template <class Call>
summary time_on_this_thread(int samples, Call call) {
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
    return summarize(std::move(times));
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

void print_row(const char* name, const summary& ours, std::optional<double> theirs_ns, double target) {
    std::printf("%-36s %9.2f %9.2f %9.2f", name, ours.median_us, ours.p90_us, ours.p99_us);
    if (theirs_ns) {
        const double theirs_us = *theirs_ns / 1000.0;
        const double ratio = theirs_us / ours.median_us;
        std::printf(" %12.2f   1/%-6.1f", theirs_us, ratio);
        if (target > 0) {
            std::printf(" <= 1/%-3.0f %s", target, ratio >= target ? "met" : "MISSED");
        }
    }
    std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
    int samples = 20000;
    std::string python = "/usr/bin/python3";
    std::string script = SLUICE_ASGIREF_SCRIPT;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--samples") == 0) {
            samples = std::max(1, std::atoi(argv[i + 1]));
        } else if (std::strcmp(argv[i], "--python") == 0) {
            python = argv[i + 1];
        } else if (std::strcmp(argv[i], "--script") == 0) {
            script = argv[i + 1];
        }
    }

    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread loop([&] { io.run(); });

    summary scoped, any, blocking;
    {
        bridge::thread_pool pool({.name = "bench", .threads = 2, .max_queue = 1024});
        bridge::thread_scope scope(pool);
        scoped = time_in_coroutine(io, samples, [&] { return bridge::sync_to_async(scope, [] { return 1; }); });
        any = time_in_coroutine(io, samples,
                                [&] { return bridge::sync_to_async(pool, [] { return 1; }, bridge::any_thread); });
        blocking = time_on_this_thread(samples, [&] {
            return bridge::async_to_sync(io.get_executor(), []() -> asio::awaitable<int> { co_return 1; });
        });
    }
    work.reset();
    loop.join();

    const auto asgiref = run_asgiref(python, script, std::max(samples / 4, 1000));
    if (!asgiref) {
        std::fprintf(stderr, "could not run %s %s (needs python3-asgiref)\n", python.c_str(), script.c_str());
    }
    const std::string json = asgiref.value_or("");

    std::printf("bridge: %d samples per row; asgiref %s on Python %s\n", samples,
                json_string(json, "asgiref_version").value_or("?").c_str(),
                json_string(json, "python").value_or("?").c_str());
    std::printf("%-36s %9s %9s %9s %12s   %-8s %s\n", "round trip (us)", "median", "p90", "p99", "asgiref med",
                "ratio", "target");
    print_row("sync_to_async, thread-sensitive", scoped, json_number(json, "sync_to_async_thread_sensitive_ns"), 6);
    print_row("sync_to_async, any thread", any, json_number(json, "sync_to_async_any_thread_ns"), 6);
    print_row("async_to_sync, from a plain thread", blocking, json_number(json, "async_to_sync_plain_thread_ns"), 15);
    return asgiref ? 0 : 1;
}
