#pragma once
// The metrics endpoint: a small HTTP/1.1 server for Prometheus scrapes and orchestrator probes. Provided by the target
// sluice_metrics_http (Beast is compiled in its own translation unit; this header includes no Beast).
//
//   GET /metrics  200, Prometheus text format 0.0.4, body from `http_handlers::render`
//   GET /healthz  200 "ok" while the process runs its event loop (liveness)
//   GET /readyz   200 when `http_handlers::ready` returns true, 503 otherwise (readiness)
//   other paths 404; other methods on these paths 405; malformed requests 400, oversized headers 431, any request
//   body 413 (and the connection is closed after these three).
//
// It runs on a caller-provided executor, typically a proxy worker's io_context, so it must never block it: every
// operation is asynchronous, each connection has a deadline after which it is closed whatever it is doing (a
// slowloris client costs one socket until then), headers are capped, and connections beyond the limit are closed as
// soon as they are accepted. Keep-alive is supported; the deadline restarts with each request.
//
// Flow of a connection: accept -> [read request -> answer -> write response]* -> close, all under the deadline; a
// /metrics request calls `render` and waits, still under the deadline, for its reply.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace sluice::metrics {

struct http_server_options {
    // Bytes of request line and header fields; a request with more gets 431 and is closed.
    std::size_t header_limit = 8 * 1024;
    // Time a connection has for each request: from its accept (or the previous response) to the response written,
    // including keep-alive idle time and the wait for `render`.
    std::chrono::milliseconds request_timeout{10'000};
    // Connections open at once; more are closed as soon as they are accepted.
    std::size_t max_connections = 64;
};

struct http_handlers {
    // Delivers the /metrics body. May be called from any thread, at most once (later calls are ignored). If every
    // copy is destroyed without being called, the scrape gets 500.
    using reply_fn = std::function<void(std::string body)>;

    // Produces the /metrics body, now or later: it is called on the server's executor and must not block; it may
    // hand the work to other threads and call `reply` when done (the proxy gathers a snapshot from its workers).
    // Concurrent scrapes share one call: while one is in flight, later requests wait for its reply. A call whose
    // reply has not come within request_timeout is abandoned and the next request starts a fresh one. If it throws,
    // the scrape gets 500.
    std::function<void(reply_fn reply)> render;

    // Readiness for /readyz, called on the server's executor; must be cheap and must not block. Empty means ready.
    std::function<bool()> ready;
};

class http_server {
  public:
    // Opens, binds and listens on `endpoint` (port 0 picks a free port; see local_endpoint()). Throws
    // boost::system::system_error when it cannot: call it at startup. Accepts nothing until start().
    http_server(const boost::asio::any_io_executor& executor, const boost::asio::ip::tcp::endpoint& endpoint,
                http_handlers handlers, http_server_options options = {});
    // Stops the server (see stop()).
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    // Starts accepting connections. Call once.
    void start();

    // Closes the listening socket and every open connection. Thread-safe and idempotent. The closes complete on the
    // executor, so its io_context must keep running (or be destroyed) afterwards to release the sockets. Requests
    // read after stop() call no handler; a handler already running on another thread may finish, so what the
    // handlers reference must outlive the executor's processing of the stop (simplest: stop before the io_context
    // stops running). A render reply that arrives after stop() is discarded.
    void stop();

    [[nodiscard]] boost::asio::ip::tcp::endpoint local_endpoint() const;

    // Connections open right now. Thread-safe; for tests and diagnostics.
    [[nodiscard]] std::size_t connection_count() const noexcept;
    // /metrics requests waiting for the render in flight. Thread-safe; for tests and diagnostics.
    [[nodiscard]] std::size_t scrapes_waiting() const;

    struct state;  // shared with connections, which may outlive the server object by a few handlers

  private:
    std::shared_ptr<state> state_;
};

}  // namespace sluice::metrics
