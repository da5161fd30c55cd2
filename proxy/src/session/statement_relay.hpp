#pragma once
// Rewrites one client's extended-protocol stream so that its named prepared statements work on whichever server it
// holds in transaction pooling. No I/O: the relay hands it each message and sends what it says.
//
// Client -> server (on_client_message): Parse/Bind/Describe naming a client statement go out under the server-side
// name, preceded when needed by Sluice's own Parse (the server lacks the statement) or Close (LRU eviction, a stale
// plan). A Parse of a statement the server already has, a client's Close and `DEALLOCATE name` are not sent at all:
// Sluice answers them itself. Errors PostgreSQL would raise (42P05 for a name in use) and Sluice's limits are raised by
// the server itself (a Parse of a name it holds, a Parse bound to fail), so its transaction state matches PostgreSQL's.
//
// Server -> client (on_server_message, take_due): an expectation queue with one entry per message the server (or
// Sluice) answers, in order. Answers to Sluice's own messages are dropped; answers Sluice owes are emitted when their
// entry reaches the head, so ordering within a pipeline is exact. After an ErrorResponse the server skips to Sync and
// so does the queue: entries of skipped messages are dropped and their optimistic effects undone.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "session/prepared_statements.hpp"
#include "sluice/protocol/message_types.hpp"

namespace sluice::session {

struct statement_limits {
    std::size_t max_server_statements = 200;               // max_prepared_statements (> 0: 0 disables the relay)
    std::size_t max_client_bytes = std::size_t{16} << 20;  // max_prepared_statement_bytes_per_client
};

class statement_relay {
  public:
    enum class server_action { forward, drop, replace };
    struct counters {
        std::uint64_t server_parses = 0;  // Parse messages sent to servers (client's and Sluice's own)
        std::uint64_t rejections = 0;     // Parses refused for a memory limit
    };

    explicit statement_relay(statement_registry& registry) noexcept : registry_(&registry) {}

    // A server was attached; `cache` is that server's statement cache.
    void attach(server_statement_cache& cache, const statement_limits& limits) noexcept;
    // The server goes back to its pool (nothing outstanding) or is discarded.
    void detach() noexcept;
    [[nodiscard]] bool attached() const noexcept { return cache_ != nullptr; }
    // Nothing is expected from the server and nothing is owed to the client.
    [[nodiscard]] bool idle() const noexcept { return queue_.empty(); }

    // True when a client message of this type must be given whole to on_client_message, or (Bind) at least up to its
    // statement name: see head_complete().
    [[nodiscard]] static bool inspects(char type) noexcept {
        return type == 'P' || type == 'B' || type == 'D' || type == 'C';
    }
    // Whether `available` (the start of one message) is enough for on_client_message. A named Parse, Describe and
    // Close need the whole message; a Bind needs its portal and statement names; everything else nothing.
    [[nodiscard]] static bool head_complete(std::span<const char> available) noexcept;

    // Client -> server. `message`: one client message from its type byte, whole or (a large Bind) its head. Appends
    // to `out` the bytes to send in place of message[0, keep_from) and returns keep_from: 0 forwards the message
    // untouched, message.size() (whole messages only) sends nothing of it. Returns `hold` when the message must wait
    // (send `out`, keep the message unconsumed, and offer it again once holding() is false).
    std::size_t on_client_message(std::span<const char> message, bool whole, std::string& out);
    static constexpr std::size_t hold = SIZE_MAX;
    // A Bind waits while Sluice checks that the server's fresh copy of the statement describes the same result the
    // client was told about.
    [[nodiscard]] bool holding() const noexcept { return holding_; }

    // Server -> client, for each message (whole, or the head of a streamed one). On `replace`, `replacement` holds
    // the bytes to send instead. Callers send take_due() output first whenever has_due().
    server_action on_server_message(char type, std::span<const char> body, bool whole, std::string& replacement);

    // A client holding no server sends a named Parse: if a server already accepted the same text and types, the
    // name is recorded and true returned, and the caller answers ParseComplete itself (a Sync after it: ReadyForQuery
    // 'I'). Nothing is sent to any server; the statement is prepared where the client's Bind lands.
    bool prepare_without_server(std::span<const char> parse_message, const statement_limits& limits);

    [[nodiscard]] bool has_due() const noexcept { return !queue_.empty() && queue_.front().synthetic(); }
    // A DataRow from the server now goes to the client untouched and changes nothing here: what on_server_message
    // would say for one, without the call (the relay's path for result rows). False while answers are due first.
    [[nodiscard]] bool passes_data_rows() const noexcept {
        return queue_.empty() || (!queue_.front().synthetic() && queue_.front().how != answer::swallow);
    }
    // Appends the answers Sluice owes that are now due; returns how many ReadyForQuery it appended (their status is
    // last_status()).
    std::uint32_t take_due(std::string& out);

    [[nodiscard]] protocol::transaction_status last_status() const noexcept { return last_status_; }
    [[nodiscard]] const client_statement_map& statements() const noexcept { return statements_; }
    [[nodiscard]] counters take_counters() noexcept {
        const auto c = counters_;
        counters_ = {};
        return c;
    }

  private:
    enum class answer : std::uint8_t {
        forward,         // the server answers the client's message: pass it on
        swallow,         // Sluice's own Parse/Close: drop the answer (an error still reaches the client)
        fail,            // Sluice's Parse bound to fail: its syntax error becomes the error PostgreSQL would raise
        parse_complete,  // synthetic from here on: Sluice answers ParseComplete
        close_complete,  // CloseComplete
        deallocate,      // CommandComplete DEALLOCATE + ReadyForQuery
    };
    enum flags : std::uint8_t {
        undo_client_parse = 1,        // the client's name was added: remove it
        undo_server_parse = 2,        // the statement was added to the server cache: remove it
        undo_client_close = 4,        // the client's name was removed: put it back
        unknown_if_undone = 8,        // Sluice's Close may not have run: the server cache is no longer exact
        record_shape = 16,            // the client's Describe of a statement: remember the result it is told
        verify_shape = 32,            // Sluice's Describe after preparing afresh: compare with what the client knows
        deallocate_on_complete = 64,  // an Execute of `DEALLOCATE name`: drop the client's name when it succeeds
    };
    enum class failure : std::uint8_t { none, duplicate_name, client_limit, global_limit, result_changed };

    struct expectation {
        char kind = 0;  // the message answered: P B D E C S Q F
        answer how = answer::forward;
        std::uint8_t undo = 0;
        failure why = failure::none;
        std::shared_ptr<client_statement> client;          // for renaming errors and undoing
        std::shared_ptr<const prepared_statement> server;  // the statement named on the server
        [[nodiscard]] bool synthetic() const noexcept { return how >= answer::parse_complete; }
    };
    // A message the server answers with no rewriting involved.
    [[nodiscard]] static expectation answered(char kind, answer how = answer::forward) {
        return {kind, how, 0, failure::none, nullptr, nullptr};
    }

    // A ring buffer: pipelines of any length without allocating once it has grown.
    class expectation_queue {
      public:
        [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
        [[nodiscard]] expectation& front() noexcept { return slots_[head_]; }
        [[nodiscard]] const expectation& front() const noexcept { return slots_[head_]; }
        [[nodiscard]] std::size_t size() const noexcept { return count_; }
        [[nodiscard]] expectation& at(std::size_t i) noexcept { return slots_[(head_ + i) & (slots_.size() - 1)]; }
        // Inline: several of each per transaction in extended mode.
        void push_back(expectation&& e) {
            if (count_ == slots_.size())
                grow();
            slots_[(head_ + count_) & (slots_.size() - 1)] = std::move(e);
            ++count_;
        }
        void pop_front() noexcept {
            auto& e = slots_[head_];
            e.client.reset();
            e.server.reset();
            head_ = (head_ + 1) & (slots_.size() - 1);
            --count_;
        }
        void clear() noexcept;

      private:
        void grow();
        std::vector<expectation> slots_;  // size is a power of two
        std::size_t head_ = 0;
        std::size_t count_ = 0;
    };

    void push(expectation e);
    void undo(const expectation& e) noexcept;
    // The message at the head failed: the server discards everything up to the next Sync. Undoes the effects of those
    // messages newest first (a Close after a Parse of the same name must be undone before the Parse).
    void fail_to_sync() noexcept;
    // Sends the statement's Close/LRU evictions so that it can be prepared on the server.
    void make_room(const std::shared_ptr<const prepared_statement>& s, std::string& out);
    // Prepares the client's statement on the server if it does not have it (Sluice's own Parse).
    void ensure_prepared(const std::shared_ptr<client_statement>& cs, std::string& out);
    void refuse_parse(failure why, std::string& out);
    // Makes the server able to run `DEALLOCATE name` for the client's statement `name`: a statement of that very
    // name for the server to drop (the client's own lives on servers under Sluice's name).
    void prepare_deallocate_target(std::string_view name, std::string& out);
    void write_failure(const expectation& e, std::string& out) const;

    statement_registry* registry_;
    server_statement_cache* cache_ = nullptr;
    statement_limits limits_;
    client_statement_map statements_;
    expectation_queue queue_;
    bool skipping_to_sync_ = false;  // the server reported an error and no Sync has been sent since
    protocol::transaction_status last_status_ = protocol::transaction_status::idle;
    std::shared_ptr<const prepared_statement> last_bound_;  // the statement of the latest Bind (for Execute errors)
    std::string unnamed_deallocates_;                       // the unnamed statement is `DEALLOCATE name`: that name
    std::shared_ptr<client_statement> bound_deallocate_;    // the latest Bind runs DEALLOCATE of this client statement
    bool deallocate_target_on_server_ = false;  // Sluice created a statement under a client's name on the server
    bool holding_ = false;
    std::shared_ptr<client_statement> result_changed_;  // the check found another result: fail the held Bind
    counters counters_;
};

// If `query` is exactly `DEALLOCATE [PREPARE] name` (one statement), the name as PostgreSQL resolves it (unquoted
// identifiers fold to lower case); empty otherwise, and for DEALLOCATE ALL.
[[nodiscard]] std::string parse_deallocate(std::string_view query);

}  // namespace sluice::session
