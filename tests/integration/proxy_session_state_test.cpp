// Session state in transaction pooling: a client's own SETs follow it from server to server and never reach another
// client; state that cannot move (advisory locks, temporary tables) pins the client to its server; what a client
// leaves behind when it goes is gone before the next client gets the server.
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "proxy_test_support.hpp"

namespace sluice::test::proxy {
namespace {

constexpr int pool_size = 2;
constexpr int other_clients = 2;  // with A: more clients than servers

pooler_options small_pool(std::vector<std::pair<std::string, std::string>> settings = {}) {
    pooler_options options;
    options.pool_size = pool_size;
    options.settings = std::move(settings);
    return options;
}

// The SQLSTATE and hint of a statement that must fail.
struct failure {
    std::string sqlstate;
    std::string hint;
};
failure fail(PGconn* conn, const std::string& sql) {
    const auto res = exec(conn, sql);
    EXPECT_EQ(PQresultStatus(res.get()), PGRES_FATAL_ERROR) << sql;
    const char* state = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE);
    const char* hint = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_HINT);
    return {state ? state : "", hint ? hint : ""};
}

class proxy_session_state : public ::testing::Test {
  protected:
    void SetUp() override {
        auto direct = connect_or_throw(postgres().conninfo());
        default_search_path_ = scalar(direct.get(), "SHOW search_path");
        for (int i = 0; i < other_clients; ++i)
            others_.push_back(connect_or_throw(sluice_.conninfo()));
    }

    // The other clients hold every server at once (one transaction each) and must see defaults there; returns the
    // backends they used.
    std::set<std::string> others_check_defaults() {
        std::set<std::string> backends;
        for (auto& b : others_)
            run(b.get(), "BEGIN");
        for (auto& b : others_) {
            EXPECT_EQ(scalar(b.get(), "SHOW search_path"), default_search_path_);
            EXPECT_EQ(scalar(b.get(), "SHOW statement_timeout"), "0");
            EXPECT_EQ(scalar(b.get(),
                             "SELECT current_setting('sluice.tenant', true) IS NULL OR "
                             "current_setting('sluice.tenant', true) = ''"),
                      "t");
            backends.insert(scalar(b.get(), "SELECT pg_backend_pid()"));
        }
        for (auto& b : others_)
            run(b.get(), "COMMIT");
        return backends;
    }

    pooler sluice_{small_pool()};
    std::vector<connection> others_;
    std::string default_search_path_;
};

TEST_F(proxy_session_state, a_clients_sets_hold_in_its_later_transactions_and_never_reach_others) {
    auto a = connect_or_throw(sluice_.conninfo());
    run(a.get(), "SET search_path = pg_catalog, public");
    run(a.get(), "SET statement_timeout = 1234");
    run(a.get(), "SELECT set_config('sluice.tenant', 'acme', false)");
    std::set<std::string> a_backends;
    std::set<std::string> other_backends;
    for (int round = 0; round < 6; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        const auto seen = others_check_defaults();
        other_backends.insert(seen.begin(), seen.end());
        run(a.get(), "BEGIN");
        EXPECT_EQ(scalar(a.get(), "SHOW search_path"), "pg_catalog, public");
        EXPECT_EQ(scalar(a.get(), "SELECT current_setting('statement_timeout')"), "1234ms");
        EXPECT_EQ(scalar(a.get(), "SELECT current_setting('sluice.tenant')"), "acme");
        a_backends.insert(scalar(a.get(), "SELECT pg_backend_pid()"));
        run(a.get(), "COMMIT");
        // Outside a transaction block too (each statement its own transaction).
        EXPECT_EQ(scalar(a.get(), "SHOW statement_timeout"), "1234ms");
    }
    EXPECT_EQ(other_backends.size(), static_cast<std::size_t>(pool_size));
    for (const auto& backend : a_backends)
        EXPECT_EQ(other_backends.count(backend), 1U) << "A's backend " << backend << " was never used by another";
}

TEST_F(proxy_session_state, reset_and_reset_all_by_the_client_stick) {
    auto a = connect_or_throw(sluice_.conninfo());
    run(a.get(), "SET search_path = pg_catalog");
    run(a.get(), "SET statement_timeout = '2s'");
    run(a.get(), "RESET search_path");
    for (int i = 0; i < 3; ++i) {
        (void)others_check_defaults();
        EXPECT_EQ(scalar(a.get(), "SHOW search_path"), default_search_path_);
        EXPECT_EQ(scalar(a.get(), "SHOW statement_timeout"), "2s");
    }
    run(a.get(), "SET statement_timeout TO DEFAULT");
    (void)others_check_defaults();
    EXPECT_EQ(scalar(a.get(), "SHOW statement_timeout"), "0");
    run(a.get(), "SET statement_timeout = 777; SET search_path = public");
    (void)others_check_defaults();
    EXPECT_EQ(scalar(a.get(), "SELECT current_setting('statement_timeout') || ' ' || current_setting('search_path')"),
              "777ms public");
    run(a.get(), "RESET ALL");
    for (int i = 0; i < 3; ++i) {
        (void)others_check_defaults();
        EXPECT_EQ(scalar(a.get(), "SHOW search_path"), default_search_path_);
        EXPECT_EQ(scalar(a.get(), "SHOW statement_timeout"), "0");
    }
}

TEST_F(proxy_session_state, set_follows_postgresql_transaction_semantics) {
    auto a = connect_or_throw(sluice_.conninfo());
    // Rolled back: undone.
    run(a.get(), "BEGIN");
    run(a.get(), "SET search_path = pg_catalog");
    run(a.get(), "ROLLBACK");
    // Failed implicit transaction (one Query, two statements): undone.
    EXPECT_EQ(fail(a.get(), "SET statement_timeout = 4321; SELECT 1/0").sqlstate, "22012");
    // SET LOCAL: ends with its transaction.
    run(a.get(), "BEGIN");
    run(a.get(), "SET LOCAL statement_timeout = 5555");
    run(a.get(), "COMMIT");
    for (int i = 0; i < 3; ++i) {
        (void)others_check_defaults();
        EXPECT_EQ(scalar(a.get(), "SHOW search_path"), default_search_path_);
        EXPECT_EQ(scalar(a.get(), "SHOW statement_timeout"), "0");
    }
    // SET SESSION inside a transaction that commits: kept.
    run(a.get(), "BEGIN");
    run(a.get(), "SET SESSION search_path = pg_catalog");
    run(a.get(), "COMMIT");
    for (int i = 0; i < 3; ++i) {
        (void)others_check_defaults();
        EXPECT_EQ(scalar(a.get(), "SHOW search_path"), "pg_catalog");
    }
    // A failed transaction "committed" is rolled back.
    run(a.get(), "BEGIN");
    run(a.get(), "SET search_path = public");
    EXPECT_EQ(fail(a.get(), "SELECT 1/0").sqlstate, "22012");
    run(a.get(), "COMMIT");
    (void)others_check_defaults();
    EXPECT_EQ(scalar(a.get(), "SHOW search_path"), "pg_catalog");
}

TEST_F(proxy_session_state, set_through_the_extended_protocol_sticks) {
    auto a = connect_or_throw(sluice_.conninfo());
    const result res(PQexecParams(a.get(), "SET statement_timeout = 3333", 0, nullptr, nullptr, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_COMMAND_OK);
    for (int i = 0; i < 3; ++i) {
        (void)others_check_defaults();
        EXPECT_EQ(scalar(a.get(), "SHOW statement_timeout"), "3333ms");
    }
}

// Who holds advisory lock `key` (pid), from a direct connection; empty if nobody.
std::string advisory_lock_holder(int key) {
    auto direct = connect_or_throw(postgres().conninfo());
    return scalar(direct.get(),
                  "SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_locks WHERE locktype = "
                  "'advisory' AND objid = " +
                      std::to_string(key) + " AND granted");
}

TEST_F(proxy_session_state, a_session_advisory_lock_pins_the_client_until_unlock_all) {
    auto a = connect_or_throw(sluice_.conninfo());
    run(a.get(), "SELECT pg_advisory_lock(4242)");
    const auto pinned_backend = scalar(a.get(), "SELECT pg_backend_pid()");
    EXPECT_EQ(advisory_lock_holder(4242), pinned_backend);
    for (int round = 0; round < 4; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        // The others share the one server left, one at a time; none gets A's.
        for (auto& b : others_)
            EXPECT_NE(scalar(b.get(), "SELECT pg_backend_pid()"), pinned_backend);
        EXPECT_EQ(scalar(a.get(), "SELECT pg_backend_pid()"), pinned_backend);
    }
    run(a.get(), "SELECT pg_advisory_unlock_all()");
    EXPECT_EQ(advisory_lock_holder(4242), "");
    // Released: both servers can be held by the others at once (a pinned A would leave them one).
    std::set<std::string> backends = others_check_defaults();
    EXPECT_EQ(backends.size(), static_cast<std::size_t>(pool_size));
}

TEST_F(proxy_session_state, releasing_the_last_lock_with_pg_advisory_unlock_ends_the_pin) {
    auto a = connect_or_throw(sluice_.conninfo());
    run(a.get(), "SELECT pg_advisory_lock(31), pg_advisory_lock(32)");
    const auto pinned_to = scalar(a.get(), "SELECT pg_backend_pid()");
    run(a.get(), "SELECT pg_advisory_unlock(31)");
    // One lock left: still pinned, the other clients share the other server.
    EXPECT_EQ(scalar(a.get(), "SELECT pg_backend_pid()"), pinned_to);
    EXPECT_EQ(advisory_lock_holder(32), pinned_to);
    run(a.get(), "SELECT pg_advisory_unlock(32)");
    // No lock left: the server goes back to the pool, and the others can hold both servers at once.
    EXPECT_EQ(others_check_defaults().size(), static_cast<std::size_t>(pool_size));
    EXPECT_EQ(advisory_lock_holder(32), "");
    EXPECT_EQ(scalar(a.get(), "SELECT 1"), "1");
}

TEST_F(proxy_session_state, a_temporary_table_survives_between_the_clients_transactions) {
    auto a = connect_or_throw(sluice_.conninfo());
    run(a.get(), "CREATE TEMP TABLE sluice_scratch (x int)");
    for (int round = 0; round < 4; ++round) {
        for (auto& b : others_)
            EXPECT_EQ(scalar(b.get(),
                             "SELECT count(*) FROM pg_class WHERE relname = 'sluice_scratch' AND "
                             "pg_table_is_visible(oid)"),
                      "0");
        run(a.get(), "INSERT INTO sluice_scratch VALUES (" + std::to_string(round) + ")");
    }
    EXPECT_EQ(scalar(a.get(), "SELECT count(*) FROM sluice_scratch"), "4");
    run(a.get(), "DISCARD TEMP");
    EXPECT_EQ(others_check_defaults().size(), static_cast<std::size_t>(pool_size));
}

TEST_F(proxy_session_state, hold_cursors_and_sql_prepared_statements_pin_until_close_all_and_deallocate_all) {
    auto a = connect_or_throw(sluice_.conninfo());
    run(a.get(), "DECLARE sluice_cursor CURSOR WITH HOLD FOR SELECT generate_series(1, 3)");
    run(a.get(), "PREPARE sluice_prepared AS SELECT 41 + 1");
    const auto pinned_backend = scalar(a.get(), "SELECT pg_backend_pid()");
    for (int round = 1; round <= 3; ++round) {
        // Servers are reused last-in first-out: an unpinned A's server would be the next one the others get.
        for (auto& b : others_)
            EXPECT_NE(scalar(b.get(), "SELECT pg_backend_pid()"), pinned_backend);
        EXPECT_EQ(scalar(a.get(), "FETCH 1 FROM sluice_cursor"), std::to_string(round));
        EXPECT_EQ(scalar(a.get(), "EXECUTE sluice_prepared"), "42");
    }
    run(a.get(), "CLOSE ALL");
    run(a.get(), "DEALLOCATE ALL");
    EXPECT_EQ(others_check_defaults().size(), static_cast<std::size_t>(pool_size));
}

TEST(proxy_session_state_single_server, a_disconnected_clients_lock_temp_table_and_settings_are_gone_for_the_next) {
    pooler_options one_server;
    one_server.pool_size = 1;
    pooler sluice(one_server);
    {
        auto a = connect_or_throw(sluice.conninfo());
        run(a.get(), "SET search_path = pg_catalog");
        run(a.get(), "SELECT pg_advisory_lock(777)");
        run(a.get(), "CREATE TEMP TABLE sluice_left_behind (x int)");
        EXPECT_NE(advisory_lock_holder(777), "");
    }
    // One server: B gets the very server A had, once Sluice has reset it.
    auto b = connect_or_throw(sluice.conninfo());
    EXPECT_EQ(scalar(b.get(), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), "0");
    EXPECT_EQ(scalar(b.get(), "SELECT count(*) FROM pg_class WHERE relname = 'sluice_left_behind'"), "0");
    EXPECT_NE(scalar(b.get(), "SHOW search_path"), "pg_catalog");
    EXPECT_EQ(advisory_lock_holder(777), "");
}

TEST(proxy_session_state_refuse, pinning_state_is_refused_with_0a000_when_configured) {
    pooler sluice(small_pool({{"session_state_pinning", "refuse"}}));
    auto a = connect_or_throw(sluice.conninfo());
    for (const char* sql : {"SELECT pg_advisory_lock(1)", "CREATE TEMP TABLE sluice_refused (x int)"}) {
        const auto f = fail(a.get(), sql);
        EXPECT_EQ(f.sqlstate, "0A000") << sql;
        EXPECT_NE(f.hint.find("pool_mode=session"), std::string::npos) << f.hint;
    }
    EXPECT_EQ(advisory_lock_holder(1), "");
    // Transaction-scoped variants are fine, and the client is not pinned.
    run(a.get(), "SELECT pg_advisory_xact_lock(1)");
    EXPECT_EQ(scalar(a.get(), "SELECT 6 * 7"), "42");
}

}  // namespace
}  // namespace sluice::test::proxy
