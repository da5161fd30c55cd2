#include "util/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace sluice::log {

namespace {
std::atomic<int> g_min_level{static_cast<int>(level::info)};
std::atomic<int> g_fd{2};

std::string_view level_name(level l) noexcept {
    switch (l) {
        case level::debug:
            return "DEBUG";
        case level::info:
            return "LOG";
        case level::warning:
            return "WARNING";
        case level::error:
            return "ERROR";
        case level::fatal:
            return "FATAL";
    }
    return "LOG";
}
}  // namespace

void set_min_level(level l) noexcept {
    g_min_level.store(static_cast<int>(l), std::memory_order_relaxed);
}

bool enabled(level l) noexcept {
    return static_cast<int>(l) >= g_min_level.load(std::memory_order_relaxed);
}

bool set_file(const std::string& path) {
    if (path.empty()) {
        g_fd.store(2);
        return true;
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return false;
    const int old = g_fd.exchange(fd);
    if (old > 2)
        ::close(old);
    return true;
}

void write(level l, std::string_view line) noexcept {
    const auto now = std::chrono::system_clock::now();
    const auto secs = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char head[96];
    const int n =
        std::snprintf(head, sizeof head, "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC [%d] %.*s ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms),
                      static_cast<int>(::getpid()), static_cast<int>(level_name(l).size()), level_name(l).data());
    std::string out;
    out.reserve(static_cast<std::size_t>(n) + line.size() + 1);
    out.append(head, static_cast<std::size_t>(n));
    out.append(line);
    out.push_back('\n');
    const int fd = g_fd.load(std::memory_order_relaxed);
    std::size_t off = 0;
    while (off < out.size()) {
        const auto w = ::write(fd, out.data() + off, out.size() - off);
        if (w <= 0)
            break;
        off += static_cast<std::size_t>(w);
    }
}

}  // namespace sluice::log
