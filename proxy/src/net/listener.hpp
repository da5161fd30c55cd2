#pragma once
// Accepts client connections on TCP addresses and a Unix socket, and spreads them over the workers: per-worker
// sockets with so_reuseport, else round-robin from worker 0.

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
    // Starts accepting, each socket on the thread of the worker that runs it. From any thread.
    void start();
    // Stops accepting (shutdown): the connections already in the kernel's accept queue are taken and served first,
    // then the sockets close. Connections already accepted are unaffected. From any thread: each socket is stopped on
    // its own worker's thread.
    void stop();

  private:
    using acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;
    using endpoint = asio::generic::stream_protocol::endpoint;
    // One listening socket. With so_reuseport each worker has its own socket per TCP address (the kernel spreads
    // connections over them) and a connection is accepted by the worker that serves it: no hand-off to another
    // thread, no wake-up. Otherwise one socket on worker 0 hands connections out round-robin.
    struct entry {
        std::unique_ptr<acceptor> socket;
        bool tcp = false;
        worker* owner = nullptr;  // accepts for itself; nullptr: worker 0 accepts, round-robin over all
        endpoint peer;            // filled by the pending accept: no getpeername per connection
        steady_clock::time_point last_error_log{};
    };
    // Opens, binds and listens one TCP socket on `owner`'s context.
    std::unique_ptr<acceptor> open_tcp(const asio::ip::tcp::endpoint& ep, worker& owner, bool reuseport,
                                       error_code& ec);
    void accept_next(entry& e);
    void stop_one(entry& e);
    // Starts the client connection for an accepted socket on `target`; `peer` as accept() returned it. `on_target`:
    // called on target's thread (start at once), else posted there.
    void serve(stream_socket socket, bool tcp, const endpoint& peer, worker& target, bool on_target);

    runtime& rt_;
    std::vector<std::unique_ptr<entry>> entries_;
    std::string unix_path_;
    std::size_t next_worker_ = 0;  // round-robin, for the shared sockets (worker 0's thread only)
};

}  // namespace sluice::net
