#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sluice::test {

/// Starts `argv` (argv[0] searched on PATH when it holds no slash) in `cwd`, stdin from /dev/null, stdout and
/// stderr appended to `output`. The caller must reap the child with wait_process(). Throws std::runtime_error when
/// the program cannot be started.
[[nodiscard]] pid_t spawn_process(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                                  const std::filesystem::path& output);

/// Waits up to `timeout` for the child `pid` to end and reaps it. Returns its exit code, 128 + the signal number when
/// a signal ended it, or nullopt when it is still running at the deadline.
[[nodiscard]] std::optional<int> wait_process(pid_t pid, std::chrono::milliseconds timeout);

/// True while `pid` exists and is not a zombie (an orphan whose reaper does not reap it still answers kill(pid, 0)).
[[nodiscard]] bool process_alive(pid_t pid);

/// The last `max_bytes` of a file, or an empty string when it cannot be read.
[[nodiscard]] std::string file_tail(const std::filesystem::path& file, std::size_t max_bytes);

/// The whole file, or an empty string when it cannot be read.
[[nodiscard]] std::string read_file(const std::filesystem::path& file);

/// Polls `condition` until it holds or `timeout` passes, with a short back-off; returns its last value.
template <class Condition>
[[nodiscard]] bool wait_until(Condition&& condition, std::chrono::milliseconds timeout);

/// Implementation detail of wait_until: sleeps for the `attempt`-th back-off step (1 ms doubling up to 50 ms).
void backoff(int attempt);

template <class Condition>
bool wait_until(Condition&& condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (int attempt = 0;; ++attempt) {
        if (condition()) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        backoff(attempt);
    }
}

}  // namespace sluice::test
