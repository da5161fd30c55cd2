#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace sluice::test {

/// A throwaway PostgreSQL cluster in a fresh temporary directory, listening on a free port of 127.0.0.1 and on a
/// Unix socket in that directory, with scram-sha-256 authentication everywhere.
///
/// Binaries come from $SLUICE_PG_BINDIR, else the first PATH directory holding initdb, pg_ctl and postgres, else the
/// highest /usr/lib/postgresql/<version>/bin. As root, the directory belongs to `postgres` and every server command
/// runs through `runuser -u postgres --` (the server refuses to run as root).
///
/// Roles: the bootstrap superuser `postgres` (password `postgres`) and `sluice_test` (password `sluice_test`, LOGIN
/// SUPERUSER) owning the database `sluice_test`.
///
/// Flow: start() creates the directory, runs initdb, starts the server and creates the role and database;
/// stop_server()/start_server() stop and start the server keeping its data (for fault tests); stop() stops it and
/// removes the directory; the destructor calls stop(). Not thread-safe: one thread drives a cluster.
class pg_cluster {
  public:
    static constexpr std::string_view test_user = "sluice_test";
    static constexpr std::string_view test_password = "sluice_test";
    static constexpr std::string_view test_database = "sluice_test";
    static constexpr std::string_view superuser = "postgres";
    static constexpr std::string_view superuser_password = "postgres";

    /// Resolves the binaries; starts nothing. Throws std::runtime_error when no PostgreSQL installation is found.
    pg_cluster();
    pg_cluster(const pg_cluster&) = delete;
    pg_cluster& operator=(const pg_cluster&) = delete;
    /// Stops the server and removes the directory, also after a failed test; never throws.
    ~pg_cluster();

    /// Creates and starts a new cluster; a no-op when one is running. Throws std::runtime_error with the command
    /// output or the server log tail on failure.
    void start();
    /// Stops the server (fast shutdown, immediate when that times out, SIGKILL as a last resort) and removes the
    /// directory. A no-op when nothing was started. Throws only when the directory cannot be removed.
    void stop();
    /// Stops the server keeping the data directory; a no-op when it is not running (for example after
    /// signal_postmaster(SIGKILL)). Resumes a SIGSTOPped postmaster first.
    void stop_server();
    /// Starts the server on the existing data directory and waits until it accepts connections.
    void start_server();
    /// Serves TLS (ssl = on) with this PEM certificate and key, copied into the cluster directory. Call before
    /// start(); TCP connections may then use TLS or not (pg_hba's `host` lines match both). With `ca_file`, the
    /// server also asks clients for a certificate signed by it (optional: pg_stat_ssl.client_dn shows it).
    void enable_ssl(const std::filesystem::path& cert_file, const std::filesystem::path& key_file,
                    const std::filesystem::path& ca_file = {});
    /// stop_server() then start_server(): same port, same data.
    void restart();

    /// Sends `sig` to the postmaster (SIGKILL, SIGSTOP, SIGCONT, SIGHUP, ...); for SIGKILL, returns once it is dead
    /// (its orphaned backends may live on briefly). Throws when it is not running.
    void signal_postmaster(int sig);
    /// The postmaster's pid from postmaster.pid; throws when the server is not running.
    [[nodiscard]] pid_t postmaster_pid() const;
    /// True when the server answers PQping.
    [[nodiscard]] bool is_accepting() const;

    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] std::string host() const { return "127.0.0.1"; }
    [[nodiscard]] const std::filesystem::path& socket_dir() const { return dir_; }
    [[nodiscard]] std::filesystem::path data_dir() const { return dir_ / "data"; }
    [[nodiscard]] const std::filesystem::path& bin_dir() const { return bin_dir_; }

    /// A libpq keyword/value connection string to this server over TCP.
    [[nodiscard]] std::string conninfo(std::string_view dbname = test_database, std::string_view user = test_user,
                                       std::string_view password = test_password) const;
    /// conninfo() for the bootstrap superuser `postgres` on database `sluice_test`.
    [[nodiscard]] std::string superuser_conninfo() const;

    /// Runs `sql` (may hold several statements) as sluice_test on `dbname` through a fresh libpq connection.
    /// Throws std::runtime_error carrying the server's error message.
    void execute(std::string_view sql, std::string_view dbname = test_database) const;
    /// The first column of the first row of `sql`. Throws std::runtime_error on error, no row or NULL.
    [[nodiscard]] std::string query_scalar(std::string_view sql, std::string_view dbname = test_database) const;

    /// The last `max_bytes` of the server log (empty when there is none).
    [[nodiscard]] std::string log_tail(std::size_t max_bytes = 4096) const;

  private:
    void init_directory();
    void write_config() const;
    void remove_stale_lock_files() const;
    void give_up_starting() noexcept;
    void try_start_server();
    void bootstrap_roles() const;
    [[nodiscard]] int run(std::initializer_list<std::string> args, std::chrono::seconds timeout) const;
    [[nodiscard]] std::string command_log_tail() const;

    std::filesystem::path bin_dir_;
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    bool running_ = false;
    std::filesystem::path ssl_cert_file_;
    std::filesystem::path ssl_key_file_;
    std::filesystem::path ssl_ca_file_;
};

/// The cluster shared by every test of an executable that registered postgres_environment. Aborts the test program
/// when called without one (a wiring mistake, not a test failure).
[[nodiscard]] pg_cluster& postgres();

/// Starts the shared cluster before the first test and stops it after the last one. Register it in main() with
/// ::testing::AddGlobalTestEnvironment(new sluice::test::postgres_environment).
class postgres_environment : public ::testing::Environment {
  public:
    void SetUp() override;
    void TearDown() override;
};

}  // namespace sluice::test
