#pragma once
// A receive buffer with a read cursor. Bytes [begin, end) are unconsumed; parsed views point into it and stay valid
// until consume(), compact() or release(). Capacity grows only on request (for a message that must be seen whole) and
// never beyond the caller's limit; an idle connection releases its storage so it holds no buffer at all.

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>

namespace sluice::net {

namespace buffer_cache {
// Spare receive buffers of io_buffer::cached_capacity bytes, per thread (a worker is one thread), at most
// `max_spares` of them. Logins and clients that wake from rest take one instead of calling malloc/free for 16 KiB
// each time: in a connection storm the allocator was ~12 % of the pooler's CPU.
inline constexpr std::size_t max_spares = 32;
// A spare buffer, or null when there is none.
[[nodiscard]] char* take() noexcept;
// Keeps `buffer` as a spare; false (the caller frees it) when the cache is full.
[[nodiscard]] bool give(char* buffer) noexcept;
// Spares held by this thread now.
[[nodiscard]] std::size_t spare_count() noexcept;
}  // namespace buffer_cache

class io_buffer {
  public:
    // The usual capacity of a relay or login buffer; buffers of this size are recycled (buffer_cache).
    static constexpr std::size_t cached_capacity = 16 * 1024;

    io_buffer() = default;
    io_buffer(const io_buffer&) = delete;
    io_buffer& operator=(const io_buffer&) = delete;
    ~io_buffer() { free_storage(); }

    [[nodiscard]] bool allocated() const noexcept { return data_ != nullptr; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::size_t size() const noexcept { return end_ - begin_; }
    [[nodiscard]] bool empty() const noexcept { return end_ == begin_; }
    [[nodiscard]] std::size_t free_space() const noexcept { return capacity_ - end_; }

    [[nodiscard]] std::span<const char> data() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
    [[nodiscard]] const char* base() const noexcept { return data_.get() + begin_; }
    [[nodiscard]] std::span<char> writable() noexcept { return {data_.get() + end_, capacity_ - end_}; }

    void ensure_allocated(std::size_t capacity) {
        if (!data_) {
            char* spare = capacity == cached_capacity ? buffer_cache::take() : nullptr;
            data_.reset(spare ? spare : new char[capacity]);
            capacity_ = capacity;
            begin_ = end_ = 0;
        }
    }
    void commit(std::size_t n) noexcept { end_ += n; }
    void consume(std::size_t n) noexcept {
        begin_ += n;
        if (begin_ == end_ && !receiving_)
            begin_ = end_ = 0;
    }

    // An asynchronous receive into writable() is in flight: the kernel copies straight into the buffer when the
    // socket becomes readable, so until end_receive() or abandon_receive() the free space must not move. consume()
    // then keeps its offsets, compact() does nothing and reserve_total() defers growth (returns false).
    [[nodiscard]] bool receiving() const noexcept { return receiving_; }
    [[nodiscard]] std::span<char> begin_receive() noexcept {
        receiving_ = true;
        return writable();
    }
    void end_receive(std::size_t n) noexcept {
        receiving_ = false;
        commit(n);
        if (begin_ == end_)
            begin_ = end_ = 0;
    }
    // The receive was cancelled before its handler ran: whatever it may have written is not part of the buffer.
    void abandon_receive() noexcept { receiving_ = false; }

    // Moves unconsumed bytes to the front so that reads can append.
    void compact() noexcept {
        if (begin_ == 0 || receiving_)
            return;
        std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    // Grows so that `total` unconsumed bytes fit. Precondition: total <= limit enforced by the caller. False while a
    // receive is in flight (nothing changes; the caller asks again once it completed).
    bool reserve_total(std::size_t total) {
        if (receiving_)
            return false;
        compact();
        if (total <= capacity_)
            return true;
        std::unique_ptr<char[]> bigger(new char[total]);
        std::memcpy(bigger.get(), data_.get(), end_);
        free_storage();
        data_ = std::move(bigger);
        capacity_ = total;
        return true;
    }
    // Frees the storage; only when empty. A receive into it must have been cancelled first.
    void release() noexcept {
        free_storage();
        capacity_ = begin_ = end_ = 0;
        receiving_ = false;
    }

  private:
    void free_storage() noexcept {
        if (data_ && capacity_ == cached_capacity && buffer_cache::give(data_.get())) {
            (void)data_.release();  // now owned by the cache
            return;
        }
        data_.reset();
    }

    std::unique_ptr<char[]> data_;
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    bool receiving_ = false;
};

}  // namespace sluice::net
