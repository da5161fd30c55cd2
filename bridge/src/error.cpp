#include "sluice/bridge/error.hpp"

#include <string>

namespace sluice::bridge {
namespace {

class bridge_category_impl final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "sluice.bridge"; }

    [[nodiscard]] std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::queue_full:
                return "bridge pool queue is full";
            case errc::queue_timeout:
                return "bridge pool queue stayed full past the pool's full_wait";
            case errc::pool_stopped:
                return "bridge pool stopped before the call started";
            case errc::cancelled:
                return "bridge call cancelled before it started";
            case errc::event_loop_thread:
                return "async_to_sync called on a thread running an event loop; co_await the awaitable instead";
            case errc::loop_stopped:
                return "async_to_sync given the executor of a stopped io_context";
            case errc::abandoned:
                return "async_to_sync: the awaitable was destroyed before it completed";
        }
        return "unknown sluice.bridge error";
    }

    [[nodiscard]] std::error_condition default_error_condition(int ev) const noexcept override {
        switch (static_cast<errc>(ev)) {
            case errc::cancelled:
                return std::errc::operation_canceled;
            case errc::queue_full:
            case errc::queue_timeout:
                return std::errc::resource_unavailable_try_again;
            case errc::event_loop_thread:
                return std::errc::resource_deadlock_would_occur;
            default:
                return {ev, *this};
        }
    }
};

}  // namespace

const std::error_category& bridge_category() noexcept {
    static const bridge_category_impl category;
    return category;
}

std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), bridge_category()};
}

bridge_error::bridge_error(errc e) : std::system_error(make_error_code(e)) {}

misuse_error::misuse_error(errc e) : bridge_error(e) {}

}  // namespace sluice::bridge
