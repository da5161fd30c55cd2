// Process metrics from procfs (proc(5)), named as every Prometheus client library names them.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "sluice/metrics/exporter.hpp"

namespace sluice::metrics {

namespace {

[[nodiscard]] std::optional<std::string> read_file(const char* path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (in.bad())
        return std::nullopt;
    return text;
}

[[nodiscard]] std::optional<std::uint64_t> to_u64(std::string_view s) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size())
        return std::nullopt;
    return v;
}

// The fields of /proc/self/stat the metrics need. The second field, comm, is in parentheses and may itself contain
// spaces and ')', so fields are counted from the last ')'.
struct proc_stat {
    std::uint64_t utime_ticks = 0;
    std::uint64_t stime_ticks = 0;
    std::uint64_t start_ticks_since_boot = 0;
    std::uint64_t vsize_bytes = 0;
    std::uint64_t rss_pages = 0;
};

[[nodiscard]] std::optional<proc_stat> read_proc_stat() {
    const auto text = read_file("/proc/self/stat");
    if (!text)
        return std::nullopt;
    const auto close = text->rfind(')');
    if (close == std::string::npos)
        return std::nullopt;
    std::vector<std::string_view> fields;  // fields[0] is field 3 of proc(5), "state"
    std::string_view rest = std::string_view(*text).substr(close + 1);
    while (!rest.empty()) {
        const auto start = rest.find_first_not_of(" \n");
        if (start == std::string_view::npos)
            break;
        rest.remove_prefix(start);
        const auto end = std::min(rest.find_first_of(" \n"), rest.size());
        fields.push_back(rest.substr(0, end));
        rest.remove_prefix(end);
    }
    // proc(5) numbers fields from 1: utime 14, stime 15, starttime 22, vsize 23, rss 24.
    const auto field = [&](std::size_t n) -> std::optional<std::uint64_t> {
        return n - 3 < fields.size() ? to_u64(fields[n - 3]) : std::nullopt;
    };
    const auto utime = field(14), stime = field(15), start = field(22), vsize = field(23), rss = field(24);
    if (!utime || !stime || !start || !vsize || !rss)
        return std::nullopt;
    return proc_stat{*utime, *stime, *start, *vsize, *rss};
}

// Boot time in seconds since the epoch: the "btime" line of /proc/stat.
[[nodiscard]] std::optional<std::uint64_t> read_boot_time() {
    const auto text = read_file("/proc/stat");
    if (!text)
        return std::nullopt;
    std::istringstream lines(*text);
    std::string line;
    while (std::getline(lines, line)) {
        constexpr std::string_view key = "btime ";
        if (line.starts_with(key))
            return to_u64(std::string_view(line).substr(key.size()));
    }
    return std::nullopt;
}

[[nodiscard]] std::optional<std::uint64_t> count_open_fds() {
    std::error_code ec;
    std::uint64_t n = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec))
        ++n;
    if (ec || n == 0)
        return std::nullopt;
    return n - 1;  // the listing includes the descriptor the iterator itself holds open
}

void add_single(std::vector<family>& out, const char* name, const char* help, metric_type type, double value) {
    auto& f = out.emplace_back();
    f.name = name;
    f.help = help;
    f.type = type;
    f.add({}, value);
}

void add_gauge(std::vector<family>& out, const char* name, const char* help, double value) {
    add_single(out, name, help, metric_type::gauge, value);
}

}  // namespace

void collect_process_metrics(std::vector<family>& out) {
    const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
    const long page_size = ::sysconf(_SC_PAGESIZE);
    if (const auto stat = read_proc_stat()) {
        if (ticks_per_second > 0) {
            const double cpu =
                static_cast<double>(stat->utime_ticks + stat->stime_ticks) / static_cast<double>(ticks_per_second);
            add_single(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                       metric_type::counter, cpu);
            if (const auto boot = read_boot_time())
                add_gauge(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                          static_cast<double>(*boot) + static_cast<double>(stat->start_ticks_since_boot) /
                                                           static_cast<double>(ticks_per_second));
        }
        add_gauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                  static_cast<double>(stat->vsize_bytes));
        if (page_size > 0)
            add_gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
                      static_cast<double>(stat->rss_pages) * static_cast<double>(page_size));
    }
    if (const auto fds = count_open_fds())
        add_gauge(out, "process_open_fds", "Number of open file descriptors.", static_cast<double>(*fds));
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
        add_gauge(out, "process_max_fds", "Maximum number of open file descriptors.",
                  static_cast<double>(limit.rlim_cur));
}

}  // namespace sluice::metrics
