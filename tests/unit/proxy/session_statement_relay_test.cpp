#include "session/statement_relay.hpp"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/protocol/error.hpp"
#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::session {
namespace {

using server_action = statement_relay::server_action;

std::string parse(std::string_view name, std::string_view query) {
    std::string out;
    protocol::message_writer w(out, 'P');
    w.cstring(name).cstring(query).i16(0);
    w.finish();
    return out;
}

std::string bind(std::string_view statement) {
    std::string out;
    protocol::message_writer w(out, 'B');
    w.cstring("").cstring(statement).i16(0).i16(0).i16(0);
    w.finish();
    return out;
}

std::string close(std::string_view statement) {
    std::string out;
    protocol::message_writer w(out, 'C');
    w.u8('S').cstring(statement);
    w.finish();
    return out;
}

std::string message(char type, std::string_view body = {}) {
    std::string out;
    protocol::message_writer w(out, type);
    w.bytes(body);
    w.finish();
    return out;
}

// The types of the messages in `bytes`, with the statement named by each frontend message: "P:sluice_1 B:sluice_1".
std::string summary(std::string_view bytes, bool frontend = false) {
    std::string out;
    while (bytes.size() >= protocol::header_size) {
        const std::size_t total = std::size_t{protocol::load_u32(bytes.data() + 1)} + 1;
        if (!out.empty()) {
            out += ' ';
        }
        out += bytes[0];
        auto body = bytes.substr(protocol::header_size, total - protocol::header_size);
        if (bytes[0] == 'B') {
            body = body.substr(body.find('\0') + 1);  // the statement, after the portal
        } else if (bytes[0] == 'C' || bytes[0] == 'D') {
            body = body.substr(1);
        }
        if (frontend && (bytes[0] == 'P' || bytes[0] == 'B' || bytes[0] == 'C' || bytes[0] == 'D')) {
            out += ':';
            out += body.substr(0, body.find('\0'));
        }
        bytes.remove_prefix(total);
    }
    return out;
}

class relay_fixture : public ::testing::Test {
  protected:
    // What the server receives for one client message.
    std::string client_sends(const std::string& m) {
        std::string out;
        const std::size_t keep_from = relay.on_client_message(m, true, out);
        return summary(out + m.substr(keep_from), true);
    }
    // What the client receives for one server message (plus any answers then due).
    std::string server_sends(char type, std::string_view body = {}) {
        std::string out;
        if (relay.has_due()) {
            (void)relay.take_due(out);
        }
        std::string replacement;
        switch (relay.on_server_message(type, body, true, replacement)) {
            case server_action::forward:
                out += message(type, body);
                break;
            case server_action::replace:
                out += replacement;
                break;
            case server_action::drop:
                break;
        }
        if (relay.has_due()) {
            (void)relay.take_due(out);
        }
        return summary(out);
    }
    std::string due() {
        std::string out;
        (void)relay.take_due(out);
        return summary(out);
    }

    statement_registry registry;
    server_statement_cache server_a;
    server_statement_cache server_b;
    statement_relay relay{registry};
};

TEST_F(relay_fixture, a_parse_goes_out_under_the_server_side_name) {
    relay.attach(server_a, {});
    EXPECT_EQ(client_sends(parse("s1", "SELECT 1")), "P:sluice_1");
    EXPECT_EQ(client_sends(message('S')), "S");
    EXPECT_EQ(server_sends('1'), "1");
    EXPECT_EQ(server_sends('Z', "I"), "Z");
    EXPECT_TRUE(relay.idle());
    EXPECT_NE(server_a.find(1), nullptr);
}

TEST_F(relay_fixture, on_another_server_the_statement_is_prepared_first_and_its_answer_dropped) {
    relay.attach(server_a, {});
    (void)client_sends(parse("s1", "SELECT 1"));
    (void)client_sends(message('S'));
    (void)server_sends('1');
    (void)server_sends('Z', "I");
    relay.detach();

    relay.attach(server_b, {});
    EXPECT_EQ(client_sends(bind("s1")), "P:sluice_1 B:sluice_1");
    EXPECT_EQ(client_sends(message('E', std::string_view("\0\0\0\0\0", 5))), "E");
    EXPECT_EQ(client_sends(message('S')), "S");
    EXPECT_EQ(server_sends('1'), "");  // Sluice's own Parse
    EXPECT_EQ(server_sends('2'), "2");
    EXPECT_EQ(server_sends('C', std::string_view("SELECT 1\0", 9)), "C");
    EXPECT_EQ(server_sends('Z', "I"), "Z");
    EXPECT_TRUE(relay.idle());
}

TEST_F(relay_fixture, data_rows_pass_untouched_only_while_nothing_is_swallowed_or_due) {
    // The relay forwards a DataRow without calling on_server_message when passes_data_rows(): it must be false
    // exactly where on_server_message would drop one (Sluice's own Parse at the head) or answers are due first.
    relay.attach(server_a, {});
    EXPECT_TRUE(relay.passes_data_rows());  // nothing expected
    (void)client_sends(parse("s1", "SELECT 1"));
    (void)client_sends(message('S'));
    EXPECT_TRUE(relay.passes_data_rows());  // the client's own Parse: its answers go to the client
    (void)server_sends('1');
    (void)server_sends('Z', "I");
    relay.detach();

    relay.attach(server_b, {});
    (void)client_sends(bind("s1"));  // Sluice's Parse of s1 goes first, its answer swallowed
    EXPECT_FALSE(relay.passes_data_rows());
    std::string ignored;
    EXPECT_EQ(relay.on_server_message('D', {}, true, ignored), server_action::drop);
    (void)server_sends('1');
    EXPECT_TRUE(relay.passes_data_rows());  // the client's Bind is at the head now
    EXPECT_EQ(relay.on_server_message('D', {}, true, ignored), server_action::forward);
    (void)server_sends('2');
    relay.detach();

    // Another client prepared SELECT 42 on server_a: a Parse of it is answered by Sluice, due before anything else.
    statement_relay other(registry);
    other.attach(server_a, {});
    (void)other.on_client_message(parse("x", "SELECT 42"), true, ignored);
    other.detach();
    relay.attach(server_a, {});
    (void)client_sends(parse("mine", "SELECT 42"));
    ASSERT_TRUE(relay.has_due());
    EXPECT_FALSE(relay.passes_data_rows());
}

TEST_F(relay_fixture, a_parse_the_server_already_has_is_answered_by_sluice_in_order) {
    // Another client prepared the same text on server_a.
    statement_relay other(registry);
    other.attach(server_a, {});
    std::string ignored;
    (void)other.on_client_message(parse("x", "SELECT 42"), true, ignored);
    other.detach();

    relay.attach(server_a, {});
    EXPECT_EQ(client_sends(parse("mine", "SELECT 42")), "");
    EXPECT_EQ(due(), "1");
    EXPECT_EQ(client_sends(bind("mine")), "B:sluice_1");
}

TEST_F(relay_fixture, a_failed_parse_leaves_no_name_behind) {
    relay.attach(server_a, {});
    (void)client_sends(parse("bad", "SELEC 1"));
    (void)client_sends(bind("bad"));
    (void)client_sends(message('S'));
    std::string error;
    protocol::write_error(error, protocol::severity::error, "42601", "syntax error");
    const auto error_body = std::string_view(error).substr(protocol::header_size);
    EXPECT_EQ(server_sends('E', error_body), "E");
    EXPECT_EQ(server_sends('Z', "I"), "Z");
    EXPECT_EQ(relay.statements().find("bad"), nullptr);
    EXPECT_EQ(server_a.size(), 0U);
    // Later use of the name goes to the server unchanged: it answers 26000 as PostgreSQL does.
    EXPECT_EQ(client_sends(bind("bad")), "B:bad");
}

TEST_F(relay_fixture, effects_of_skipped_messages_are_undone_newest_first) {
    relay.attach(server_a, {});
    (void)client_sends(parse("b", "SELEC 1"));  // fails
    EXPECT_EQ(client_sends(close("b")), "");    // answered by Sluice, but skipped by the error
    (void)client_sends(message('S'));
    std::string error;
    protocol::write_error(error, protocol::severity::error, "42601", "syntax error");
    EXPECT_EQ(server_sends('E', std::string_view(error).substr(protocol::header_size)), "E");
    EXPECT_EQ(server_sends('Z', "I"), "Z");
    EXPECT_EQ(relay.statements().find("b"), nullptr);
}

TEST_F(relay_fixture, a_close_removes_only_the_clients_name) {
    relay.attach(server_a, {});
    (void)client_sends(parse("s1", "SELECT 1"));
    (void)client_sends(message('S'));
    (void)server_sends('1');
    (void)server_sends('Z', "I");
    EXPECT_EQ(client_sends(close("s1")), "");
    EXPECT_EQ(client_sends(message('S')), "S");
    EXPECT_EQ(due(), "3");
    EXPECT_EQ(server_sends('Z', "I"), "Z");
    EXPECT_EQ(relay.statements().find("s1"), nullptr);
    EXPECT_NE(server_a.find(1), nullptr);  // kept for other clients
}

TEST_F(relay_fixture, the_server_cache_evicts_the_least_recently_used_with_a_close) {
    relay.attach(server_a, {.max_server_statements = 2});
    EXPECT_EQ(client_sends(parse("a", "SELECT 1")), "P:sluice_1");
    EXPECT_EQ(client_sends(parse("b", "SELECT 2")), "P:sluice_2");
    EXPECT_EQ(client_sends(bind("a")), "B:sluice_1");  // a is now the most recently used
    EXPECT_EQ(client_sends(parse("c", "SELECT 3")), "C:sluice_2 P:sluice_3");
    EXPECT_EQ(server_a.size(), 2U);
    EXPECT_EQ(server_a.find(2), nullptr);
}

TEST_F(relay_fixture, deallocate_of_a_client_statement_is_answered_by_sluice) {
    relay.attach(server_a, {});
    (void)client_sends(parse("s1", "SELECT 1"));
    (void)client_sends(message('S'));
    (void)server_sends('1');
    (void)server_sends('Z', "I");
    std::string query;
    protocol::write_query(query, "DEALLOCATE S1");
    EXPECT_EQ(client_sends(query), "");
    std::string answered;
    EXPECT_EQ(relay.take_due(answered), 1U);
    EXPECT_EQ(summary(answered), "C Z");
    EXPECT_EQ(relay.statements().find("s1"), nullptr);
}

TEST_F(relay_fixture, a_client_over_its_byte_limit_gets_a_parse_bound_to_fail) {
    relay.attach(server_a, {.max_server_statements = 200, .max_client_bytes = 64});
    EXPECT_EQ(client_sends(parse("big", std::string(100, 'x'))), "P:sluice_refused");
    (void)client_sends(message('S'));
    std::string syntax_error;
    protocol::write_error(syntax_error, protocol::severity::error, "42601", "syntax error");
    std::string replaced;
    EXPECT_EQ(
        relay.on_server_message('E', std::string_view(syntax_error).substr(protocol::header_size), true, replaced),
        server_action::replace);
    const auto fields = protocol::parse_error_fields(std::span<const char>(replaced).subspan(protocol::header_size));
    EXPECT_EQ(fields.sqlstate, "54000");
    EXPECT_EQ(relay.take_counters().rejections, 1U);
}

TEST(statement_registry, interns_by_text_and_parameter_types) {
    statement_registry registry;
    const auto a = registry.intern("SELECT $1", std::string_view("\0\0", 2));
    const auto b = registry.intern("SELECT $1", std::string_view("\0\0", 2));
    const auto c = registry.intern("SELECT $1", std::string_view("\0\1\0\0\0\x17", 6));
    EXPECT_EQ(a, b);
    EXPECT_NE(a->id, c->id);
    EXPECT_EQ(a->server_name, "sluice_" + std::to_string(a->id));
    EXPECT_EQ(registry.live_count(), 2U);
}

TEST(statement_registry, refuses_beyond_its_byte_limit_and_frees_what_nobody_holds) {
    statement_registry registry(1000);
    auto first = registry.intern(std::string(400, 'a'), {});
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(registry.intern(std::string(700, 'b'), {}), nullptr);
    first.reset();
    EXPECT_EQ(registry.live_bytes(), 0U);
    EXPECT_NE(registry.intern(std::string(700, 'b'), {}), nullptr);
}

TEST(parse_deallocate, accepts_one_deallocate_statement) {
    EXPECT_EQ(parse_deallocate("DEALLOCATE s1"), "s1");
    EXPECT_EQ(parse_deallocate("  deallocate  PREPARE   _pg3_0 ; "), "_pg3_0");
    EXPECT_EQ(parse_deallocate("DEALLOCATE Mixed"), "mixed");
    EXPECT_EQ(parse_deallocate("DEALLOCATE \"Mixed \"\"q\"\"\""), "Mixed \"q\"");
    EXPECT_EQ(parse_deallocate("DEALLOCATE ALL"), "");
    EXPECT_EQ(parse_deallocate("DEALLOCATE a; SELECT 1"), "");
    EXPECT_EQ(parse_deallocate("DEALLOCATEx a"), "");
    EXPECT_EQ(parse_deallocate("SELECT 1"), "");
}

}  // namespace
}  // namespace sluice::session
