#pragma once
// systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram to the socket named by NOTIFY_SOCKET.
// A no-op when not started by systemd with Type=notify.

#include <string_view>

namespace sluice::util {

// Sends `state` (e.g. "READY=1", "RELOADING=1", "STOPPING=1") to $NOTIFY_SOCKET. Returns false if there is no
// socket or the send failed; callers ignore that: readiness reporting never stops the pooler.
bool sd_notify(std::string_view state) noexcept;

}  // namespace sluice::util
