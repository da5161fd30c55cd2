// The single translation unit that compiles Boost.Beast's implementation (BOOST_BEAST_SEPARATE_COMPILATION, a PUBLIC
// definition of sluice_metrics_http). Asio's implementation is compiled once in bridge/src/asio_impl.cpp.
#include <boost/beast/src.hpp>
