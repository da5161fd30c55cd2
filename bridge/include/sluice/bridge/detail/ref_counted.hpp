#pragma once

// An intrusive, thread-safe reference count for the bridge's shared objects (calls, pools, scopes, callers): each is
// held by a coroutine on one side and a thread on the other, and either may let go first.

#include <atomic>
#include <cstdint>

#include <boost/smart_ptr/intrusive_ptr.hpp>

namespace sluice::bridge::detail {

class ref_counted {
  public:
    ref_counted(const ref_counted&) = delete;
    ref_counted& operator=(const ref_counted&) = delete;

    friend void intrusive_ptr_add_ref(const ref_counted* p) noexcept {
        p->refs_.fetch_add(1, std::memory_order_relaxed);
    }
    friend void intrusive_ptr_release(const ref_counted* p) noexcept {
        if (p->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            delete p;
        }
    }

  protected:
    ref_counted() = default;
    virtual ~ref_counted() = default;

  private:
    mutable std::atomic<std::uint32_t> refs_{0};
};

}  // namespace sluice::bridge::detail
