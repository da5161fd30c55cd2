// The test harness itself: throwaway PostgreSQL clusters and the sluice child-process wrapper.
#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "child_process.hpp"
#include "free_port.hpp"
#include "pg_cluster.hpp"
#include "sluice_process.hpp"

namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using sluice::test::pg_cluster;
using ::testing::HasSubstr;

// Runs `sql` on a new connection and returns the first value, or the connection or query error message.
std::string query_over_libpq(const std::string& conninfo, const char* sql) {
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK) {
        return std::string("connection failed: ") + PQerrorMessage(conn.get());
    }
    std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn.get(), sql), &PQclear);
    if (PQresultStatus(result.get()) != PGRES_TUPLES_OK || PQntuples(result.get()) != 1) {
        return std::string("query failed: ") + PQerrorMessage(conn.get());
    }
    return PQgetvalue(result.get(), 0, 0);
}

TEST(PgCluster, StartsAndStopsTwentyTimesInARow) {
    const auto begin = std::chrono::steady_clock::now();
    for (int round = 0; round < 20; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        pg_cluster cluster;
        ASSERT_NO_THROW(cluster.start());
        ASSERT_NE(cluster.port(), 0);
        EXPECT_EQ(query_over_libpq(cluster.conninfo(), "SELECT 1"), "1");
        const fs::path data = cluster.data_dir();
        ASSERT_TRUE(fs::exists(data / "PG_VERSION"));
        ASSERT_NO_THROW(cluster.stop());
        EXPECT_FALSE(fs::exists(data));
        EXPECT_FALSE(fs::exists(cluster.socket_dir()));
    }
    const auto elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - begin);
    std::cout << "20 cluster start+stop cycles: " << elapsed.count() << " ms\n";
    RecordProperty("cycles_ms", static_cast<int>(elapsed.count()));
}

TEST(PgCluster, QueryErrorCarriesServerMessage) {
    try {
        sluice::test::postgres().execute("SELECT * FROM no_such_table");
        FAIL() << "execute did not throw";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("relation \"no_such_table\" does not exist"));
    }
}

TEST(PgCluster, ErrorInLaterStatementOfABatchThrows) {
    EXPECT_THROW(sluice::test::postgres().execute("SELECT 1; SELECT 1/0; SELECT 2"), std::runtime_error);
}

TEST(PgCluster, QueryScalarRunsAsTheTestRoleOnTheTestDatabase) {
    auto& pg = sluice::test::postgres();
    EXPECT_EQ(pg.query_scalar("SELECT current_user"), "sluice_test");
    EXPECT_EQ(pg.query_scalar("SELECT current_database()"), "sluice_test");
    EXPECT_EQ(pg.query_scalar("SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user"), "true");
    EXPECT_THROW((void)pg.query_scalar("SELECT NULL"), std::runtime_error);
    EXPECT_THROW((void)pg.query_scalar("SELECT 1 WHERE false"), std::runtime_error);
}

TEST(PgCluster, AppliesTheHarnessSettings) {
    auto& pg = sluice::test::postgres();
    EXPECT_EQ(pg.query_scalar("SHOW max_connections"), "300");
    EXPECT_EQ(pg.query_scalar("SHOW fsync"), "off");
    EXPECT_EQ(pg.query_scalar("SHOW password_encryption"), "scram-sha-256");
    EXPECT_EQ(pg.query_scalar("SHOW port"), std::to_string(pg.port()));
    EXPECT_EQ(pg.query_scalar("SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = 'sluice_test'"),
              "SCRAM-SHA-256");
}

TEST(PgCluster, RejectsAWrongPassword) {
    auto& pg = sluice::test::postgres();
    EXPECT_THAT(query_over_libpq(pg.conninfo("sluice_test", "sluice_test", "wrong"), "SELECT 1"),
                HasSubstr("password authentication failed"));
}

TEST(PgCluster, SuperuserAndUnixSocketConnect) {
    auto& pg = sluice::test::postgres();
    EXPECT_EQ(query_over_libpq(pg.superuser_conninfo(), "SELECT current_user"), "postgres");
    const std::string over_socket = "host=" + pg.socket_dir().string() + " port=" + std::to_string(pg.port()) +
                                    " dbname=sluice_test user=sluice_test password=sluice_test";
    EXPECT_EQ(query_over_libpq(over_socket, "SELECT 1"), "1");
}

TEST(PgCluster, RestartKeepsDataAndPort) {
    pg_cluster cluster;
    cluster.start();
    const auto port = cluster.port();
    const pid_t before = cluster.postmaster_pid();
    cluster.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)");
    cluster.restart();
    EXPECT_EQ(cluster.port(), port);
    EXPECT_NE(cluster.postmaster_pid(), before);
    EXPECT_EQ(cluster.query_scalar("SELECT v FROM kept"), "42");
}

TEST(PgCluster, ComesBackAfterPostmasterSigkill) {
    pg_cluster cluster;
    cluster.start();
    // synchronous_commit = off may lose the last commits in a crash; a checkpoint writes them out first.
    cluster.execute("CREATE TABLE survived (v int); INSERT INTO survived VALUES (7)");
    cluster.execute("CHECKPOINT");
    const pid_t killed = cluster.postmaster_pid();
    cluster.signal_postmaster(SIGKILL);
    ASSERT_TRUE(sluice::test::wait_until([&] { return !cluster.is_accepting(); }, 10s));
    ASSERT_NO_THROW(cluster.start_server()) << cluster.log_tail();
    EXPECT_NE(cluster.postmaster_pid(), killed);
    EXPECT_EQ(cluster.query_scalar("SELECT v FROM survived"), "7");
}

TEST(PgCluster, StopsAStoppedPostmaster) {
    pg_cluster cluster;
    cluster.start();
    const fs::path dir = cluster.socket_dir();
    cluster.signal_postmaster(SIGSTOP);
    ASSERT_NO_THROW(cluster.stop());
    EXPECT_FALSE(fs::exists(dir));
}

TEST(FreePort, NothingListensOnIt) {
    const auto port = sluice::test::free_port();
    EXPECT_GE(port, 1024);
    EXPECT_FALSE(sluice::test::port_accepts(port));
    EXPECT_TRUE(sluice::test::port_accepts(sluice::test::postgres().port()));
}

TEST(SetPgbouncerSettings, ReplacesExistingKeysCaseInsensitively) {
    const std::string out = sluice::test::set_pgbouncer_settings(
        "[databases]\nlisten_port = 1\n[pgbouncer]\nLISTEN_PORT=6432\npool_mode = transaction\n\n[users]\n",
        {{"listen_port", "7777"}, {"listen_addr", "127.0.0.1"}});
    EXPECT_EQ(out,
              "[databases]\nlisten_port = 1\n[pgbouncer]\nlisten_port = 7777\npool_mode = transaction\n"
              "listen_addr = 127.0.0.1\n\n[users]\n");
}

TEST(SetPgbouncerSettings, AddsTheSectionWhenMissing) {
    EXPECT_EQ(sluice::test::set_pgbouncer_settings("[databases]\n* = host=127.0.0.1\n", {{"listen_port", "1"}}),
              "[pgbouncer]\nlisten_port = 1\n\n[databases]\n* = host=127.0.0.1\n");
}

TEST(SetPgbouncerSettings, TreatsTheSluiceSectionAsTheSettingsSection) {
    const std::string ini = "[sluice]\nmetrics_port = 9127\n[databases]\n";
    EXPECT_EQ(sluice::test::set_pgbouncer_settings(ini, {{"metrics_port", "1"}, {"listen_port", "2"}}),
              "[sluice]\nmetrics_port = 1\nlisten_port = 2\n[databases]\n");
    EXPECT_EQ(sluice::test::get_pgbouncer_setting(ini, "METRICS_PORT"), "9127");
    EXPECT_EQ(sluice::test::get_pgbouncer_setting(ini, "listen_port"), std::nullopt);
}

// A directory holding a stand-in for the sluice binary, removed at the end of the test.
class fake_binary {
  public:
    explicit fake_binary(const std::string& script) {
        std::string pattern = (fs::temp_directory_path() / "sluice-fake-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        dir_ = pattern;
        std::ofstream(path()) << script;
        fs::permissions(path(), fs::perms::owner_all);
    }
    fake_binary(const fake_binary&) = delete;
    fake_binary& operator=(const fake_binary&) = delete;
    ~fake_binary() {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    [[nodiscard]] fs::path path() const { return dir_ / "fake-sluice"; }

  private:
    fs::path dir_;
};

// Listens where the config says, like sluice would, and exits 7 on SIGTERM.
constexpr const char* listening_script = R"(#!/usr/bin/python3
import configparser, signal, socket, sys
print("fake sluice reading", sys.argv[1], flush=True)
config = configparser.ConfigParser(interpolation=None)
config.read(sys.argv[1])
settings = config["pgbouncer"]
server = socket.socket()
server.bind((settings["listen_addr"], int(settings["listen_port"])))
server.listen()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
while True:
    server.accept()[0].close()
)";

TEST(SluiceProcess, StartsTheBinaryOnAFreePortAndStopsIt) {
    const fake_binary binary(listening_script);
    sluice::test::sluice_process sluice(
        "[databases]\n* = host=127.0.0.1 port=5432\n[pgbouncer]\nlisten_port = 1\nmetrics_port = 9127\n",
        "\"sluice_test\" \"sluice_test\"\n", {.binary = binary.path()});
    EXPECT_TRUE(sluice::test::port_accepts(sluice.port()));
    EXPECT_THAT(sluice.log(), HasSubstr("fake sluice reading " + sluice.config_path().string()));

    const std::string config = sluice::test::read_file(sluice.config_path());
    EXPECT_THAT(config, HasSubstr("listen_port = " + std::to_string(sluice.port()) + "\n"));
    EXPECT_THAT(config, HasSubstr("listen_addr = 127.0.0.1\n"));
    EXPECT_THAT(config, HasSubstr("unix_socket_dir = " + sluice.dir().string() + "\n"));
    EXPECT_THAT(config, HasSubstr("auth_file = " + (sluice.dir() / "userlist.txt").string() + "\n"));
    EXPECT_THAT(config, HasSubstr("* = host=127.0.0.1 port=5432\n"));
    EXPECT_NE(sluice.metrics_port(), 0);
    EXPECT_NE(sluice.metrics_port(), sluice.port());
    EXPECT_THAT(config, HasSubstr("metrics_port = " + std::to_string(sluice.metrics_port()) + "\n"));
    EXPECT_EQ(sluice::test::read_file(sluice.dir() / "userlist.txt"), "\"sluice_test\" \"sluice_test\"\n");

    EXPECT_EQ(sluice.wait_exit(0ms), std::nullopt);
    sluice.send_signal(SIGTERM);
    EXPECT_EQ(sluice.wait_exit(10s), 7);
    EXPECT_EQ(sluice.wait_exit(0ms), 7);
}

TEST(SluiceProcess, RemovesItsDirectoryOnDestruction) {
    const fake_binary binary(listening_script);
    fs::path dir;
    {
        sluice::test::sluice_process sluice("[pgbouncer]\nmetrics_port = 0\n", {}, {.binary = binary.path()});
        dir = sluice.dir();
        EXPECT_EQ(sluice.metrics_port(), 0);
        EXPECT_EQ(sluice::test::get_pgbouncer_setting(sluice::test::read_file(sluice.config_path()), "metrics_port"),
                  "0");
        EXPECT_TRUE(fs::exists(dir / "sluice.ini"));
        EXPECT_FALSE(fs::exists(dir / "userlist.txt"));
    }
    EXPECT_FALSE(fs::exists(dir));
}

TEST(SluiceProcess, ThrowsWithTheLogWhenTheBinaryExitsBeforeListening) {
    const fake_binary binary("#!/bin/sh\necho \"config: bad pool_mode\" >&2\nexit 3\n");
    try {
        sluice::test::sluice_process sluice("", {}, {.binary = binary.path()});
        FAIL() << "the constructor did not throw";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("exited with code 3"));
        EXPECT_THAT(e.what(), HasSubstr("config: bad pool_mode"));
    }
}

TEST(SluiceProcess, ThrowsWhenTheBinaryNeverListens) {
    const fake_binary binary("#!/bin/sh\nexec sleep 60\n");
    const auto begin = std::chrono::steady_clock::now();
    EXPECT_THROW(sluice::test::sluice_process("", {}, {.binary = binary.path(), .start_timeout = 300ms}),
                 std::runtime_error);
    EXPECT_LT(std::chrono::steady_clock::now() - begin, 10s);
}

}  // namespace
