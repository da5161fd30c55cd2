#include "session/prepared_statements.hpp"

#include <functional>

namespace sluice::session {

namespace {

std::size_t key_hash(std::string_view query, std::string_view types) noexcept {
    const std::size_t h = std::hash<std::string_view>{}(query);
    return h ^ (std::hash<std::string_view>{}(types) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

}  // namespace

statement_registry::statement_registry(std::size_t max_bytes)
    : state_(std::make_shared<accounting>()), max_bytes_(max_bytes) {}

std::shared_ptr<const prepared_statement> statement_registry::intern(std::string_view query,
                                                                     std::string_view parameter_types) {
    const std::size_t hash = key_hash(query, parameter_types);
    std::lock_guard lock(mutex_);
    const auto [first, last] = by_hash_.equal_range(hash);
    for (auto it = first; it != last; ++it) {
        auto existing = it->second.lock();
        if (existing && !existing->retired.load(std::memory_order_relaxed) && existing->query == query &&
            existing->parameter_types == parameter_types)
            return existing;
    }
    const std::size_t bytes = sizeof(prepared_statement) + query.size() + parameter_types.size() + 32;
    if (state_->bytes.load(std::memory_order_relaxed) + bytes > max_bytes_.load(std::memory_order_relaxed))
        return nullptr;
    auto* raw = new prepared_statement;
    raw->id = next_id_++;
    raw->query.assign(query);
    raw->parameter_types.assign(parameter_types);
    raw->server_name.assign(server_statement_prefix).append(std::to_string(raw->id));
    raw->bytes = bytes;
    state_->bytes.fetch_add(bytes, std::memory_order_relaxed);
    state_->count.fetch_add(1, std::memory_order_relaxed);
    // The deleter only touches the shared accounting, so a statement may outlive the registry (a worker tearing down
    // after the runtime's registry is gone).
    std::shared_ptr<const prepared_statement> created(raw, [state = state_](const prepared_statement* p) {
        state->bytes.fetch_sub(p->bytes, std::memory_order_relaxed);
        state->count.fetch_sub(1, std::memory_order_relaxed);
        delete p;
    });
    by_hash_.emplace(hash, created);
    if (by_hash_.size() >= sweep_at_)
        sweep_expired();
    return created;
}

void statement_registry::sweep_expired() {
    for (auto it = by_hash_.begin(); it != by_hash_.end();) {
        if (it->second.expired()) {
            it = by_hash_.erase(it);
        } else {
            ++it;
        }
    }
    // Amortised: sweep again once the map has doubled over what is alive now.
    sweep_at_ = std::max<std::size_t>(1024, by_hash_.size() * 2);
}

void client_statement_map::insert(std::shared_ptr<client_statement> s) {
    erase(s->name);
    bytes_ += s->bytes();
    const std::string_view key = s->name;
    by_name_.emplace(key, std::move(s));
}

void client_statement_map::erase_if_same(const std::shared_ptr<client_statement>& s) noexcept {
    const auto it = by_name_.find(s->name);
    if (it != by_name_.end() && it->second == s) {
        bytes_ -= s->bytes();
        by_name_.erase(it);
    }
}

void client_statement_map::erase(std::string_view name) noexcept {
    const auto it = by_name_.find(name);
    if (it == by_name_.end())
        return;
    bytes_ -= it->second->bytes();
    by_name_.erase(it);
}

void server_statement_cache::touch(std::uint64_t id) noexcept {
    const auto it = index_.find(id);
    if (it != index_.end() && it->second != lru_.begin())
        lru_.splice(lru_.begin(), lru_, it->second);
}

void server_statement_cache::insert(std::shared_ptr<const prepared_statement> s) {
    const auto id = s->id;
    const auto it = index_.find(id);
    if (it != index_.end()) {
        it->second->stale = false;
        it->second->shape = 0;
        touch(id);
        return;
    }
    lru_.push_front(entry{std::move(s), false});
    index_.emplace(id, lru_.begin());
}

void server_statement_cache::erase(std::uint64_t id) noexcept {
    const auto it = index_.find(id);
    if (it == index_.end())
        return;
    lru_.erase(it->second);
    index_.erase(it);
}

}  // namespace sluice::session
