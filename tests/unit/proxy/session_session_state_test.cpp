#include "session/session_state.hpp"

#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace sluice::session {
namespace {

using protocol::transaction_status;

// One Query answered: its SET/RESET tags, then ReadyForQuery `status`.
struct driver {
    std::unique_ptr<session_state> state;
    std::uint64_t readies = 0;

    scan_result query(std::string_view sql, int tags, transaction_status status = transaction_status::idle,
                      bool error = false) {
        const auto found = session_state::scan(sql, readies + 1, state);
        session_state::expect_pins(found.pins, found.unpins, found.may_unpin, readies + 1, state);
        if (state) {
            for (int i = 0; i < tags; ++i)
                EXPECT_TRUE(state->on_set_tag(readies + 1)) << sql;
            if (error)
                state->on_error();
            (void)state->on_ready(readies + 1, status);
        }
        ++readies;
        return found;
    }
    [[nodiscard]] std::string restore() const {
        std::string sql;
        if (state)
            (void)state->append_restore(sql);
        return sql;
    }
};

TEST(session_state, plain_queries_allocate_nothing) {
    driver d;
    for (const char* sql : {"SELECT abalance FROM pgbench_accounts WHERE aid = $1;", "INSERT INTO t VALUES (1)",
                            "BEGIN", "COMMIT", "select 'set x = 1'", "SELECT pg_advisory_xact_lock(1)"}) {
        const auto found = d.query(sql, 0);
        EXPECT_EQ(found.pins, 0) << sql;
        EXPECT_FALSE(found.listen) << sql;
    }
    EXPECT_EQ(d.state, nullptr);
}

TEST(session_state, remembers_sets_and_replays_them) {
    driver d;
    d.query("SET search_path = pg_catalog, \"$user\"", 1);
    d.query("set SESSION statement_timeout TO '5s'; SET work_mem = 4096", 2);
    d.query("SELECT set_config('app.tenant', 'it''s', false)", 0);
    EXPECT_EQ(d.restore(),
              "SET search_path = pg_catalog, \"$user\";SET statement_timeout = '5s';"
              "SET work_mem = 4096;SELECT pg_catalog.set_config(E'app.tenant', E'it''s', false);");
    d.query("RESET work_mem", 1);
    d.query("SET statement_timeout TO DEFAULT", 1);
    EXPECT_EQ(d.restore(),
              "SET search_path = pg_catalog, \"$user\";SELECT pg_catalog.set_config(E'app.tenant', "
              "E'it''s', false);");
    d.query("RESET ALL", 1);
    EXPECT_EQ(d.restore(), "");
}

TEST(session_state, undone_like_postgresql_undoes_them) {
    driver d;
    d.query("BEGIN", 0, transaction_status::in_transaction);
    d.query("SET search_path = a", 1, transaction_status::in_transaction);
    d.state->on_rollback_tag();
    d.query("ROLLBACK", 0);
    d.query("SET search_path = b; SELECT 1/0", 1, transaction_status::idle, true);
    d.query("SET LOCAL search_path = c", 1);
    d.query("SET TimeZone = 'UTC'", 1);  // reported parameters follow ParameterStatus
    EXPECT_EQ(d.restore(), "");
    d.query("BEGIN", 0, transaction_status::in_transaction);
    d.query("SET search_path = d", 1, transaction_status::in_transaction);
    d.query("COMMIT", 0);
    EXPECT_EQ(d.restore(), "SET search_path = d;");
}

TEST(session_state, refuses_to_remember_what_it_cannot_replay_safely) {
    driver d;
    for (const char* sql : {"SET search_path = a -- b", "SET x.y = E'\\''", "SET search_path = $$a$$",
                            "SET x.y = 'a\\'; SELECT 1'", "SET search_path FROM CURRENT"}) {
        const auto found = session_state::scan(sql, d.readies + 1, d.state);
        (void)found;
        if (d.state)
            (void)d.state->on_ready(d.readies + 1, transaction_status::idle);
        ++d.readies;
    }
    EXPECT_EQ(d.restore(), "");
    // An unknown SET's tag is still accounted for, so the SET after it in the same Query lines up.
    d.query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET work_mem = 2048", 2);
    EXPECT_EQ(d.restore(), "SET work_mem = 2048;");
}

TEST(session_state, pins_and_releases) {
    driver d;
    EXPECT_EQ(d.query("SELECT pg_try_advisory_lock(1)", 0).pins, pin_advisory_lock);
    EXPECT_EQ(d.state->pins(), pin_advisory_lock);
    d.query("create temporary table t (x int)", 0);
    d.query("DECLARE c CURSOR WITH HOLD FOR SELECT 1", 0);
    d.query("PREPARE p AS SELECT 1", 0);
    EXPECT_EQ(d.state->pins(), pin_all);
    d.query("SELECT pg_advisory_unlock(1)", 0);
    EXPECT_EQ(d.state->pins(), pin_all) << "a single unlock keeps the pin";
    d.query("SELECT pg_advisory_unlock_all()", 0);
    d.query("CLOSE ALL", 0);
    d.query("DEALLOCATE ALL", 0);
    EXPECT_EQ(d.state->pins(), pin_temp_table);
    d.query("DISCARD ALL", 0);
    EXPECT_EQ(d.state->pins(), 0);
    EXPECT_TRUE(d.query("LISTEN x", 1).listen);
    EXPECT_EQ(d.state->pins(), 0) << "LISTEN does not pin: the relay delivers its notifications";
    EXPECT_EQ(d.query("PREPARE TRANSACTION 'x'", 0).pins, 0);
    EXPECT_EQ(d.query("DECLARE c CURSOR FOR SELECT 1", 0).pins, 0);
}

TEST(session_state, a_partial_release_asks_the_server_whether_any_pin_is_left) {
    driver d;
    d.query("SELECT pg_advisory_lock(1)", 0);
    EXPECT_FALSE(d.state->pin_check_due());
    d.query("SELECT pg_advisory_unlock(1)", 0);
    ASSERT_TRUE(d.state->pin_check_due());
    EXPECT_EQ(d.state->pins(), pin_advisory_lock) << "held until the server says none is left";
    d.state->pin_check_sent(d.readies + 1);
    EXPECT_FALSE(d.state->on_pin_check_tag(d.readies + 1, std::string_view("SELECT 1\0", 9))) << "one lock left";
    EXPECT_EQ(d.state->pins(), pin_advisory_lock);
    ++d.readies;
    d.query("SELECT pg_advisory_unlock(1)", 0);
    ASSERT_TRUE(d.state->pin_check_due());
    d.state->pin_check_sent(d.readies + 1);
    EXPECT_FALSE(d.state->on_pin_check_tag(d.readies + 2, std::string_view("SELECT 0\0", 9))) << "another query's tag";
    EXPECT_TRUE(d.state->on_pin_check_tag(d.readies + 1, std::string_view("SELECT 0\0", 9)));
    EXPECT_EQ(d.state->pins(), 0);
    // Nothing to check for a client that holds no pin, or in the middle of a transaction.
    d.query("DROP TABLE IF EXISTS t", 0);
    EXPECT_FALSE(d.state->pin_check_due());
    d.query("CREATE TEMP TABLE t (x int)", 0);
    d.query("BEGIN", 0, transaction_status::in_transaction);
    d.query("DROP TABLE t", 0, transaction_status::in_transaction);
    EXPECT_FALSE(d.state->pin_check_due());
    d.query("COMMIT", 0);
    EXPECT_TRUE(d.state->pin_check_due());
}

TEST(session_state, channel_names_follow_postgresql) {
    EXPECT_EQ(channel_name("Orders"), "orders");
    EXPECT_EQ(channel_name("\"Orders\""), "Orders");
    EXPECT_EQ(channel_name("\"a \"\"quoted\"\" name\""), "a \"quoted\" name");
    EXPECT_EQ(channel_name("caf\xc3\xa9_$1"), "caf\xc3\xa9_$1");
    EXPECT_EQ(channel_name(std::string(70, 'x')), std::string(63, 'x')) << "NAMEDATALEN - 1";
    // 62 ASCII bytes then a 2-byte character: cut before the character, not inside it.
    EXPECT_EQ(channel_name(std::string(62, 'x') + "\xc3\xa9yz"), std::string(62, 'x'));
    for (std::string_view bad : {"", "\"\"", "\"open", "\"a\"b", "1abc", "a b", "U&\"d\\0061\"", "a;b", "a-b"})
        EXPECT_EQ(channel_name(bad), std::nullopt) << bad;
}

TEST(session_state, listen_and_unlisten_follow_transactions) {
    driver d;
    auto found = d.query("LISTEN Orders", 1);
    EXPECT_TRUE(found.listen);
    EXPECT_EQ(found.listen_channels, std::vector<std::string>{"orders"});
    ASSERT_TRUE(d.state);
    EXPECT_EQ(d.state->channels(), std::vector<std::string>{"orders"});
    EXPECT_TRUE(d.state->take_channels_changed());
    EXPECT_FALSE(d.state->take_channels_changed());
    d.query("LISTEN orders", 1);
    EXPECT_FALSE(d.state->take_channels_changed()) << "listening twice changes nothing";

    // Inside a transaction: effective at COMMIT, gone with ROLLBACK or an error.
    d.query("BEGIN", 0, transaction_status::in_transaction);
    d.query("LISTEN \"Items\"", 1, transaction_status::in_transaction);
    EXPECT_EQ(d.state->channels(), std::vector<std::string>{"orders"});
    d.query("COMMIT", 0);
    EXPECT_EQ(d.state->channels(), (std::vector<std::string>{"Items", "orders"}));
    EXPECT_TRUE(d.state->take_channels_changed());
    d.query("BEGIN", 0, transaction_status::in_transaction);
    d.query("LISTEN lost", 1, transaction_status::in_transaction);
    d.state->on_rollback_tag();
    d.query("ROLLBACK", 0);
    d.query("LISTEN failed; SELECT 1/0", 1, transaction_status::idle, /*error=*/true);
    EXPECT_EQ(d.state->channels(), (std::vector<std::string>{"Items", "orders"}));
    EXPECT_FALSE(d.state->take_channels_changed());

    d.query("UNLISTEN orders", 1);
    EXPECT_EQ(d.state->channels(), std::vector<std::string>{"Items"});
    d.query("unlisten *", 1);
    EXPECT_TRUE(d.state->channels().empty());
    d.query("LISTEN a; LISTEN b", 2);
    d.query("DISCARD ALL", 0);
    EXPECT_TRUE(d.state->channels().empty()) << "DISCARD ALL includes UNLISTEN *";

    EXPECT_EQ(d.query("LISTEN U&\"d\\0061\"", 0).listen_refusal, "Sluice cannot read this channel name");
    EXPECT_TRUE(d.query("UNLISTEN nothing", 1).listen_refusal.empty());
}

}  // namespace
}  // namespace sluice::session
