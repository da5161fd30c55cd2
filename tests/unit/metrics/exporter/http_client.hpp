#pragma once
// A minimal blocking HTTP/1.1 client for tests, on plain POSIX sockets so that every wait has a receive timeout
// (Asio's synchronous operations ignore SO_RCVTIMEO) and the client shares nothing with the server under test.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::metrics::testing {

struct http_response {
    int status = 0;
    std::map<std::string, std::string> headers;  // names lowercased
    std::string body;
};

class test_client {
  public:
    // Connects to 127.0.0.1:port; every later receive waits at most `timeout`.
    explicit test_client(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        timeval tv{};
        tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
        tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~test_client() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    test_client(const test_client&) = delete;
    test_client& operator=(const test_client&) = delete;

    [[nodiscard]] bool connected() const { return connected_; }

    // Sends raw bytes; false if the peer is gone.
    bool send(std::string_view bytes) {
        while (!bytes.empty()) {
            const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0)
                return false;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    // Reads one response (Content-Length framed); nullopt on timeout, reset or close before a full response.
    [[nodiscard]] std::optional<http_response> read_response() {
        std::size_t header_end = std::string::npos;
        while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos)
            if (!fill())
                return std::nullopt;
        http_response r;
        const std::string head = buffer_.substr(0, header_end);
        buffer_.erase(0, header_end + 4);
        std::size_t line_end = head.find("\r\n");
        const std::string status_line = head.substr(0, line_end);
        const auto space = status_line.find(' ');
        if (space == std::string::npos)
            return std::nullopt;
        r.status = std::atoi(status_line.c_str() + space + 1);
        while (line_end != std::string::npos) {
            const auto start = line_end + 2;
            line_end = head.find("\r\n", start);
            const std::string line =
                head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
            const auto colon = line.find(':');
            if (colon == std::string::npos)
                continue;
            std::string name = line.substr(0, colon);
            for (auto& c : name)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            r.headers[name] = value;
        }
        const auto length_it = r.headers.find("content-length");
        const std::size_t length = length_it == r.headers.end() ? 0 : std::stoul(length_it->second);
        while (buffer_.size() < length)
            if (!fill())
                return std::nullopt;
        r.body = buffer_.substr(0, length);
        buffer_.erase(0, length);
        return r;
    }

    // Sends a GET and reads the response.
    [[nodiscard]] std::optional<http_response> get(std::string_view target, std::string_view extra_headers = {}) {
        std::string request = "GET " + std::string(target) + " HTTP/1.1\r\nHost: localhost\r\n";
        request += extra_headers;
        request += "\r\n";
        if (!send(request))
            return std::nullopt;
        return read_response();
    }

    // True when the server closes the connection (EOF or reset) before the receive timeout; unread response bytes
    // are skipped.
    [[nodiscard]] bool closed_by_peer() {
        for (;;) {
            char chunk[4096];
            const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n == 0)
                return true;
            if (n < 0)
                return errno == ECONNRESET;
        }
    }

  private:
    bool fill() {
        char chunk[4096];
        const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0)
            return false;
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return true;
    }

    int fd_ = -1;
    bool connected_ = false;
    std::string buffer_;
};

}  // namespace sluice::metrics::testing
