// auth_query_service on real threads: single flight, caching, timeouts and isolation between targets with injected
// runners; the libpq runner against sockets that refuse or never answer (no PostgreSQL needed).
#include <gtest/gtest.h>

// The service needs sluice_proxy to link sluice_bridge and libpq (proxy/CMakeLists.txt); until then it is not built.

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "net/auth_query.hpp"
#include "sluice/bridge/thread_pool.hpp"

namespace sluice::net {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// Longest any expected event may take before a test gives up on it: generous for a loaded 2-core machine; a passing
// test never waits this long.
constexpr auto deadline = 20s;

class io_thread {
  public:
    io_thread() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
    ~io_thread() {
        work_.reset();
        io_.stop();
        thread_.join();
    }
    io_thread(const io_thread&) = delete;
    io_thread& operator=(const io_thread&) = delete;
    asio::io_context& context() noexcept { return io_; }

  private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
};

// Starts a lookup on `io` and returns its future. The coroutine owns copies of its arguments: it runs later, on the
// io thread.
std::future<auth_query_result> lookup(io_thread& io, auth_query_service& service, auth_query_target target,
                                      std::string user) {
    return asio::co_spawn(
        io.context(),
        [&service, target = std::move(target), user = std::move(user)]() -> asio::awaitable<auth_query_result> {
            co_return co_await service.async_lookup(target, user);
        },
        asio::use_future);
}

template <class T>
[[nodiscard]] bool ready_in_time(std::future<T>& f) {
    return f.wait_for(deadline) == std::future_status::ready;
}

template <class T>
[[nodiscard]] bool is_ready(std::future<T>& f) {
    return f.wait_for(0s) == std::future_status::ready;
}

// For states with no event to wait on (a counter reaching a value).
template <class Pred>
[[nodiscard]] bool eventually(Pred pred) {
    const auto until = clock_type::now() + deadline;
    while (!pred()) {
        if (clock_type::now() > until) {
            return false;
        }
        std::this_thread::yield();
    }
    return true;
}

// Blocks runner calls until opened (or until the call is stopped, or the test deadline).
class gate {
  public:
    void open() {
        std::lock_guard lock(mutex_);
        open_ = true;
        cv_.notify_all();
    }
    // True when opened; false when stopped or at the deadline.
    bool wait(std::stop_token stop) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, stop, deadline, [&] { return open_; });
    }

  private:
    std::mutex mutex_;
    std::condition_variable_any cv_;
    bool open_ = false;
};

auth_query_result found(std::string_view secret = "md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") {
    auth_query_result r;
    r.outcome = auth_query_result::status::found;
    r.stored = *auth::parse_secret(secret);
    r.scram = r.stored;
    return r;
}

auth_query_target target_named(std::string name) {
    auth_query_target t;
    t.host = "127.0.0.1";
    t.dbname = std::move(name);
    t.user = "auth";
    t.query = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1";
    return t;
}

TEST(auth_query_service, concurrent_lookups_of_a_user_share_one_query_then_the_cache_answers) {
    io_thread io;
    bridge::thread_pool pool({.name = "auth", .threads = 2});
    gate release;
    std::atomic<int> calls{0};
    auth_query_service service(pool, {.timeout = 20s,
                                      .runner = [&](const auth_query_target&, const std::string& user,
                                                    clock_type::time_point, std::stop_token stop) {
                                          ++calls;
                                          EXPECT_EQ(user, "alice");
                                          return release.wait(stop) ? found() : auth_query_result{};
                                      }});
    const auto target = target_named("app");
    std::vector<std::future<auth_query_result>> logins;
    for (int i = 0; i < 5; ++i) {
        logins.push_back(lookup(io, service, target, "alice"));
    }
    ASSERT_TRUE(eventually([&] { return service.stats().joined == 4; }));
    release.open();
    for (auto& f : logins) {
        ASSERT_TRUE(ready_in_time(f));
        EXPECT_TRUE(f.get().found());
    }
    EXPECT_EQ(calls.load(), 1);

    auto later = lookup(io, service, target, "alice");
    ASSERT_TRUE(ready_in_time(later));
    EXPECT_TRUE(later.get().found());
    EXPECT_EQ(calls.load(), 1);
    const auto stats = service.stats();
    EXPECT_EQ(stats.lookups, 6u);
    EXPECT_EQ(stats.cache_hits, 1u);
    EXPECT_EQ(stats.queries, 1u);
}

TEST(auth_query_service, unknown_users_are_cached_but_errors_are_retried) {
    io_thread io;
    bridge::thread_pool pool({.name = "auth", .threads = 2});
    std::atomic<int> ghost_calls{0};
    std::atomic<int> broken_calls{0};
    auth_query_service service(
        pool,
        {.runner = [&](const auth_query_target&, const std::string& user, clock_type::time_point, std::stop_token) {
            if (user == "ghost") {
                ++ghost_calls;
                return auth_query_result{};
            }
            ++broken_calls;
            return auth_query_error("28000", "auth_query for user \"broken\" failed: the query failed", "42P01");
        }});
    const auto target = target_named("app");
    for (int i = 0; i < 2; ++i) {
        auto ghost = lookup(io, service, target, "ghost");
        ASSERT_TRUE(ready_in_time(ghost));
        EXPECT_EQ(ghost.get().outcome, auth_query_result::status::not_found);
        auto broken = lookup(io, service, target, "broken");
        ASSERT_TRUE(ready_in_time(broken));
        const auto answer = broken.get();
        ASSERT_TRUE(answer.error());
        EXPECT_EQ(answer.sqlstate, "28000");
    }
    EXPECT_EQ(ghost_calls.load(), 1);
    EXPECT_EQ(broken_calls.load(), 2);
    // The same user through another target is another question.
    auto elsewhere = lookup(io, service, target_named("other"), "ghost");
    ASSERT_TRUE(ready_in_time(elsewhere));
    EXPECT_EQ(ghost_calls.load(), 2);
}

TEST(auth_query_service, stalled_query_times_out_with_a_clear_error_and_its_call_is_stopped) {
    io_thread io;
    bridge::thread_pool pool({.name = "auth", .threads = 2});
    gate never;
    std::promise<bool> stopped;
    auth_query_service service(pool, {.timeout = 300ms,
                                      .runner = [&](const auth_query_target&, const std::string&,
                                                    clock_type::time_point, std::stop_token stop) {
                                          // A runner that ignores its deadline: only the stop request ends it.
                                          (void)never.wait(stop);
                                          stopped.set_value(stop.stop_requested());
                                          return found();
                                      }});
    const auto target = target_named("stalled");
    const auto start = clock_type::now();
    auto login = lookup(io, service, target, "alice");
    ASSERT_TRUE(ready_in_time(login));
    const auto elapsed = clock_type::now() - start;
    const auto answer = login.get();
    ASSERT_TRUE(answer.error());
    EXPECT_TRUE(answer.timed_out);
    EXPECT_EQ(answer.sqlstate, "08006");
    EXPECT_EQ(answer.message, "auth_query for user \"alice\" timed out after 300 ms");
    EXPECT_GE(elapsed, 300ms);
    EXPECT_LT(elapsed, 10s);
    auto saw_stop = stopped.get_future();
    ASSERT_TRUE(ready_in_time(saw_stop));
    EXPECT_TRUE(saw_stop.get());
    EXPECT_EQ(service.stats().timeouts, 1u);
}

TEST(auth_query_service, stalled_target_never_holds_every_thread) {
    io_thread io;
    bridge::thread_pool pool({.name = "auth", .threads = 2});  // one query at a time per target
    gate stall;
    std::atomic<int> running_on_stalled{0};
    std::atomic<int> most_on_stalled{0};
    auth_query_service service(pool, {.timeout = 20s,
                                      .runner = [&](const auth_query_target& target, const std::string&,
                                                    clock_type::time_point, std::stop_token stop) {
                                          if (target.dbname != "stalled") {
                                              return found();
                                          }
                                          const int now = ++running_on_stalled;
                                          int most = most_on_stalled.load();
                                          while (now > most && !most_on_stalled.compare_exchange_weak(most, now)) {
                                          }
                                          (void)stall.wait(stop);
                                          --running_on_stalled;
                                          return auth_query_result{};
                                      }});
    const auto stalled = target_named("stalled");
    const auto healthy = target_named("healthy");
    std::vector<std::future<auth_query_result>> stuck;
    for (const char* user : {"a1", "a2", "a3"}) {
        stuck.push_back(lookup(io, service, stalled, user));
    }
    ASSERT_TRUE(eventually([&] { return running_on_stalled.load() == 1; }));

    // Another database's logins go through while the stalled ones wait.
    for (const char* user : {"b1", "b2", "b3"}) {
        auto login = lookup(io, service, healthy, user);
        ASSERT_TRUE(ready_in_time(login));
        EXPECT_TRUE(login.get().found());
    }
    for (auto& f : stuck) {
        EXPECT_FALSE(is_ready(f));
    }

    stall.open();
    for (auto& f : stuck) {
        ASSERT_TRUE(ready_in_time(f));
        EXPECT_EQ(f.get().outcome, auth_query_result::status::not_found);
    }
    EXPECT_EQ(most_on_stalled.load(), 1);
}

TEST(auth_query_service, lookups_waiting_for_a_busy_target_time_out_too) {
    io_thread io;
    bridge::thread_pool pool({.name = "auth", .threads = 2});
    gate never;
    auth_query_service service(pool, {.timeout = 300ms,
                                      .runner = [&](const auth_query_target&, const std::string&,
                                                    clock_type::time_point, std::stop_token stop) {
                                          (void)never.wait(stop);
                                          return auth_query_result{};
                                      }});
    const auto stalled = target_named("stalled");
    auto first = lookup(io, service, stalled, "a1");
    auto second = lookup(io, service, stalled, "a2");  // waits for the target's only slot
    for (auto* f : {&first, &second}) {
        ASSERT_TRUE(ready_in_time(*f));
        const auto answer = f->get();
        ASSERT_TRUE(answer.error());
        EXPECT_TRUE(answer.timed_out);
        EXPECT_NE(answer.message.find("auth_query"), std::string::npos);
    }
}

TEST(auth_query_service, full_pool_queue_is_an_error_not_a_wait) {
    io_thread io;
    bridge::thread_pool pool({.name = "auth", .threads = 1, .max_queue = 0});
    gate stall;
    std::atomic<bool> running{false};
    auth_query_service service(pool, {.timeout = 20s,
                                      .runner = [&](const auth_query_target&, const std::string&,
                                                    clock_type::time_point, std::stop_token stop) {
                                          running = true;
                                          (void)stall.wait(stop);
                                          return auth_query_result{};
                                      }});
    const auto busy = target_named("busy");
    auto holder = lookup(io, service, busy, "a1");
    ASSERT_TRUE(eventually([&] { return running.load(); }));
    auto refused = lookup(io, service, target_named("other"), "b1");
    ASSERT_TRUE(ready_in_time(refused));
    const auto answer = refused.get();
    ASSERT_TRUE(answer.error());
    EXPECT_EQ(answer.sqlstate, "08006");
    EXPECT_EQ(answer.message, "auth_query for user \"b1\" failed: too many lookups waiting");
    stall.open();
    ASSERT_TRUE(ready_in_time(holder));
}

// --- the libpq runner, against sockets instead of PostgreSQL ---

// A TCP socket on 127.0.0.1 with a kernel-chosen port: listening (connections complete but nobody ever answers) or
// merely bound (connections are refused).
class fake_server {
  public:
    explicit fake_server(bool listening) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
        socklen_t size = sizeof addr;
        EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &size), 0);
        port_ = ntohs(addr.sin_port);
        if (listening) {
            EXPECT_EQ(::listen(fd_, 16), 0);
        }
    }
    ~fake_server() { ::close(fd_); }
    fake_server(const fake_server&) = delete;
    fake_server& operator=(const fake_server&) = delete;

    [[nodiscard]] int port() const noexcept { return port_; }
    // True once a client has connected (a connection waits in the backlog).
    [[nodiscard]] bool wait_for_client() const {
        pollfd pfd{fd_, POLLIN, 0};
        return ::poll(&pfd, 1, static_cast<int>(std::chrono::milliseconds(deadline).count())) == 1;
    }

  private:
    int fd_;
    int port_ = 0;
};

auth_query_target target_at(int port) {
    auto t = target_named("sluice_test");
    t.port = port;
    t.password = "secret";
    return t;
}

TEST(auth_query_libpq, unreachable_server_is_a_connection_error) {
    fake_server refusing(false);
    const auto runner = libpq_auth_query_runner(5s, 4096);
    const auto answer = runner(target_at(refusing.port()), "alice", clock_type::now() + deadline, {});
    ASSERT_TRUE(answer.error());
    EXPECT_FALSE(answer.timed_out);
    EXPECT_EQ(answer.sqlstate, "08006");
    EXPECT_EQ(answer.message, "auth_query for user \"alice\" failed: cannot connect to the auth database");
    EXPECT_NE(answer.detail.find(std::to_string(refusing.port())), std::string::npos) << answer.detail;
    EXPECT_EQ(answer.detail.find("secret"), std::string::npos) << answer.detail;
}

TEST(auth_query_libpq, silent_server_times_out_at_the_deadline) {
    fake_server silent(true);
    const auto runner = libpq_auth_query_runner(300ms, 4096);
    const auto start = clock_type::now();
    const auto answer = runner(target_at(silent.port()), "alice", start + 300ms, {});
    const auto elapsed = clock_type::now() - start;
    ASSERT_TRUE(answer.error());
    EXPECT_TRUE(answer.timed_out);
    EXPECT_EQ(answer.sqlstate, "08006");
    EXPECT_EQ(answer.message, "auth_query for user \"alice\" timed out after 300 ms");
    EXPECT_NE(answer.detail.find("connecting"), std::string::npos) << answer.detail;
    EXPECT_GE(elapsed, 300ms);
    EXPECT_LT(elapsed, 10s);
}

TEST(auth_query_libpq, stop_request_ends_a_call_long_before_its_deadline) {
    fake_server silent(true);
    const auto runner = libpq_auth_query_runner(20s, 4096);
    std::stop_source stop;
    std::promise<auth_query_result> result;
    std::thread bridge_thread([&] {
        result.set_value(runner(target_at(silent.port()), "alice", clock_type::now() + 60s, stop.get_token()));
    });
    ASSERT_TRUE(silent.wait_for_client());
    const auto start = clock_type::now();
    stop.request_stop();
    auto answer = result.get_future();
    const bool answered = ready_in_time(answer);
    bridge_thread.join();
    ASSERT_TRUE(answered);
    EXPECT_LT(clock_type::now() - start, 10s);
    const auto r = answer.get();
    ASSERT_TRUE(r.error());
    EXPECT_EQ(r.message, "auth_query for user \"alice\" was interrupted");
}

TEST(auth_query_libpq, service_with_libpq_gives_up_on_a_silent_server_in_time) {
    io_thread io;
    bridge::thread_pool pool({.name = "auth", .threads = 2});
    fake_server silent(true);
    auth_query_service service(pool, {.timeout = 300ms});
    const auto target = target_at(silent.port());
    const auto start = clock_type::now();
    auto login = lookup(io, service, target, "alice");
    ASSERT_TRUE(ready_in_time(login));
    EXPECT_LT(clock_type::now() - start, 10s);
    const auto answer = login.get();
    ASSERT_TRUE(answer.error());
    EXPECT_TRUE(answer.timed_out);
    EXPECT_EQ(answer.message, "auth_query for user \"alice\" timed out after 300 ms");
}

}  // namespace
}  // namespace sluice::net
