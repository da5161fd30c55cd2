#include "net/listener.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "net/client_connection.hpp"
#include "net/runtime.hpp"
#include "net/worker.hpp"
#include "util/log.hpp"

namespace sluice::net {

listener::listener(runtime& rt) : rt_(rt) {}

listener::~listener() {
    // The workers are stopped by now: close on this thread.
    for (auto& e : entries_)
        stop_one(*e);
    if (!unix_path_.empty()) {
        ::unlink(unix_path_.c_str());
        unix_path_.clear();
    }
}

std::unique_ptr<listener::acceptor> listener::open_tcp(const asio::ip::tcp::endpoint& ep, worker& owner, bool reuseport,
                                                       error_code& ec) {
    const auto& s = rt_.config()->settings;
    auto a = std::make_unique<acceptor>(owner.context());
    a->open(asio::generic::stream_protocol(ep.protocol().family(), IPPROTO_TCP), ec);
    if (!ec)
        a->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && reuseport) {
        int one = 1;
        if (::setsockopt(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
            ec = error_code(errno, asio::error::get_system_category());
    }
    if (!ec && ep.address().is_v6()) {
        int one = 1;  // "*" binds v4 and v6 separately
        ::setsockopt(a->native_handle(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (!ec)
        a->bind(asio::generic::stream_protocol::endpoint(ep), ec);
    if (!ec)
        a->listen(s.listen_backlog, ec);
    return a;
}

std::string listener::open() {
    const auto cfg = rt_.config();
    const auto& s = cfg->settings;
    std::vector<std::string> addresses = s.listen_addr;
    for (auto& addr : addresses) {
        std::vector<asio::ip::address> ips;
        if (addr == "*") {
            ips = {asio::ip::address_v4::any(), asio::ip::address_v6::any()};
        } else {
            error_code ec;
            auto ip = asio::ip::make_address(addr == "localhost" ? "127.0.0.1" : addr, ec);
            if (ec)
                return "listen_addr " + addr + ": not an IP address";
            ips = {ip};
        }
        for (const auto& ip : ips) {
            asio::ip::tcp::endpoint ep(ip, static_cast<unsigned short>(s.listen_port));
            // so_reuseport already lets other processes share the port: one socket per worker as well, so that each
            // worker accepts its own connections. Without it the port stays exclusive to one socket (a second
            // instance fails to start, as PgBouncer's so_reuseport = 0 promises).
            const std::size_t sockets = s.so_reuseport ? rt_.worker_count() : 1;
            const std::size_t first = entries_.size();
            error_code ec;
            for (std::size_t i = 0; i < sockets && !ec; ++i) {
                auto& owner = rt_.worker_at(i);
                auto a = open_tcp(ep, owner, s.so_reuseport, ec);
                if (!ec) {
                    auto e = std::make_unique<entry>();
                    e->socket = std::move(a);
                    e->tcp = true;
                    e->owner = s.so_reuseport ? &owner : nullptr;
                    entries_.push_back(std::move(e));
                }
            }
            if (ec) {
                for (std::size_t i = first; i < entries_.size(); ++i) {
                    error_code ignored;
                    entries_[i]->socket->close(ignored);
                }
                entries_.resize(first);
                if (addr == "*" && ip.is_v6())
                    continue;  // no IPv6 on this host
                return "could not listen on " + ip.to_string() + ":" + std::to_string(s.listen_port) + ": " +
                       ec.message();
            }
            SLUICE_LOG(info, "listening on " << ip.to_string() << ":" << s.listen_port);
        }
    }
    if (!s.unix_socket_dir.empty()) {
        unix_path_ = s.unix_socket_dir + "/.s.PGSQL." + std::to_string(s.listen_port);
        ::unlink(unix_path_.c_str());
        auto a = std::make_unique<acceptor>(rt_.worker_at(0).context());
        error_code ec;
        asio::local::stream_protocol::endpoint ep(unix_path_);
        a->open(asio::generic::stream_protocol(AF_UNIX, 0), ec);
        if (!ec)
            a->bind(asio::generic::stream_protocol::endpoint(ep), ec);
        if (!ec)
            a->listen(s.listen_backlog, ec);
        if (ec)
            return "could not listen on unix socket " + unix_path_ + ": " + ec.message();
        ::chmod(unix_path_.c_str(), static_cast<mode_t>(s.unix_socket_mode));
        SLUICE_LOG(info, "listening on unix:" << unix_path_);
        auto e = std::make_unique<entry>();
        e->socket = std::move(a);
        entries_.push_back(std::move(e));
    }
    return {};
}

void listener::start() {
    for (auto& e : entries_) {
        auto& owner = e->owner ? *e->owner : rt_.worker_at(0);
        owner.post([this, ep = e.get()] { accept_next(*ep); });
    }
}

void listener::serve(stream_socket socket, bool tcp, const endpoint& peer_ep, worker& target, bool on_target) {
    std::string peer = "unix";
    if (tcp) {
        error_code oec;
        socket.set_option(asio::ip::tcp::no_delay(true), oec);
        if (peer_ep.size() > 0) {
            asio::ip::tcp::endpoint tep;
            std::memcpy(tep.data(), peer_ep.data(), std::min<std::size_t>(peer_ep.size(), sizeof(sockaddr_in6)));
            peer = tep.address().to_string() + ":" + std::to_string(tep.port());
        }
    }
    if (on_target) {
        // Accepted by the worker that serves it: start at once, no post.
        auto client = std::make_shared<client_connection>(target, std::move(socket), std::move(peer));
        client->start();
        return;
    }
    target.post([&target, socket = std::move(socket), peer = std::move(peer)]() mutable {
        auto client = std::make_shared<client_connection>(target, std::move(socket), std::move(peer));
        client->start();
    });
}

void listener::stop() {
    for (auto& e : entries_) {
        auto& owner = e->owner ? *e->owner : rt_.worker_at(0);
        if (owner.on_this_thread()) {
            stop_one(*e);
        } else {
            owner.post([this, ep = e.get()] { stop_one(*ep); });
        }
    }
    if (!unix_path_.empty()) {
        ::unlink(unix_path_.c_str());
        unix_path_.clear();
    }
}

void listener::stop_one(entry& e) {
    auto& a = *e.socket;
    error_code ignored;
    if (a.is_open()) {
        // Connections the kernel already completed in this socket's queue would be reset by close(): with
        // so_reuseport another process listens on the port and clients retry nothing, so take them all first
        // (they are served through the drain like any other client).
        a.non_blocking(true, ignored);
        for (int taken = 0; taken < 100000; ++taken) {
            auto& target = e.owner ? *e.owner : rt_.worker_at(next_worker_++ % rt_.worker_count());
            error_code ec;
            stream_socket socket = a.accept(target.context(), ec);
            if (ec)
                break;
            endpoint peer;
            if (e.tcp)
                peer = socket.remote_endpoint(ec);
            serve(std::move(socket), e.tcp, ec ? endpoint() : peer, target, false);
        }
    }
    a.close(ignored);
}

void listener::accept_next(entry& e) {
    auto& a = *e.socket;
    auto& target = e.owner ? *e.owner : rt_.worker_at(next_worker_++ % rt_.worker_count());
    e.peer = endpoint();
    a.async_accept(target.context(), e.peer, [this, &e, &target](const error_code& ec, stream_socket socket) {
        auto& socket_acceptor = *e.socket;
        if (ec == asio::error::operation_aborted || !socket_acceptor.is_open())
            return;
        if (ec) {
            // Out of descriptors repeats every retry: log it at most once a second.
            const auto now = steady_clock::now();
            if (now - e.last_error_log > std::chrono::seconds(1)) {
                e.last_error_log = now;
                SLUICE_LOG(warning, "accept failed: " << ec.message());
            }
            // Out of descriptors and the like: back off briefly instead of spinning.
            auto timer =
                std::make_shared<asio::steady_timer>(socket_acceptor.get_executor(), std::chrono::milliseconds(50));
            timer->async_wait([this, &e, timer](const error_code&) { accept_next(e); });
            return;
        }
        // This handler runs on the accepting worker: the owner, else worker 0.
        serve(std::move(socket), e.tcp, e.peer, target, e.owner != nullptr || &target == &rt_.worker_at(0));
        accept_next(e);
    });
}

}  // namespace sluice::net
