// LISTEN/NOTIFY in transaction pooling: a client's LISTEN keeps delivering notifications while the client holds no
// server (net/listen_relay.hpp), with PostgreSQL's transaction semantics, exactly once, and nothing of it is left on
// the servers other clients get.
#include <poll.h>

#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

struct notification {
    std::string channel;
    std::string payload;
};

// The next notification libpq has for `conn`, waiting up to `timeout` for one to arrive.
std::optional<notification> next_notification(PGconn* conn, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (PQconsumeInput(conn) == 0)
            return std::nullopt;  // connection lost
        if (PGnotify* n = PQnotifies(conn)) {
            notification out{n->relname, n->extra};
            PQfreemem(n);
            return out;
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return std::nullopt;
        pollfd fd{PQsocket(conn), POLLIN, 0};
        (void)::poll(&fd, 1, static_cast<int>(left.count()));
    }
}

// Backends of the relay: a connection of the test role whose last query was Sluice's LISTEN.
int relay_backends() {
    return std::stoi(postgres().query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'sluice_test' AND query LIKE 'LISTEN \"%'"));
}

pooler_options pool_of(int servers, std::vector<std::pair<std::string, std::string>> settings = {}) {
    pooler_options options;
    options.pool_size = servers;
    options.settings = std::move(settings);
    return options;
}

class proxy_listen : public ::testing::Test {
  protected:
    pooler sluice_{pool_of(2)};
};

TEST_F(proxy_listen, a_listener_holding_no_server_receives_notify_from_another_client_exactly_once) {
    auto listener = connect_or_throw(sluice_.conninfo());
    run(listener.get(), "LISTEN sluice_orders");
    // Two other clients take both servers at once: the listener holds none between its transactions.
    auto b = connect_or_throw(sluice_.conninfo());
    auto c = connect_or_throw(sluice_.conninfo());
    run(b.get(), "BEGIN");
    run(c.get(), "BEGIN");
    run(b.get(), "NOTIFY sluice_orders, 'first'");
    run(c.get(), "SELECT pg_notify('sluice_orders', 'second')");
    run(c.get(), "SELECT pg_notify('sluice_other_channel', 'not for the listener')");
    run(b.get(), "COMMIT");
    run(c.get(), "COMMIT");

    const auto first = next_notification(listener.get(), 5s);
    ASSERT_TRUE(first.has_value()) << "no notification reached the listener";
    EXPECT_EQ(first->channel, "sluice_orders");
    EXPECT_EQ(first->payload, "first");
    const auto second = next_notification(listener.get(), 5s);
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->payload, "second");
    EXPECT_FALSE(next_notification(listener.get(), 500ms).has_value()) << "a duplicate or another channel's";

    // The listener's own NOTIFY comes back to it once, as from a direct connection.
    run(listener.get(), "NOTIFY sluice_orders, 'own'");
    const auto own = next_notification(listener.get(), 5s);
    ASSERT_TRUE(own.has_value());
    EXPECT_EQ(own->payload, "own");
    EXPECT_FALSE(next_notification(listener.get(), 300ms).has_value());
    EXPECT_EQ(scalar(listener.get(), "SELECT 6 * 7"), "42");
}

TEST_F(proxy_listen, listen_and_unlisten_take_effect_at_commit_like_postgresql) {
    auto listener = connect_or_throw(sluice_.conninfo());
    auto notifier = connect_or_throw(sluice_.conninfo());
    run(listener.get(), "BEGIN");
    run(listener.get(), "LISTEN sluice_rolled_back");
    run(listener.get(), "ROLLBACK");
    run(listener.get(), "BEGIN");
    run(listener.get(), "LISTEN \"Sluice Quoted\"");
    run(listener.get(), "COMMIT");
    run(notifier.get(), "NOTIFY sluice_rolled_back, 'lost'");
    run(notifier.get(), "NOTIFY \"Sluice Quoted\", 'kept'");
    const auto got = next_notification(listener.get(), 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->channel, "Sluice Quoted");
    EXPECT_EQ(got->payload, "kept");
    EXPECT_FALSE(next_notification(listener.get(), 500ms).has_value()) << "a rolled-back LISTEN delivered";

    run(listener.get(), "UNLISTEN \"Sluice Quoted\"");
    run(notifier.get(), "NOTIFY \"Sluice Quoted\", 'after unlisten'");
    EXPECT_FALSE(next_notification(listener.get(), 500ms).has_value());
}

TEST_F(proxy_listen, a_listener_inside_a_transaction_gets_its_notifications_after_it) {
    auto listener = connect_or_throw(sluice_.conninfo());
    auto notifier = connect_or_throw(sluice_.conninfo());
    run(listener.get(), "LISTEN sluice_deferred");
    run(listener.get(), "BEGIN");
    EXPECT_EQ(scalar(listener.get(), "SELECT 1"), "1");
    run(notifier.get(), "NOTIFY sluice_deferred, 'later'");
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(scalar(listener.get(), "SELECT 2"), "2");
    EXPECT_FALSE(next_notification(listener.get(), 200ms).has_value()) << "delivered inside the transaction";
    run(listener.get(), "COMMIT");
    const auto got = next_notification(listener.get(), 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->payload, "later");
}

TEST_F(proxy_listen, listen_through_the_extended_protocol_is_relayed) {
    // psycopg 3 and asyncpg send LISTEN as Parse/Bind/Execute/Sync.
    auto listener = connect_or_throw(sluice_.conninfo());
    const result res(PQexecParams(listener.get(), "LISTEN sluice_extended", 0, nullptr, nullptr, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_COMMAND_OK) << PQerrorMessage(listener.get());
    auto notifier = connect_or_throw(sluice_.conninfo());
    run(notifier.get(), "NOTIFY sluice_extended, 'via parse'");
    const auto got = next_notification(listener.get(), 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->payload, "via parse");
}

TEST(proxy_listen_single_server, the_next_client_of_a_listeners_server_is_not_listening) {
    pooler sluice(pool_of(1));
    auto listener = connect_or_throw(sluice.conninfo());
    run(listener.get(), "LISTEN sluice_left_behind");
    auto next = connect_or_throw(sluice.conninfo());
    // One server: `next` gets the very server the listener's LISTEN ran on, once Sluice has reset it.
    EXPECT_EQ(scalar(next.get(), "SELECT count(*) FROM pg_listening_channels()"), "0");
    run(next.get(), "NOTIFY sluice_left_behind, 'to the listener only'");
    EXPECT_FALSE(next_notification(next.get(), 300ms).has_value());
    const auto got = next_notification(listener.get(), 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->payload, "to the listener only");
}

TEST_F(proxy_listen, the_relay_connection_closes_when_the_last_listener_leaves) {
    {
        auto listener = connect_or_throw(sluice_.conninfo());
        run(listener.get(), "LISTEN sluice_short_lived");
        EXPECT_TRUE(wait_until([] { return relay_backends() == 1; }, 5s));
    }
    EXPECT_TRUE(wait_until([] { return relay_backends() == 0; }, 5s)) << "the relay kept its connection";
    EXPECT_TRUE(serves_queries(sluice_));
}

TEST_F(proxy_listen, listeners_are_told_08006_when_the_relay_connection_dies_and_can_listen_again) {
    auto listener = connect_or_throw(sluice_.conninfo());
    // libpq hands an ErrorResponse that arrives while the connection is idle to the notice receiver.
    std::string told;
    PQsetNoticeReceiver(
        listener.get(),
        [](void* out, const PGresult* res) {
            const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            *static_cast<std::string*>(out) += std::string(state ? state : "") + " " + PQresultErrorMessage(res);
        },
        &told);
    run(listener.get(), "LISTEN sluice_fragile");
    ASSERT_TRUE(wait_until([] { return relay_backends() == 1; }, 5s));
    (void)postgres().query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'sluice_test' AND query LIKE "
        "'LISTEN \"%'");
    // The listener is disconnected (the error is on the connection, not on a query).
    EXPECT_TRUE(wait_until(
        [&] {
            PQconsumeInput(listener.get());
            // PQconsumeInput only reads; parsing (which hands the error to the notice receiver) happens here.
            if (PGnotify* n = PQnotifies(listener.get()))
                PQfreemem(n);
            return PQstatus(listener.get()) == CONNECTION_BAD;
        },
        5s));
    EXPECT_TRUE(told.starts_with("08006 ")) << told;
    EXPECT_NE(told.find("LISTEN relay lost its server connection: notifications may have been lost"), std::string::npos)
        << told;

    auto again = connect_or_throw(sluice_.conninfo());
    run(again.get(), "LISTEN sluice_fragile");
    auto notifier = connect_or_throw(sluice_.conninfo());
    run(notifier.get(), "NOTIFY sluice_fragile, 'back'");
    const auto got = next_notification(again.get(), 5s);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->payload, "back");
}

TEST(proxy_listen_disabled, listen_is_refused_with_a_hint_when_listen_relay_is_off) {
    pooler sluice(pool_of(2, {{"listen_relay", "0"}}));
    auto a = connect_or_throw(sluice.conninfo());
    const auto res = exec(a.get(), "LISTEN sluice_channel");
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_FATAL_ERROR);
    EXPECT_EQ(sqlstate(res.get()), "0A000");
    const char* hint = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_HINT);
    ASSERT_NE(hint, nullptr);
    EXPECT_NE(std::string(hint).find("listen_relay = 1"), std::string::npos) << hint;
    EXPECT_EQ(scalar(a.get(), "SELECT 1"), "1");
}

TEST_F(proxy_listen, a_channel_name_sluice_cannot_read_is_refused_not_lost) {
    auto a = connect_or_throw(sluice_.conninfo());
    const auto res = exec(a.get(), "LISTEN U&\"d\\0061t\\+000061\"");
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_FATAL_ERROR);
    EXPECT_EQ(sqlstate(res.get()), "0A000");
    EXPECT_EQ(scalar(a.get(), "SELECT 1"), "1");
}

}  // namespace
}  // namespace sluice::test::proxy
