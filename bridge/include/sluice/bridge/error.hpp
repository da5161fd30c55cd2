#pragma once

// How bridge calls fail when the callable itself did not throw. sync_to_async and async_to_sync rethrow the
// callable's or awaitable's own exception unchanged; everything the bridge decides is a bridge_error carrying an errc.

#include <stdexcept>
#include <system_error>

namespace sluice::bridge {

enum class errc {
    queue_full = 1,     // the pool's queue was full and its policy is overflow_policy::reject
    queue_timeout,      // the queue stayed full for the pool's full_wait (overflow_policy::wait)
    pool_stopped,       // the pool stopped before the call started
    cancelled,          // the call was cancelled before it started, so it never ran
    event_loop_thread,  // async_to_sync called on a thread running an event loop (misuse: it would block that loop)
    loop_stopped,       // async_to_sync given the executor of a stopped io_context: nothing would run the awaitable
    abandoned,          // async_to_sync: the awaitable was destroyed unfinished (its io_context was destroyed)
};

[[nodiscard]] const std::error_category& bridge_category() noexcept;
[[nodiscard]] std::error_code make_error_code(errc e) noexcept;

class bridge_error : public std::system_error {
  public:
    explicit bridge_error(errc e);
};

// A programming error, not a runtime condition: the caller must be changed (e.g. `co_await` instead of blocking).
class misuse_error : public bridge_error {
  public:
    explicit misuse_error(errc e);
};

}  // namespace sluice::bridge

template <>
struct std::is_error_code_enum<sluice::bridge::errc> : std::true_type {};
