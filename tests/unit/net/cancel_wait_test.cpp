// net/server_connection: async_send_cancel under cancel_wait_timeout. A peer that takes the CancelRequest and never
// closes (a stalled server) must not hold the cancel, and the server connection waiting for it, forever.
#include <chrono>
#include <optional>

#include <gtest/gtest.h>
#include <boost/asio/read.hpp>

#include "net/server_connection.hpp"

namespace sluice::net {
namespace {

using namespace std::chrono_literals;

// Runs async_send_cancel against a local TCP listener that accepts (and, if `close_after_read`, reads the 16-byte
// request and closes, as PostgreSQL does). Returns what it returned and how long it took.
struct outcome {
    std::optional<bool> unconfirmed;
    steady_clock::duration took{};
};

outcome send_cancel_to_listener(bool close_after_read, std::chrono::microseconds timeout) {
    asio::io_context ctx;
    asio::ip::tcp::acceptor acceptor(ctx, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const int port = acceptor.local_endpoint().port();
    asio::ip::tcp::socket peer(ctx);
    char request[16];
    acceptor.async_accept(peer, [&](const error_code& ec) {
        if (ec || !close_after_read)
            return;
        asio::async_read(peer, asio::buffer(request), [&](const error_code&, std::size_t) {
            error_code ignored;
            peer.close(ignored);
        });
    });
    outcome out;
    const auto started = steady_clock::now();
    asio::co_spawn(ctx, async_send_cancel(ctx, "127.0.0.1", port, 1234, 5678, nullptr, timeout),
                   [&](std::exception_ptr e, bool unconfirmed) {
                       if (!e)
                           out.unconfirmed = unconfirmed;
                       out.took = steady_clock::now() - started;
                       error_code ignored;
                       acceptor.close(ignored);
                       peer.close(ignored);
                   });
    ctx.run_for(10s);
    return out;
}

TEST(cancel_wait, a_stalled_server_is_abandoned_at_cancel_wait_timeout) {
    const auto out = send_cancel_to_listener(/*close_after_read=*/false, 200ms);
    ASSERT_TRUE(out.unconfirmed.has_value());
    // Sent but never taken: PostgreSQL might still run it, so the caller must not reuse the server.
    EXPECT_TRUE(*out.unconfirmed);
    EXPECT_GE(out.took, 150ms);
    EXPECT_LT(out.took, 5s);
}

TEST(cancel_wait, a_cancel_the_server_takes_is_confirmed) {
    const auto out = send_cancel_to_listener(/*close_after_read=*/true, 5s);
    ASSERT_TRUE(out.unconfirmed.has_value());
    EXPECT_FALSE(*out.unconfirmed);
    EXPECT_LT(out.took, 4s);
}

}  // namespace
}  // namespace sluice::net
