// Named prepared statements in transaction pooling: a client's statements follow it from server to server, names
// never leak between clients, and what the client sees is what PostgreSQL itself would answer, message for message
// (a differential test against a direct connection).
#include <atomic>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "proxy_test_support.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::test::proxy {
namespace {

pooler_options options_with(int pool_size, std::vector<std::pair<std::string, std::string>> settings) {
    pooler_options options;
    options.pool_size = pool_size;
    options.settings = std::move(settings);
    return options;
}

// --- Frontend messages ---

std::string parse_message(std::string_view name, std::string_view query, const std::vector<std::uint32_t>& types = {}) {
    std::string out;
    protocol::message_writer w(out, 'P');
    w.cstring(name).cstring(query).i16(static_cast<std::int16_t>(types.size()));
    for (const auto oid : types) {
        w.i32(static_cast<std::int32_t>(oid));
    }
    w.finish();
    return out;
}

std::string bind_message(std::string_view portal, std::string_view statement, const std::vector<std::string>& values) {
    std::string out;
    protocol::message_writer w(out, 'B');
    w.cstring(portal).cstring(statement).i16(0).i16(static_cast<std::int16_t>(values.size()));
    for (const auto& v : values) {
        w.i32(static_cast<std::int32_t>(v.size())).bytes(v);
    }
    w.i16(0);
    w.finish();
    return out;
}

std::string describe_target(char target, std::string_view name) {
    std::string out;
    protocol::message_writer w(out, 'D');
    w.u8(static_cast<std::uint8_t>(target)).cstring(name);
    w.finish();
    return out;
}

std::string execute_message(std::string_view portal = "") {
    std::string out;
    protocol::message_writer w(out, 'E');
    w.cstring(portal).i32(0);
    w.finish();
    return out;
}

std::string close_statement(std::string_view name) {
    std::string out;
    protocol::message_writer w(out, 'C');
    w.u8('S').cstring(name);
    w.finish();
    return out;
}

std::string sync() {
    std::string out;
    protocol::write_sync(out);
    return out;
}

std::string simple_query(std::string_view sql) {
    std::string out;
    protocol::write_query(out, sql);
    return out;
}

// A backend message as the test compares it: errors by the fields a client acts on, others byte for byte.
std::string describe_message(const backend_message& m) {
    if (m.type == 'E') {
        const auto f = protocol::parse_error_fields(m.body);
        std::ostringstream os;
        os << "E " << f.severity << " " << f.sqlstate << " " << f.message << " | " << f.detail << " | " << f.hint;
        return os.str();
    }
    std::string out(1, m.type);
    out += ' ';
    for (const char c : m.body) {
        if (c >= 32 && c < 127) {
            out += c;
        } else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
            out += hex;
        }
    }
    return out;
}

// A logged-in libpq connection whose socket the test drives with raw protocol messages.
class raw_session {
  public:
    explicit raw_session(const std::string& conninfo)
        : conn_(connect_or_throw(conninfo)), raw_(raw_connection::borrow(conn_.get())) {}

    // Sends `batch` and returns the answers up to and including the `readies`-th ReadyForQuery, without the
    // asynchronous ParameterStatus and NoticeResponse messages.
    std::vector<std::string> round_trip(const std::string& batch, int readies) {
        EXPECT_TRUE(raw_.send(batch));
        std::vector<std::string> answers;
        while (readies > 0) {
            const auto m = raw_.read_message(20s);
            if (!m) {
                answers.emplace_back("<no answer within 20 s>");
                break;
            }
            if (m->type == 'S' || m->type == 'N') {
                continue;
            }
            answers.push_back(describe_message(*m));
            if (m->type == 'Z') {
                --readies;
            }
        }
        return answers;
    }

  private:
    connection conn_;
    raw_connection raw_;
};

// Other clients of the same pool preparing statements under the same names with other texts, so that the client
// under test moves between servers that hold other clients' statements.
class statement_noise {
  public:
    statement_noise(const pooler& sluice, int clients) {
        for (int c = 0; c < clients; ++c) {
            threads_.emplace_back([this, c, conninfo = sluice.conninfo()] {
                try {
                    auto conn = connect_or_throw(conninfo);
                    for (int i = 0; !stopping_; ++i) {
                        const std::string name = (i % 2 == 0) ? "a" : "b";
                        const std::string sql = "SELECT " + std::to_string(c * 1000 + i % 7) + " + $1::int";
                        const result prepared(PQprepare(conn.get(), name.c_str(), sql.c_str(), 0, nullptr));
                        const char* values[] = {"1"};
                        const result executed(PQexecPrepared(conn.get(), name.c_str(), 1, values, nullptr, nullptr, 0));
                        if (PQresultStatus(prepared.get()) != PGRES_COMMAND_OK ||
                            PQresultStatus(executed.get()) != PGRES_TUPLES_OK ||
                            std::stoi(PQgetvalue(executed.get(), 0, 0)) != c * 1000 + i % 7 + 1) {
                            ++failures_;
                        }
                        run(conn.get(), "DEALLOCATE " + name);
                        ++rounds_;
                    }
                } catch (const std::exception&) {
                    ++failures_;
                }
            });
        }
    }
    statement_noise(const statement_noise&) = delete;
    statement_noise& operator=(const statement_noise&) = delete;
    ~statement_noise() { stop(); }
    void stop() {
        stopping_ = true;
        threads_.clear();
    }
    [[nodiscard]] int failures() const { return failures_.load(); }
    [[nodiscard]] int rounds() const { return rounds_.load(); }

  private:
    std::atomic<bool> stopping_{false};
    std::atomic<int> failures_{0};
    std::atomic<int> rounds_{0};
    std::vector<std::jthread> threads_;
};

struct statement_text {
    const char* sql;
    std::vector<std::uint32_t> types;
};

// Texts whose parameters, results and failures (at Parse, Bind or Execute) differ.
const std::vector<statement_text> texts = {
    {"SELECT $1::int + 1", {}},
    {"SELECT $1 || 'x'", {25}},
    {"SELECT g FROM generate_series(1, $1::int) g", {23}},
    {"SELECT 10 / ($1::int - $1::int)", {}},
    {"SELEC 1", {}},
    {"SELECT $1::int AS n, $2::text AS t", {}},
    {"SELECT 'no parameters'", {}},
    {"SELECT * FROM prepared_missing_table", {}},
    {"DEALLOCATE a", {}},
    {"deallocate prepare c", {}},
};

// One random batch: a simple Query, or extended-protocol messages ending in Sync. Returns the batch and how many
// ReadyForQuery messages answer it.
std::pair<std::string, int> random_batch(std::mt19937& rng) {
    auto pick = [&rng](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    // The unnamed statement lives until the next unnamed Parse or Query, and in transaction pooling only within one
    // batch (one server): later batches only use it after parsing it themselves.
    static const std::vector<std::string> names = {"a", "b", "c", "never_prepared"};
    bool unnamed_parsed = false;
    auto name = [&] {
        return (unnamed_parsed || pick(2) == 0) && pick(4) == 0 ? std::string()
                                                                : names[static_cast<std::size_t>(pick(3))];
    };
    auto any_name = [&] {
        return unnamed_parsed && pick(4) == 0 ? std::string() : names[static_cast<std::size_t>(pick(4))];
    };
    if (pick(6) == 0) {
        static const std::vector<std::string> queries = {
            "BEGIN",          "COMMIT",   "ROLLBACK",   "DEALLOCATE a", "deallocate prepare \"b\"",
            "DEALLOCATE ALL", "SELECT 1", "SELECT 1/0", "DISCARD ALL"};
        return {simple_query(queries[static_cast<std::size_t>(pick(static_cast<int>(queries.size())))]), 1};
    }
    std::string batch;
    const int ops = 1 + pick(5);
    for (int i = 0; i < ops; ++i) {
        switch (pick(6)) {
            case 0:
            case 1: {
                const auto& text = texts[static_cast<std::size_t>(pick(static_cast<int>(texts.size())))];
                const auto parsed = name();
                unnamed_parsed = unnamed_parsed || parsed.empty();
                batch += parse_message(parsed, text.sql, text.types);
                break;
            }
            case 2:
            case 3: {
                std::vector<std::string> values;
                const int count = pick(3);
                for (int v = 0; v < count; ++v) {
                    values.push_back(pick(8) == 0 ? "not a number" : std::to_string(pick(5)));
                }
                batch += bind_message("", any_name(), values);
                if (pick(3) == 0) {
                    batch += describe_target('P', "");
                }
                batch += execute_message();
                break;
            }
            case 4:
                batch += describe_target('S', any_name());
                break;
            default:
                batch += close_statement(any_name());
                break;
        }
    }
    batch += sync();
    return {batch, 1};
}

// The messages of a batch in short, for failure reports: type and the strings of each.
std::string summarize(std::string_view batch) {
    std::string out;
    while (batch.size() >= protocol::header_size) {
        const std::size_t total = std::size_t{protocol::load_u32(batch.data() + 1)} + 1;
        out += batch[0];
        out += '(';
        for (const char c : batch.substr(protocol::header_size, total - protocol::header_size)) {
            out += (c >= 32 && c < 127) ? c : '.';
        }
        out += ") ";
        batch.remove_prefix(total);
    }
    return out;
}

class proxy_prepared_statements : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { sluice_ = new pooler(options_with(2, {{"max_client_conn", "200"}})); }
    static void TearDownTestSuite() {
        delete sluice_;
        sluice_ = nullptr;
    }
    static pooler* sluice_;
};
pooler* proxy_prepared_statements::sluice_ = nullptr;

TEST_F(proxy_prepared_statements, random_mix_answers_exactly_as_postgresql_does) {
    statement_noise noise(*sluice_, 3);
    for (unsigned seed = 1; seed <= 12; ++seed) {
        raw_session direct(postgres().conninfo());
        raw_session pooled(sluice_->conninfo());
        std::mt19937 rng(seed);
        bool aborted = false;
        for (int step = 0; step < 150; ++step) {
            // In an aborted transaction block a server that never saw a client's statement cannot prepare it
            // (25P02) where PostgreSQL would still describe it or check its parameters first: leave the block
            // (docs/design/prepared-statements.md, "Limits").
            const auto [batch, readies] = aborted ? std::pair{simple_query("ROLLBACK"), 1} : random_batch(rng);
            const auto expected = direct.round_trip(batch, readies);
            const auto actual = pooled.round_trip(batch, readies);
            ASSERT_EQ(actual, expected) << "seed " << seed << " step " << step << ": " << summarize(batch);
            aborted = !expected.empty() && expected.back() == "Z E";
        }
        // Leave no transaction open on the server.
        (void)direct.round_trip(simple_query("ROLLBACK"), 1);
        (void)pooled.round_trip(simple_query("ROLLBACK"), 1);
    }
    noise.stop();
    EXPECT_GT(noise.rounds(), 0);
    EXPECT_EQ(noise.failures(), 0);
    EXPECT_EQ(sluice_->log().find("protocol violation"), std::string::npos) << sluice_->log();
}

// libpq's prepared statements: PQprepare once, PQexecPrepared in later transactions on whichever server.
TEST_F(proxy_prepared_statements, statements_follow_the_client_across_servers) {
    auto a = connect_or_throw(sluice_->conninfo());
    auto b = connect_or_throw(sluice_->conninfo());
    // The same name, different texts: each client gets its own.
    ASSERT_EQ(PQresultStatus(result(PQprepare(a.get(), "s1", "SELECT 'a:' || $1", 0, nullptr)).get()),
              PGRES_COMMAND_OK);
    ASSERT_EQ(PQresultStatus(result(PQprepare(b.get(), "s1", "SELECT 'b:' || $1", 0, nullptr)).get()),
              PGRES_COMMAND_OK);
    std::vector<std::string> backends;
    for (int i = 0; i < 30; ++i) {
        // Hold a server with the other client now and then, so that each lands on changing servers.
        const std::string value = std::to_string(i);
        const char* values[] = {value.c_str()};
        for (auto* conn : {a.get(), b.get()}) {
            const result res(PQexecPrepared(conn, "s1", 1, values, nullptr, nullptr, 0));
            ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(res.get());
            EXPECT_EQ(std::string(PQgetvalue(res.get(), 0, 0)), std::string(conn == a.get() ? "a:" : "b:") + value);
        }
        if (i % 3 == 0) {
            run(a.get(), "BEGIN");
            backends.push_back(scalar(a.get(), "SELECT pg_backend_pid()"));
            const result res(PQexecPrepared(b.get(), "s1", 1, values, nullptr, nullptr, 0));
            EXPECT_EQ(std::string(PQgetvalue(res.get(), 0, 0)), "b:" + value);
            run(a.get(), "COMMIT");
        }
    }
    // A name the client never prepared is unknown to it, whatever other clients did (26000, as PostgreSQL).
    const result unknown(PQexecPrepared(a.get(), "never", 0, nullptr, nullptr, nullptr, 0));
    EXPECT_EQ(sqlstate(unknown.get()), "26000");
    // A name in use: 42P05, and the client stays connected.
    const result again(PQprepare(a.get(), "s1", "SELECT 1", 0, nullptr));
    EXPECT_EQ(sqlstate(again.get()), "42P05");
    EXPECT_NE(std::string(PQresultErrorMessage(again.get())).find("prepared statement \"s1\" already exists"),
              std::string::npos)
        << PQresultErrorMessage(again.get());
    EXPECT_EQ(scalar(a.get(), "SELECT 42"), "42");
}

TEST_F(proxy_prepared_statements, close_and_discard_all_affect_only_the_client_that_sends_them) {
    auto a = connect_or_throw(sluice_->conninfo());
    auto b = connect_or_throw(sluice_->conninfo());
    for (auto* conn : {a.get(), b.get()}) {
        ASSERT_EQ(PQresultStatus(result(PQprepare(conn, "shared", "SELECT 7 * $1::int", 0, nullptr)).get()),
                  PGRES_COMMAND_OK);
    }
    // a closes its "shared" (protocol Close through its raw socket).
    {
        auto raw = raw_connection::borrow(a.get());
        ASSERT_TRUE(raw.send(close_statement("shared") + sync()));
        const auto close_complete = raw.read_message(10s);
        ASSERT_TRUE(close_complete);
        EXPECT_EQ(close_complete->type, '3');
        std::optional<backend_message> ready;
        do {
            ready = raw.read_message(10s);
        } while (ready && ready->type != 'Z');
        ASSERT_TRUE(ready);
    }
    const char* values[] = {"6"};
    EXPECT_EQ(sqlstate(result(PQexecPrepared(a.get(), "shared", 1, values, nullptr, nullptr, 0)).get()), "26000");
    {
        const result res(PQexecPrepared(b.get(), "shared", 1, values, nullptr, nullptr, 0));
        ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(res.get());
        EXPECT_EQ(std::string(PQgetvalue(res.get(), 0, 0)), "42");
    }
    // DISCARD ALL from b clears b's statements, not a's.
    ASSERT_EQ(PQresultStatus(result(PQprepare(a.get(), "mine", "SELECT 'still here'", 0, nullptr)).get()),
              PGRES_COMMAND_OK);
    run(b.get(), "DISCARD ALL");
    EXPECT_EQ(sqlstate(result(PQexecPrepared(b.get(), "shared", 1, values, nullptr, nullptr, 0)).get()), "26000");
    const result mine(PQexecPrepared(a.get(), "mine", 0, nullptr, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(mine.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(mine.get());
    EXPECT_EQ(std::string(PQgetvalue(mine.get(), 0, 0)), "still here");
}

TEST_F(proxy_prepared_statements, a_result_type_change_is_reported_then_the_statement_is_prepared_again) {
    auto admin = connect_or_throw(postgres().conninfo());
    run(admin.get(),
        "DROP TABLE IF EXISTS prepared_shape; CREATE TABLE prepared_shape (a int); "
        "INSERT INTO prepared_shape VALUES (1)");
    auto conn = connect_or_throw(sluice_->conninfo());
    ASSERT_EQ(PQresultStatus(result(PQprepare(conn.get(), "shape", "SELECT * FROM prepared_shape", 0, nullptr)).get()),
              PGRES_COMMAND_OK);
    EXPECT_EQ(PQnfields(result(PQexecPrepared(conn.get(), "shape", 0, nullptr, nullptr, nullptr, 0)).get()), 1);
    run(admin.get(), "ALTER TABLE prepared_shape ADD COLUMN b int");
    // Whichever servers hold the plan report the change once (PostgreSQL's 0A000); then Sluice prepares it again.
    int columns = 0;
    for (int attempt = 0; attempt < 5 && columns != 2; ++attempt) {
        const result res(PQexecPrepared(conn.get(), "shape", 0, nullptr, nullptr, nullptr, 0));
        if (PQresultStatus(res.get()) == PGRES_TUPLES_OK) {
            columns = PQnfields(res.get());
        } else {
            EXPECT_EQ(sqlstate(res.get()), "0A000") << PQresultErrorMessage(res.get());
        }
    }
    EXPECT_EQ(columns, 2);
    run(admin.get(), "DROP TABLE prepared_shape");
}

TEST(proxy_prepared_statements_limits, the_server_cache_is_bounded_and_evicts_by_close) {
    const pooler sluice(options_with(1, {{"max_prepared_statements", "3"}}));
    auto conn = connect_or_throw(sluice.conninfo());
    for (int i = 0; i < 10; ++i) {
        const std::string sql = "SELECT " + std::to_string(i) + " + $1::int";
        ASSERT_EQ(PQresultStatus(
                      result(PQprepare(conn.get(), ("s" + std::to_string(i)).c_str(), sql.c_str(), 0, nullptr)).get()),
                  PGRES_COMMAND_OK);
    }
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 10; ++i) {
            const char* values[] = {"100"};
            const result res(
                PQexecPrepared(conn.get(), ("s" + std::to_string(i)).c_str(), 1, values, nullptr, nullptr, 0));
            ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(res.get());
            EXPECT_EQ(std::stoi(PQgetvalue(res.get(), 0, 0)), 100 + i);
        }
    }
    // The one server holds at most max_prepared_statements of Sluice's statements.
    const int held = std::stoi(scalar(conn.get(),
                                      "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sluice\\_%' "
                                      "AND name <> 'sluice_scratch'"));
    EXPECT_LE(held, 3);
    EXPECT_GE(held, 1);
}

TEST(proxy_prepared_statements_limits, a_client_over_its_memory_limit_gets_54000_and_stays_connected) {
    const pooler sluice(options_with(5, {{"max_prepared_statement_bytes_per_client", "2048"}}));
    auto conn = connect_or_throw(sluice.conninfo());
    const std::string padding(900, 'x');
    std::string refused;
    for (int i = 0; i < 5 && refused.empty(); ++i) {
        const std::string sql = "SELECT '" + padding + std::to_string(i) + "'";
        const result res(PQprepare(conn.get(), ("big" + std::to_string(i)).c_str(), sql.c_str(), 0, nullptr));
        if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
            refused = sqlstate(res.get());
        }
    }
    EXPECT_EQ(refused, "54000");
    EXPECT_EQ(scalar(conn.get(), "SELECT 'connected'"), "connected");
    // What the client already prepared still works.
    const result first(PQexecPrepared(conn.get(), "big0", 0, nullptr, nullptr, nullptr, 0));
    EXPECT_EQ(PQresultStatus(first.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(first.get());
}

}  // namespace
}  // namespace sluice::test::proxy
