// auth_query: the pure rules first (answers, targets, keys), then the service (cache, slots, bridge calls), then the
// libpq runner that executes on bridge threads.
#include "net/auth_query.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <mutex>

#include "sluice/protocol/error.hpp"
#include "util/log.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <variant>

#include "sluice/bridge/error.hpp"
#include "sluice/bridge/sync_to_async.hpp"
#include "sluice/bridge/thread_pool.hpp"

namespace sluice::net {

namespace {

std::string for_user(std::string_view user) {
    return "auth_query for user \"" + std::string(user) + "\"";
}

}  // namespace

auth_query_result auth_query_error(std::string_view sqlstate, std::string message, std::string detail) {
    auth_query_result r;
    r.outcome = auth_query_result::status::error;
    r.sqlstate = std::string(sqlstate);
    r.message = std::move(message);
    r.detail = std::move(detail);
    return r;
}

auth_query_result parse_auth_query_rows(std::string_view user, const auth_query_rows& answer, int scram_iterations) {
    namespace sqlstate = protocol::sqlstate;
    if (answer.rows.empty()) {
        return {};
    }
    if (answer.columns < 2) {
        return auth_query_error(sqlstate::invalid_authorization_specification,
                                for_user(user) + " failed: the query must return a user name and a password",
                                "the query returned " + std::to_string(answer.columns) + " column(s)");
    }
    if (answer.rows.size() > 1) {
        return auth_query_error(sqlstate::invalid_authorization_specification,
                                for_user(user) + " failed: the query returned more than one row",
                                "the query returned " + std::to_string(answer.rows.size()) + " rows");
    }
    const auto& row = answer.rows.front();
    if (row.size() < 2 || !row[1] || row[1]->empty()) {
        return {};  // no password (or, with PostgreSQL's default query, an expired one): nobody can log in as it
    }
    auto parsed = auth::parse_secret(*row[1]);
    if (!parsed) {
        return auth_query_error(sqlstate::invalid_authorization_specification,
                                for_user(user) + " failed: the query returned a malformed SCRAM secret",
                                "the password column starts with SCRAM-SHA-256$ but does not parse");
    }
    auth_query_result r;
    r.outcome = auth_query_result::status::found;
    r.stored = *parsed;
    r.scram = *parsed;
    if (parsed->type == auth::secret::kind::plain) {
        // Derived once per cached answer, on the calling (bridge) thread: PBKDF2 costs milliseconds.
        r.scram = *auth::parse_secret(auth::make_scram_secret(parsed->stored, std::max(1, scram_iterations)));
    }
    return r;
}

auth_query_plan plan_auth_query(const config::config& cfg, const config::database_entry& client_db,
                                const auth::secret* auth_user_secret) {
    const auto& s = cfg.settings;
    const auto& auth_user = client_db.auth_user ? client_db.auth_user : s.auth_user;
    if (!auth_user || auth_user->empty()) {
        return {};
    }
    const auto& auth_dbname = client_db.auth_dbname ? client_db.auth_dbname : s.auth_dbname;
    std::optional<config::database_entry> other;
    const config::database_entry* server = &client_db;
    if (auth_dbname && !auth_dbname->empty()) {
        other = config::resolve_database(cfg, *auth_dbname);
        if (!other) {
            return {std::nullopt, "auth_dbname \"" + *auth_dbname + "\" is not a [databases] entry"};
        }
        server = &*other;
    }

    auth_query_target t;
    if (server->hosts.empty()) {
        t.host = s.unix_socket_dir;
    } else {
        for (const auto& h : server->hosts) {
            t.host.append(t.host.empty() ? "" : ",").append(h);
        }
    }
    t.port = server->port;
    t.dbname = server->dbname.value_or(server->name);
    t.user = *auth_user;
    if (auth_user_secret && auth_user_secret->type == auth::secret::kind::plain && !auth_user_secret->stored.empty()) {
        t.password = auth_user_secret->stored;
    }
    t.query = client_db.auth_query.value_or(s.auth_query);
    t.sslmode = std::string(config::to_string(s.server_tls_sslmode));
    t.sslrootcert = s.server_tls_ca_file;
    t.sslcert = s.server_tls_cert_file;
    t.sslkey = s.server_tls_key_file;
    return {std::move(t), {}};
}

std::string auth_query_login_key(const auth_query_target& target) {
    std::string key;
    auto add = [&](std::string_view field) {
        key.append(field);
        key.push_back('\0');
    };
    auto add_optional = [&](const std::optional<std::string>& field) {
        // A marker byte tells an absent field from an empty one.
        key.push_back(field ? '+' : '-');
        add(field ? *field : std::string_view());
    };
    add(target.host);
    add(std::to_string(target.port));
    add(target.dbname);
    add(target.user);
    add_optional(target.password);
    add(target.sslmode);
    add_optional(target.sslrootcert);
    add_optional(target.sslcert);
    add_optional(target.sslkey);
    return key;
}

std::string auth_query_target_key(const auth_query_target& target) {
    std::string key = auth_query_login_key(target);
    key.append(target.query);
    key.push_back('\0');
    return key;
}

}  // namespace sluice::net

namespace sluice::net {

namespace {

namespace sqlstate = protocol::sqlstate;
using time_point = steady_clock::time_point;

auth_query_result timeout_error(std::string_view user, std::chrono::milliseconds timeout, std::string detail) {
    auto r = auth_query_error(sqlstate::connection_failure,
                              for_user(user) + " timed out after " + std::to_string(timeout.count()) + " ms",
                              std::move(detail));
    r.timed_out = true;
    return r;
}

// "host:port database "db" as auth_user "u"", for log lines.
std::string describe(const auth_query_target& target) {
    return target.host + ":" + std::to_string(target.port) + " database \"" + target.dbname + "\" as auth_user \"" +
           target.user + "\"";
}

// --- libpq, on bridge threads ---------------------------------------------------------------------------------

struct pq_finish {
    void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};
struct pq_clear {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using pq_connection = std::unique_ptr<PGconn, pq_finish>;
using pq_result = std::unique_ptr<PGresult, pq_clear>;

// libpq's message on one line (it ends messages with a newline and may span several lines).
std::string one_line(const char* text) {
    std::string out = text == nullptr ? std::string() : std::string(text);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
        out.pop_back();
    }
    std::replace(out.begin(), out.end(), '\n', ' ');
    return out;
}

// The idle libpq connections of the calling bridge thread, by login key. Only this thread touches them (libpq's rule:
// one thread at a time per connection), so there is no lock. A connection is taken out while in use, so that a
// failure never leaves a half-used one behind; closed after 5 idle minutes (the target may be gone after a RELOAD).
class thread_connections {
  public:
    [[nodiscard]] pq_connection take(const std::string& key) {
        auto it = idle_.find(key);
        if (it == idle_.end()) {
            return nullptr;
        }
        pq_connection conn = std::move(it->second.conn);
        idle_.erase(it);
        return conn;
    }

    void put_back(const std::string& key, pq_connection conn, time_point now) {
        std::erase_if(idle_, [&](const auto& kv) { return now - kv.second.last_used > idle_limit; });
        if (idle_.size() >= max_idle) {
            auto oldest = std::min_element(idle_.begin(), idle_.end(), [](const auto& a, const auto& b) {
                return a.second.last_used < b.second.last_used;
            });
            idle_.erase(oldest);
        }
        idle_.insert_or_assign(key, idle{std::move(conn), now});
    }

  private:
    static constexpr std::size_t max_idle = 16;
    static constexpr std::chrono::minutes idle_limit{5};
    struct idle {
        pq_connection conn;
        time_point last_used;
    };
    std::map<std::string, idle> idle_;
};

thread_local thread_connections connections_of_this_thread;

// An eventfd that a stop request makes readable, polled next to the libpq socket: a stopped call wakes at once
// instead of at its deadline. One per bridge thread, cleared before each call.
class stop_event {
  public:
    stop_event() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
    ~stop_event() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    stop_event(const stop_event&) = delete;
    stop_event& operator=(const stop_event&) = delete;

    // From any thread (the stop_callback runs on the thread that requests the stop).
    void signal() const noexcept {
        const std::uint64_t one = 1;
        if (::write(fd_, &one, sizeof one) < 0) {
            // Only EAGAIN (counter saturated, hence already readable) or a failed eventfd(): nothing to do.
        }
    }
    void clear() const noexcept {
        std::uint64_t count = 0;
        if (::read(fd_, &count, sizeof count) < 0) {
            // EAGAIN: nothing was signalled.
        }
    }
    [[nodiscard]] int fd() const noexcept { return fd_; }  // -1 if eventfd() failed: poll() then ignores it

  private:
    int fd_;
};

thread_local stop_event stop_event_of_this_thread;

enum class wait_outcome { ready, timed_out, stopped };

// Waits until `fd` has one of `events`, the deadline passes, or the stop event fires.
wait_outcome wait_socket(int fd, short events, time_point deadline, const stop_event& stop) {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - steady_clock::now());
        if (left.count() <= 0) {
            return wait_outcome::timed_out;
        }
        pollfd fds[2] = {{fd, events, 0}, {stop.fd(), POLLIN, 0}};
        const int n = ::poll(fds, 2, static_cast<int>(std::min<std::int64_t>(left.count(), INT_MAX)));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return wait_outcome::ready;  // let libpq meet the error and report it
        }
        if (fds[1].revents != 0) {
            return wait_outcome::stopped;
        }
        if (fds[0].revents != 0) {
            return wait_outcome::ready;
        }
    }
}

class libpq_lookup {
  public:
    libpq_lookup(const auth_query_target& target, const std::string& user, time_point deadline,
                 std::chrono::milliseconds timeout, int scram_iterations)
        : target_(target), user_(user), deadline_(deadline), timeout_(timeout), scram_iterations_(scram_iterations) {}

    [[nodiscard]] auth_query_result run(const std::stop_token& stop) {
        const stop_event& event = stop_event_of_this_thread;
        event.clear();
        std::stop_callback on_stop(stop, [&event] { event.signal(); });
        auto result = run_with(event);
        event.clear();
        return result;
    }

  private:
    struct query_outcome {
        bool broken = false;  // the connection is unusable (closed by the server, network error)
        std::optional<auth_query_result> error;
        auth_query_rows rows;
    };

    auth_query_result run_with(const stop_event& event) {
        const std::string key = auth_query_login_key(target_);
        auto& cached = connections_of_this_thread;
        pq_connection conn = cached.take(key);
        bool reused = conn != nullptr;
        for (;;) {
            if (!conn) {
                auto error = connect(conn, event);
                if (error) {
                    return std::move(*error);
                }
            }
            auto outcome = query(conn.get(), event);
            if (outcome.broken && reused && steady_clock::now() < deadline_) {
                // An idle connection the server closed (restart, idle_session_timeout): open a new one, once.
                conn.reset();
                reused = false;
                continue;
            }
            if (PQstatus(conn.get()) == CONNECTION_OK && PQtransactionStatus(conn.get()) == PQTRANS_IDLE) {
                cached.put_back(key, std::move(conn), steady_clock::now());
            }
            if (outcome.error) {
                return std::move(*outcome.error);
            }
            return parse_auth_query_rows(user_, outcome.rows, scram_iterations_);
        }
    }

    auth_query_result interrupted(wait_outcome why, std::string_view during) const {
        if (why == wait_outcome::stopped) {
            return auth_query_error(sqlstate::connection_failure, for_user(user_) + " was interrupted",
                                    "stopped while " + std::string(during) + " " + describe(target_));
        }
        return timeout_error(user_, timeout_, "no answer while " + std::string(during) + " " + describe(target_));
    }

    // Opens a connection into `conn`; an error result when that fails.
    std::optional<auth_query_result> connect(pq_connection& conn, const stop_event& event) {
        const auto timeout_s = std::chrono::ceil<std::chrono::seconds>(timeout_);
        std::vector<std::pair<const char*, std::string>> params = {
            {"host", target_.host},
            {"port", std::to_string(target_.port)},
            {"dbname", target_.dbname},
            {"user", target_.user},
            {"sslmode", target_.sslmode},
            // Belt and braces: the deadline below already bounds both, but the server should drop a query nobody
            // waits for, and libpq's own timeout also covers a blocking use of this connection.
            {"connect_timeout", std::to_string(std::max<std::int64_t>(2, timeout_s.count()))},
            {"options", "-c statement_timeout=" + std::to_string(timeout_.count())},
            {"application_name", "sluice auth_query"},
            {"gssencmode", "disable"},
        };
        if (target_.password) {
            params.emplace_back("password", *target_.password);
        }
        if (target_.sslrootcert) {
            params.emplace_back("sslrootcert", *target_.sslrootcert);
        }
        if (target_.sslcert) {
            params.emplace_back("sslcert", *target_.sslcert);
        }
        if (target_.sslkey) {
            params.emplace_back("sslkey", *target_.sslkey);
        }
        std::vector<const char*> keywords;
        std::vector<const char*> values;
        for (const auto& [k, v] : params) {
            keywords.push_back(k);
            values.push_back(v.c_str());
        }
        keywords.push_back(nullptr);
        values.push_back(nullptr);

        conn.reset(PQconnectStartParams(keywords.data(), values.data(), 0));
        if (!conn) {
            return auth_query_error(sqlstate::out_of_memory, for_user(user_) + " failed: out of memory",
                                    "PQconnectStartParams returned nothing");
        }
        // PQconnectPoll's contract: start as if it had answered PGRES_POLLING_WRITING.
        PostgresPollingStatusType polling =
            PQstatus(conn.get()) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
        for (;;) {
            if (polling == PGRES_POLLING_OK) {
                return std::nullopt;
            }
            if (polling == PGRES_POLLING_FAILED) {
                auto error = connect_failed(conn.get());
                conn.reset();
                return error;
            }
            const short events = polling == PGRES_POLLING_READING ? POLLIN : POLLOUT;
            const auto waited = wait_socket(PQsocket(conn.get()), events, deadline_, event);
            if (waited != wait_outcome::ready) {
                conn.reset();
                return interrupted(waited, "connecting to");
            }
            polling = PQconnectPoll(conn.get());
        }
    }

    auth_query_result connect_failed(PGconn* conn) const {
        const std::string libpq = one_line(PQerrorMessage(conn));
        if (PQconnectionNeedsPassword(conn)) {
            return auth_query_error(
                sqlstate::invalid_authorization_specification, for_user(user_) + " failed: auth_user cannot log in",
                "the server asks for a password and auth_file has no plain-text password for auth_user \"" +
                    target_.user + "\" (libpq cannot log in with an md5 or SCRAM secret): " + describe(target_) + ": " +
                    libpq);
        }
        return auth_query_error(sqlstate::connection_failure,
                                for_user(user_) + " failed: cannot connect to the auth database",
                                describe(target_) + ": " + libpq);
    }

    query_outcome query(PGconn* conn, const stop_event& event) {
        query_outcome out;
        // Retried once on a fresh connection when the connection was reused, whatever broke.
        auto broken = [&](std::string_view what) {
            out.error = auth_query_error(
                sqlstate::connection_failure, for_user(user_) + " failed: lost the connection to the auth database",
                std::string(what) + " " + describe(target_) + ": " + one_line(PQerrorMessage(conn)));
            out.broken = true;
            return out;
        };
        if (PQsetnonblocking(conn, 1) != 0) {
            return broken("cannot make the connection non-blocking to");
        }
        const char* values[1] = {user_.c_str()};
        if (PQsendQueryParams(conn, target_.query.c_str(), 1, nullptr, values, nullptr, nullptr, 0) == 0) {
            return broken("cannot send the query to");
        }
        // libpq's non-blocking send: flush until done, reading whatever the server sends meanwhile.
        for (;;) {
            const int flushed = PQflush(conn);
            if (flushed == 0) {
                break;
            }
            if (flushed < 0) {
                return broken("cannot send the query to");
            }
            const auto waited = wait_socket(PQsocket(conn), POLLIN | POLLOUT, deadline_, event);
            if (waited != wait_outcome::ready) {
                out.error = interrupted(waited, "sending the query to");
                return out;
            }
            if (PQconsumeInput(conn) == 0) {
                return broken("lost");
            }
        }

        pq_result rows;
        pq_result failure;
        for (;;) {
            while (PQisBusy(conn) != 0) {
                const auto waited = wait_socket(PQsocket(conn), POLLIN, deadline_, event);
                if (waited != wait_outcome::ready) {
                    out.error = interrupted(waited, "waiting for the answer of");
                    return out;
                }
                if (PQconsumeInput(conn) == 0) {
                    return broken("lost");
                }
            }
            pq_result next(PQgetResult(conn));
            if (!next) {
                break;
            }
            const auto status = PQresultStatus(next.get());
            if (status == PGRES_TUPLES_OK && !rows) {
                rows = std::move(next);
            } else if (status != PGRES_TUPLES_OK && !failure) {
                failure = std::move(next);
            }
        }

        if (failure) {
            if (PQstatus(conn) == CONNECTION_BAD) {
                return broken("lost");
            }
            const char* code = PQresultErrorField(failure.get(), PG_DIAG_SQLSTATE);
            const std::string state = code == nullptr ? std::string() : std::string(code);
            if (state == sqlstate::query_canceled) {
                out.error = timeout_error(user_, timeout_, "statement_timeout on " + describe(target_));
            } else if (PQresultStatus(failure.get()) == PGRES_FATAL_ERROR) {
                out.error = auth_query_error(sqlstate::invalid_authorization_specification,
                                             for_user(user_) + " failed: the query failed",
                                             describe(target_) + ": " + state + " " +
                                                 one_line(PQresultErrorField(failure.get(), PG_DIAG_MESSAGE_PRIMARY)));
            } else {
                out.error = auth_query_error(sqlstate::invalid_authorization_specification,
                                             for_user(user_) + " failed: the query returns no rows",
                                             describe(target_) + ": the query is not a SELECT (" +
                                                 std::string(PQresStatus(PQresultStatus(failure.get()))) + ")");
            }
            return out;
        }
        if (!rows) {
            return broken("no result from");
        }
        out.rows.columns = PQnfields(rows.get());
        // More than one row is an error whatever they hold: keep two at most.
        const int n = std::min(PQntuples(rows.get()), 2);
        for (int r = 0; r < n; ++r) {
            auto& row = out.rows.rows.emplace_back();
            for (int c = 0; c < out.rows.columns; ++c) {
                if (PQgetisnull(rows.get(), r, c) != 0) {
                    row.emplace_back(std::nullopt);
                } else {
                    row.emplace_back(std::string(PQgetvalue(rows.get(), r, c),
                                                 static_cast<std::size_t>(PQgetlength(rows.get(), r, c))));
                }
            }
        }
        return out;
    }

    const auth_query_target& target_;
    const std::string& user_;
    time_point deadline_;
    std::chrono::milliseconds timeout_;
    int scram_iterations_;
};

// --- the service's coroutines, on event loops -----------------------------------------------------------------

// One coroutine waiting for another thread's news: a lookup's answer or a target slot. Woken from any thread.
struct waiter : std::enable_shared_from_this<waiter> {
    // Precondition: `give_up_at` is set before the waiter is published (wake() may run before wait()).
    waiter(const asio::any_io_executor& ex, time_point give_up_at) : timer(ex, give_up_at) {}

    // From any thread. Moving the expiry into the past both ends a wait in progress and makes a wait that has not
    // started yet end at once, so a wake-up is never lost.
    void wake() {
        asio::post(timer.get_executor(), [self = shared_from_this()] { self->timer.expires_at(time_point{}); });
    }

    // On the timer's executor. Returns when woken or at the give-up time.
    asio::awaitable<void> wait() { (void)co_await timer.async_wait(use_nothrow); }

    asio::steady_timer timer;
    // Guarded by the service's mutex.
    std::optional<auth_query_result> answer;  // a lookup's answer
    bool granted = false;                     // a slot was handed to this waiter
};
using waiter_ptr = std::shared_ptr<waiter>;

// A waiter of a lookup started by the same call gives the task this long past their common deadline to deliver its
// own (more precise) error before giving up with a generic one.
constexpr std::chrono::milliseconds answer_grace{250};

}  // namespace

struct auth_query_state {
    auth_query_state(bridge::thread_pool& p, auth_query_options o)
        : pool(p),
          options(std::move(o)),
          cache(options.positive_ttl, options.negative_ttl),
          slots(p.options().threads > 1 ? p.options().threads - 1 : 1) {}

    bridge::thread_pool& pool;
    const auth_query_options options;  // runner set

    std::mutex mutex;  // guards cache, slots and the waiters' fields; never held across a co_await
    auth_query_cache<waiter_ptr> cache;
    auth_query_slots<waiter_ptr> slots;

    std::atomic<std::uint64_t> lookups{0};
    std::atomic<std::uint64_t> cache_hits{0};
    std::atomic<std::uint64_t> joined{0};
    std::atomic<std::uint64_t> queries{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> timeouts{0};
};

namespace {

void count(std::atomic<std::uint64_t>& counter) {
    counter.fetch_add(1, std::memory_order_relaxed);
}

// The part of a lookup task that must happen however the task ends: its slot goes back (to the next waiter of the
// target, if any) and the cache entry gets an answer. A task destroyed unfinished (its io_context destroyed at
// shutdown) still cleans up, but wakes nobody: the waiters' event loops are going away too.
class task_completion {
  public:
    task_completion(std::shared_ptr<auth_query_state> st, std::string key, std::string target_key)
        : st_(std::move(st)), key_(std::move(key)), target_key_(std::move(target_key)) {}
    ~task_completion() {
        if (!done_) {
            settle(auth_query_error(sqlstate::admin_shutdown, "auth_query interrupted: Sluice is shutting down",
                                    "the lookup task was destroyed unfinished"),
                   false);
        }
    }
    task_completion(const task_completion&) = delete;
    task_completion& operator=(const task_completion&) = delete;

    void hold_slot() noexcept { holds_slot_ = true; }
    void finish(const auth_query_result& answer) { settle(answer, true); }

  private:
    void settle(const auth_query_result& answer, bool wake) {
        done_ = true;
        std::vector<waiter_ptr> to_wake;
        {
            std::lock_guard lock(st_->mutex);
            if (holds_slot_) {
                if (auto next = st_->slots.release(target_key_)) {
                    (*next)->granted = true;
                    to_wake.push_back(std::move(*next));
                }
            }
            for (auto& w : st_->cache.complete(key_, answer, steady_clock::now())) {
                w->answer = answer;
                to_wake.push_back(std::move(w));
            }
        }
        if (wake) {
            for (auto& w : to_wake) {
                w->wake();
            }
        }
    }

    std::shared_ptr<auth_query_state> st_;
    std::string key_;
    std::string target_key_;
    bool holds_slot_ = false;
    bool done_ = false;
};

// The bridge call. Never throws: the pool's refusals and the runner's exceptions become error results, so that the
// race in run_call() ends as soon as the call does (awaitable_operators' || waits for the first *success*).
asio::awaitable<auth_query_result> bridge_call(std::shared_ptr<auth_query_state> st, auth_query_target target,
                                               std::string user, time_point deadline) {
    // By value: the call owns what it reads, whatever happens to this frame.
    auto job = [runner = st->options.runner, target, user, deadline](std::stop_token stop) {
        return runner(target, user, deadline, std::move(stop));
    };
    std::optional<auth_query_result> answer;
    try {
        answer = co_await bridge::sync_to_async(st->pool, std::move(job), bridge::any_thread);
    } catch (const bridge::bridge_error& e) {
        if (e.code() == bridge::errc::queue_full || e.code() == bridge::errc::queue_timeout) {
            answer =
                auth_query_error(sqlstate::connection_failure, for_user(user) + " failed: too many lookups waiting",
                                 "the auth_query thread pool's queue is full: " + e.code().message());
        } else {
            answer = auth_query_error(sqlstate::connection_failure, for_user(user) + " failed: the lookup did not run",
                                      e.code().message());
        }
    } catch (const std::exception& e) {
        answer = auth_query_error(sqlstate::internal_error, for_user(user) + " failed: internal error", e.what());
    }
    co_return std::move(*answer);
}

// The bridge call raced against the deadline: when the timer wins, a queued call is dropped and a running one is
// asked to stop (its runner returns soon after), and the answer is a timeout.
asio::awaitable<auth_query_result> run_call(std::shared_ptr<auth_query_state> st, auth_query_target target,
                                            std::string user, time_point deadline) {
    using namespace asio::experimental::awaitable_operators;
    count(st->queries);
    asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
    auto call = bridge_call(st, target, user, deadline);
    auto expiry = timer.async_wait(asio::use_awaitable);
    auto winner = co_await (std::move(call) || std::move(expiry));
    if (winner.index() == 0) {
        co_return std::get<0>(std::move(winner));
    }
    co_return timeout_error(user, st->options.timeout,
                            "no answer in time from " + describe(target) + " (the call was queued or stopped)");
}

// A lookup of its own, started by the first caller of a key: takes a slot of its target, runs the query, answers
// every waiter of the key.
asio::awaitable<void> run_task(std::shared_ptr<auth_query_state> st, std::string key, std::string target_key,
                               auth_query_target target, std::string user, time_point deadline) {
    task_completion completion(st, key, target_key);
    const auto ex = co_await asio::this_coro::executor;

    auto slot_waiter = std::make_shared<waiter>(ex, deadline);
    bool have_slot = false;
    {
        std::lock_guard lock(st->mutex);
        have_slot = st->slots.acquire(target_key, slot_waiter);
    }
    if (!have_slot) {
        co_await slot_waiter->wait();
        std::lock_guard lock(st->mutex);
        // Either release() handed it a slot (granted), or it is still queued and leaves the queue.
        have_slot = slot_waiter->granted || !st->slots.abandon(target_key, slot_waiter);
    }

    std::optional<auth_query_result> answer;
    if (have_slot) {
        completion.hold_slot();
        answer = co_await run_call(st, target, user, deadline);
    } else {
        answer = timeout_error(user, st->options.timeout,
                               "every slot of " + describe(target) + " stayed busy (a stalled server?)");
    }
    if (answer->error()) {
        count(st->errors);
        if (answer->timed_out) {
            count(st->timeouts);
        }
        // Each client's login logs the failure with its own prefix; this line ties them to the one query they shared.
        // The query text is never logged (it may hold secrets); detail never holds one.
        SLUICE_LOG(debug, "auth_query " << target.dbname << "/" << user << ": " << answer->message << " ("
                                        << answer->detail << ")");
    }
    completion.finish(*answer);
}

}  // namespace

auth_query_runner libpq_auth_query_runner(std::chrono::milliseconds timeout, int scram_iterations) {
    return [timeout, scram_iterations](const auth_query_target& target, const std::string& user, time_point deadline,
                                       std::stop_token stop) {
        libpq_lookup lookup(target, user, deadline, timeout, scram_iterations);
        return lookup.run(stop);
    };
}

namespace {
auth_query_options with_runner(auth_query_options options) {
    if (!options.runner) {
        options.runner = libpq_auth_query_runner(options.timeout, options.scram_iterations);
    }
    return options;
}
}  // namespace

auth_query_service::auth_query_service(bridge::thread_pool& pool, auth_query_options options)
    : state_(std::make_shared<auth_query_state>(pool, with_runner(std::move(options)))) {}

auth_query_service::~auth_query_service() = default;

asio::awaitable<auth_query_result> auth_query_service::async_lookup(const auth_query_target& target, std::string user) {
    auto st = state_;
    const auto ex = co_await asio::this_coro::executor;
    const auto start = steady_clock::now();
    const auto deadline = start + st->options.timeout;
    count(st->lookups);

    std::string target_key = auth_query_target_key(target);
    std::string key = target_key + user;
    key.push_back('\0');
    auto me = std::make_shared<waiter>(ex, deadline + answer_grace);
    auth_query_cache<waiter_ptr>::begin_result begun;
    {
        std::lock_guard lock(st->mutex);
        begun = st->cache.begin(key, me, start);
    }
    if (begun.what == auth_query_cache<waiter_ptr>::step::hit) {
        count(st->cache_hits);
        co_return std::move(*begun.answer);
    }
    if (begun.what == auth_query_cache<waiter_ptr>::step::join) {
        count(st->joined);
    } else {
        auto task = run_task(st, std::move(key), std::move(target_key), target, user, deadline);
        asio::co_spawn(ex, std::move(task), [](std::exception_ptr e) {
            if (!e) {
                return;
            }
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& failure) {
                SLUICE_LOG(error, "auth_query: lookup task failed: " << failure.what());
            }
        });
    }
    co_await me->wait();
    {
        std::lock_guard lock(st->mutex);
        if (me->answer) {
            co_return std::move(*me->answer);
        }
    }
    count(st->errors);
    count(st->timeouts);
    co_return timeout_error(user, st->options.timeout, "no answer from " + describe(target));
}

auth_query_stats auth_query_service::stats() const {
    const auto& st = *state_;
    auth_query_stats s;
    s.lookups = st.lookups.load(std::memory_order_relaxed);
    s.cache_hits = st.cache_hits.load(std::memory_order_relaxed);
    s.joined = st.joined.load(std::memory_order_relaxed);
    s.queries = st.queries.load(std::memory_order_relaxed);
    s.errors = st.errors.load(std::memory_order_relaxed);
    s.timeouts = st.timeouts.load(std::memory_order_relaxed);
    return s;
}

}  // namespace sluice::net
