#include "free_port.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <stdexcept>

namespace sluice::test {
namespace {

// Ports in [low, high) sit below Linux's default ip_local_port_range (32768-60999) and above most registered services.
constexpr std::uint16_t low_port = 20000;
constexpr std::uint16_t high_port = 32000;

class socket_fd {
  public:
    socket_fd() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        if (fd_ < 0) {
            throw std::runtime_error("socket() failed");
        }
    }
    socket_fd(const socket_fd&) = delete;
    socket_fd& operator=(const socket_fd&) = delete;
    ~socket_fd() { ::close(fd_); }
    [[nodiscard]] int get() const { return fd_; }

  private:
    int fd_;
};

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

// Binding without SO_REUSEADDR is stricter than what servers do (they set it), so a port that passes is usable.
bool can_bind(std::uint16_t port) {
    socket_fd sock;
    const sockaddr_in addr = loopback(port);
    return ::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

}  // namespace

std::uint16_t free_port() {
    static thread_local std::mt19937 rng{std::random_device{}()};
    std::uniform_int_distribution<int> dist(low_port, high_port - 1);
    for (int attempt = 0; attempt < 1000; ++attempt) {
        const auto port = static_cast<std::uint16_t>(dist(rng));
        if (can_bind(port) && !port_accepts(port)) {
            return port;
        }
    }
    throw std::runtime_error("free_port: no free TCP port on 127.0.0.1");
}

bool port_accepts(std::uint16_t port) {
    socket_fd sock;
    const sockaddr_in addr = loopback(port);
    int rc = 0;
    do {
        rc = ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    } while (rc != 0 && errno == EINTR);
    return rc == 0;
}

}  // namespace sluice::test
