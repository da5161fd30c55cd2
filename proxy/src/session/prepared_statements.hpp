#pragma once
// Named prepared statements under transaction pooling (docs/design/prepared-statements.md).
//
// A client prepares `Parse("s1", text, types)` once and uses "s1" in later transactions, which may run on any server.
// Sluice keeps three things:
//   - statement_registry (process-wide): interns (text, parameter types) into one immutable prepared_statement with a
//     server-side name "sluice_<id>". Keys compare the whole text and types; the hash only picks the bucket.
//   - client_statement_map (per client): the client's names -> interned statements.
//   - server_statement_cache (per server connection): which statements that server has prepared, LRU-bounded by
//     max_prepared_statements; eviction closes the statement on that server.
// statement_relay (statement_relay.hpp) rewrites the message stream using them. No I/O here.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::session {

struct prepared_statement {
    std::uint64_t id = 0;
    std::string query;
    std::string parameter_types;  // the Parse body after the query: Int16 count, then Int32 OIDs (wire bytes)
    std::string server_name;      // "sluice_<id>"
    std::size_t bytes = 0;        // memory counted against the limits
    // A server reported that its plan's result type changed ("cached plan must not change result type"): clients
    // preparing the text again get a new statement, so that no server keeps answering with the old plan.
    mutable std::atomic<bool> retired{false};
    // Some server accepted a Parse of it: a client's Parse of the same text can be answered without a server.
    mutable std::atomic<bool> validated{false};
};

// Server-side names all start with this; no two statements ever share an id, even after one is freed.
inline constexpr std::string_view server_statement_prefix = "sluice_";

class statement_registry {
  public:
    explicit statement_registry(std::size_t max_bytes = SIZE_MAX);

    // The one statement for (query, parameter_types), created if needed; nullptr when creating it would exceed the
    // registry's byte limit. Thread-safe.
    [[nodiscard]] std::shared_ptr<const prepared_statement> intern(std::string_view query,
                                                                   std::string_view parameter_types);

    void set_max_bytes(std::size_t max_bytes) noexcept { max_bytes_.store(max_bytes, std::memory_order_relaxed); }
    [[nodiscard]] std::size_t max_bytes() const noexcept { return max_bytes_.load(std::memory_order_relaxed); }
    // Statements alive (held by some client or server) and their bytes.
    [[nodiscard]] std::size_t live_bytes() const noexcept { return state_->bytes.load(std::memory_order_relaxed); }
    [[nodiscard]] std::size_t live_count() const noexcept { return state_->count.load(std::memory_order_relaxed); }

  private:
    struct accounting {
        std::atomic<std::size_t> bytes{0};
        std::atomic<std::size_t> count{0};
    };
    void sweep_expired();

    std::shared_ptr<accounting> state_;  // shared with each statement's deleter, which may outlive the registry
    std::atomic<std::size_t> max_bytes_;
    std::mutex mutex_;
    std::unordered_multimap<std::size_t, std::weak_ptr<const prepared_statement>> by_hash_;
    std::uint64_t next_id_ = 1;
    std::size_t sweep_at_ = 1024;
};

// One of a client's names for a statement.
struct client_statement {
    std::string name;
    std::shared_ptr<const prepared_statement> statement;
    // A hash of the result description (RowDescription or NoData) the client was given by its Describe of the
    // statement; 0 before that. A server preparing it afresh must give the same, or the client's rows would not match.
    std::uint64_t shape = 0;
    // For `DEALLOCATE name` statements: the client statement name they drop.
    std::string deallocates;
    [[nodiscard]] std::size_t bytes() const noexcept { return name.size() + statement->bytes; }
};

class client_statement_map {
  public:
    [[nodiscard]] const std::shared_ptr<client_statement>* find(std::string_view name) const noexcept {
        const auto it = by_name_.find(name);
        return it == by_name_.end() ? nullptr : &it->second;
    }
    void insert(std::shared_ptr<client_statement> s);
    // Removes `name` only if it still maps to `s` (a later Parse of the same name wins).
    void erase_if_same(const std::shared_ptr<client_statement>& s) noexcept;
    void erase(std::string_view name) noexcept;
    void clear() noexcept {
        by_name_.clear();
        bytes_ = 0;
    }
    [[nodiscard]] bool empty() const noexcept { return by_name_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return by_name_.size(); }
    [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

  private:
    // Keys view the value's own name, so lookups by string_view allocate nothing.
    std::unordered_map<std::string_view, std::shared_ptr<client_statement>> by_name_;
    std::size_t bytes_ = 0;
};

class server_statement_cache {
  public:
    struct entry {
        std::shared_ptr<const prepared_statement> statement;
        bool stale = false;       // "cached plan must not change result type": close and prepare again before use
        std::uint64_t shape = 0;  // the result this server's copy describes (client_statement::shape); 0: not seen
    };

    [[nodiscard]] entry* find(std::uint64_t id) noexcept {
        const auto it = index_.find(id);
        return it == index_.end() ? nullptr : &*it->second;
    }
    // Marks as most recently used.
    void touch(std::uint64_t id) noexcept;
    void insert(std::shared_ptr<const prepared_statement> s);
    void erase(std::uint64_t id) noexcept;
    // The least recently used statement (the eviction victim); nullptr when empty.
    [[nodiscard]] const std::shared_ptr<const prepared_statement>* least_recently_used() const noexcept {
        return lru_.empty() ? nullptr : &lru_.back().statement;
    }
    void clear() noexcept {
        lru_.clear();
        index_.clear();
        state_unknown = false;
    }
    [[nodiscard]] std::size_t size() const noexcept { return index_.size(); }

    // An injected Close may not have run (the server skipped it after an error): what the server holds is no longer
    // known exactly, so it must be cleared with DEALLOCATE ALL before the next client uses it.
    bool state_unknown = false;

  private:
    std::list<entry> lru_;  // front: most recently used
    std::unordered_map<std::uint64_t, std::list<entry>::iterator> index_;
};

}  // namespace sluice::session
