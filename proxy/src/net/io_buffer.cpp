#include "net/io_buffer.hpp"

#include <array>

namespace sluice::net::buffer_cache {
namespace {

struct spares {
    std::array<char*, max_spares> buffers{};
    std::size_t count = 0;
    spares() = default;
    spares(const spares&) = delete;
    spares& operator=(const spares&) = delete;
    ~spares() {
        for (std::size_t i = 0; i < count; ++i)
            delete[] buffers[i];
    }
};

// Per thread: no lock, and a worker reuses buffers that are warm in its own cache.
thread_local spares cache;

}  // namespace

char* take() noexcept {
    return cache.count == 0 ? nullptr : cache.buffers[--cache.count];
}

std::size_t spare_count() noexcept {
    return cache.count;
}

bool give(char* buffer) noexcept {
    if (cache.count == cache.buffers.size())
        return false;
    cache.buffers[cache.count++] = buffer;
    return true;
}

}  // namespace sluice::net::buffer_cache
