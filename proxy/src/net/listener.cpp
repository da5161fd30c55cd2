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
    stop();
}

std::string listener::open() {
    const auto cfg = rt_.config();
    const auto& s = cfg->settings;
    auto& ctx = rt_.worker_at(0).context();
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
            auto a = std::make_unique<acceptor>(ctx);
            error_code ec;
            a->open(asio::generic::stream_protocol(ep.protocol().family(), IPPROTO_TCP), ec);
            if (!ec)
                a->set_option(asio::socket_base::reuse_address(true), ec);
            if (!ec && s.so_reuseport) {
                int one = 1;
                ::setsockopt(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
            }
            if (!ec && ip.is_v6()) {
                int one = 1;  // "*" binds v4 and v6 separately
                ::setsockopt(a->native_handle(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
            }
            if (!ec)
                a->bind(asio::generic::stream_protocol::endpoint(ep), ec);
            if (!ec)
                a->listen(s.listen_backlog, ec);
            if (ec) {
                if (addr == "*" && ip.is_v6())
                    continue;  // no IPv6 on this host
                return "could not listen on " + ip.to_string() + ":" + std::to_string(s.listen_port) + ": " +
                       ec.message();
            }
            SLUICE_LOG(info, "listening on " << ip.to_string() << ":" << s.listen_port);
            acceptors_.push_back(std::move(a));
            is_tcp_.push_back(true);
        }
    }
    if (!s.unix_socket_dir.empty()) {
        unix_path_ = s.unix_socket_dir + "/.s.PGSQL." + std::to_string(s.listen_port);
        ::unlink(unix_path_.c_str());
        auto a = std::make_unique<acceptor>(ctx);
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
        acceptors_.push_back(std::move(a));
        is_tcp_.push_back(false);
    }
    return {};
}

void listener::start() {
    for (std::size_t i = 0; i < acceptors_.size(); ++i)
        accept_next(*acceptors_[i], is_tcp_[i]);
}

void listener::serve(stream_socket socket, bool tcp, worker& target) {
    std::string peer = "unix";
    if (tcp) {
        error_code pec;
        error_code oec;
        socket.set_option(asio::ip::tcp::no_delay(true), oec);
        auto ep = socket.remote_endpoint(pec);
        if (!pec) {
            asio::ip::tcp::endpoint tep;
            std::memcpy(tep.data(), ep.data(), std::min<std::size_t>(ep.size(), sizeof(sockaddr_in6)));
            peer = tep.address().to_string() + ":" + std::to_string(tep.port());
        }
    }
    target.post([&target, socket = std::move(socket), peer = std::move(peer)]() mutable {
        auto client = std::make_shared<client_connection>(target, std::move(socket), std::move(peer));
        client->start();
    });
}

void listener::stop() {
    for (std::size_t i = 0; i < acceptors_.size(); ++i) {
        auto& a = *acceptors_[i];
        error_code ignored;
        if (a.is_open()) {
            // Connections the kernel already completed in this socket's queue would be reset by close(): with
            // so_reuseport another process listens on the port and clients retry nothing, so take them all first
            // (they are served through the drain like any other client).
            a.non_blocking(true, ignored);
            for (int taken = 0; taken < 100000; ++taken) {
                auto& target = rt_.worker_at(next_worker_++ % rt_.worker_count());
                error_code ec;
                stream_socket socket = a.accept(target.context(), ec);
                if (ec)
                    break;
                serve(std::move(socket), is_tcp_[i], target);
            }
        }
        a.close(ignored);
    }
    if (!unix_path_.empty()) {
        ::unlink(unix_path_.c_str());
        unix_path_.clear();
    }
}

void listener::accept_next(acceptor& a, bool tcp) {
    auto& target = rt_.worker_at(next_worker_++ % rt_.worker_count());
    a.async_accept(target.context(), [this, &a, tcp, &target](const error_code& ec, stream_socket socket) {
        if (ec == asio::error::operation_aborted || !a.is_open())
            return;
        if (ec) {
            // Out of descriptors repeats every retry: log it at most once a second.
            const auto now = steady_clock::now();
            if (now - last_accept_error_log_ > std::chrono::seconds(1)) {
                last_accept_error_log_ = now;
                SLUICE_LOG(warning, "accept failed: " << ec.message());
            }
            // Out of descriptors and the like: back off briefly instead of spinning.
            auto timer = std::make_shared<asio::steady_timer>(a.get_executor(), std::chrono::milliseconds(50));
            timer->async_wait([this, &a, tcp, timer](const error_code&) { accept_next(a, tcp); });
            return;
        }
        serve(std::move(socket), tcp, target);
        accept_next(a, tcp);
    });
}

}  // namespace sluice::net
