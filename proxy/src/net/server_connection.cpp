#include "net/server_connection.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "auth/md5.hpp"
#include "net/pool.hpp"
#include "net/runtime.hpp"
#include "net/worker.hpp"
#include "sluice/protocol/error.hpp"
#include "sluice/protocol/message_types.hpp"
#include "sluice/protocol/reader.hpp"
#include "sluice/protocol/writer.hpp"
#include "util/log.hpp"

namespace sluice::net {

namespace {
constexpr std::size_t max_login_message = 1024 * 1024;

server_error connection_error(std::string message) {
    return {std::string(protocol::sqlstate::connection_failure), std::move(message)};
}

// PgBouncer and libpq never use TLS on Unix sockets.
bool tls_applies(const tls_context* ctx, const std::string& host) {
    return ctx != nullptr && ctx->enabled() && !host.empty() && host.front() != '/' && host.front() != '@';
}

// The SSLRequest exchange (protocol docs, "SSL Session Encryption"): 'S' starts the handshake, 'N' continues in
// plaintext unless the mode requires TLS. Exactly one byte is read before the handshake, so no plaintext from the
// server can be taken for part of the TLS session. Returns an error message, empty on success; `tls` is set when TLS
// is in use.
asio::awaitable<std::string> async_negotiate_tls(stream_socket& socket, const tls_context& ctx, const std::string& host,
                                                 std::unique_ptr<tls_stream>& tls) {
    std::string request;
    protocol::write_ssl_request(request);
    if (const auto ec = co_await async_write_exact(socket, nullptr, request.data(), request.size()))
        co_return "could not send SSLRequest to the server: " + ec.message();
    char answer = 0;
    if (const auto ec = co_await async_read_exact(socket, nullptr, &answer, 1))
        co_return "server closed the connection during SSL negotiation";
    if (answer == 'N') {
        if (ctx.required()) {
            co_return "server does not support TLS, and server_tls_sslmode is " +
                std::string(config::to_string(ctx.mode()));
        }
        co_return std::string();
    }
    if (answer != 'S')
        co_return "unexpected answer to SSLRequest from the server";
    error_code ignored;
    socket.non_blocking(true, ignored);
    tls = std::make_unique<tls_stream>(ctx, socket.native_handle(), host);
    if (const auto ec = co_await async_tls_handshake(socket, *tls)) {
        std::string reason = "TLS handshake with the server failed: " + tls->failure_reason(ec);
        tls.reset();
        co_return reason;
    }
    co_return std::string();
}
}  // namespace

const char* to_string(server_state s) noexcept {
    switch (s) {
        case server_state::connecting:
            return "login";
        case server_state::idle:
            return "idle";
        case server_state::active:
            return "active";
        case server_state::maintenance:
            return "tested";
        case server_state::closed:
            return "closed";
    }
    return "?";
}

const char* to_string(close_reason r) noexcept {
    switch (r) {
        case close_reason::error:
            return "error";
        case close_reason::client_dirty:
            return "client_dirty";
        case close_reason::lifetime:
            return "lifetime";
        case close_reason::idle_timeout:
            return "idle_timeout";
        case close_reason::reload:
            return "reload";
        case close_reason::shutdown:
            return "shutdown";
        case close_reason::login_failed:
            return "login_failed";
        case close_reason::admin:
            return "admin";
        case close_reason::evicted:
            return "evicted";
        case close_reason::check_failed:
            return "check_failed";
    }
    return "?";
}

asio::awaitable<error_code> async_connect_stream(stream_socket& socket, const std::string& host, int port) {
    auto executor = co_await asio::this_coro::executor;
    if (host.empty() || host.front() == '/') {
        const std::string path = (host.empty() ? std::string("/tmp") : host) + "/.s.PGSQL." + std::to_string(port);
        asio::local::stream_protocol::endpoint ep(path);
        stream_socket s(socket.get_executor());
        auto [ec] = co_await s.async_connect(asio::generic::stream_protocol::endpoint(ep), use_nothrow);
        if (!ec)
            socket = std::move(s);
        co_return ec;
    }
    asio::ip::tcp::resolver resolver(executor);
    const std::string service = std::to_string(port);
    auto [rec, results] = co_await resolver.async_resolve(host, service, use_nothrow);
    if (rec)
        co_return rec;
    error_code last = asio::error::host_not_found;
    for (const auto& entry : results) {
        stream_socket s(socket.get_executor());
        auto [ec] = co_await s.async_connect(asio::generic::stream_protocol::endpoint(entry.endpoint()), use_nothrow);
        if (!ec) {
            error_code ignored;
            s.set_option(asio::ip::tcp::no_delay(true), ignored);
            socket = std::move(s);
            co_return error_code{};
        }
        last = ec;
    }
    co_return last;
}

asio::awaitable<bool> async_send_cancel(asio::io_context& ctx, std::string host, int port, std::uint32_t pid,
                                        std::uint32_t key, std::shared_ptr<const tls_context> tls,
                                        std::chrono::microseconds timeout) {
    // cancel_wait_timeout: on expiry the socket is closed, which fails the pending operation. Shared with the timer's
    // handler, which may run after this frame is gone.
    struct cancel_state {
        explicit cancel_state(asio::io_context& c) : socket(c) {}
        stream_socket socket;
        bool done = false;
        bool timed_out = false;
    };
    auto st = std::make_shared<cancel_state>(ctx);
    asio::steady_timer timer(ctx);
    if (timeout.count() > 0) {
        timer.expires_after(timeout);
        timer.async_wait([st](const error_code& ec) {
            if (ec || st->done)
                return;
            st->timed_out = true;
            error_code ignored;
            st->socket.close(ignored);
        });
    }
    auto& socket = st->socket;
    bool sent = false;
    const auto finish = [&]() {
        st->done = true;
        timer.cancel();
        if (st->timed_out) {
            SLUICE_LOG(warning, "cancel request to " << host << ":" << port << " abandoned: cancel_wait_timeout expired"
                                                     << (sent ? " waiting for the server to take it" : ""));
        }
        return st->timed_out && sent;
    };
    auto ec = co_await async_connect_stream(socket, host, port);
    // A close during name resolution is undone by the connect (it opens the socket): check the deadline too.
    if (ec || st->timed_out) {
        if (!st->timed_out)
            SLUICE_LOG(warning, "cancel request to " << host << ":" << port << " failed: " << ec.message());
        co_return finish();
    }
    std::unique_ptr<tls_stream> session;
    if (tls_applies(tls.get(), host)) {
        const auto err = co_await async_negotiate_tls(socket, *tls, host, session);
        if (!err.empty() || st->timed_out) {
            if (!st->timed_out)
                SLUICE_LOG(warning, "cancel request to " << host << ":" << port << " failed: " << err);
            co_return finish();
        }
    }
    std::string out;
    protocol::write_cancel_request(out, pid, key);
    sent = true;  // from here PostgreSQL may have the request, whatever the write reports
    ec = co_await async_write_exact(socket, session.get(), out.data(), out.size());
    // PostgreSQL closes the connection when done; waiting for that orders the cancel before our next use.
    if (!ec) {
        char byte;
        const auto rec = co_await async_read_exact(socket, session.get(), &byte, 1);
        (void)rec;
    }
    if (session && socket.is_open())
        session->shutdown();
    co_return finish();
}

server_connection::server_connection(std::shared_ptr<pool> owner, pool_shard& shard, std::uint64_t id)
    : pool_(std::move(owner)), shard_(&shard), id_(id) {
    host_ = pool_->cfg().host;
    port_ = pool_->cfg().port;
}

server_connection::~server_connection() = default;

int server_connection::release_descriptor() {
    error_code ec;
    const int fd = socket_->release(ec);
    socket_.reset();
    return ec ? -1 : fd;
}

void server_connection::adopt_descriptor(asio::io_context& ctx, int fd) {
    socket_.emplace(ctx);
    error_code ec;
    // The protocol object only carries the address family; use the descriptor's own.
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    socket_->assign(asio::generic::stream_protocol(addr.ss_family, addr.ss_family == AF_UNIX ? 0 : IPPROTO_TCP), fd,
                    ec);
    if (!ec)
        socket_->non_blocking(true, ec);
}

void server_connection::close_socket() noexcept {
    if (socket_) {
        if (tls_ && socket_->is_open())
            tls_->shutdown();  // close_notify, best effort
        error_code ignored;
        socket_->close(ignored);
    }
}

asio::awaitable<bool> server_connection::async_write_all(const std::string& bytes) {
    co_return !co_await async_write_exact(*socket_, tls_.get(), bytes.data(), bytes.size());
}

asio::awaitable<bool> server_connection::async_read_message(char& type) {
    char header[protocol::header_size];
    if (co_await async_read_exact(*socket_, tls_.get(), header, sizeof header))
        co_return false;
    const auto h = protocol::read_header({header, sizeof header}, static_cast<std::uint32_t>(max_login_message));
    if (h.status != protocol::header_status::ok)
        co_return false;
    type = h.header.type;
    message_.resize(h.header.body_size());
    co_return !co_await async_read_exact(*socket_, tls_.get(), message_.data(), message_.size());
}

asio::awaitable<server_error> server_connection::async_connect_and_login() {
    auto& ctx = shard_->home().context();
    const auto timeout = pool_->cfg().connect_timeout;
    socket_.emplace(ctx);
    // server_connect_timeout covers connect and login: on expiry the socket is closed and the coroutine's
    // pending operation fails.
    struct deadline_state {
        bool done = false;
        bool timed_out = false;
    };
    auto deadline = std::make_shared<deadline_state>();
    asio::steady_timer timer(ctx);
    if (timeout.count() > 0) {
        timer.expires_after(timeout);
        timer.async_wait([self = shared_from_this(), deadline](const error_code& ec) {
            if (ec || deadline->done)
                return;
            deadline->timed_out = true;
            self->close_socket();
        });
    }
    auto result = co_await async_connect();
    if (result.ok())
        result = co_await async_start_tls();
    if (result.ok())
        result = co_await async_login();
    deadline->done = true;
    timer.cancel();
    if (deadline->timed_out)
        result = connection_error("server_connect_timeout expired connecting to the server");
    message_.clear();
    message_.shrink_to_fit();
    if (result.ok()) {
        error_code ignored;
        socket_->non_blocking(true, ignored);
        connected_at_ = last_used_ = steady_clock::now();
        auto lifetime = pool_->cfg().server_lifetime;
        lifetime_deadline_ = lifetime.count() > 0
                                 ? connected_at_ + std::chrono::duration_cast<steady_clock::duration>(lifetime)
                                 : steady_clock::time_point::max();
    }
    co_return result;
}

asio::awaitable<server_error> server_connection::async_connect() {
    stream_socket s(shard_->home().context());
    if (auto ec = co_await async_connect_stream(s, host_, port_)) {
        co_return connection_error("could not connect to server " + host_ + ":" + std::to_string(port_) + ": " +
                                   ec.message());
    }
    *socket_ = std::move(s);
    co_return server_error{};
}

asio::awaitable<server_error> server_connection::async_start_tls() {
    tls_.reset();
    const auto ctx = shard_->home().rt().server_tls();
    if (!tls_applies(ctx.get(), host_))
        co_return server_error{};
    const auto err = co_await async_negotiate_tls(*socket_, *ctx, host_, tls_);
    if (!err.empty())
        co_return connection_error(err);
    SLUICE_LOG(debug, "S-" << id_ << " " << host_ << ":" << port_ << ": TLS established "
                           << (tls_ ? tls_->description() : std::string("(no: plaintext fallback)")));
    co_return server_error{};
}

asio::awaitable<server_error> server_connection::async_login() {
    const auto& cfg = pool_->cfg();
    std::vector<std::pair<std::string, std::string>> startup{{"user", cfg.server_user},
                                                             {"database", cfg.server_dbname}};
    for (const auto& p : cfg.startup_parameters)
        startup.push_back(p);
    std::string out;
    protocol::write_startup_message(out, startup);
    if (!co_await async_write_all(out))
        co_return connection_error("could not send startup packet to server");

    std::optional<auth::scram_client_fsm> scram;
    for (;;) {
        char type = 0;
        if (!co_await async_read_message(type)) {
            co_return connection_error("server closed the connection during login");
        }
        protocol::message_reader r(message_);
        switch (type) {
            case 'R': {
                const auto code = static_cast<protocol::auth_request>(r.i32());
                out.clear();
                switch (code) {
                    case protocol::auth_request::ok:
                        break;
                    case protocol::auth_request::cleartext_password:
                        if (!cfg.server_password)
                            co_return connection_error("server asked for a password; none is configured");
                        protocol::write_password_message(out, *cfg.server_password);
                        break;
                    case protocol::auth_request::md5_password: {
                        if (!cfg.server_password)
                            co_return connection_error("server asked for an md5 password; none is configured");
                        auth::md5_salt salt{};
                        const auto bytes = r.bytes(4);
                        if (!r.ok())
                            co_return connection_error("malformed md5 request from server");
                        for (int i = 0; i < 4; ++i)
                            salt[i] = static_cast<std::uint8_t>(bytes[i]);
                        protocol::write_password_message(
                            out, auth::md5_response(*cfg.server_password, cfg.server_user, salt));
                        break;
                    }
                    case protocol::auth_request::sasl: {
                        bool offered = false;
                        for (auto m = r.cstring(); r.ok() && !m.empty(); m = r.cstring()) {
                            if (m == auth::scram_sha_256_mechanism)
                                offered = true;
                        }
                        if (!offered)
                            co_return connection_error("server offers no supported SASL mechanism");
                        if (cfg.server_password && !cfg.server_password->starts_with("md5") &&
                            !cfg.server_password->starts_with("SCRAM-SHA-256$")) {
                            scram.emplace(*cfg.server_password);
                            if (auto cached = pool_->derived_keys())
                                scram->set_cached_keys(*cached);
                        } else if (auto keys = pool_->client_keys()) {
                            scram.emplace(*keys);
                        } else {
                            co_return connection_error(
                                "server asked for SCRAM; no plaintext password is configured and no client has logged "
                                "in with SCRAM yet");
                        }
                        protocol::write_sasl_initial_response(out, auth::scram_sha_256_mechanism,
                                                              scram->client_first_message());
                        break;
                    }
                    case protocol::auth_request::sasl_continue: {
                        if (!scram)
                            co_return connection_error("unexpected SASL continue from server");
                        const auto data = r.rest();
                        auto res = scram->on_server_first({data.data(), data.size()});
                        if (!res.ok())
                            co_return connection_error(std::string("SCRAM with server failed: ").append(res.reason));
                        if (scram->derived_keys())
                            pool_->remember_derived_keys(*scram->derived_keys());
                        protocol::write_sasl_response(out, res.message);
                        break;
                    }
                    case protocol::auth_request::sasl_final: {
                        if (!scram)
                            co_return connection_error("unexpected SASL final from server");
                        const auto data = r.rest();
                        auto res = scram->on_server_final({data.data(), data.size()});
                        if (!res.ok())
                            co_return connection_error(std::string("SCRAM with server failed: ").append(res.reason));
                        break;
                    }
                    default:
                        co_return connection_error("server requested an unsupported authentication method");
                }
                if (!out.empty() && !co_await async_write_all(out)) {
                    co_return connection_error("server closed the connection during authentication");
                }
                break;
            }
            case 'S': {
                const auto name = r.cstring();
                const auto value = r.cstring();
                if (r.ok()) {
                    parameters_.set(name, value);
                    login_params_.emplace_back(name, value);
                }
                break;
            }
            case 'K':
                backend_pid_ = static_cast<std::uint32_t>(r.i32());
                backend_key_ = static_cast<std::uint32_t>(r.i32());
                break;
            case 'E': {
                const auto f = protocol::parse_error_fields(message_);
                co_return server_error{
                    std::string(f.sqlstate.empty() ? protocol::sqlstate::connection_failure : f.sqlstate),
                    "server login failed: " + std::string(f.message)};
            }
            case 'N':
            case 'v':
                break;
            case 'Z':
                co_return server_error{};
            default:
                co_return connection_error("unexpected message from server during login");
        }
    }
}

asio::awaitable<server_error> server_connection::async_run_query(const std::string& sql) {
    std::string out;
    protocol::write_query(out, sql);
    if (!co_await async_write_all(out))
        co_return connection_error("write to server failed");
    server_error first_error;
    for (;;) {
        char type = 0;
        if (!co_await async_read_message(type))
            co_return connection_error("server closed the connection");
        if (type == 'E' && first_error.ok()) {
            const auto f = protocol::parse_error_fields(message_);
            first_error = server_error{std::string(f.sqlstate), std::string(f.message)};
        } else if (type == 'S') {
            protocol::message_reader r(message_);
            const auto name = r.cstring();
            const auto value = r.cstring();
            if (r.ok())
                parameters_.set(name, value);
        } else if (type == 'Z') {
            if (message_.size() != 1 || message_[0] != 'I') {
                co_return server_error{"25000", "server still in a transaction after maintenance query"};
            }
            message_.clear();
            message_.shrink_to_fit();
            co_return first_error;
        }
    }
}

}  // namespace sluice::net
