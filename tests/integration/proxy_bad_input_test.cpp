// Input no well-behaved client sends, before and after login: each is refused with PostgreSQL's SQLSTATE in a FATAL
// ErrorResponse, the connection is closed, and Sluice goes on serving its other clients.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proxy_test_support.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::test::proxy {
namespace {

using ::testing::AllOf;
using ::testing::Field;

// A refusal carrying `code` at severity FATAL, after which the connection was closed.
auto fatal_and_closed(const std::string& code) {
    return AllOf(Field(&refusal::severity, "FATAL"), Field(&refusal::sqlstate, code), Field(&refusal::closed, true));
}

std::string startup_message(const std::vector<std::pair<std::string, std::string>>& parameters) {
    std::string out;
    protocol::write_startup_message(out, parameters);
    return out;
}

// An Int32 length followed by `rest`, as the startup family is framed.
std::string startup_framed(std::uint32_t length, std::string_view rest) {
    std::string out(4, '\0');
    protocol::store_u32(out.data(), length);
    out.append(rest);
    return out;
}

// A typed message header with a declared length and no body.
std::string message_header(char type, std::uint32_t length) {
    std::string out(1, type);
    out.resize(5);
    protocol::store_u32(out.data() + 1, length);
    return out;
}

// Server connections of the test role open right now, the asking connection left out.
int server_backends() {
    return std::stoi(postgres().query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'sluice_test' AND pid <> pg_backend_pid()"));
}

// Generous bound on what a burst of hostile connections may add to Sluice's peak resident set.
constexpr std::size_t rss_growth_bound_kib = 64 * 1024;

class proxy_bad_input : public ::testing::Test {
  protected:
    explicit proxy_bad_input(const pooler_options& options = {}) : sluice_(options) {}

    void SetUp() override {
        bystander_ = connect_or_throw(sluice_.conninfo());
        ASSERT_EQ(scalar(bystander_.get(), "SELECT 'before'"), "before");
    }

    // The client already connected before the bad input and a new one are both served.
    void expect_still_serving() {
        EXPECT_EQ(scalar(bystander_.get(), "SELECT 'bystander'"), "bystander");
        EXPECT_TRUE(serves_queries(sluice_));
    }

    [[nodiscard]] raw_connection raw() const { return raw_connection::tcp(sluice_.port()); }

    pooler sluice_;
    connection bystander_;
};

TEST_F(proxy_bad_input, startup_packet_longer_than_10000_bytes_is_refused_with_08P01) {
    auto conn = raw();
    ASSERT_TRUE(conn.send(startup_framed(10001, std::string(10, '\0'))));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("08P01"));
    expect_still_serving();
}

TEST_F(proxy_bad_input, startup_packet_shorter_than_8_bytes_is_refused_with_08P01) {
    auto conn = raw();
    ASSERT_TRUE(conn.send(startup_framed(7, std::string(3, '\0'))));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("08P01"));
    expect_still_serving();
}

TEST_F(proxy_bad_input, protocol_version_2_is_refused_with_0A000) {
    std::string packet;
    protocol::message_writer w(packet);
    w.i32(2 << 16).cstring("user").cstring("sluice_test").cstring("database").cstring("sluice_test").u8(0);
    w.finish();
    auto conn = raw();
    ASSERT_TRUE(conn.send(packet));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("0A000"));
    expect_still_serving();
}

// A newer 3.x client is told the minor version and options Sluice supports, then logs in as 3.0
// (protocol-message-formats.html, NegotiateProtocolVersion).
TEST_F(proxy_bad_input, newer_minor_version_gets_negotiate_protocol_version_then_authentication) {
    std::string packet;
    protocol::message_writer w(packet);
    w.i32((3 << 16) | 9).cstring("user").cstring("sluice_test").cstring("_pq_.proxy_test_option").cstring("on");
    w.u8(0);
    w.finish();
    auto conn = raw();
    ASSERT_TRUE(conn.send(packet));
    const auto negotiate = conn.read_message(5s);
    ASSERT_TRUE(negotiate.has_value());
    ASSERT_EQ(negotiate->type, 'v');
    ASSERT_GE(negotiate->body.size(), 8U);
    EXPECT_EQ(protocol::load_u32(negotiate->body.data()), 0U) << "newest minor version supported";
    EXPECT_EQ(protocol::load_u32(negotiate->body.data() + 4), 1U) << "options not recognized";
    EXPECT_EQ(negotiate->body.substr(8), std::string("_pq_.proxy_test_option", 23));
    const auto request = conn.read_message(5s);
    ASSERT_TRUE(request.has_value());
    EXPECT_EQ(request->type, 'R');
    expect_still_serving();
}

TEST_F(proxy_bad_input, startup_packet_without_user_is_refused_with_08P01) {
    auto conn = raw();
    ASSERT_TRUE(conn.send(startup_message({{"database", "sluice_test"}})));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("08P01"));
    expect_still_serving();
}

TEST_F(proxy_bad_input, unknown_database_without_a_wildcard_entry_is_refused_with_3D000) {
    auto conn = raw();
    ASSERT_TRUE(conn.send(startup_message({{"user", "sluice_test"}, {"database", "proxy_no_such_database"}})));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("3D000"));
    expect_still_serving();
}

TEST_F(proxy_bad_input, ssl_request_is_answered_n_and_a_plaintext_startup_follows) {
    auto conn = raw();
    std::string ssl_request;
    protocol::write_ssl_request(ssl_request);
    ASSERT_TRUE(conn.send(ssl_request));
    EXPECT_EQ(conn.read_bytes(1, 5s), "N");
    ASSERT_TRUE(conn.send(startup_message({{"user", "sluice_test"}, {"database", "sluice_test"}})));
    const auto request = conn.read_message(5s);
    ASSERT_TRUE(request.has_value());
    EXPECT_EQ(request->type, 'R');
    ASSERT_GE(request->body.size(), 4U);
    EXPECT_EQ(protocol::load_u32(request->body.data()), 10U) << "expected AuthenticationSASL";

    // libpq's sslmode=prefer takes the same path and then logs in.
    auto preferring = connect(sluice_.conninfo("sslmode=prefer"));
    ASSERT_EQ(PQstatus(preferring.get()), CONNECTION_OK) << PQerrorMessage(preferring.get());
    EXPECT_FALSE(PQsslInUse(preferring.get()));
    EXPECT_EQ(scalar(preferring.get(), "SELECT 'plaintext'"), "plaintext");
}

TEST_F(proxy_bad_input, wrong_scram_proof_is_refused_with_28P01_without_using_a_server) {
    const auto server_logins = [] {
        return std::stoi(
            postgres().query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = 'sluice_test'"));
    };
    // A fresh Sluice has no servers yet; the bystander's was made by the fixture's.
    pooler fresh;
    const int before = server_logins();

    auto conn = raw_connection::tcp(fresh.port());
    ASSERT_TRUE(conn.send(startup_message({{"user", "sluice_test"}, {"database", "sluice_test"}})));
    auto sasl = conn.read_message(5s);
    ASSERT_TRUE(sasl && sasl->type == 'R');
    std::string initial;
    protocol::write_sasl_initial_response(initial, "SCRAM-SHA-256", "n,,n=,r=proxybadinputnonce");
    ASSERT_TRUE(conn.send(initial));
    auto server_first = conn.read_message(5s);
    ASSERT_TRUE(server_first && server_first->type == 'R' && server_first->body.size() > 4);
    ASSERT_EQ(protocol::load_u32(server_first->body.data()), 11U) << "expected AuthenticationSASLContinue";
    const std::string first = server_first->body.substr(4);  // r=<nonce>,s=<salt>,i=<iterations>
    ASSERT_TRUE(first.starts_with("r=proxybadinputnonce")) << first;
    const std::string nonce = first.substr(2, first.find(',') - 2);
    std::string final_message;
    // A well-formed client-final message whose proof (32 zero bytes) is wrong.
    protocol::write_sasl_response(final_message,
                                  "c=biws,r=" + nonce + ",p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    ASSERT_TRUE(conn.send(final_message));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("28P01"));

    EXPECT_LE(server_logins(), before);
    EXPECT_TRUE(serves_queries(fresh));
    expect_still_serving();
}

TEST_F(proxy_bad_input, absurd_message_length_during_login_is_refused_with_08P01) {
    reset_peak_rss(sluice_.pid());
    const std::size_t baseline = proc_status_kib(sluice_.pid(), "VmRSS");
    auto conn = raw();
    ASSERT_TRUE(conn.send(startup_message({{"user", "sluice_test"}, {"database", "sluice_test"}})));
    auto sasl = conn.read_message(5s);
    ASSERT_TRUE(sasl && sasl->type == 'R');
    ASSERT_TRUE(conn.send(message_header('p', 0x7fffffff) + "SCRAM-SHA-256"));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("08P01"));
    EXPECT_LT(proc_status_kib(sluice_.pid(), "VmHWM"), baseline + 32 * 1024);
    expect_still_serving();
}

TEST_F(proxy_bad_input, unknown_message_type_after_login_is_refused_with_08P01) {
    auto client = connect_or_throw(sluice_.conninfo());
    auto conn = raw_connection::borrow(client.get());
    ASSERT_TRUE(conn.send(message_header('z', 4)));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("08P01"));
    expect_still_serving();
}

TEST_F(proxy_bad_input, unknown_message_type_while_holding_a_server_is_refused_with_08P01) {
    auto client = connect_or_throw(sluice_.conninfo());
    run(client.get(), "BEGIN");
    auto conn = raw_connection::borrow(client.get());
    ASSERT_TRUE(conn.send(message_header('z', 4)));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("08P01"));
    expect_still_serving();
}

TEST_F(proxy_bad_input, message_length_3_after_login_is_refused_with_08P01) {
    auto client = connect_or_throw(sluice_.conninfo());
    auto conn = raw_connection::borrow(client.get());
    ASSERT_TRUE(conn.send(message_header('Q', 3)));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("08P01"));
    expect_still_serving();
}

TEST_F(proxy_bad_input, absurd_message_length_is_refused_with_08P01_without_allocating_it) {
    auto client = connect_or_throw(sluice_.conninfo());
    reset_peak_rss(sluice_.pid());
    const std::size_t baseline = proc_status_kib(sluice_.pid(), "VmRSS");
    auto conn = raw_connection::borrow(client.get());
    ASSERT_TRUE(conn.send(message_header('Q', 0x7fffffff) + "SELECT 1"));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("08P01"));
    EXPECT_LT(proc_status_kib(sluice_.pid(), "VmHWM"), baseline + 32 * 1024);
    expect_still_serving();
}

TEST_F(proxy_bad_input, password_message_after_login_is_refused_with_08P01) {
    auto client = connect_or_throw(sluice_.conninfo());
    auto conn = raw_connection::borrow(client.get());
    std::string password;
    protocol::write_password_message(password, "sluice_test");
    ASSERT_TRUE(conn.send(password));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("08P01"));
    expect_still_serving();
}

TEST_F(proxy_bad_input, cancel_request_with_an_unknown_key_is_ignored) {
    ASSERT_TRUE(PQsendQuery(bystander_.get(), "SELECT 'survived', pg_sleep(1)"));
    ASSERT_TRUE(wait_until([] { return active_backends_running("SELECT 'survived', pg_sleep(1)") == 1; }, 10s));
    // The bystander's own process id with a key that is not its own.
    std::string request;
    protocol::write_cancel_request(request, static_cast<std::uint32_t>(PQbackendPID(bystander_.get())), 12345);
    auto conn = raw();
    ASSERT_TRUE(conn.send(request));
    EXPECT_EQ(conn.read_bytes(1, 5s), "") << "Sluice answered a CancelRequest";
    EXPECT_TRUE(conn.wait_closed(5s));
    const auto res = last_result(bystander_.get());
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK) << PQerrorMessage(bystander_.get());
    EXPECT_STREQ(PQgetvalue(res.get(), 0, 0), "survived");
    expect_still_serving();
}

class proxy_bad_input_max_client_conn : public proxy_bad_input {
  protected:
    proxy_bad_input_max_client_conn() : proxy_bad_input(options()) {}
    static pooler_options options() {
        pooler_options o;
        o.settings = {{"max_client_conn", "3"}};
        return o;
    }
};

class proxy_bad_input_flood : public proxy_bad_input {
  protected:
    proxy_bad_input_flood() : proxy_bad_input(options()) {}
    static pooler_options options() {
        pooler_options o;
        o.settings = {{"max_client_conn", "10"}};
        return o;
    }
};

TEST_F(proxy_bad_input_flood, half_open_connections_beyond_max_client_conn_are_refused_with_53300) {
    reset_peak_rss(sluice_.pid());
    const std::size_t baseline = proc_status_kib(sluice_.pid(), "VmRSS");
    const int servers_before = server_backends();
    // Connected and silent, as a SYN-and-stop flood that completed the handshake: each counts as a client in login.
    constexpr int flood = 60;
    std::vector<raw_connection> half_open;
    for (int i = 0; i < flood; ++i)
        half_open.push_back(raw());
    // The client logged in before the flood keeps working, inside a transaction too.
    run(bystander_.get(), "BEGIN");
    EXPECT_EQ(scalar(bystander_.get(), "SELECT 'bystander during the flood'"), "bystander during the flood");
    run(bystander_.get(), "COMMIT");
    // A newcomer is refused at the limit (once the flood's connections are accepted), libpq or raw.
    ASSERT_TRUE(wait_until(
        [&] {
            auto conn = connect(sluice_.conninfo());
            return PQstatus(conn.get()) != CONNECTION_OK &&
                   std::string(PQerrorMessage(conn.get())).find("no more connections allowed (max_client_conn)") !=
                       std::string::npos;
        },
        10s));
    // Each flood connection that goes on to send a startup packet is refused as well, except that every refused
    // connection that closes frees a slot: the last few may then be admitted, never more than the limit allows.
    const std::string startup = startup_message({{"user", "sluice_test"}, {"database", "sluice_test"}});
    for (auto& conn : half_open)
        ASSERT_TRUE(conn.send(startup));
    int admitted = 0;
    for (std::size_t i = 0; i < half_open.size(); ++i) {
        const auto first = half_open[i].read_message(5s);
        ASSERT_TRUE(first.has_value()) << "connection " << i << " got no answer to its startup packet";
        if (first->type == 'R') {
            ++admitted;
            continue;
        }
        ASSERT_EQ(first->type, 'E') << "connection " << i;
        const auto fields = protocol::parse_error_fields(first->body);
        EXPECT_EQ(fields.severity, "FATAL") << "connection " << i;
        EXPECT_EQ(fields.sqlstate, "53300") << "connection " << i;
        EXPECT_EQ(fields.message, "no more connections allowed (max_client_conn)");
        EXPECT_TRUE(half_open[i].wait_closed(5s)) << "connection " << i;
    }
    // max_client_conn = 10 and the bystander holds one slot.
    EXPECT_LE(admitted, 9);
    EXPECT_EQ(server_backends(), servers_before) << "a refused connection made Sluice open a server";
    EXPECT_LT(proc_status_kib(sluice_.pid(), "VmHWM"), baseline + rss_growth_bound_kib);
    // Room again once the flood is gone.
    half_open.clear();
    EXPECT_TRUE(wait_until([&] { return serves_queries(sluice_); }, 10s));
    expect_still_serving();
}

TEST_F(proxy_bad_input_max_client_conn, fourth_client_is_refused_with_53300) {
    auto second = connect_or_throw(sluice_.conninfo());
    auto third = connect_or_throw(sluice_.conninfo());
    auto conn = raw();
    ASSERT_TRUE(conn.send(startup_message({{"user", "sluice_test"}, {"database", "sluice_test"}})));
    EXPECT_THAT(read_refusal(conn), fatal_and_closed("53300"));
    EXPECT_EQ(scalar(bystander_.get(), "SELECT 1"), "1");
    EXPECT_EQ(scalar(third.get(), "SELECT 3"), "3");

    // Room again once a client leaves.
    second.reset();
    EXPECT_TRUE(wait_until([&] { return serves_queries(sluice_); }, 5s));
}

class proxy_bad_input_login_timeout : public proxy_bad_input {
  protected:
    proxy_bad_input_login_timeout() : proxy_bad_input(options()) {}
    static pooler_options options() {
        pooler_options o;
        o.settings = {{"client_login_timeout", "1"}};
        return o;
    }
};

TEST_F(proxy_bad_input_login_timeout, client_stalling_mid_startup_is_closed_after_the_login_timeout) {
    const std::string startup = startup_message({{"user", "sluice_test"}, {"database", "sluice_test"}});
    auto conn = raw();
    const auto begin = std::chrono::steady_clock::now();
    ASSERT_TRUE(conn.send(startup.substr(0, startup.size() / 2)));
    EXPECT_TRUE(conn.wait_closed(5s));
    const auto elapsed = std::chrono::steady_clock::now() - begin;
    EXPECT_GE(elapsed, 900ms);
    EXPECT_LT(elapsed, 5s);
    // The bystander logged in long ago: the timeout is for login only.
    expect_still_serving();
}

TEST_F(proxy_bad_input_login_timeout, slowloris_clients_trickling_their_startup_are_dropped_without_a_server) {
    reset_peak_rss(sluice_.pid());
    const std::size_t baseline = proc_status_kib(sluice_.pid(), "VmRSS");
    const int servers_before = server_backends();
    // Each client sends its (valid) startup packet one byte per 100 ms: 4 s for the whole packet, well past the
    // 1 s login timeout, while never being silent for long.
    const std::string startup = startup_message({{"user", "sluice_test"}, {"database", "sluice_test"}});
    ASSERT_GT(startup.size(), 30U);
    constexpr int clients = 20;
    std::vector<raw_connection> trickling;
    std::vector<std::optional<std::chrono::steady_clock::duration>> closed_after(clients);
    for (int i = 0; i < clients; ++i)
        trickling.push_back(raw());
    const auto begin = std::chrono::steady_clock::now();
    for (std::size_t sent = 0; sent < startup.size(); ++sent) {
        int open = 0;
        for (int i = 0; i < clients; ++i) {
            if (closed_after[i])
                continue;
            if (trickling[i].wait_closed(1ms) || !trickling[i].send(startup.substr(sent, 1))) {
                closed_after[i] = std::chrono::steady_clock::now() - begin;
                continue;
            }
            ++open;
        }
        if (open == 0)
            break;
        const auto next = begin + (sent + 1) * 100ms;
        ASSERT_TRUE(wait_until([&] { return std::chrono::steady_clock::now() >= next; }, 1s));
    }
    for (int i = 0; i < clients; ++i) {
        if (!closed_after[i] && trickling[i].wait_closed(5s))
            closed_after[i] = std::chrono::steady_clock::now() - begin;
        ASSERT_TRUE(closed_after[i].has_value()) << "client " << i << " still open after its whole startup packet";
        EXPECT_GE(*closed_after[i], 900ms) << "client " << i;
        EXPECT_LT(*closed_after[i], 3500ms) << "client " << i << " outlived the login timeout by far";
    }
    EXPECT_EQ(server_backends(), servers_before) << "a client that never logged in made Sluice open a server";
    EXPECT_LT(proc_status_kib(sluice_.pid(), "VmHWM"), baseline + rss_growth_bound_kib);
    expect_still_serving();
}

TEST_F(proxy_bad_input_login_timeout, absurd_message_lengths_from_many_clients_leave_memory_bounded) {
    reset_peak_rss(sluice_.pid());
    const std::size_t baseline = proc_status_kib(sluice_.pid(), "VmRSS");
    // 20 logged-in clients each announce a message of almost 2 GiB (and one during login), all at once.
    std::vector<connection> clients;
    std::vector<raw_connection> sockets;
    for (int i = 0; i < 20; ++i) {
        clients.push_back(connect_or_throw(sluice_.conninfo()));
        sockets.push_back(raw_connection::borrow(clients.back().get()));
    }
    auto logging_in = raw();
    ASSERT_TRUE(logging_in.send(startup_message({{"user", "sluice_test"}, {"database", "sluice_test"}})));
    for (auto& conn : sockets)
        ASSERT_TRUE(conn.send(message_header('Q', 0x7ffffff0) + std::string(4096, 'x')));
    auto sasl = logging_in.read_message(5s);
    ASSERT_TRUE(sasl && sasl->type == 'R');
    ASSERT_TRUE(logging_in.send(message_header('p', 0x7ffffff0) + std::string(4096, 'x')));
    for (std::size_t i = 0; i < sockets.size(); ++i)
        EXPECT_THAT(read_refusal(sockets[i]), fatal_and_closed("08P01")) << "client " << i;
    EXPECT_THAT(read_refusal(logging_in), fatal_and_closed("08P01"));
    EXPECT_LT(proc_status_kib(sluice_.pid(), "VmHWM"), baseline + rss_growth_bound_kib);
    expect_still_serving();
}

}  // namespace
}  // namespace sluice::test::proxy
