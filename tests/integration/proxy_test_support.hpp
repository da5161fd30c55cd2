#pragma once
// Shared by the proxy_*_test.cpp files: Sluice in front of the shared cluster in transaction pooling mode, libpq
// handles that clean up after themselves, a raw protocol socket for bytes libpq would never send, and readings of
// Sluice's memory from /proc.

#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.hpp"
#include "pg_cluster.hpp"
#include "sluice/protocol/error.hpp"
#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/writer.hpp"
#include "sluice_process.hpp"

namespace sluice::test::proxy {

using namespace std::chrono_literals;

// --- libpq ---

struct pq_finish {
    void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};
struct pq_clear {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using connection = std::unique_ptr<PGconn, pq_finish>;
using result = std::unique_ptr<PGresult, pq_clear>;

// A connection attempt; check PQstatus() before use.
[[nodiscard]] inline connection connect(const std::string& conninfo) {
    return connection(PQconnectdb(conninfo.c_str()));
}

// A working connection, or std::runtime_error with libpq's message.
[[nodiscard]] inline connection connect_or_throw(const std::string& conninfo) {
    auto conn = connect(conninfo);
    if (PQstatus(conn.get()) != CONNECTION_OK) {
        throw std::runtime_error("connection failed: " + std::string(PQerrorMessage(conn.get())));
    }
    return conn;
}

[[nodiscard]] inline result exec(PGconn* conn, const std::string& sql) {
    return result(PQexec(conn, sql.c_str()));
}

// The SQLSTATE of an error result, empty when there is none (or no result at all).
[[nodiscard]] inline std::string sqlstate(const PGresult* res) {
    const char* code = res == nullptr ? nullptr : PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return code == nullptr ? std::string() : std::string(code);
}

// Runs `sql` (commands or queries); throws std::runtime_error carrying the error message when it fails.
inline void run(PGconn* conn, const std::string& sql) {
    const auto res = exec(conn, sql);
    const auto status = PQresultStatus(res.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        throw std::runtime_error(sql + ": " + PQerrorMessage(conn));
    }
}

// The first column of the only row of `sql`; "NULL" for SQL NULL. Throws std::runtime_error on any other outcome.
[[nodiscard]] inline std::string scalar(PGconn* conn, const std::string& sql) {
    const auto res = exec(conn, sql);
    if (PQresultStatus(res.get()) != PGRES_TUPLES_OK || PQntuples(res.get()) != 1) {
        throw std::runtime_error(sql + ": " + PQerrorMessage(conn));
    }
    return PQgetisnull(res.get(), 0, 0) ? std::string("NULL") : std::string(PQgetvalue(res.get(), 0, 0));
}

// Consumes every pending result of an asynchronous query; returns the last one (the error, if any).
inline result last_result(PGconn* conn) {
    result last;
    while (PGresult* next = PQgetResult(conn)) {
        last.reset(next);
    }
    return last;
}

// --- Sluice ---

struct pooler_options {
    int pool_size = 5;
    int workers = 2;
    // PgBouncer settings added to (or replacing) the defaults below.
    std::vector<std::pair<std::string, std::string>> settings;
    // The [databases] section's entries; empty: "sluice_test" pointing at the shared cluster's database.
    std::string databases;
};

// The [databases] entry `name` for database `dbname` of the shared cluster over TCP.
[[nodiscard]] inline std::string database_entry(std::string_view name, std::string_view dbname = "sluice_test") {
    return std::string(name) + " = host=127.0.0.1 port=" + std::to_string(postgres().port()) +
           " dbname=" + std::string(dbname) + "\n";
}

// An ini file: SCRAM for clients, transaction pooling, pool_size servers shared by `workers` threads. A
// query_wait_timeout well below the test deadlines turns a leaked server slot into an error instead of a hang.
[[nodiscard]] inline std::string pooler_config(const pooler_options& options) {
    std::string ini = "[databases]\n";
    ini += options.databases.empty() ? database_entry("sluice_test") : options.databases;
    ini += "\n[pgbouncer]\n";
    std::vector<std::pair<std::string, std::string>> settings = {
        {"auth_type", "scram-sha-256"},
        {"pool_mode", "transaction"},
        {"default_pool_size", std::to_string(options.pool_size)},
        {"workers", std::to_string(options.workers)},
        {"max_client_conn", "100"},
        {"query_wait_timeout", "20"},
        {"server_connect_timeout", "5"},
    };
    settings.insert(settings.end(), options.settings.begin(), options.settings.end());
    return set_pgbouncer_settings(ini, settings);
}

// The auth file: the cluster's test role with its password, which Sluice also uses to log into the server.
inline constexpr std::string_view auth_file = "\"sluice_test\" \"sluice_test\"\n";

// True when a Unix-domain stream socket at `path` accepts a connection right now.
[[nodiscard]] inline bool unix_socket_accepts(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        return false;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    const bool accepted = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return accepted;
}

// A Sluice child process configured by pooler_config().
class pooler {
  public:
    // sluice_process returns once the TCP port accepts; Sluice opens its Unix socket just after, so wait for that too.
    explicit pooler(const pooler_options& options = {}) : process_(pooler_config(options), auth_file) {
        const std::string socket = (process_.dir() / (".s.PGSQL." + std::to_string(process_.port()))).string();
        if (!wait_until([&] { return unix_socket_accepts(socket); }, 10s)) {
            throw std::runtime_error("sluice does not accept connections on " + socket);
        }
    }

    // libpq connection string over TCP; `extra` holds more keyword=value pairs.
    [[nodiscard]] std::string conninfo(std::string_view extra = {}, std::string_view password = "sluice_test",
                                       std::string_view dbname = "sluice_test") const {
        return "host=127.0.0.1 port=" + std::to_string(process_.port()) + " dbname=" + std::string(dbname) +
               " user=sluice_test password=" + std::string(password) + " connect_timeout=10 " + std::string(extra);
    }
    // Through the Unix socket in the process's directory.
    [[nodiscard]] std::string unix_conninfo() const {
        return "host=" + process_.dir().string() + " port=" + std::to_string(process_.port()) +
               " dbname=sluice_test user=sluice_test password=sluice_test connect_timeout=10";
    }
    [[nodiscard]] std::uint16_t port() const { return process_.port(); }
    [[nodiscard]] pid_t pid() const { return process_.pid(); }
    [[nodiscard]] std::string log() const { return process_.log(); }
    [[nodiscard]] sluice_process& process() { return process_; }

  private:
    sluice_process process_;
};

// True when a new client gets a correct answer to a query through Sluice.
[[nodiscard]] inline bool serves_queries(const pooler& sluice) {
    try {
        auto conn = connect_or_throw(sluice.conninfo());
        return scalar(conn.get(), "SELECT 6 * 7") == "42";
    } catch (const std::exception&) {
        return false;
    }
}

// --- Raw protocol sockets ---

struct backend_message {
    char type = 0;
    std::string body;
};

// A blocking socket driven byte by byte, for input a well-behaved client never sends. Every read has a deadline.
class raw_connection {
  public:
    // Connects to 127.0.0.1:`port`; throws std::runtime_error on failure.
    static raw_connection tcp(std::uint16_t port) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
        }
        raw_connection conn(fd, true);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
            throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
        }
        return conn;
    }

    // Borrows the socket of a logged-in, idle libpq connection, which must outlive this object.
    static raw_connection borrow(PGconn* conn) { return raw_connection(PQsocket(conn), false); }

    raw_connection(raw_connection&& other) noexcept
        : fd_(std::exchange(other.fd_, -1)), owned_(other.owned_), pending_(std::move(other.pending_)) {}
    raw_connection& operator=(raw_connection&&) = delete;
    ~raw_connection() {
        if (owned_ && fd_ >= 0) {
            ::close(fd_);
        }
    }

    // Writes all of `bytes`; false when the peer has gone.
    bool send(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return false;
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    // The next `count` bytes, or fewer when the peer closes or the deadline passes first.
    std::string read_bytes(std::size_t count, std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (pending_.size() < count && fill(deadline)) {
        }
        const std::size_t n = std::min(count, pending_.size());
        std::string out = pending_.substr(0, n);
        pending_.erase(0, n);
        return out;
    }

    // The next whole backend message, or nullopt when the peer closes or the deadline passes first.
    std::optional<backend_message> read_message(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (pending_.size() < protocol::header_size) {
            if (!fill(deadline)) {
                return std::nullopt;
            }
        }
        const std::size_t length = protocol::load_u32(pending_.data() + 1);
        if (length < 4) {
            return std::nullopt;
        }
        while (pending_.size() < length + 1) {
            if (!fill(deadline)) {
                return std::nullopt;
            }
        }
        backend_message message{pending_[0], pending_.substr(protocol::header_size, length - 4)};
        pending_.erase(0, length + 1);
        return message;
    }

    // Reads (and drops) everything until the peer closes; false when it is still open at the deadline.
    bool wait_closed(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!closed_) {
            if (!fill(deadline) && !closed_) {
                return false;
            }
            pending_.clear();
        }
        return true;
    }

    [[nodiscard]] int fd() const noexcept { return fd_; }

  private:
    raw_connection(int fd, bool owned) : fd_(fd), owned_(owned) {}

    // Appends what arrives before the deadline; false on close, error or timeout.
    bool fill(std::chrono::steady_clock::time_point deadline) {
        if (closed_) {
            return false;
        }
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return false;
            }
            pollfd pfd{fd_, POLLIN, 0};
            const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
            if (ready < 0 && errno == EINTR) {
                continue;
            }
            if (ready <= 0) {
                return false;
            }
            char buffer[65536];
            const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                closed_ = true;
                return false;
            }
            pending_.append(buffer, static_cast<std::size_t>(n));
            return true;
        }
    }

    int fd_ = -1;
    bool owned_ = false;
    bool closed_ = false;
    std::string pending_;
};

// Outcome of bad input: the FATAL (or other) ErrorResponse Sluice sent, and whether it then closed the connection.
struct refusal {
    std::string severity;  // "FATAL", or empty when no ErrorResponse came
    std::string sqlstate;
    std::string message;
    bool closed = false;
};

// Reads until an ErrorResponse (skipping other messages) and then until the connection closes, 5 s at most each.
[[nodiscard]] inline refusal read_refusal(raw_connection& conn) {
    refusal out;
    while (auto message = conn.read_message(5s)) {
        if (message->type == 'E') {
            const auto fields = protocol::parse_error_fields(message->body);
            out.severity = fields.severity;
            out.sqlstate = fields.sqlstate;
            out.message = fields.message;
            break;
        }
    }
    out.closed = conn.wait_closed(5s);
    return out;
}

// Logs in over a raw socket (the pooler must use auth_type = trust) and returns the ErrorResponse that refuses the
// login, so that its SQLSTATE can be checked (libpq does not expose the SQLSTATE of a failed connection).
[[nodiscard]] inline refusal login_refusal(std::uint16_t port, std::string_view database = "sluice_test") {
    auto conn = raw_connection::tcp(port);
    std::string startup;
    const std::vector<std::pair<std::string, std::string>> parameters = {{"user", "sluice_test"},
                                                                         {"database", std::string(database)}};
    protocol::write_startup_message(startup, parameters);
    conn.send(startup);
    return read_refusal(conn);
}

inline void PrintTo(const refusal& r, std::ostream* os) {
    *os << "{" << r.severity << " " << r.sqlstate << " \"" << r.message << "\" closed=" << r.closed << "}";
}

// --- Memory of a process ---

// A "Vm..." line of /proc/<pid>/status in KiB; throws when the process or the field is missing.
[[nodiscard]] inline std::size_t proc_status_kib(pid_t pid, std::string_view field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
            return std::stoull(line.substr(field.size() + 1));
        }
    }
    throw std::runtime_error("no " + std::string(field) + " for process " + std::to_string(pid));
}

// Restarts VmHWM (peak resident set) at the current VmRSS, so that VmHWM afterwards is the peak of what follows.
inline void reset_peak_rss(pid_t pid) {
    std::ofstream out("/proc/" + std::to_string(pid) + "/clear_refs");
    out << "5";
    out.flush();
    if (!out) {
        throw std::runtime_error("cannot reset the peak RSS of process " + std::to_string(pid));
    }
}

// --- The cluster behind Sluice ---

// Backends of the test role running `query` right now (as seen by a direct connection).
[[nodiscard]] inline int active_backends_running(std::string_view query) {
    std::string literal;
    for (const char c : query) {
        literal += c;
        if (c == '\'') {
            literal += c;
        }
    }
    return std::stoi(postgres().query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'sluice_test' AND state = 'active' AND query = '" +
        literal + "'"));
}

}  // namespace sluice::test::proxy
