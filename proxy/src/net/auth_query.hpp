#pragma once
// PgBouncer's auth_user / auth_query / auth_dbname: the secret of a user missing from auth_file is looked up in
// PostgreSQL with libpq, on the threads of a bridge::thread_pool, so that no event-loop thread ever blocks.
//
// Flow of auth_query_service::async_lookup(target, user):
//   1. Cache: a fresh answer is returned at once (found: positive_ttl; not found: negative_ttl; errors are not
//      cached). A lookup of the same (target, user) already running is joined: concurrent logins share one query.
//      Otherwise this call starts one, as a task of its own, so that the query outlives a client that gives up.
//   2. The task waits for a slot of its target: at most max(1, threads - 1) queries per target run at once, so that
//      one stalled server can never hold every thread of the pool.
//   3. bridge::sync_to_async(pool, ..., any_thread) runs the query on a bridge thread, through that thread's own
//      libpq connection for the target (opened on first use, kept while it works, re-opened once when it broke
//      while idle). libpq is driven non-blocking: the thread polls the socket against the deadline and the call's
//      std::stop_token, so it is back in the pool by the deadline whatever the server does.
//   4. The answer is parsed (auth::parse_secret), cached, and every waiter is woken on its own executor.
// Every step ends by the deadline (start + timeout): the task races the bridge call against a timer (a queued call
// is dropped, a running one is stopped), and the libpq connection also carries statement_timeout and
// connect_timeout, so that the server drops an abandoned query by itself.
//
// Why any_thread and per-thread connections rather than a thread_scope per target: a scope holds its thread for as
// long as it lives, and the targets (one per database when auth_dbname is unset) may outnumber the pool's threads;
// a libpq connection is only ever used by the thread that owns it, which is all libpq asks.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/secret.hpp"
#include "config/config.hpp"
#include "net/asio_fwd.hpp"

namespace sluice::bridge {
class thread_pool;
}  // namespace sluice::bridge

namespace sluice::net {

// Where and how to look a user up: one server login (host, port, dbname, auth_user) and one query.
struct auth_query_target {
    std::string host;  // libpq's host=: names or addresses, a Unix socket directory ('/...'), comma-separated
    int port = 5432;
    std::string dbname;
    std::string user;                     // auth_user
    std::optional<std::string> password;  // auth_user's plain-text password; nullopt: libpq logs in without one
    std::string query;                    // run with the looked-up user name as $1
    std::string sslmode = "prefer";       // libpq's sslmode=
    std::optional<std::string> sslrootcert;
    std::optional<std::string> sslcert;
    std::optional<std::string> sslkey;

    friend bool operator==(const auth_query_target&, const auth_query_target&) = default;
};

struct auth_query_result {
    enum class status { found, not_found, error };

    status outcome = status::not_found;
    // found: the secret as the query returned it, and the one that verifies a SCRAM login (the same secret, or one
    // derived from a plain-text password; for an md5 secret, a copy of it that no SCRAM proof matches).
    auth::secret stored;
    auth::secret scram;
    // error: what the client is told (names auth_query, never the server's address or libpq's text) ...
    std::string sqlstate;
    std::string message;
    // ... and what the operator is told: libpq's or the server's message, the server and database. No secrets.
    std::string detail;
    bool timed_out = false;  // error: the deadline passed (or the server's statement_timeout fired)

    [[nodiscard]] bool found() const noexcept { return outcome == status::found; }
    [[nodiscard]] bool error() const noexcept { return outcome == status::error; }
};

// ---------------------------------------------------------------------------------------------------------------
// Pure parts (no I/O, no threads, no clock), unit-tested.

// A query's answer as text: the number of columns and each row's values (nullopt for SQL NULL).
struct auth_query_rows {
    int columns = 0;
    std::vector<std::vector<std::optional<std::string>>> rows;
};

// PgBouncer's rules for an auth_query answer: no row -> not found; one row of at least two columns -> the second
// column is the secret (SQL NULL or empty -> not found: no password, or PostgreSQL's default query's expired
// password); more rows, fewer columns, or a malformed SCRAM secret -> error (28000). A plain-text password gets a
// SCRAM verifier derived with `scram_iterations` (PBKDF2: call this off the event loop).
[[nodiscard]] auth_query_result parse_auth_query_rows(std::string_view user, const auth_query_rows& answer,
                                                      int scram_iterations);

// The errors the service reports, built in one place so that messages stay consistent.
[[nodiscard]] auth_query_result auth_query_error(std::string_view sqlstate, std::string message, std::string detail);

// What auth_query looks like for a client of `client_db` (a resolve_database() result): nullopt target and no error
// when no auth_user applies (the database's auth_user=, else the auth_user setting), an error when auth_dbname (the
// database's, else the setting) names no [databases] entry. The server is auth_dbname's entry, else client_db; the
// query is client_db's auth_query=, else the setting. `auth_user_secret` is auth_user's auth_file entry (nullptr if
// none): only a plain-text password can be given to libpq; with an md5 or SCRAM secret (or none) libpq logs in
// without a password, which works with trust and peer, and otherwise fails with an error that says so.
struct auth_query_plan {
    std::optional<auth_query_target> target;
    std::string error;  // empty on success
};
[[nodiscard]] auth_query_plan plan_auth_query(const config::config& cfg, const config::database_entry& client_db,
                                              const auth::secret* auth_user_secret);

// The identity of a target's libpq login (everything but the query), and of a target: the keys of the per-thread
// connections, the per-target slots and the cache. Fields are '\0'-separated, so different targets never collide.
[[nodiscard]] std::string auth_query_login_key(const auth_query_target& target);
[[nodiscard]] std::string auth_query_target_key(const auth_query_target& target);

// Answers of lookups, keyed by auth_query_target_key() + '\0' + user, with single flight: the first begin() of a
// key leads (its caller must complete() the key later), later ones join, and complete() returns every waiter to wake.
// Not thread-safe: the caller holds its lock. `Waiter` is whatever the caller wakes (copyable).
template <class Waiter>
class auth_query_cache {
  public:
    using time_point = std::chrono::steady_clock::time_point;
    using duration = std::chrono::steady_clock::duration;

    enum class step { hit, join, lead };
    struct begin_result {
        step what = step::lead;
        std::optional<auth_query_result> answer;  // hit: the cached answer
    };

    auth_query_cache(duration positive_ttl, duration negative_ttl)
        : positive_ttl_(positive_ttl), negative_ttl_(negative_ttl) {}

    // A fresh answer (hit), else `waiter` is registered on the running lookup (join) or on a new one (lead).
    [[nodiscard]] begin_result begin(const std::string& key, Waiter waiter, time_point now) {
        prune(now);
        auto it = entries_.find(key);
        if (it != entries_.end() && !it->second.pending && now < it->second.expires) {
            return {step::hit, it->second.answer};
        }
        if (it != entries_.end() && it->second.pending) {
            it->second.waiters.push_back(std::move(waiter));
            return {step::join, std::nullopt};
        }
        if (it == entries_.end()) {
            it = entries_.try_emplace(key).first;
        }
        it->second = entry{};
        it->second.pending = true;
        it->second.waiters.push_back(std::move(waiter));
        return {step::lead, std::nullopt};
    }

    // The answer of the key's running lookup: cached unless it is an error. Returns the waiters to wake (none when
    // no lookup of the key was running).
    [[nodiscard]] std::vector<Waiter> complete(const std::string& key, const auth_query_result& answer,
                                               time_point now) {
        auto it = entries_.find(key);
        if (it == entries_.end() || !it->second.pending) {
            return {};
        }
        std::vector<Waiter> waiters = std::move(it->second.waiters);
        if (answer.error()) {
            entries_.erase(it);
        } else {
            it->second.pending = false;
            it->second.waiters.clear();
            it->second.answer = answer;
            it->second.expires = now + (answer.found() ? positive_ttl_ : negative_ttl_);
        }
        return waiters;
    }

    // Entries held, running lookups included.
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

  private:
    struct entry {
        bool pending = false;
        std::vector<Waiter> waiters;  // pending
        auth_query_result answer;     // !pending
        time_point expires{};         // !pending
    };

    // Drops expired answers, at most once per shortest TTL so that a login costs O(1) amortized.
    void prune(time_point now) {
        if (now < next_prune_) {
            return;
        }
        std::erase_if(entries_, [&](const auto& kv) { return !kv.second.pending && kv.second.expires <= now; });
        next_prune_ = now + std::min(positive_ttl_, negative_ttl_);
    }

    duration positive_ttl_;
    duration negative_ttl_;
    time_point next_prune_{};
    std::map<std::string, entry, std::less<>> entries_;
};

// Per-target admission: at most `limit` queries of one target run at once; the others queue FIFO. A released slot is
// handed straight to the next waiter. Not thread-safe: the caller holds its lock.
template <class Waiter>
class auth_query_slots {
  public:
    explicit auth_query_slots(std::size_t limit) : limit_(limit < 1 ? 1 : limit) {}

    // True: the caller holds a slot now. False: `waiter` is queued until release() hands it one or abandon().
    [[nodiscard]] bool acquire(const std::string& key, Waiter waiter) {
        auto& t = targets_[key];
        if (t.running < limit_) {
            ++t.running;
            return true;
        }
        t.queued.push_back(std::move(waiter));
        return false;
    }

    // Gives a slot back; returns the waiter it was handed to, if any (the caller wakes it: it holds the slot now).
    [[nodiscard]] std::optional<Waiter> release(const std::string& key) {
        auto it = targets_.find(key);
        if (it == targets_.end()) {
            return std::nullopt;
        }
        auto& t = it->second;
        if (!t.queued.empty()) {
            Waiter next = std::move(t.queued.front());
            t.queued.pop_front();
            return next;
        }
        if (t.running > 0 && --t.running == 0) {
            targets_.erase(it);
        }
        return std::nullopt;
    }

    // A queued waiter gives up. False when it is not queued (release() already handed it a slot: it must release).
    [[nodiscard]] bool abandon(const std::string& key, const Waiter& waiter) {
        auto it = targets_.find(key);
        if (it == targets_.end()) {
            return false;
        }
        auto& queued = it->second.queued;
        for (auto q = queued.begin(); q != queued.end(); ++q) {
            if (*q == waiter) {
                queued.erase(q);
                return true;
            }
        }
        return false;
    }

    [[nodiscard]] std::size_t running(const std::string& key) const {
        auto it = targets_.find(key);
        return it == targets_.end() ? 0 : it->second.running;
    }
    [[nodiscard]] std::size_t queued(const std::string& key) const {
        auto it = targets_.find(key);
        return it == targets_.end() ? 0 : it->second.queued.size();
    }

  private:
    struct target {
        std::size_t running = 0;
        std::deque<Waiter> queued;
    };
    std::size_t limit_;
    std::map<std::string, target, std::less<>> targets_;
};

// ---------------------------------------------------------------------------------------------------------------
// The service.

// Runs one lookup on a bridge thread: must return by `deadline`, and soon after `stop` is signalled. The default
// runs the query with libpq; tests inject their own.
using auth_query_runner =
    std::function<auth_query_result(const auth_query_target& target, const std::string& user,
                                    std::chrono::steady_clock::time_point deadline, std::stop_token stop)>;

struct auth_query_options {
    std::chrono::milliseconds timeout{5000};                // per lookup, from async_lookup's call to its answer
    std::chrono::milliseconds positive_ttl{30000};          // how long a found secret is reused
    std::chrono::milliseconds negative_ttl{5000};           // how long "no such user" is reused
    int scram_iterations = auth::scram_default_iterations;  // for plain-text passwords the query returns
    auth_query_runner runner{};                             // empty: libpq (libpq_auth_query_runner)
};

// The default runner: PQsendQueryParams(target.query, [user]) on the calling thread's connection for the target,
// with statement_timeout = `timeout` and connect_timeout = max(2 s, timeout) on the connection.
[[nodiscard]] auth_query_runner libpq_auth_query_runner(std::chrono::milliseconds timeout, int scram_iterations);

struct auth_query_stats {
    std::uint64_t lookups = 0;     // async_lookup calls
    std::uint64_t cache_hits = 0;  // answered from the cache
    std::uint64_t joined = 0;      // shared a query already running
    std::uint64_t queries = 0;     // runner calls started
    std::uint64_t errors = 0;      // queries that ended in an error (timeouts included)
    std::uint64_t timeouts = 0;
};

struct auth_query_state;

// Thread-safe: logins on every worker call async_lookup concurrently. Each call's coroutine must run on a serialized
// executor (a worker's io_context, or a strand). Destroy the service after the event loops that run its lookups have
// stopped and before `pool` (a task still queued in the pool would otherwise outlive it); destroying it does not
// wait for anything.
class auth_query_service {
  public:
    auth_query_service(bridge::thread_pool& pool, auth_query_options options = {});
    ~auth_query_service();
    auth_query_service(const auth_query_service&) = delete;
    auth_query_service& operator=(const auth_query_service&) = delete;

    // The secret of `user` according to `target`. Never throws for what a server or the pool does: those are
    // status::error results (08006 for timeouts, an unreachable server and a full pool; 28000 for configuration
    // errors: auth_user cannot log in, the query fails or answers nonsense). Resumes within about `timeout`.
    [[nodiscard]] asio::awaitable<auth_query_result> async_lookup(const auth_query_target& target, std::string user);

    [[nodiscard]] auth_query_stats stats() const;

  private:
    std::shared_ptr<auth_query_state> state_;
};

}  // namespace sluice::net
