// The metrics HTTP server, driven over real loopback sockets by a blocking POSIX client while the server runs on its
// own io_context thread, as it would on a proxy worker.

#include "sluice/metrics/http_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "exposition.hpp"
#include "http_client.hpp"
#include "sluice/metrics/exporter.hpp"

namespace sluice::metrics {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::test_client;

// Polls `condition` until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// A render handler that keeps its replies for the test to answer.
struct deferred_render {
    std::mutex mutex;
    std::vector<http_handlers::reply_fn> replies;
    std::atomic<int> calls{0};

    http_handlers::reply_fn take() {
        std::lock_guard lock(mutex);
        auto r = std::move(replies.back());
        replies.pop_back();
        return r;
    }
    std::function<void(http_handlers::reply_fn)> handler() {
        return [this](http_handlers::reply_fn reply) {
            std::lock_guard lock(mutex);
            replies.push_back(std::move(reply));
            ++calls;
        };
    }
};

class http_server_test : public ::testing::Test {
  protected:
    void start(http_handlers handlers, http_server_options options = {}) {
        server_ = std::make_unique<http_server>(ioc_.get_executor(),
                                                asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0),
                                                std::move(handlers), options);
        server_->start();
        thread_ = std::thread([this] {
            ioc_.run();
            ran_out_ = true;
        });
    }

    // Stops the server and expects the io_context to run out of work on its own: nothing the server started
    // outlives stop().
    void TearDown() override {
        if (!server_)
            return;
        server_->stop();
        work_.reset();
        EXPECT_TRUE(wait_until([this] { return ran_out_.load(); })) << "the server left work behind after stop()";
        ioc_.stop();
        thread_.join();
    }

    [[nodiscard]] std::uint16_t port() const { return server_->local_endpoint().port(); }

    asio::io_context ioc_{1};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{ioc_.get_executor()};
    std::unique_ptr<http_server> server_;
    std::thread thread_;
    std::atomic<bool> ran_out_{false};
};

http_handlers fixed_body(std::string body) {
    return {[body](http_handlers::reply_fn reply) { reply(body); }, {}};
}

TEST_F(http_server_test, metrics_answers_with_the_rendered_body_as_text_format_0_0_4) {
    start({[](http_handlers::reply_fn reply) { reply(render_text(std::vector<source*>{})); }, {}});
    test_client client(port());
    const auto r = client.get("/metrics");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const auto parsed = testing::parse_exposition(r->body);
    EXPECT_TRUE(parsed.errors.empty()) << ::testing::PrintToString(parsed.errors);
    EXPECT_TRUE(parsed.value("process_open_fds"));
}

TEST_F(http_server_test, metrics_ignores_a_query_string) {
    start(fixed_body("body\n"));
    test_client client(port());
    const auto r = client.get("/metrics?name[]=sluice_clients");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "body\n");
}

TEST_F(http_server_test, healthz_answers_ok) {
    start(fixed_body(""));
    test_client client(port());
    const auto r = client.get("/healthz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "ok\n");
}

TEST_F(http_server_test, readyz_follows_the_readiness_callback) {
    std::atomic<bool> ready{false};
    start({{}, [&ready] { return ready.load(); }});
    test_client client(port());
    auto r = client.get("/readyz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
    ready = true;
    r = client.get("/readyz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "ready\n");
}

TEST_F(http_server_test, readyz_is_not_ready_when_the_callback_throws) {
    start({{}, []() -> bool { throw std::runtime_error("cannot tell"); }});
    test_client client(port());
    const auto r = client.get("/readyz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
}

TEST_F(http_server_test, unknown_path_answers_404) {
    start(fixed_body(""));
    test_client client(port());
    const auto r = client.get("/metricz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
}

TEST_F(http_server_test, other_methods_answer_405_with_allow_get) {
    start(fixed_body("body\n"));
    test_client client(port());
    ASSERT_TRUE(client.send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
    auto r = client.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_EQ(r->headers.at("allow"), "GET");
    // HEAD gets no body, so the connection stays usable.
    ASSERT_TRUE(client.send("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    r = client.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_EQ(r->body, "");
    r = client.get("/healthz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST_F(http_server_test, keep_alive_serves_several_requests_on_one_connection) {
    start(fixed_body("body\n"));
    test_client client(port());
    for (const char* target : {"/metrics", "/healthz", "/readyz", "/metrics"}) {
        const auto r = client.get(target);
        ASSERT_TRUE(r) << target;
        EXPECT_EQ(r->status, 200) << target;
    }
    EXPECT_EQ(server_->connection_count(), 1u);
}

TEST_F(http_server_test, pipelined_requests_are_answered_in_order) {
    start(fixed_body("body\n"));
    test_client client(port());
    ASSERT_TRUE(client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"));
    const auto first = client.read_response();
    const auto second = client.read_response();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->status, 200);
    EXPECT_EQ(second->status, 404);
}

TEST_F(http_server_test, connection_close_closes_after_the_response) {
    start(fixed_body(""));
    test_client client(port());
    const auto r = client.get("/healthz", "Connection: close\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(http_server_test, oversized_header_answers_431_and_closes) {
    start(fixed_body(""));
    test_client client(port());
    const std::string big(9 * 1024, 'x');
    ASSERT_TRUE(client.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: " + big + "\r\n\r\n"));
    const auto r = client.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431);
    EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(http_server_test, header_just_under_the_limit_is_served) {
    start(fixed_body("body\n"));
    test_client client(port());
    const auto r = client.get("/metrics", "X-Filler: " + std::string(7 * 1024, 'x') + "\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST_F(http_server_test, request_with_a_body_answers_413_and_closes) {
    start(fixed_body(""));
    test_client client(port());
    ASSERT_TRUE(client.send("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
    const auto r = client.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(http_server_test, malformed_request_answers_400_and_closes) {
    start(fixed_body(""));
    test_client client(port());
    ASSERT_TRUE(client.send("GET /metrics NOT-HTTP\r\n\r\n"));
    const auto r = client.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(http_server_test, render_may_reply_later_from_another_thread) {
    deferred_render render;
    start({render.handler(), {}});
    test_client client(port());
    ASSERT_TRUE(client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(wait_until([&] { return render.calls == 1; }));
    std::thread([reply = render.take()] { reply("late body\n"); }).join();
    const auto r = client.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "late body\n");
}

TEST_F(http_server_test, concurrent_scrapes_share_one_render) {
    deferred_render render;
    start({render.handler(), {}});
    std::vector<std::unique_ptr<test_client>> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(std::make_unique<test_client>(port()));
        ASSERT_TRUE(clients.back()->send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    ASSERT_TRUE(wait_until([&] { return server_->scrapes_waiting() == 3; }));
    EXPECT_EQ(render.calls, 1);
    render.take()("shared\n");
    for (auto& c : clients) {
        const auto r = c->read_response();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->body, "shared\n");
    }
    // The next scrape starts a fresh render.
    ASSERT_TRUE(clients.front()->send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(wait_until([&] { return render.calls == 2; }));
    render.take()("fresh\n");
    const auto r = clients.front()->read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "fresh\n");
}

TEST_F(http_server_test, reply_called_twice_answers_once) {
    start({[](http_handlers::reply_fn reply) {
               reply("first\n");
               reply("second\n");
           },
           {}});
    test_client client(port());
    auto r = client.get("/metrics");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "first\n");
    r = client.get("/healthz");  // nothing stray on the connection
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "ok\n");
}

TEST_F(http_server_test, render_that_throws_or_drops_its_reply_answers_500_and_the_next_scrape_renders_again) {
    std::atomic<int> calls{0};
    start({[&calls](http_handlers::reply_fn reply) {
               switch (calls++) {
                   case 0:
                       throw std::runtime_error("snapshot failed");
                   case 1:
                       return;  // drops `reply` without calling it
                   default:
                       reply("recovered\n");
               }
           },
           {}});
    test_client client(port());
    for (const int expected : {500, 500, 200}) {
        const auto r = client.get("/metrics");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, expected);
    }
}

TEST_F(http_server_test, render_that_never_replies_is_abandoned_after_the_deadline) {
    deferred_render render;
    start({render.handler(), {}}, {.request_timeout = 300ms});
    test_client stuck(port());
    ASSERT_TRUE(stuck.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_TRUE(stuck.closed_by_peer()) << "closed at its deadline without a response";
    ASSERT_EQ(render.calls, 1);

    test_client next(port());
    ASSERT_TRUE(next.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(wait_until([&] { return render.calls == 2; })) << "a fresh render, not a wait on the stuck one";
    render.take()("fresh\n");
    const auto r = next.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "fresh\n");
    render.take()("too late\n");  // the abandoned render's reply is ignored
}

TEST_F(http_server_test, slowloris_client_is_closed_at_its_deadline_while_another_client_is_served) {
    constexpr auto timeout = 500ms;
    start(fixed_body("body\n"), {.request_timeout = timeout});
    const auto started = std::chrono::steady_clock::now();
    test_client slow(port());
    ASSERT_TRUE(slow.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "));

    test_client fast(port());
    const auto r = fast.get("/metrics");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - started, timeout) << "served while the slow client hangs";

    EXPECT_TRUE(slow.closed_by_peer());
    const auto elapsed = std::chrono::steady_clock::now() - started;
    EXPECT_GE(elapsed, timeout - 50ms);
    EXPECT_LT(elapsed, timeout + 2s);
}

TEST_F(http_server_test, dripping_bytes_does_not_extend_the_deadline) {
    constexpr auto timeout = 400ms;
    start(fixed_body(""), {.request_timeout = timeout});
    test_client slow(port());
    const auto started = std::chrono::steady_clock::now();
    const std::string header = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'x');
    bool refused = false;
    for (char c : header) {
        if (!slow.send(std::string(1, c))) {
            refused = true;
            break;
        }
        if (std::chrono::steady_clock::now() - started > 3 * timeout)
            break;
        std::this_thread::sleep_for(20ms);  // the client under test is slow on purpose
    }
    EXPECT_TRUE(refused || slow.closed_by_peer());
    EXPECT_LT(std::chrono::steady_clock::now() - started, 3 * timeout);
}

TEST_F(http_server_test, connections_beyond_the_limit_are_closed_at_once) {
    start(fixed_body(""), {.max_connections = 2});
    test_client a(port()), b(port());
    ASSERT_TRUE(wait_until([&] { return server_->connection_count() == 2; }));
    test_client c(port(), 2s);
    const auto started = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.closed_by_peer());
    EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
    const auto r = a.get("/healthz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST_F(http_server_test, stop_closes_open_connections) {
    start(fixed_body(""));
    test_client idle(port());
    ASSERT_TRUE(wait_until([&] { return server_->connection_count() == 1; }));
    server_->stop();
    EXPECT_TRUE(idle.closed_by_peer());
    EXPECT_TRUE(wait_until([&] { return server_->connection_count() == 0; }));
}

TEST(http_server, constructor_throws_when_the_port_is_taken) {
    asio::io_context ioc;
    http_server first(ioc.get_executor(), asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0), {});
    EXPECT_THROW(http_server(ioc.get_executor(), first.local_endpoint(), {}), boost::system::system_error);
}

}  // namespace
}  // namespace sluice::metrics
