#pragma once
// TLS for client connections (client_tls_*) and server connections (server_tls_*), with PgBouncer's meanings.
//
// Design: OpenSSL runs directly on the connection's non-blocking descriptor (SSL_set_fd), not through an Asio stream
// wrapper, so the relay stays readiness-based: it calls tls_stream::read_some/write_some exactly where it calls the
// socket's, and on would_block asks wants_write()/wants_read() which readiness to wait for (a TLS read may need the
// socket writable, a TLS write readable). Plaintext connections carry a null tls_stream*: one branch per call.
//
// Readiness rule (Asio's epoll reactor is edge-triggered and async_wait never speculates): a read-wait may only be
// armed once the socket has been read to EAGAIN. OpenSSL can hold decrypted or read-ahead bytes the kernel no longer
// reports, so read_drained() says whether the last read ended in SSL_ERROR_WANT_READ; when it did not (the caller's
// buffer filled first), the caller must read again instead of waiting.
//
// Writes gather the caller's buffers into one TLS record (at most 16 KiB) per SSL_write, through a per-thread staging
// buffer. SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets the retry after WANT_WRITE pass the same bytes from another
// address: callers retry with the same unwritten data, as the relay's batch guarantees.
//
// Contexts: tls_context is immutable once built and shared; RELOAD builds new ones and connections started later use
// them, while established connections keep theirs (each SSL holds a reference to its SSL_CTX).
//
// Threading: a tls_stream is used by one thread at a time (its connection's worker); it may move to another worker
// with its descriptor. OpenSSL's error queue is per thread and cleared before every call.

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "config/settings.hpp"
#include "net/asio_fwd.hpp"

struct ssl_st;
struct ssl_ctx_st;

namespace sluice::net {

class tls_context {
  public:
    // accept: Sluice is the TLS server (clients connect to it); connect: Sluice is the TLS client of PostgreSQL.
    enum class role { accept, connect };

    // Builds the context for `r` from the client_tls_* (accept) or server_tls_* (connect) settings. With sslmode
    // disable, no OpenSSL context is made (enabled() is false). On failure returns nullptr and sets `error` to a
    // message naming the setting and OpenSSL's reason (never key material).
    [[nodiscard]] static std::shared_ptr<const tls_context> build(role r, const config::settings& s,
                                                                  std::string& error);
    ~tls_context();
    tls_context(const tls_context&) = delete;
    tls_context& operator=(const tls_context&) = delete;

    [[nodiscard]] role side() const noexcept { return role_; }
    [[nodiscard]] config::ssl_mode mode() const noexcept { return mode_; }
    [[nodiscard]] bool enabled() const noexcept { return ctx_ != nullptr; }
    // TLS is mandatory: require, verify-ca, verify-full.
    [[nodiscard]] bool required() const noexcept { return mode_ >= config::ssl_mode::require; }
    [[nodiscard]] ssl_ctx_st* native() const noexcept { return ctx_; }

  private:
    tls_context(role r, config::ssl_mode mode) : role_(r), mode_(mode) {}
    role role_;
    config::ssl_mode mode_;
    ssl_ctx_st* ctx_ = nullptr;
};

// One TLS session on a connected, non-blocking descriptor. The descriptor stays owned by its socket: the caller
// closes it, after shutdown() and never before the tls_stream is done with it.
class tls_stream {
  public:
    // `ctx` must be enabled(). For role::connect, `host` is the server's configured host: sent as SNI when it is a
    // name, and checked against the certificate with verify-full (DNS or IP SAN, as libpq does).
    tls_stream(const tls_context& ctx, int fd, const std::string& host = {});
    ~tls_stream();
    tls_stream(const tls_stream&) = delete;
    tls_stream& operator=(const tls_stream&) = delete;

    // One non-blocking handshake step: {} when done, would_block (then see wants_write()) or the failure.
    [[nodiscard]] error_code handshake_step();
    // Reads decrypted bytes; would_block when none are available now, eof on close_notify or a closed socket.
    [[nodiscard]] std::size_t read_some(char* data, std::size_t size, error_code& ec);
    // Encrypts and writes a prefix of `buffers` (one record at most); would_block when the socket is full.
    [[nodiscard]] std::size_t write_some(std::span<const asio::const_buffer> buffers, error_code& ec);

    // After would_block from the last call: true when the socket must become writable (else readable) to go on.
    [[nodiscard]] bool wants_write() const noexcept { return want_write_; }
    // True when the last read_some ended because the socket had nothing more (see the readiness rule above).
    [[nodiscard]] bool read_drained() const noexcept { return read_drained_; }
    // The last read_some or write_some would block until the socket is writable / readable.
    [[nodiscard]] bool read_wants_write() const noexcept { return read_wants_write_; }
    [[nodiscard]] bool write_wants_read() const noexcept { return write_wants_read_; }

    // For a connection that expects no data (an idle server) and became readable: processes what arrived and returns
    // true when there was no application data (TLS protocol records such as a session ticket, or a stale readiness
    // edge for bytes already read ahead), false on data, EOF or an error (one byte of data may have been consumed:
    // the connection is to be closed then).
    [[nodiscard]] bool only_protocol_records();

    // Sends close_notify without blocking (best effort). Call only while the descriptor is still open.
    void shutdown() noexcept;

    // "TLSv1.3/TLS_AES_256_GCM_SHA384", for logs and SHOW CLIENTS.
    [[nodiscard]] std::string description() const;
    // The peer certificate's subject, empty when it sent none.
    [[nodiscard]] std::string peer_subject() const;
    // The CommonName of a peer certificate that verified against the CA (verify-ca/verify-full), else empty: what
    // auth_type = cert takes as the user name.
    [[nodiscard]] std::string verified_peer_common_name() const;
    // A readable reason for the last handshake failure (certificate verification result when that was the cause).
    [[nodiscard]] std::string failure_reason(const error_code& ec) const;

  private:
    error_code classify(int ret, bool reading);
    ssl_st* ssl_ = nullptr;
    bool want_write_ = false;
    bool read_drained_ = false;
    bool read_wants_write_ = false;
    bool write_wants_read_ = false;
};

// Coroutine helpers for login and maintenance paths (not the relay). With `tls` null they are plain Asio reads and
// writes on `socket`. They wait for readiness without blocking the thread; a closed socket ends them with an error.
[[nodiscard]] asio::awaitable<error_code> async_tls_handshake(stream_socket& socket, tls_stream& tls);
[[nodiscard]] asio::awaitable<error_code> async_read_exact(stream_socket& socket, tls_stream* tls, char* data,
                                                           std::size_t size);
[[nodiscard]] asio::awaitable<error_code> async_write_exact(stream_socket& socket, tls_stream* tls, const char* data,
                                                            std::size_t size);

}  // namespace sluice::net
