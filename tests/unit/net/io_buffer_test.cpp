// io_buffer: the receive-in-flight rules the relay relies on (client_relay.cpp receives straight into its buffers) and
// the per-thread cache of spare buffers.
#include "net/io_buffer.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

namespace sluice::net {
namespace {

std::string_view text(const io_buffer& b) {
    return {b.data().data(), b.data().size()};
}

void append(io_buffer& b, std::string_view bytes) {
    std::memcpy(b.writable().data(), bytes.data(), bytes.size());
    b.commit(bytes.size());
}

TEST(io_buffer, consume_to_empty_rewinds_when_no_receive_is_in_flight) {
    io_buffer b;
    b.ensure_allocated(io_buffer::cached_capacity);
    append(b, "hello");
    b.consume(5);
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(b.free_space(), io_buffer::cached_capacity);
}

TEST(io_buffer, bytes_received_in_flight_land_after_the_unconsumed_ones_even_if_those_are_consumed_meanwhile) {
    io_buffer b;
    b.ensure_allocated(io_buffer::cached_capacity);
    append(b, "abc");
    const auto space = b.begin_receive();  // the kernel will write here
    EXPECT_TRUE(b.receiving());
    b.consume(3);  // the batch completed while the receive was pending: the offsets must not move
    b.compact();   // nor may compaction move them
    EXPECT_FALSE(b.reserve_total(io_buffer::cached_capacity * 2)) << "growth must wait for the receive";
    std::memcpy(space.data(), "xyz", 3);
    b.end_receive(3);
    EXPECT_FALSE(b.receiving());
    EXPECT_EQ(text(b), "xyz");
    EXPECT_TRUE(b.reserve_total(io_buffer::cached_capacity * 2));
    EXPECT_EQ(text(b), "xyz");
    EXPECT_EQ(b.capacity(), io_buffer::cached_capacity * 2);
}

TEST(io_buffer, an_abandoned_receive_adds_nothing) {
    io_buffer b;
    b.ensure_allocated(io_buffer::cached_capacity);
    append(b, "keep");
    const auto space = b.begin_receive();
    std::memcpy(space.data(), "lost", 4);  // written by a receive whose handler will not commit it
    b.abandon_receive();
    EXPECT_FALSE(b.receiving());
    EXPECT_EQ(text(b), "keep");
}

TEST(io_buffer, a_released_buffer_of_the_usual_size_is_reused_by_the_next_one_on_the_same_thread) {
    const char* first = nullptr;
    {
        io_buffer b;
        b.ensure_allocated(io_buffer::cached_capacity);
        first = b.writable().data();
    }  // destroyed: its storage goes to this thread's spares
    io_buffer again;
    again.ensure_allocated(io_buffer::cached_capacity);
    EXPECT_EQ(again.writable().data(), first);
    EXPECT_TRUE(again.empty());
    EXPECT_EQ(again.capacity(), io_buffer::cached_capacity);
}

TEST(io_buffer, other_sizes_and_other_threads_do_not_share_spares) {
    const char* spare = nullptr;
    {
        io_buffer b;
        b.ensure_allocated(io_buffer::cached_capacity);
        spare = b.writable().data();
    }
    io_buffer small;
    small.ensure_allocated(1024);
    EXPECT_NE(small.writable().data(), spare);
    std::thread([spare] {
        io_buffer elsewhere;
        elsewhere.ensure_allocated(io_buffer::cached_capacity);
        EXPECT_NE(elsewhere.writable().data(), spare);
    }).join();
}

TEST(io_buffer, the_cache_keeps_a_bounded_number_of_spares) {
    // More buffers than the cache holds are released at once: it keeps max_spares and frees the rest (LeakSanitizer
    // would report one dropped without being freed).
    {
        std::vector<io_buffer> many(buffer_cache::max_spares + 8);
        for (auto& b : many)
            b.ensure_allocated(io_buffer::cached_capacity);
    }
    EXPECT_EQ(buffer_cache::spare_count(), buffer_cache::max_spares);
    {
        std::vector<io_buffer> again(buffer_cache::max_spares + 8);
        for (auto& b : again)
            b.ensure_allocated(io_buffer::cached_capacity);
        EXPECT_EQ(buffer_cache::spare_count(), 0u);
    }
    EXPECT_EQ(buffer_cache::spare_count(), buffer_cache::max_spares);
}

}  // namespace
}  // namespace sluice::net
