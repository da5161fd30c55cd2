#include "session/transaction_tracker.hpp"

#include <string_view>

#include <gtest/gtest.h>

namespace sluice::session {
namespace {

using protocol::transaction_status;

// Feeds each byte of `types` as one client message.
void send(transaction_tracker& tracker, std::string_view types) {
    for (const char type : types) {
        tracker.on_client_message(type);
    }
}

TEST(session_transaction_tracker, starts_idle_with_nothing_outstanding) {
    const transaction_tracker tracker;
    EXPECT_TRUE(tracker.idle());
    EXPECT_FALSE(tracker.awaiting_results());
    EXPECT_FALSE(tracker.unsynced());
    EXPECT_EQ(tracker.pending_ready(), 0U);
    EXPECT_EQ(tracker.status(), transaction_status::idle);
}

TEST(session_transaction_tracker, simple_query_holds_the_server_until_its_ready_for_query) {
    transaction_tracker tracker;
    tracker.on_client_message('Q');
    EXPECT_FALSE(tracker.idle());
    EXPECT_TRUE(tracker.awaiting_results());
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_TRUE(tracker.idle());
}

TEST(session_transaction_tracker, open_transaction_holds_the_server_until_commit) {
    transaction_tracker tracker;
    tracker.on_client_message('Q');  // BEGIN
    tracker.on_ready_for_query(transaction_status::in_transaction);
    EXPECT_FALSE(tracker.awaiting_results());
    EXPECT_FALSE(tracker.idle());
    tracker.on_client_message('Q');  // INSERT
    tracker.on_ready_for_query(transaction_status::in_transaction);
    EXPECT_FALSE(tracker.idle());
    tracker.on_client_message('Q');  // COMMIT
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_TRUE(tracker.idle());
}

TEST(session_transaction_tracker, failed_transaction_holds_the_server_until_rollback) {
    transaction_tracker tracker;
    tracker.on_client_message('Q');
    tracker.on_ready_for_query(transaction_status::in_transaction);
    tracker.on_client_message('Q');  // SELECT 1/0
    tracker.on_ready_for_query(transaction_status::failed);
    EXPECT_FALSE(tracker.idle());
    EXPECT_EQ(tracker.status(), transaction_status::failed);
    tracker.on_client_message('Q');  // ROLLBACK
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_TRUE(tracker.idle());
}

TEST(session_transaction_tracker, pipelined_queries_hold_the_server_until_the_last_ready_for_query) {
    transaction_tracker tracker;
    send(tracker, "QQQ");
    EXPECT_EQ(tracker.pending_ready(), 3U);
    tracker.on_ready_for_query(transaction_status::idle);
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_FALSE(tracker.idle());
    EXPECT_EQ(tracker.pending_ready(), 1U);
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_TRUE(tracker.idle());
}

TEST(session_transaction_tracker, every_extended_query_message_before_sync_holds_the_server) {
    for (const char type : std::string_view("PBDEC")) {
        SCOPED_TRACE(std::string("message ") + type);
        transaction_tracker tracker;
        tracker.on_client_message(type);
        EXPECT_TRUE(tracker.unsynced());
        EXPECT_FALSE(tracker.awaiting_results());
        EXPECT_FALSE(tracker.idle());
    }
}

TEST(session_transaction_tracker, extended_query_is_released_at_the_ready_for_query_of_its_sync) {
    transaction_tracker tracker;
    send(tracker, "PBDE");
    tracker.on_client_message('S');
    EXPECT_FALSE(tracker.unsynced());
    EXPECT_TRUE(tracker.awaiting_results());
    EXPECT_FALSE(tracker.idle());
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_TRUE(tracker.idle());
}

TEST(session_transaction_tracker, flush_neither_syncs_nor_awaits_a_ready_for_query) {
    transaction_tracker tracker;
    send(tracker, "PBEH");
    EXPECT_TRUE(tracker.unsynced());
    EXPECT_EQ(tracker.pending_ready(), 0U);
    EXPECT_FALSE(tracker.idle());

    transaction_tracker only_flush;
    only_flush.on_client_message('H');
    EXPECT_TRUE(only_flush.idle());
}

TEST(session_transaction_tracker, extended_messages_after_a_sync_hold_the_server_past_its_ready_for_query) {
    // libpq pipeline mode: PBES PBE... the first Sync's ReadyForQuery must not release the second batch.
    transaction_tracker tracker;
    send(tracker, "PBES");
    send(tracker, "BE");
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_FALSE(tracker.idle());
    EXPECT_TRUE(tracker.unsynced());
    tracker.on_client_message('S');
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_TRUE(tracker.idle());
}

TEST(session_transaction_tracker, several_syncs_each_await_their_ready_for_query) {
    transaction_tracker tracker;
    send(tracker, "PBESBESBES");
    EXPECT_EQ(tracker.pending_ready(), 3U);
    tracker.on_ready_for_query(transaction_status::idle);
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_FALSE(tracker.idle());
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_TRUE(tracker.idle());
}

TEST(session_transaction_tracker, function_call_awaits_a_ready_for_query) {
    transaction_tracker tracker;
    tracker.on_client_message('F');
    EXPECT_TRUE(tracker.awaiting_results());
    EXPECT_FALSE(tracker.idle());
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_TRUE(tracker.idle());
}

TEST(session_transaction_tracker, copy_messages_do_not_change_what_is_awaited) {
    transaction_tracker tracker;
    tracker.on_client_message('Q');  // COPY t FROM STDIN
    send(tracker, "dddc");
    EXPECT_EQ(tracker.pending_ready(), 1U);
    EXPECT_FALSE(tracker.unsynced());
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_TRUE(tracker.idle());

    tracker.on_client_message('Q');
    tracker.on_client_message('f');  // CopyFail
    EXPECT_EQ(tracker.pending_ready(), 1U);
}

TEST(session_transaction_tracker, injected_query_counts_like_a_client_query) {
    transaction_tracker tracker;
    tracker.on_injected_query();
    tracker.on_client_message('Q');
    EXPECT_EQ(tracker.pending_ready(), 2U);
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_FALSE(tracker.idle());
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_TRUE(tracker.idle());
}

TEST(session_transaction_tracker, unsolicited_ready_for_query_does_not_underflow) {
    transaction_tracker tracker;
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_EQ(tracker.pending_ready(), 0U);
    EXPECT_TRUE(tracker.idle());
    tracker.on_client_message('Q');
    EXPECT_TRUE(tracker.awaiting_results());
}

TEST(session_transaction_tracker, last_ready_for_query_status_wins) {
    transaction_tracker tracker;
    send(tracker, "QQ");
    tracker.on_ready_for_query(transaction_status::in_transaction);
    tracker.on_ready_for_query(transaction_status::idle);
    EXPECT_EQ(tracker.status(), transaction_status::idle);
    EXPECT_TRUE(tracker.idle());
}

TEST(session_transaction_tracker, reset_forgets_everything_outstanding) {
    transaction_tracker tracker;
    send(tracker, "QPB");
    tracker.on_ready_for_query(transaction_status::failed);
    tracker.reset();
    EXPECT_TRUE(tracker.idle());
    EXPECT_EQ(tracker.pending_ready(), 0U);
    EXPECT_FALSE(tracker.unsynced());
    EXPECT_EQ(tracker.status(), transaction_status::idle);
}

TEST(session_transaction_tracker, password_and_terminate_messages_change_nothing) {
    transaction_tracker tracker;
    send(tracker, "pX");
    EXPECT_TRUE(tracker.idle());
    EXPECT_EQ(tracker.pending_ready(), 0U);
}

}  // namespace
}  // namespace sluice::session
