// net/tls: contexts built from the client_tls_* / server_tls_* settings (errors name the setting and file), and a
// tls_stream pair on a non-blocking socketpair with tiny socket buffers, driven the way the relay drives it: retries
// after would_block with the same unwritten bytes, gathered writes, reads until read_drained().
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "net/tls.hpp"

namespace sluice::net {
namespace {

namespace fs = std::filesystem;

// A self-signed P-256 certificate and key written as PEM files in a temporary directory.
class self_signed {
  public:
    self_signed() {
        std::string pattern = (fs::temp_directory_path() / "sluice-tls-unit-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw std::runtime_error("mkdtemp failed");
        dir_ = pattern;
        EVP_PKEY* key = EVP_EC_gen("P-256");
        X509* cert = X509_new();
        X509_set_version(cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
        X509_gmtime_adj(X509_getm_notBefore(cert), 0);
        X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
        X509_set_pubkey(cert, key);
        X509_NAME* name = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("unit"), -1, -1, 0);
        X509_set_issuer_name(cert, name);
        X509_sign(cert, key, EVP_sha256());
        FILE* f = std::fopen(cert_path().c_str(), "w");
        PEM_write_X509(f, cert);
        std::fclose(f);
        f = std::fopen(key_path().c_str(), "w");
        PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
        std::fclose(f);
        X509_free(cert);
        EVP_PKEY_free(key);
    }
    ~self_signed() {
        std::error_code ignored;
        fs::remove_all(dir_, ignored);
    }
    [[nodiscard]] std::string cert_path() const { return (dir_ / "unit.crt").string(); }
    [[nodiscard]] std::string key_path() const { return (dir_ / "unit.key").string(); }

  private:
    fs::path dir_;
};

config::settings tls_settings(const self_signed& files) {
    config::settings s;
    s.client_tls_sslmode = config::ssl_mode::require;
    s.client_tls_cert_file = files.cert_path();
    s.client_tls_key_file = files.key_path();
    s.server_tls_sslmode = config::ssl_mode::require;
    return s;
}

TEST(tls_context, disable_builds_no_openssl_context) {
    config::settings s;
    s.server_tls_sslmode = config::ssl_mode::disable;
    std::string error;
    const auto client = tls_context::build(tls_context::role::accept, s, error);
    const auto server = tls_context::build(tls_context::role::connect, s, error);
    ASSERT_TRUE(client && server) << error;
    EXPECT_FALSE(client->enabled());
    EXPECT_FALSE(server->enabled());
    EXPECT_TRUE(error.empty());
}

TEST(tls_context, unreadable_certificate_names_the_setting_and_file) {
    config::settings s;
    s.client_tls_sslmode = config::ssl_mode::require;
    s.client_tls_cert_file = "/nonexistent/sluice.crt";
    s.client_tls_key_file = "/nonexistent/sluice.key";
    std::string error;
    EXPECT_EQ(tls_context::build(tls_context::role::accept, s, error), nullptr);
    EXPECT_NE(error.find("client_tls_cert_file /nonexistent/sluice.crt"), std::string::npos) << error;
}

TEST(tls_context, verify_ca_for_clients_needs_a_ca_file) {
    const self_signed files;
    auto s = tls_settings(files);
    s.client_tls_sslmode = config::ssl_mode::verify_ca;
    std::string error;
    EXPECT_EQ(tls_context::build(tls_context::role::accept, s, error), nullptr);
    EXPECT_NE(error.find("client_tls_ca_file"), std::string::npos) << error;
}

TEST(tls_context, server_certificate_without_key_is_refused) {
    const self_signed files;
    auto s = tls_settings(files);
    s.server_tls_cert_file = files.cert_path();
    std::string error;
    EXPECT_EQ(tls_context::build(tls_context::role::connect, s, error), nullptr);
    EXPECT_NE(error.find("server_tls_cert_file and server_tls_key_file must be set together"), std::string::npos)
        << error;
}

TEST(tls_context, unknown_cipher_list_is_refused) {
    const self_signed files;
    auto s = tls_settings(files);
    s.client_tls_ciphers = "NO-SUCH-CIPHER";
    std::string error;
    EXPECT_EQ(tls_context::build(tls_context::role::accept, s, error), nullptr);
    EXPECT_NE(error.find("client_tls_ciphers"), std::string::npos) << error;
}

// Both ends of a non-blocking socketpair with small kernel buffers, so that writes block often.
struct socket_pair {
    socket_pair() {
        if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0)
            throw std::runtime_error("socketpair failed");
        for (int f : fd) {
            const int size = 4096;
            ::setsockopt(f, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
            ::setsockopt(f, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
            ::fcntl(f, F_SETFL, ::fcntl(f, F_GETFL) | O_NONBLOCK);
        }
    }
    ~socket_pair() {
        ::close(fd[0]);
        ::close(fd[1]);
    }
    int fd[2];
};

TEST(tls_stream, relay_style_transfer_survives_would_block_retries) {
    const self_signed files;
    const auto s = tls_settings(files);
    std::string error;
    const auto accept_ctx = tls_context::build(tls_context::role::accept, s, error);
    const auto connect_ctx = tls_context::build(tls_context::role::connect, s, error);
    ASSERT_TRUE(accept_ctx && connect_ctx) << error;
    socket_pair sockets;
    tls_stream server(*accept_ctx, sockets.fd[0]);
    tls_stream client(*connect_ctx, sockets.fd[1], "127.0.0.1");

    bool server_done = false;
    bool client_done = false;
    for (int i = 0; i < 100 && !(server_done && client_done); ++i) {
        if (!client_done) {
            const auto ec = client.handshake_step();
            ASSERT_TRUE(!ec || ec == asio::error::would_block) << ec.message();
            client_done = !ec;
        }
        if (!server_done) {
            const auto ec = server.handshake_step();
            ASSERT_TRUE(!ec || ec == asio::error::would_block) << ec.message();
            server_done = !ec;
        }
    }
    ASSERT_TRUE(server_done && client_done);
    EXPECT_NE(client.description().find("TLS"), std::string::npos);
    EXPECT_EQ(client.peer_subject(), "/CN=unit");

    // 1 MiB in three gathered segments, like a relay batch; the sender retries from `written` after would_block.
    std::string a(300000, 'a');
    std::string b(17, 'b');
    std::string c(1048576 - a.size() - b.size(), 'c');
    for (std::size_t i = 0; i < c.size(); i += 4093)
        c[i] = static_cast<char>('0' + i % 10);
    const std::string expected = a + b + c;
    std::size_t written = 0;
    std::string received;
    std::array<char, 16384> buffer{};
    int write_blocks = 0;
    int full_buffers = 0;
    for (int spins = 0; received.size() < expected.size() && spins < 100000; ++spins) {
        if (written < expected.size()) {
            std::array<asio::const_buffer, 3> segments;
            std::size_t count = 0;
            std::size_t skip = written;
            for (const std::string* part : {&a, &b, &c}) {
                if (skip >= part->size()) {
                    skip -= part->size();
                    continue;
                }
                segments[count++] = asio::const_buffer(part->data() + skip, part->size() - skip);
                skip = 0;
            }
            error_code ec;
            written += client.write_some({segments.data(), count}, ec);
            ASSERT_TRUE(!ec || ec == asio::error::would_block) << ec.message();
            if (ec) {
                ++write_blocks;
                EXPECT_FALSE(client.write_wants_read());
            }
        }
        // Drain like drain_into: until would_block or the buffer is full.
        std::size_t filled = 0;
        for (;;) {
            error_code ec;
            filled += server.read_some(buffer.data() + filled, buffer.size() - filled, ec);
            if (ec) {
                ASSERT_EQ(ec, asio::error::would_block) << ec.message();
                EXPECT_TRUE(server.read_drained());
                break;
            }
            if (filled == buffer.size()) {
                ++full_buffers;
                EXPECT_FALSE(server.read_drained());
                break;
            }
        }
        received.append(buffer.data(), filled);
    }
    ASSERT_EQ(received.size(), expected.size());
    EXPECT_TRUE(received == expected);
    EXPECT_GT(write_blocks, 0);  // the small buffers did make writes wait

    // close_notify reads as EOF.
    client.shutdown();
    error_code ec;
    std::size_t n = 0;
    for (int i = 0; i < 10 && !ec; ++i)
        n += server.read_some(buffer.data(), buffer.size(), ec);
    EXPECT_EQ(n, 0u);
    EXPECT_EQ(ec, asio::error::eof);
}

}  // namespace
}  // namespace sluice::net
