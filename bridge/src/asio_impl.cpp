// The single translation unit that compiles Boost.Asio's implementation (BOOST_ASIO_SEPARATE_COMPILATION), including
// its OpenSSL stream support. Compiling Asio once keeps every other file that uses it fast to build.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
