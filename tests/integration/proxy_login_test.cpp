// Login work kept off the event loop: the SCRAM key derivation of a plain-text auth_file password runs on a bridge
// thread, so that the worker serving the login keeps serving its other clients meanwhile.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "proxy_test_support.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::test::proxy {
namespace {

using std::chrono::steady_clock;

TEST(proxy_login, a_plain_text_users_first_scram_login_does_not_stall_the_worker) {
    pooler_options options;
    options.workers = 1;  // the busy client and the logging-in one share the one event loop
    pooler sluice(options);
    auto busy = connect_or_throw(sluice.conninfo());
    ASSERT_EQ(scalar(busy.get(), "SELECT 1"), "1");

    // A second plain-text user, and enough PBKDF2 iterations that deriving its SCRAM secret takes about a second.
    options.settings = {{"scram_iterations", "2000000"}};
    const std::string auth = std::string(auth_file) + "\"slow_user\" \"slow_password\"\n";
    sluice.process().write_config(pooler_config(options), auth);
    sluice.process().send_signal(SIGHUP);
    ASSERT_TRUE(wait_until([&] { return sluice.log().find("configuration reloaded") != std::string::npos; }, 10s));

    auto slow_login = std::async(std::launch::async, [&] {
        // The role does not exist in PostgreSQL: only the client-side SCRAM exchange with Sluice matters here.
        connection conn(PQconnectdb(sluice.conninfo("user=slow_user", "slow_password").c_str()));
        return steady_clock::now();
    });
    std::this_thread::sleep_for(100ms);  // the login reaches Sluice's derivation
    steady_clock::duration slowest{};
    for (int i = 0; i < 10; ++i) {
        const auto start = steady_clock::now();
        ASSERT_EQ(scalar(busy.get(), "SELECT 6 * 7"), "42");
        slowest = std::max(slowest, steady_clock::now() - start);
    }
    const auto queries_done = steady_clock::now();
    const auto login_done = slow_login.get();
    // The queries ran while the slow login was still in progress (its derivation, then libpq's own)...
    EXPECT_GT(login_done, queries_done) << "the login ended before the queries: the test proves nothing";
    // ... and none waited for the derivation.
    EXPECT_LT(slowest, 400ms) << "slowest query "
                              << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() << " ms";
}

TEST(proxy_login, messages_pipelined_with_the_startup_packet_are_served_after_login) {
    // Login reads take whatever the client sent in one read: bytes beyond the login must reach the relay intact.
    pooler_options options;
    options.settings = {{"auth_type", "trust"}};
    pooler sluice(options);
    std::string bytes;
    const std::vector<std::pair<std::string, std::string>> parameters = {{"user", "sluice_test"},
                                                                         {"database", "sluice_test"}};
    protocol::write_startup_message(bytes, parameters);
    protocol::write_query(bytes, "SELECT 'first'");
    protocol::write_query(bytes, "SELECT 'second'");
    auto conn = raw_connection::tcp(sluice.port());
    ASSERT_TRUE(conn.send(bytes));
    std::vector<std::string> rows;
    int ready = 0;
    while (ready < 3) {  // the welcome's ReadyForQuery, then one per query
        const auto m = conn.read_message(10s);
        ASSERT_TRUE(m.has_value()) << "after " << ready << " ReadyForQuery";
        ASSERT_NE(m->type, 'E') << m->body;
        if (m->type == 'Z')
            ++ready;
        if (m->type == 'D')
            rows.push_back(m->body.substr(6));  // Int16 column count, Int32 length, the value
    }
    EXPECT_EQ(rows, (std::vector<std::string>{"first", "second"}));
}

}  // namespace
}  // namespace sluice::test::proxy
