// The metrics HTTP server, in the shape of Beast's small asynchronous server: one object per connection, one
// operation in flight at a time, and a steady_timer watchdog that closes the socket at the deadline (Boost 1.81 has no
// cancel_after). Every connection runs on its own strand, so the server is safe on an io_context run by several
// threads as well as on a single proxy worker.

#include "sluice/metrics/http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/metrics/exporter.hpp"

namespace sluice::metrics {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady_clock = std::chrono::steady_clock;

namespace {

class connection;

// A /metrics body, or nullopt when rendering failed.
using rendered = std::optional<std::string>;

constexpr std::string_view plain_text = "text/plain; charset=utf-8";
// Bytes read and thrown away after an error response before closing, so the peer sees the response rather than a
// reset caused by unread data (a "lingering close").
constexpr std::size_t drain_limit = 64 * 1024;
constexpr std::chrono::milliseconds accept_retry_delay{100};

}  // namespace

struct http_server::state : std::enable_shared_from_this<http_server::state> {
    state(const asio::any_io_executor& ex, http_handlers h, http_server_options o)
        : executor(ex),
          acceptor(asio::make_strand(ex)),
          retry_timer(acceptor.get_executor()),
          handlers(std::move(h)),
          options(o) {}

    void accept();
    // Queues `waiter` for the in-flight render, starting one if there is none (or the last one is overdue).
    void render(const std::shared_ptr<connection>& waiter);
    void finish_render(std::uint64_t generation, rendered body);

    asio::any_io_executor executor;
    tcp::acceptor acceptor;          // used on its own strand only
    asio::steady_timer retry_timer;  // backs off after an accept error such as EMFILE
    tcp::endpoint local;
    const http_handlers handlers;
    const http_server_options options;
    std::atomic<bool> stopped{false};
    std::atomic<std::size_t> connections{0};

    std::mutex mutex;  // guards the members below; never held while calling a handler
    std::unordered_map<const connection*, std::weak_ptr<connection>> open;
    // Weak, so that a connection closed at its deadline is freed (and its slot counted free) even if the render it
    // waits for never replies.
    std::vector<std::weak_ptr<connection>> render_waiters;
    std::uint64_t render_generation = 0;
    bool rendering = false;
    steady_clock::time_point render_started;
};

namespace {

class connection : public std::enable_shared_from_this<connection> {
  public:
    connection(tcp::socket socket, std::shared_ptr<http_server::state> server)
        : executor_(socket.get_executor()),
          socket_(std::move(socket)),
          deadline_(executor_),
          buffer_(server->options.header_limit),
          server_(std::move(server)) {}

    ~connection() {
        {
            std::lock_guard lock(server_->mutex);
            server_->open.erase(this);
        }
        server_->connections.fetch_sub(1, std::memory_order_relaxed);
    }

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // The connection's strand. Any thread.
    [[nodiscard]] const asio::any_io_executor& executor() const noexcept { return executor_; }

    // Hands a render result to this connection. Any thread.
    void deliver(rendered body) {
        asio::post(executor(), [self = shared_from_this(), body = std::move(body)]() mutable {
            self->on_rendered(std::move(body));
        });
    }

    // On the connection's strand.
    void start() {
        if (server_->stopped.load())
            return close();
        deadline_.expires_after(server_->options.request_timeout);
        watch();
        read_request();
    }

    // On the connection's strand. Cancels whatever is pending; the handlers then see closed_ and return.
    void close() {
        if (closed_)
            return;
        closed_ = true;
        error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        deadline_.cancel();
    }

  private:
    // The watchdog: one wait at a time, re-armed when a new request moves the expiry (which cancels the wait).
    void watch() {
        deadline_.async_wait([self = shared_from_this()](error_code) {
            if (self->closed_)
                return;
            if (self->deadline_.expiry() <= steady_clock::now())
                return self->close();
            self->watch();
        });
    }

    void read_request() {
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(server_->options.header_limit));
        parser_->body_limit(0);  // GET carries no body
        http::async_read(socket_, buffer_, *parser_,
                         [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
    }

    void on_read(error_code ec) {
        if (closed_)
            return;
        head_ = false;
        if (ec == http::error::end_of_stream || ec == asio::error::eof)
            return close();
        if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
            return fail(http::status::request_header_fields_too_large, "request header too large\n");
        if (ec == http::error::body_limit || ec == http::error::unexpected_body)
            return fail(http::status::payload_too_large, "request body not allowed\n");
        if (ec && ec.category() == make_error_code(http::error::bad_method).category())
            return fail(http::status::bad_request, "malformed request\n");
        if (ec || server_->stopped.load())
            return close();
        answer(parser_->get());
    }

    void answer(const http::request<http::empty_body>& req) {
        version_ = req.version();
        keep_alive_ = req.keep_alive();
        head_ = req.method() == http::verb::head;
        std::string_view path(req.target().data(), req.target().size());
        path = path.substr(0, path.find('?'));

        if (path != "/metrics" && path != "/healthz" && path != "/readyz")
            return respond(http::status::not_found, "not found\n", plain_text);
        if (req.method() != http::verb::get)
            return respond(http::status::method_not_allowed, "method not allowed\n", plain_text);
        if (path == "/healthz")
            return respond(http::status::ok, "ok\n", plain_text);
        if (path == "/readyz") {
            bool ready = true;
            if (server_->handlers.ready) {
                try {
                    ready = server_->handlers.ready();
                } catch (...) {
                    ready = false;  // a readiness check that cannot answer means not ready
                }
            }
            return ready ? respond(http::status::ok, "ready\n", plain_text)
                         : respond(http::status::service_unavailable, "not ready\n", plain_text);
        }
        server_->render(shared_from_this());
    }

    void on_rendered(rendered body) {
        if (closed_)
            return;  // the deadline passed while the body was being produced
        if (!body)
            return respond(http::status::internal_server_error, "metrics unavailable\n", plain_text);
        respond(http::status::ok, std::move(*body), text_content_type);
    }

    // An error response after which the connection is closed (the request stream can no longer be trusted).
    void fail(http::status status, std::string body) {
        keep_alive_ = false;
        closing_ = true;
        respond(status, std::move(body), plain_text);
    }

    void respond(http::status status, std::string body, std::string_view content_type) {
        response_ = {};
        response_.version(version_);
        response_.result(status);
        response_.set(http::field::content_type, content_type);
        if (status == http::status::method_not_allowed)
            response_.set(http::field::allow, "GET");
        if (!head_)  // a response to HEAD carries no body (RFC 9110, 9.3.2)
            response_.body() = std::move(body);
        response_.keep_alive(keep_alive_);
        response_.prepare_payload();
        http::async_write(socket_, response_,
                          [self = shared_from_this()](error_code ec, std::size_t) { self->on_write(ec); });
    }

    void on_write(error_code ec) {
        if (closed_)
            return;
        if (ec)
            return close();
        if (closing_) {
            socket_.shutdown(tcp::socket::shutdown_send, ec);
            return drain();
        }
        if (!keep_alive_)
            return close();
        deadline_.expires_after(server_->options.request_timeout);
        read_request();
    }

    void drain() {
        socket_.async_read_some(asio::buffer(drain_buffer_), [self = shared_from_this()](error_code ec, std::size_t n) {
            if (self->closed_)
                return;
            self->drained_ += n;
            if (ec || self->drained_ > drain_limit)
                return self->close();
            self->drain();
        });
    }

    const asio::any_io_executor executor_;  // a copy, so that other threads can post without touching socket_
    tcp::socket socket_;
    asio::steady_timer deadline_;
    boost::beast::flat_buffer buffer_;  // capped at header_limit: a request line and headers must fit
    std::optional<http::request_parser<http::empty_body>> parser_;
    http::response<http::string_body> response_;
    std::array<char, 4096> drain_buffer_{};
    std::size_t drained_ = 0;
    std::shared_ptr<http_server::state> server_;
    unsigned version_ = 11;
    bool keep_alive_ = false;
    bool head_ = false;
    bool closing_ = false;  // drain and close after the response
    bool closed_ = false;
};

// Calls finish_render exactly once: with the body when the handler replies, with nullopt when every copy of the
// reply function is destroyed uncalled.
class reply_guard {
  public:
    reply_guard(std::weak_ptr<http_server::state> server, std::uint64_t generation)
        : server_(std::move(server)), generation_(generation) {}
    ~reply_guard() { deliver(std::nullopt); }
    reply_guard(const reply_guard&) = delete;
    reply_guard& operator=(const reply_guard&) = delete;

    void deliver(rendered body) {
        if (done_.exchange(true))
            return;
        if (auto server = server_.lock())
            server->finish_render(generation_, std::move(body));
    }

  private:
    std::weak_ptr<http_server::state> server_;
    std::uint64_t generation_;
    std::atomic<bool> done_{false};
};

}  // namespace

void http_server::state::accept() {
    acceptor.async_accept(asio::make_strand(executor), [self = shared_from_this()](error_code ec, tcp::socket socket) {
        if (self->stopped.load() || !self->acceptor.is_open())
            return;
        if (ec) {
            // Usually EMFILE or ENFILE: try again shortly rather than spin on an error that persists.
            self->retry_timer.expires_after(accept_retry_delay);
            self->retry_timer.async_wait([self](error_code wait_ec) {
                if (!wait_ec && !self->stopped.load())
                    self->accept();
            });
            return;
        }
        if (self->connections.load(std::memory_order_relaxed) >= self->options.max_connections) {
            error_code ignored;
            socket.close(ignored);
        } else {
            self->connections.fetch_add(1, std::memory_order_relaxed);
            auto c = std::make_shared<connection>(std::move(socket), self);
            {
                std::lock_guard lock(self->mutex);
                self->open.emplace(c.get(), c);
            }
            asio::dispatch(c->executor(), [c] { c->start(); });
        }
        self->accept();
    });
}

void http_server::state::render(const std::shared_ptr<connection>& waiter) {
    std::uint64_t generation = 0;
    {
        std::lock_guard lock(mutex);
        std::erase_if(render_waiters, [](const std::weak_ptr<connection>& w) { return w.expired(); });
        render_waiters.push_back(waiter);
        const auto now = steady_clock::now();
        if (rendering && now - render_started < options.request_timeout)
            return;  // joins the render in flight
        rendering = true;
        render_started = now;
        generation = ++render_generation;
    }
    auto guard = std::make_shared<reply_guard>(weak_from_this(), generation);
    if (!handlers.render) {
        guard->deliver(render_text(std::vector<source*>{}));
        return;
    }
    try {
        handlers.render([guard](std::string body) { guard->deliver(std::move(body)); });
    } catch (...) {
        guard->deliver(std::nullopt);
    }
}

void http_server::state::finish_render(std::uint64_t generation, rendered body) {
    std::vector<std::weak_ptr<connection>> waiters;
    {
        std::lock_guard lock(mutex);
        if (generation != render_generation)
            return;  // abandoned as overdue; its waiters were handed to the later render
        rendering = false;
        waiters.swap(render_waiters);
    }
    for (const auto& weak : waiters)
        if (auto c = weak.lock())
            c->deliver(body);
}

http_server::http_server(const asio::any_io_executor& executor, const tcp::endpoint& endpoint, http_handlers handlers,
                         http_server_options options)
    : state_(std::make_shared<state>(executor, std::move(handlers), options)) {
    auto& acceptor = state_->acceptor;
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    state_->local = acceptor.local_endpoint();
}

http_server::~http_server() {
    stop();
}

void http_server::start() {
    asio::post(state_->acceptor.get_executor(), [s = state_] {
        if (!s->stopped.load())
            s->accept();
    });
}

void http_server::stop() {
    if (state_->stopped.exchange(true))
        return;
    asio::post(state_->acceptor.get_executor(), [s = state_] {
        error_code ignored;
        s->acceptor.close(ignored);
        s->retry_timer.cancel();
    });
    std::vector<std::shared_ptr<connection>> open;
    {
        std::lock_guard lock(state_->mutex);
        for (const auto& [key, weak] : state_->open)
            if (auto c = weak.lock())
                open.push_back(std::move(c));
    }
    for (auto& c : open)
        asio::post(c->executor(), [c] { c->close(); });
}

tcp::endpoint http_server::local_endpoint() const {
    return state_->local;
}

std::size_t http_server::connection_count() const noexcept {
    return state_->connections.load(std::memory_order_relaxed);
}

std::size_t http_server::scrapes_waiting() const {
    std::lock_guard lock(state_->mutex);
    return static_cast<std::size_t>(std::count_if(state_->render_waiters.begin(), state_->render_waiters.end(),
                                                  [](const std::weak_ptr<connection>& w) { return !w.expired(); }));
}

}  // namespace sluice::metrics
