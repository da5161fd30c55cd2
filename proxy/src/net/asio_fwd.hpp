#pragma once
// The Asio pieces the proxy's net layer uses. Specific headers only: Asio's implementation is compiled once in
// bridge/src/asio_impl.cpp (BOOST_ASIO_SEPARATE_COMPILATION), so including <boost/asio.hpp> is never needed.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

namespace sluice::net {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
// TCP and Unix-domain connections, to clients and to servers, share one socket type so that every code path handles
// both the same way. Bound to io_context's own executor rather than any_io_executor: each socket, and each operation
// pending on it (an idle client's read-wait), then carries one pointer instead of a type-erased executor, 96 bytes
// less per idle client.
using stream_socket = asio::basic_stream_socket<asio::generic::stream_protocol, asio::io_context::executor_type>;
using steady_clock = std::chrono::steady_clock;

}  // namespace sluice::net

#include <boost/asio/as_tuple.hpp>

namespace sluice::net {
// Completion token for coroutines that handle errors as values: `auto [ec, n] = co_await op(..., use_nothrow);`.
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
}  // namespace sluice::net
