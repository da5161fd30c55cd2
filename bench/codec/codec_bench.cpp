// Micro-benchmarks of the relay's per-message hot paths, with no I/O: the frame scan that splits a receive buffer
// into messages (protocol::message_splitter) and the rewrite of named prepared statements (session::statement_relay).
// Run from a Release build configured with -DSLUICE_BUILD_BENCH=ON: `bench/codec/codec_bench`.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "session/parameters.hpp"
#include "session/prepared_statements.hpp"
#include "session/statement_relay.hpp"
#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/splitter.hpp"
#include "sluice/protocol/writer.hpp"

namespace {

using namespace sluice;

// What a server sends for pgbench -S: RowDescription, DataRow, CommandComplete, ReadyForQuery.
std::string select_answer() {
    std::string out;
    const protocol::column col{"abalance", protocol::oid_int4, 4};
    protocol::write_row_description(out, std::span<const protocol::column>(&col, 1));
    const std::optional<std::string> value("-4242");
    protocol::write_data_row(out, std::span<const std::optional<std::string>>(&value, 1));
    protocol::write_command_complete(out, "SELECT 1");
    protocol::write_ready_for_query(out, protocol::transaction_status::idle);
    return out;
}

protocol::split_policy down_policy() {
    protocol::split_policy p;
    p.buffer_capacity = 16 * 1024;
    p.set_inspect('Z');
    p.set_inspect('S');
    p.set_inspect('C');
    return p;
}

// Frame scan: every message of `buffer` through next_piece, as process_down does.
void scan(benchmark::State& state, const std::string& buffer, std::size_t messages) {
    const auto policy = down_policy();
    protocol::message_splitter splitter;
    for (auto _ : state) {
        std::span<const char> rest(buffer.data(), buffer.size());
        std::size_t n = 0;
        while (!rest.empty()) {
            const auto piece = splitter.next_piece(rest, policy);
            if (piece.kind == protocol::piece_kind::need_more || piece.kind == protocol::piece_kind::bad_length)
                break;
            rest = rest.subspan(piece.size);
            ++n;
        }
        benchmark::DoNotOptimize(n);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * messages));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * buffer.size()));
}

void BM_frame_scan_select_answer(benchmark::State& state) {
    scan(state, select_answer(), 4);
}
BENCHMARK(BM_frame_scan_select_answer);

void BM_frame_scan_data_rows(benchmark::State& state) {
    // A 16 KiB receive buffer full of small DataRows (a large result streaming through).
    std::string buffer;
    std::size_t count = 0;
    const std::vector<std::optional<std::string>> row{std::string("42"), std::string("some text value"),
                                                      std::string("2026-11-21")};
    while (buffer.size() < 16 * 1024 - 64) {
        protocol::write_data_row(buffer, row);
        ++count;
    }
    scan(state, buffer, count);
}
BENCHMARK(BM_frame_scan_data_rows);

std::string parse_message(std::string_view name, std::string_view query) {
    std::string out;
    protocol::message_writer w(out, 'P');
    w.cstring(name).cstring(query).i16(0);
    w.finish();
    return out;
}

std::string bind_message(std::string_view statement) {
    std::string out;
    protocol::message_writer w(out, 'B');
    w.cstring("").cstring(statement).i16(0).i16(1).i32(4).bytes(std::string_view("4242")).i16(0);
    w.finish();
    return out;
}

std::string simple_message(char type, std::string_view body = {}) {
    std::string out;
    protocol::message_writer w(out, type);
    w.bytes(body);
    w.finish();
    return out;
}

// Message rewrite: pgbench -M prepared's transaction (Bind of a named statement, Execute, Sync) through the statement
// relay, whose Bind is rewritten to the server-side name, and the server's answers back.
void BM_statement_relay_bind_execute_sync(benchmark::State& state) {
    session::statement_registry registry;
    session::server_statement_cache server;
    session::statement_relay relay(registry);
    relay.attach(server, {});
    std::string out;
    std::string replacement;
    const auto parse = parse_message("P0_1", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
    const auto sync = simple_message('S');
    (void)relay.on_client_message(parse, true, out);
    (void)relay.on_client_message(sync, true, out);
    (void)relay.on_server_message('1', {}, true, replacement);
    (void)relay.on_server_message('Z', "I", true, replacement);

    const auto bind = bind_message("P0_1");
    const auto execute = simple_message('E', std::string_view("\0\0\0\0\0", 5));
    const std::string_view tag("SELECT 1\0", 9);
    for (auto _ : state) {
        out.clear();
        benchmark::DoNotOptimize(relay.on_client_message(bind, true, out));
        benchmark::DoNotOptimize(relay.on_client_message(execute, true, out));
        benchmark::DoNotOptimize(relay.on_client_message(sync, true, out));
        replacement.clear();
        benchmark::DoNotOptimize(relay.on_server_message('2', {}, true, replacement));
        benchmark::DoNotOptimize(relay.on_server_message('D', "", true, replacement));
        benchmark::DoNotOptimize(relay.on_server_message('C', tag, true, replacement));
        benchmark::DoNotOptimize(relay.on_server_message('Z', "I", true, replacement));
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_statement_relay_bind_execute_sync);

// The parameter sync check run at every server assignment (nothing to send: client and server agree).
void BM_parameter_sync_check(benchmark::State& state) {
    session::parameter_set client;
    session::parameter_set server;
    for (auto* p : {&client, &server}) {
        p->set("client_encoding", "UTF8");
        p->set("DateStyle", "ISO, MDY");
        p->set("TimeZone", "Etc/UTC");
        p->set("application_name", "pgbench");
    }
    std::string sql;
    for (auto _ : state) {
        sql.clear();
        benchmark::DoNotOptimize(session::append_parameter_sync(client, server, sql));
    }
}
BENCHMARK(BM_parameter_sync_check);

}  // namespace

BENCHMARK_MAIN();
