#include "net/tls.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <array>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sluice::net {

namespace {

// The largest plaintext of one TLS record (RFC 8446 5.1): what one write_some encrypts at most.
constexpr std::size_t max_record = 16 * 1024;

// Every queued OpenSSL error, oldest first, then clears the queue. Error strings name files and reasons, never keys.
std::string drain_openssl_errors() {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        std::array<char, 256> text{};
        ERR_error_string_n(e, text.data(), text.size());
        if (!out.empty())
            out += "; ";
        out += text.data();
    }
    return out.empty() ? std::string("unknown OpenSSL error") : out;
}

// PgBouncer's cipher shortcuts (from libtls), in OpenSSL syntax; anything else is an OpenSSL cipher list.
std::string cipher_list(const std::string& value) {
    if (value.empty() || value == "default" || value == "secure")
        return "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL";
    if (value == "compat" || value == "normal" || value == "fast")
        return "HIGH:!aNULL";
    if (value == "legacy")
        return "HIGH:MEDIUM:!aNULL";
    if (value == "insecure" || value == "all")
        return "ALL:!aNULL:!eNULL";
    return value;
}

bool is_ip_address(const std::string& host) {
    in6_addr a6{};
    in_addr a4{};
    return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

}  // namespace

std::shared_ptr<const tls_context> tls_context::build(role r, const config::settings& s, std::string& error) {
    const bool accept = r == role::accept;
    const auto mode = accept ? s.client_tls_sslmode : s.server_tls_sslmode;
    std::shared_ptr<tls_context> out(new tls_context(r, mode));
    if (mode == config::ssl_mode::disable)
        return out;

    const std::string prefix = accept ? "client_tls" : "server_tls";
    const auto& key_file = accept ? s.client_tls_key_file : s.server_tls_key_file;
    const auto& cert_file = accept ? s.client_tls_cert_file : s.server_tls_cert_file;
    const auto& ca_file = accept ? s.client_tls_ca_file : s.server_tls_ca_file;
    const auto& protocols = accept ? s.client_tls_protocols : s.server_tls_protocols;
    const auto& ciphers = accept ? s.client_tls_ciphers : s.server_tls_ciphers;
    const auto& ciphers13 = accept ? s.client_tls13_ciphers : s.server_tls13_ciphers;
    auto fail = [&](std::string what) -> std::shared_ptr<const tls_context> {
        error = std::move(what);
        return nullptr;
    };

    ERR_clear_error();
    out->ctx_ = SSL_CTX_new(accept ? TLS_server_method() : TLS_client_method());
    SSL_CTX* ctx = out->ctx_;
    if (ctx == nullptr)
        return fail(prefix + ": cannot create a TLS context: " + drain_openssl_errors());

    // Versions: from the lowest to the highest allowed, excluding any gap in between.
    const std::array<bool, 4> on{protocols.tls_1_0, protocols.tls_1_1, protocols.tls_1_2, protocols.tls_1_3};
    const std::array<int, 4> version{TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
    const std::array<std::uint64_t, 4> no_version{SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1, SSL_OP_NO_TLSv1_2,
                                                  SSL_OP_NO_TLSv1_3};
    int lowest = -1;
    int highest = -1;
    for (int i = 0; i < 4; ++i) {
        if (on[i]) {
            if (lowest < 0)
                lowest = i;
            highest = i;
        }
    }
    if (lowest < 0)
        return fail(prefix + "_protocols: no TLS version allowed");
    SSL_CTX_set_min_proto_version(ctx, version[lowest]);
    SSL_CTX_set_max_proto_version(ctx, version[highest]);
    std::uint64_t options = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF;
    for (int i = lowest; i <= highest; ++i) {
        if (!on[i])
            options |= no_version[i];
    }
    if (accept)
        options |= SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET;
    SSL_CTX_set_options(ctx, options);
    // Partial writes and a moving buffer: write_some encrypts from a staging buffer rebuilt on every retry.
    // Released buffers: an idle connection keeps no TLS record buffers. Read-ahead: one read(2) for many records.
    SSL_CTX_set_mode(ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (accept) {
        SSL_CTX_set_num_tickets(ctx, 0);
        static constexpr unsigned char session_context[] = "sluice";
        SSL_CTX_set_session_id_context(ctx, session_context, sizeof session_context - 1);
    }

    const std::string list = cipher_list(ciphers);
    if (SSL_CTX_set_cipher_list(ctx, list.c_str()) != 1)
        return fail(prefix + "_ciphers: no usable cipher in \"" + ciphers + "\": " + drain_openssl_errors());
    if (!ciphers13.empty() && ciphers13 != "default" && SSL_CTX_set_ciphersuites(ctx, ciphers13.c_str()) != 1) {
        return fail(prefix.substr(0, prefix.size() - 4) + "_tls13_ciphers: no usable suite in \"" + ciphers13 +
                    "\": " + drain_openssl_errors());
    }

    if (cert_file.has_value() != key_file.has_value())
        return fail(prefix + "_cert_file and " + prefix + "_key_file must be set together");
    if (cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file->c_str()) != 1)
            return fail(prefix + "_cert_file " + *cert_file + ": " + drain_openssl_errors());
        if (SSL_CTX_use_PrivateKey_file(ctx, key_file->c_str(), SSL_FILETYPE_PEM) != 1)
            return fail(prefix + "_key_file " + *key_file + ": " + drain_openssl_errors());
        if (SSL_CTX_check_private_key(ctx) != 1)
            return fail(prefix + "_key_file " + *key_file + " does not match " + prefix + "_cert_file " + *cert_file);
    } else if (accept) {
        return fail("client_tls_sslmode " + std::string(config::to_string(mode)) +
                    " needs client_tls_key_file and client_tls_cert_file");
    }
    if (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file->c_str(), nullptr) != 1)
        return fail(prefix + "_ca_file " + *ca_file + ": " + drain_openssl_errors());

    const bool verify = mode >= config::ssl_mode::verify_ca;
    if (accept) {
        // PgBouncer: verify-ca and verify-full both require a client certificate signed by client_tls_ca_file;
        // lower modes do not ask for one.
        if (verify) {
            if (!ca_file)
                return fail("client_tls_sslmode " + std::string(config::to_string(mode)) + " needs client_tls_ca_file");
            if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca_file->c_str()))
                SSL_CTX_set_client_CA_list(ctx, names);
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE,
                               nullptr);
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
        }
    } else if (verify) {
        if (!ca_file && SSL_CTX_set_default_verify_paths(ctx) != 1)
            return fail("server_tls_ca_file not set and the system CA store is unusable: " + drain_openssl_errors());
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    }
    ERR_clear_error();
    return out;
}

tls_context::~tls_context() {
    if (ctx_ != nullptr)
        SSL_CTX_free(ctx_);
}

tls_stream::tls_stream(const tls_context& ctx, int fd, const std::string& host) {
    ERR_clear_error();
    ssl_ = SSL_new(ctx.native());
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd) != 1) {
        const auto reason = drain_openssl_errors();
        if (ssl_ != nullptr)
            SSL_free(ssl_);
        throw std::runtime_error("cannot start a TLS session: " + reason);
    }
    if (ctx.side() == tls_context::role::accept) {
        SSL_set_accept_state(ssl_);
        return;
    }
    SSL_set_connect_state(ssl_);
    if (host.empty() || host.front() == '/' || host.front() == '@')
        return;
    const bool ip = is_ip_address(host);
    if (!ip)
        SSL_set_tlsext_host_name(ssl_, host.c_str());
    if (ctx.mode() == config::ssl_mode::verify_full) {
        // verify-full: the configured host must match the certificate (a DNS name or IP address SAN).
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (ip) {
            X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
        } else {
            X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
        }
    }
    ERR_clear_error();
}

tls_stream::~tls_stream() {
    if (ssl_ != nullptr)
        SSL_free(ssl_);
}

error_code tls_stream::classify(int ret, bool reading) {
    const int saved_errno = errno;
    switch (SSL_get_error(ssl_, ret)) {
        case SSL_ERROR_WANT_READ:
            want_write_ = false;
            return asio::error::would_block;
        case SSL_ERROR_WANT_WRITE:
            want_write_ = true;
            return asio::error::would_block;
        case SSL_ERROR_ZERO_RETURN:
            return asio::error::eof;
        case SSL_ERROR_SYSCALL: {
            if (const unsigned long e = ERR_get_error()) {
                ERR_clear_error();
                return {static_cast<int>(e), asio::error::get_ssl_category()};
            }
            if (saved_errno != 0 && saved_errno != EAGAIN)
                return {saved_errno, boost::system::system_category()};
            if (reading)
                return asio::error::eof;
            return asio::error::connection_reset;
        }
        case SSL_ERROR_SSL: {
            const unsigned long e = ERR_peek_last_error();
            ERR_clear_error();
            return {static_cast<int>(e), asio::error::get_ssl_category()};
        }
        default:
            ERR_clear_error();
            return asio::error::fault;
    }
}

error_code tls_stream::handshake_step() {
    ERR_clear_error();
    errno = 0;
    const int r = SSL_do_handshake(ssl_);
    if (r == 1)
        return {};
    return classify(r, true);
}

std::size_t tls_stream::read_some(char* data, std::size_t size, error_code& ec) {
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, data, size, &n);
    if (r == 1) {
        ec = {};
        read_drained_ = false;
        read_wants_write_ = false;
        return n;
    }
    ec = classify(r, true);
    read_drained_ = true;
    read_wants_write_ = ec == asio::error::would_block && want_write_;
    return 0;
}

std::size_t tls_stream::write_some(std::span<const asio::const_buffer> buffers, error_code& ec) {
    // One record per call. A single buffer is encrypted in place; several are gathered into this thread's staging
    // buffer (the retry after WANT_WRITE rebuilds it from the same bytes: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
    thread_local std::array<char, max_record> staging;
    ec = {};
    const char* data = nullptr;
    std::size_t size = 0;
    if (buffers.empty())
        return 0;
    if (buffers.size() == 1 || buffers[0].size() >= max_record) {
        data = static_cast<const char*>(buffers[0].data());
        size = std::min(buffers[0].size(), max_record);
    } else {
        for (const auto& b : buffers) {
            const std::size_t take = std::min(b.size(), max_record - size);
            std::memcpy(staging.data() + size, b.data(), take);
            size += take;
            if (size == max_record)
                break;
        }
        data = staging.data();
    }
    if (size == 0)
        return 0;
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    const int r = SSL_write_ex(ssl_, data, size, &n);
    if (r == 1) {
        write_wants_read_ = false;
        return n;
    }
    ec = classify(r, false);
    write_wants_read_ = ec == asio::error::would_block && !want_write_;
    return 0;
}

bool tls_stream::only_protocol_records() {
    char byte = 0;
    error_code ec;
    const std::size_t n = read_some(&byte, 1, ec);
    return n == 0 && ec == asio::error::would_block;
}

void tls_stream::shutdown() noexcept {
    ERR_clear_error();
    if (SSL_is_init_finished(ssl_))
        (void)SSL_shutdown(ssl_);
    ERR_clear_error();
}

std::string tls_stream::description() const {
    std::string out = SSL_get_version(ssl_);
    if (const char* cipher = SSL_get_cipher_name(ssl_))
        out.append("/").append(cipher);
    return out;
}

std::string tls_stream::peer_subject() const {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert == nullptr)
        return {};
    std::array<char, 512> text{};
    X509_NAME_oneline(X509_get_subject_name(cert), text.data(), static_cast<int>(text.size()));
    X509_free(cert);
    return text.data();
}

std::string tls_stream::verified_peer_common_name() const {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert == nullptr)
        return {};
    std::string out;
    if (SSL_get_verify_result(ssl_) == X509_V_OK) {
        std::array<char, 256> text{};
        const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, text.data(),
                                                static_cast<int>(text.size()));
        if (n > 0)
            out.assign(text.data(), static_cast<std::size_t>(n));
    }
    X509_free(cert);
    return out;
}

std::string tls_stream::failure_reason(const error_code& ec) const {
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK)
        return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    return ec.message();
}

asio::awaitable<error_code> async_tls_handshake(stream_socket& socket, tls_stream& tls) {
    for (;;) {
        const auto ec = tls.handshake_step();
        if (ec != asio::error::would_block)
            co_return ec;
        const auto wait = tls.wants_write() ? stream_socket::wait_write : stream_socket::wait_read;
        auto [wec] = co_await socket.async_wait(wait, use_nothrow);
        if (wec)
            co_return wec;
    }
}

asio::awaitable<error_code> async_read_exact(stream_socket& socket, tls_stream* tls, char* data, std::size_t size) {
    if (tls == nullptr) {
        auto [ec, n] = co_await asio::async_read(socket, asio::buffer(data, size), use_nothrow);
        co_return ec;
    }
    std::size_t done = 0;
    while (done < size) {
        error_code ec;
        done += tls->read_some(data + done, size - done, ec);
        if (!ec)
            continue;
        if (ec != asio::error::would_block)
            co_return ec;
        const auto wait = tls->read_wants_write() ? stream_socket::wait_write : stream_socket::wait_read;
        auto [wec] = co_await socket.async_wait(wait, use_nothrow);
        if (wec)
            co_return wec;
    }
    co_return error_code{};
}

asio::awaitable<error_code> async_write_exact(stream_socket& socket, tls_stream* tls, const char* data,
                                              std::size_t size) {
    if (tls == nullptr) {
        auto [ec, n] = co_await asio::async_write(socket, asio::buffer(data, size), use_nothrow);
        co_return ec;
    }
    std::size_t done = 0;
    while (done < size) {
        error_code ec;
        const asio::const_buffer buffer(data + done, size - done);
        done += tls->write_some({&buffer, 1}, ec);
        if (!ec)
            continue;
        if (ec != asio::error::would_block)
            co_return ec;
        const auto wait = tls->write_wants_read() ? stream_socket::wait_read : stream_socket::wait_write;
        auto [wec] = co_await socket.async_wait(wait, use_nothrow);
        if (wec)
            co_return wec;
    }
    co_return error_code{};
}

}  // namespace sluice::net
