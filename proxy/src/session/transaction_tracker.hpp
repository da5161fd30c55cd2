#pragma once
// When may a server go back to the pool? Transaction pooling releases a server at ReadyForQuery with status 'I', but
// only when the client has nothing outstanding on it: every Query, Sync and FunctionCall it sent has had its
// ReadyForQuery, and no extended-protocol message (Parse/Bind/Describe/Execute/Close) was sent after the last Sync.
// A pipelined batch therefore stays on one server from its first message to its last ReadyForQuery
// (protocol-flow.html, "Pipelining").

#include <cstdint>

#include "sluice/protocol/message_types.hpp"

namespace sluice::session {

class transaction_tracker {
  public:
    // A client message has been (or starts being) forwarded to the server.
    void on_client_message(char type) noexcept {
        switch (type) {
            case 'Q':
            case 'F':
                ++pending_ready_;
                break;
            case 'S':
                ++pending_ready_;
                unsynced_ = false;
                break;
            case 'P':
            case 'B':
            case 'D':
            case 'E':
            case 'C':
                unsynced_ = true;
                break;
            default:
                break;
        }
    }
    // Messages Sluice injected itself and whose ReadyForQuery it will swallow count the same way.
    void on_injected_query() noexcept { ++pending_ready_; }

    void on_ready_for_query(protocol::transaction_status status) noexcept {
        if (pending_ready_ > 0)
            --pending_ready_;
        status_ = status;
    }

    // True when the server holds nothing for this client: safe to hand to another client in transaction mode.
    [[nodiscard]] bool idle() const noexcept {
        return pending_ready_ == 0 && !unsynced_ && status_ == protocol::transaction_status::idle;
    }
    [[nodiscard]] bool awaiting_results() const noexcept { return pending_ready_ > 0; }
    [[nodiscard]] bool unsynced() const noexcept { return unsynced_; }
    [[nodiscard]] protocol::transaction_status status() const noexcept { return status_; }
    [[nodiscard]] std::uint32_t pending_ready() const noexcept { return pending_ready_; }

    void reset() noexcept { *this = transaction_tracker{}; }

  private:
    std::uint32_t pending_ready_ = 0;
    bool unsynced_ = false;
    protocol::transaction_status status_ = protocol::transaction_status::idle;
};

}  // namespace sluice::session
