#pragma once

#include <cstdint>

namespace sluice::test {

/// A TCP port on 127.0.0.1 that nothing listens on at the time of the call.
///
/// The port is drawn at random below the kernel's ephemeral range (which outgoing connections use), so two test
/// processes rarely pick the same one; the port is released before returning, so a caller must still expect to
/// lose a race and retry with another port when its bind fails. Throws std::runtime_error when no port is found.
[[nodiscard]] std::uint16_t free_port();

/// True when a listening socket on 127.0.0.1:`port` accepts a TCP connection right now.
[[nodiscard]] bool port_accepts(std::uint16_t port);

}  // namespace sluice::test
