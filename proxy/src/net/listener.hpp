#pragma once
// Accepts client connections on TCP addresses and a Unix socket, and spreads them over the workers round-robin.

#include <boost/asio/basic_socket_acceptor.hpp>
#include <memory>
#include <string>
#include <vector>

#include "net/asio_fwd.hpp"

namespace sluice::net {

class runtime;
class worker;

class listener {
  public:
    explicit listener(runtime& rt);
    ~listener();

    // Binds every configured address. Returns an error message naming the address, or empty on success.
    [[nodiscard]] std::string open();
    void start();
    // Stops accepting (shutdown): the connections already in the kernel's accept queue are taken and served first,
    // then the sockets close. Connections already accepted are unaffected. On the thread that runs start().
    void stop();

  private:
    using acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;
    void accept_next(acceptor& a, bool tcp);
    // Starts the client connection for an accepted socket on `target`.
    void serve(stream_socket socket, bool tcp, worker& target);

    runtime& rt_;
    std::vector<std::unique_ptr<acceptor>> acceptors_;
    std::vector<bool> is_tcp_;
    std::string unix_path_;
    std::size_t next_worker_ = 0;
    steady_clock::time_point last_accept_error_log_{};
};

}  // namespace sluice::net
