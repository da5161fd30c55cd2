#include "pg_cluster.hpp"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "child_process.hpp"
#include "free_port.hpp"

namespace sluice::test {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* server_binaries[] = {"initdb", "pg_ctl", "postgres"};
constexpr std::string_view dir_prefix = "sluice-pg-";

bool has_server_binaries(const fs::path& dir) {
    return std::all_of(std::begin(server_binaries), std::end(server_binaries),
                       [&](const char* name) { return ::access((dir / name).c_str(), X_OK) == 0; });
}

fs::path find_bin_dir() {
    if (const char* env = std::getenv("SLUICE_PG_BINDIR"); env != nullptr && *env != '\0') {
        if (!has_server_binaries(env)) {
            throw std::runtime_error(std::string("SLUICE_PG_BINDIR=") + env + " lacks initdb, pg_ctl or postgres");
        }
        return env;
    }
    if (const char* path = std::getenv("PATH"); path != nullptr) {
        std::istringstream dirs(path);
        for (std::string dir; std::getline(dirs, dir, ':');) {
            if (!dir.empty() && has_server_binaries(dir)) {
                return dir;
            }
        }
    }
    // Debian installs each major version under /usr/lib/postgresql/<major>/bin, off PATH.
    std::optional<std::pair<int, fs::path>> best;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
        const std::string name = entry.path().filename().string();
        const int version = std::atoi(name.c_str());
        if (version > 0 && has_server_binaries(entry.path() / "bin") && (!best || version > best->first)) {
            best.emplace(version, entry.path() / "bin");
        }
    }
    if (!best) {
        throw std::runtime_error(
            "no PostgreSQL server binaries: set SLUICE_PG_BINDIR or install postgresql-15 (scripts/install-deps)");
    }
    return best->second;
}

bool running_as_root() {
    return ::geteuid() == 0;
}

struct postgres_account {
    uid_t uid;
    gid_t gid;
};

postgres_account postgres_account_or_throw() {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
        throw std::runtime_error("running as root needs a `postgres` system user (install postgresql-15)");
    }
    return {pw->pw_uid, pw->pw_gid};
}

// As root, files the server reads or writes must belong to `postgres`.
void give_to_postgres(const fs::path& path) {
    if (running_as_root()) {
        const auto account = postgres_account_or_throw();
        if (::chown(path.c_str(), account.uid, account.gid) != 0) {
            throw std::runtime_error("chown " + path.string() + ": " + std::strerror(errno));
        }
    }
}

// libpq keyword/value quoting: single quotes, with backslash before ' and \.
std::string quote_value(std::string_view value) {
    std::string out = "'";
    for (const char c : value) {
        if (c == '\'' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    out += '\'';
    return out;
}

std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
    return text;
}

using connection_ptr = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using result_ptr = std::unique_ptr<PGresult, decltype(&PQclear)>;

connection_ptr connect_or_throw(const std::string& conninfo) {
    connection_ptr conn(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
        throw std::runtime_error("cannot connect to PostgreSQL: " +
                                 (conn ? trimmed(PQerrorMessage(conn.get())) : std::string("out of memory")));
    }
    return conn;
}

// Runs every statement of `sql`; returns the last result, throwing with the server's message on the first error.
result_ptr exec_or_throw(PGconn* conn, std::string_view sql) {
    const std::string text(sql);
    if (PQsendQuery(conn, text.c_str()) == 0) {
        throw std::runtime_error(trimmed(PQerrorMessage(conn)));
    }
    result_ptr last(nullptr, &PQclear);
    std::optional<std::string> error;
    while (PGresult* raw = PQgetResult(conn)) {
        result_ptr result(raw, &PQclear);
        const ExecStatusType status = PQresultStatus(raw);
        if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE || status == PGRES_NONFATAL_ERROR) {
            if (!error) {
                error = trimmed(PQresultErrorMessage(raw));
            }
        } else {
            last = std::move(result);
        }
    }
    if (error) {
        throw std::runtime_error(*error);
    }
    return last;
}

bool contains(const std::string& text, std::string_view what) {
    return text.find(what) != std::string::npos;
}

pg_cluster* shared_cluster = nullptr;

// Clusters left behind by test programs that died without cleaning up (a ctest timeout sends SIGKILL): each
// directory records its owner's pid, and one whose owner is gone is stopped and removed.
void reap_abandoned_clusters(const fs::path& parent) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(parent, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(dir_prefix, 0) != 0) {
            continue;
        }
        std::ifstream owner_file(entry.path() / "owner.pid");
        pid_t owner = 0;
        if (!(owner_file >> owner) || process_alive(owner)) {
            continue;
        }
        std::ifstream pid_file(entry.path() / "data" / "postmaster.pid");
        if (pid_t postmaster = 0; pid_file >> postmaster && process_alive(postmaster)) {
            ::kill(postmaster, SIGCONT);
            // Immediate shutdown: the data is thrown away. Another user's cluster is not ours to reap.
            if (::kill(postmaster, SIGQUIT) != 0 || !wait_until([&] { return !process_alive(postmaster); }, 10s)) {
                continue;
            }
        }
        fs::remove_all(entry.path(), ec);
    }
}

}  // namespace

pg_cluster::pg_cluster() : bin_dir_(find_bin_dir()) {}

pg_cluster::~pg_cluster() {
    try {
        stop();
    } catch (const std::exception& e) {
        std::cerr << "pg_cluster: cleanup of " << dir_ << " failed: " << e.what() << '\n';
    }
}

void pg_cluster::start() {
    if (running_) {
        return;
    }
    if (dir_.empty()) {
        init_directory();
    }
    start_server();
    bootstrap_roles();
}

void pg_cluster::init_directory() {
    const fs::path parent = fs::temp_directory_path();
    reap_abandoned_clusters(parent);
    std::string pattern = (parent / (std::string(dir_prefix) + "XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    dir_ = pattern;
    std::ofstream(dir_ / "owner.pid") << ::getpid() << '\n';
    give_to_postgres(dir_);

    const fs::path pwfile = dir_ / "pwfile";
    std::ofstream(pwfile) << superuser_password << '\n';
    give_to_postgres(pwfile);
    const int rc = run({(bin_dir_ / "initdb").string(), "-D", data_dir().string(), "--auth=scram-sha-256", "-U",
                        std::string(superuser), "--pwfile=" + pwfile.string(), "-E", "UTF8", "--locale=C", "--no-sync",
                        "--no-instructions"},
                       120s);
    fs::remove(pwfile);
    if (rc != 0) {
        throw std::runtime_error("initdb failed (exit " + std::to_string(rc) + "):\n" + command_log_tail());
    }
    port_ = free_port();
    std::ofstream(data_dir() / "postgresql.conf", std::ios::app) << "include = 'sluice_test.conf'\n";
    std::ofstream(data_dir() / "pg_hba.conf", std::ios::trunc) << "local all all scram-sha-256\n"
                                                                  "host all all 127.0.0.1/32 scram-sha-256\n";
    write_config();
}

void pg_cluster::write_config() const {
    const fs::path conf = data_dir() / "sluice_test.conf";
    std::ofstream(conf, std::ios::trunc) << "listen_addresses = '127.0.0.1'\n"
                                         << "port = " << port_ << '\n'
                                         << "unix_socket_directories = '" << dir_.string() << "'\n"
                                         << "fsync = off\n"
                                            "synchronous_commit = off\n"
                                            "full_page_writes = off\n"
                                            "max_connections = 300\n"
                                            "shared_buffers = 64MB\n"
                                            "password_encryption = 'scram-sha-256'\n"
                                            "logging_collector = off\n";
    if (!ssl_cert_file_.empty()) {
        // The server reads its key only when owned by it and private to it.
        const fs::path cert = dir_ / "server.crt";
        const fs::path key = dir_ / "server.key";
        fs::copy_file(ssl_cert_file_, cert, fs::copy_options::overwrite_existing);
        fs::copy_file(ssl_key_file_, key, fs::copy_options::overwrite_existing);
        fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
        give_to_postgres(cert);
        give_to_postgres(key);
        std::ofstream(conf, std::ios::app)
            << "ssl = on\nssl_cert_file = '" << cert.string() << "'\nssl_key_file = '" << key.string() << "'\n";
        if (!ssl_ca_file_.empty()) {
            const fs::path ca = dir_ / "root.crt";
            fs::copy_file(ssl_ca_file_, ca, fs::copy_options::overwrite_existing);
            give_to_postgres(ca);
            std::ofstream(conf, std::ios::app) << "ssl_ca_file = '" << ca.string() << "'\n";
        }
    }
    give_to_postgres(conf);
}

void pg_cluster::enable_ssl(const std::filesystem::path& cert_file, const std::filesystem::path& key_file,
                            const std::filesystem::path& ca_file) {
    ssl_cert_file_ = cert_file;
    ssl_key_file_ = key_file;
    ssl_ca_file_ = ca_file;
}

void pg_cluster::start_server() {
    if (running_) {
        return;
    }
    if (dir_.empty()) {
        throw std::logic_error("pg_cluster::start_server before start()");
    }
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (int attempt = 0;; ++attempt) {
        remove_stale_lock_files();
        try_start_server();
        if (running_) {
            return;
        }
        // Transient failures, retried until the deadline: another process took the port between free_port() and
        // the bind; orphaned backends of a killed postmaster keep its shared memory attached for a short while; a
        // dying postmaster still holds its lock files.
        const std::string log = log_tail(2048);
        const bool port_taken = contains(log, "could not bind") || contains(log, "could not create any TCP/IP sockets");
        const bool transient = port_taken || contains(log, "shared memory block") || contains(log, "lock file");
        if (!transient || std::chrono::steady_clock::now() > deadline) {
            give_up_starting();
            throw std::runtime_error("PostgreSQL failed to start on port " + std::to_string(port_) + ":\n" +
                                     command_log_tail() + "\n--- server log ---\n" + log);
        }
        if (port_taken) {
            port_ = free_port();
            write_config();
        }
        backoff(attempt);
    }
}

void pg_cluster::give_up_starting() noexcept {
    // pg_ctl gives up waiting at its timeout, but the server may still be coming up: make sure it does not.
    try {
        stop_server();
    } catch (const std::exception& e) {
        std::cerr << "pg_cluster: " << e.what() << '\n';
    }
}

void pg_cluster::remove_stale_lock_files() const {
    // After a SIGKILL, postmaster.pid and the socket lock file name a postmaster that may linger as a zombie until
    // its adoptive parent reaps it; the server would take it for a live one and refuse to start.
    const fs::path pid_file = data_dir() / "postmaster.pid";
    if (fs::exists(pid_file)) {
        std::ifstream in(pid_file);
        pid_t pid = 0;
        in >> pid;
        if (!process_alive(pid)) {
            fs::remove(pid_file);
            for (const auto& entry : fs::directory_iterator(dir_)) {
                if (entry.path().filename().string().rfind(".s.PGSQL.", 0) == 0) {
                    fs::remove(entry.path());
                }
            }
        }
    }
}

void pg_cluster::try_start_server() {
    // The log is read after a failure to classify it, so each attempt starts from an empty one.
    const fs::path log = dir_ / "postgres.log";
    std::ofstream(log, std::ios::trunc).close();
    give_to_postgres(log);
    const int rc =
        run({(bin_dir_ / "pg_ctl").string(), "-D", data_dir().string(), "-l", log.string(), "-w", "-t", "60", "start"},
            90s);
    if (rc != 0) {
        return;
    }
    if (!wait_until([&] { return is_accepting(); }, 30s)) {
        throw std::runtime_error("PostgreSQL started but does not answer PQping:\n" + log_tail());
    }
    running_ = true;
}

void pg_cluster::bootstrap_roles() const {
    auto conn = connect_or_throw(conninfo("postgres", superuser, superuser_password));
    const std::string role(test_user);
    const std::string sql = "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '" + role +
                            "') THEN CREATE ROLE " + role + " LOGIN SUPERUSER PASSWORD '" + std::string(test_password) +
                            "'; END IF; END $$";
    [[maybe_unused]] const auto created_role = exec_or_throw(conn.get(), sql);
    auto exists =
        exec_or_throw(conn.get(), "SELECT 1 FROM pg_database WHERE datname = '" + std::string(test_database) + "'");
    if (PQntuples(exists.get()) == 0) {
        [[maybe_unused]] const auto created_db =
            exec_or_throw(conn.get(), "CREATE DATABASE " + std::string(test_database) + " OWNER " + role);
    }
}

void pg_cluster::stop_server() {
    if (dir_.empty() || !fs::exists(data_dir() / "postmaster.pid")) {
        running_ = false;
        return;
    }
    std::ifstream in(data_dir() / "postmaster.pid");
    pid_t pid = 0;
    in >> pid;
    // A killed postmaster leaves its pid file behind and may linger as a zombie that pg_ctl would wait on in vain.
    if (!process_alive(pid)) {
        running_ = false;
        return;
    }
    ::kill(pid, SIGCONT);  // a SIGSTOPped postmaster would never finish shutting down
    const std::string pg_ctl = (bin_dir_ / "pg_ctl").string();
    const std::string data = data_dir().string();
    if (run({pg_ctl, "-D", data, "-m", "fast", "-w", "-t", "30", "stop"}, 60s) != 0 &&
        run({pg_ctl, "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"}, 60s) != 0 && process_alive(pid)) {
        ::kill(pid, SIGKILL);
        if (!wait_until([&] { return !process_alive(pid); }, 30s)) {
            throw std::runtime_error("postmaster " + std::to_string(pid) + " survives SIGKILL");
        }
    }
    running_ = false;
}

void pg_cluster::stop() {
    if (dir_.empty()) {
        return;
    }
    stop_server();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    if (ec) {
        throw std::runtime_error("cannot remove " + dir_.string() + ": " + ec.message());
    }
    dir_.clear();
    port_ = 0;
}

void pg_cluster::restart() {
    stop_server();
    start_server();
}

pid_t pg_cluster::postmaster_pid() const {
    std::ifstream in(data_dir() / "postmaster.pid");
    pid_t pid = 0;
    if (!(in >> pid) || pid <= 0 || !process_alive(pid)) {
        throw std::runtime_error("PostgreSQL is not running in " + data_dir().string());
    }
    return pid;
}

void pg_cluster::signal_postmaster(int sig) {
    const pid_t pid = postmaster_pid();
    if (::kill(pid, sig) != 0) {
        throw std::runtime_error("kill(" + std::to_string(pid) + "): " + std::strerror(errno));
    }
    if (sig == SIGKILL) {
        running_ = false;
        if (!wait_until([&] { return !process_alive(pid); }, 30s)) {
            throw std::runtime_error("postmaster " + std::to_string(pid) + " survives SIGKILL");
        }
    } else if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
        running_ = false;
    }
}

bool pg_cluster::is_accepting() const {
    return port_ != 0 && PQping(conninfo("postgres", superuser, superuser_password).c_str()) == PQPING_OK;
}

std::string pg_cluster::conninfo(std::string_view dbname, std::string_view user, std::string_view password) const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + quote_value(dbname) +
           " user=" + quote_value(user) + " password=" + quote_value(password) + " connect_timeout=10";
}

std::string pg_cluster::superuser_conninfo() const {
    return conninfo(test_database, superuser, superuser_password);
}

void pg_cluster::execute(std::string_view sql, std::string_view dbname) const {
    auto conn = connect_or_throw(conninfo(dbname));
    [[maybe_unused]] const auto result = exec_or_throw(conn.get(), sql);
}

std::string pg_cluster::query_scalar(std::string_view sql, std::string_view dbname) const {
    auto conn = connect_or_throw(conninfo(dbname));
    const auto result = exec_or_throw(conn.get(), sql);
    if (!result || PQntuples(result.get()) == 0 || PQnfields(result.get()) == 0) {
        throw std::runtime_error("query returned no row: " + std::string(sql));
    }
    if (PQgetisnull(result.get(), 0, 0) != 0) {
        throw std::runtime_error("query returned NULL: " + std::string(sql));
    }
    return PQgetvalue(result.get(), 0, 0);
}

std::string pg_cluster::log_tail(std::size_t max_bytes) const {
    return dir_.empty() ? std::string() : file_tail(dir_ / "postgres.log", max_bytes);
}

std::string pg_cluster::command_log_tail() const {
    return file_tail(dir_ / "commands.log", 4096);
}

int pg_cluster::run(std::initializer_list<std::string> args, std::chrono::seconds timeout) const {
    std::vector<std::string> argv;
    if (running_as_root()) {
        argv = {"runuser", "-u", std::string(superuser), "--"};
    }
    argv.insert(argv.end(), args.begin(), args.end());
    const pid_t pid = spawn_process(argv, dir_, dir_ / "commands.log");
    if (const auto code = wait_process(pid, timeout)) {
        return *code;
    }
    ::kill(pid, SIGKILL);
    [[maybe_unused]] const auto reaped = wait_process(pid, 10s);
    throw std::runtime_error(argv.front() + " timed out:\n" + command_log_tail());
}

pg_cluster& postgres() {
    if (shared_cluster == nullptr) {
        std::cerr << "sluice::test::postgres() needs postgres_environment registered in main()\n";
        std::abort();
    }
    return *shared_cluster;
}

void postgres_environment::SetUp() {
    static std::optional<pg_cluster> cluster;
    try {
        cluster.emplace();
        cluster->start();
        shared_cluster = &*cluster;
    } catch (const std::exception& e) {
        FAIL() << "cannot start the test PostgreSQL cluster: " << e.what();
    }
}

void postgres_environment::TearDown() {
    if (shared_cluster != nullptr) {
        try {
            shared_cluster->stop();
        } catch (const std::exception& e) {
            ADD_FAILURE() << "cannot stop the test PostgreSQL cluster: " << e.what();
        }
    }
}

}  // namespace sluice::test
