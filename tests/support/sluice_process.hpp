#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::test {

/// The sluice executable under test: $SLUICE_BINARY, empty when unset. Test mains built with the SLUICE_BINARY
/// compile definition export it into the environment at startup (see tests/integration/main.cpp).
[[nodiscard]] std::filesystem::path sluice_binary();

/// Returns `ini` with each (key, value) of `settings` set in its [pgbouncer] section (or [sluice], its other name):
/// every existing assignment of the key (case-insensitive) is replaced, a missing key is appended to the first such
/// section, a missing section is added at the top.
[[nodiscard]] std::string set_pgbouncer_settings(std::string_view ini,
                                                 const std::vector<std::pair<std::string, std::string>>& settings);

/// The last value of `key` (case-insensitive) in the [pgbouncer] or [sluice] section of `ini`, trimmed.
[[nodiscard]] std::optional<std::string> get_pgbouncer_setting(std::string_view ini, std::string_view key);

struct sluice_process_options {
    /// Empty: sluice_binary().
    std::filesystem::path binary;
    /// How long the process may take to accept TCP connections on its port.
    std::chrono::milliseconds start_timeout{30000};
};

/// A Sluice executable running as a child process with its own temporary directory holding sluice.ini, the auth
/// file, its Unix socket and sluice.log (stdout and stderr).
///
/// Flow: the constructor writes the config with `listen_addr = 127.0.0.1`, a free `listen_port`, `unix_socket_dir`
/// set to the directory, `auth_file` when auth text is given, and a free `metrics_port` when the config sets one
/// other than 0; it starts the binary with the config path as its
/// only argument and returns once the port accepts connections; it throws std::runtime_error with the log tail when
/// the binary is missing, exits first, or misses the deadline. The destructor sends SIGTERM, waits up to 10 s, then
/// SIGKILLs; it prints the log tail when the current test has failed, then removes the directory.
/// Not thread-safe.
class sluice_process {
  public:
    explicit sluice_process(std::string_view config, std::string_view auth_file = {},
                            sluice_process_options options = {});
    sluice_process(const sluice_process&) = delete;
    sluice_process& operator=(const sluice_process&) = delete;
    ~sluice_process();

    [[nodiscard]] std::uint16_t port() const { return port_; }
    /// The Prometheus port chosen for the process; 0 when the config has no metrics_port or sets it to 0.
    [[nodiscard]] std::uint16_t metrics_port() const { return metrics_port_; }
    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
    [[nodiscard]] std::filesystem::path config_path() const { return dir_ / "sluice.ini"; }
    /// Everything the process wrote to stdout and stderr so far.
    [[nodiscard]] std::string log() const;

    /// Rewrites the config (same port and directory) so that a later SIGHUP or RELOAD reads it. Empty `auth_file`
    /// keeps the auth file written before, if any.
    void write_config(std::string_view config, std::string_view auth_file = {});
    /// Sends `sig` to the process; throws std::runtime_error when it has already been reaped.
    void send_signal(int sig);
    /// Waits up to `timeout` for the process to exit. Returns its exit code (128 + signal when killed by one), or
    /// nullopt when still running. Once it has exited, returns the same code again at once.
    [[nodiscard]] std::optional<int> wait_exit(std::chrono::milliseconds timeout);

  private:
    void stop() noexcept;

    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    std::uint16_t metrics_port_ = 0;
    pid_t pid_ = -1;
    std::optional<int> exit_code_;
};

}  // namespace sluice::test
