#include "session/statement_relay.hpp"

#include <algorithm>
#include <cctype>

#include "sluice/protocol/error.hpp"
#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/reader.hpp"
#include "sluice/protocol/writer.hpp"

namespace sluice::session {

namespace {

using protocol::transaction_status;

// The name of the Parse Sluice sends to re-run a client's Parse for its answer without touching the server's cached
// copy; closed first each time, so a server holds at most one.
constexpr std::string_view scratch_statement = "sluice_scratch";
// Sluice's Parse bound to fail: its name is never created (the text does not parse).
constexpr std::string_view failing_statement = "sluice_refused";
constexpr std::string_view failing_query = "sluice refused";

void append_header(std::string& out, char type, std::size_t length) {
    out.push_back(type);
    char b[4];
    protocol::store_u32(b, static_cast<std::uint32_t>(length));
    out.append(b, 4);
}

void append_cstring(std::string& out, std::string_view s) {
    out.append(s);
    out.push_back('\0');
}

void append_close_statement(std::string& out, std::string_view name) {
    append_header(out, 'C', 4 + 1 + name.size() + 1);
    out.push_back('S');
    append_cstring(out, name);
}

void append_parse(std::string& out, std::string_view name, std::string_view query, std::string_view types) {
    append_header(out, 'P', 4 + name.size() + 1 + query.size() + 1 + types.size());
    append_cstring(out, name);
    append_cstring(out, query);
    out.append(types);
}

// Copies an ErrorResponse body, replacing "server_name" (with its quotes) by "client_name" in every field: the
// client must see its own statement name, as PostgreSQL would report it. False when the name does not occur.
bool rename_in_error(std::span<const char> body, std::string_view server_name, std::string_view client_name,
                     std::string& out) {
    const std::string_view text(body.data(), body.size());
    std::string quoted_server;
    quoted_server.reserve(server_name.size() + 2);
    quoted_server.append("\"").append(server_name).append("\"");
    if (text.find(quoted_server) == std::string_view::npos)
        return false;
    std::string renamed;
    renamed.reserve(text.size() + client_name.size());
    std::size_t pos = 0;
    for (;;) {
        const auto at = text.find(quoted_server, pos);
        if (at == std::string_view::npos) {
            renamed.append(text.substr(pos));
            break;
        }
        renamed.append(text.substr(pos, at - pos)).append("\"").append(client_name).append("\"");
        pos = at + quoted_server.size();
    }
    append_header(out, 'E', 4 + renamed.size());
    out.append(renamed);
    return true;
}

// What identifies a result description: FNV-1a over the RowDescription (or NoData) body; never 0.
std::uint64_t shape_of(char type, std::span<const char> body) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    auto mix = [&h](unsigned char c) {
        h ^= c;
        h *= 0x100000001b3ULL;
    };
    mix(static_cast<unsigned char>(type));
    for (const char c : body)
        mix(static_cast<unsigned char>(c));
    return h == 0 ? 1 : h;
}

// Cheap test before parse_deallocate: only texts starting with DEALLOCATE can be one.
bool may_be_deallocate(std::string_view query) noexcept {
    const auto start = query.find_first_not_of(" \t\r\n");
    return start != std::string_view::npos && (query[start] == 'd' || query[start] == 'D');
}

bool answered_by_ready_for_query(char kind) noexcept {
    return kind == 'S' || kind == 'Q' || kind == 'F';
}

// Whether a server message of `type` is the last answer to a client message of `kind` (errors aside).
bool completes(char type, char kind) noexcept {
    switch (type) {
        case '1':
            return kind == 'P';
        case '2':
            return kind == 'B';
        case '3':
            return kind == 'C';
        case 'T':
        case 'n':
            return kind == 'D';
        case 'C':
        case 'I':
        case 's':
            return kind == 'E';
        case 'Z':
            return answered_by_ready_for_query(kind);
        default:
            return false;
    }
}

bool is_identifier_start(char c) noexcept {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool is_identifier_char(char c) noexcept {
    return is_identifier_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}

void skip_space(std::string_view s, std::size_t& i) noexcept {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
        ++i;
}

// Matches a keyword (case-insensitively) followed by a non-identifier character.
bool match_keyword(std::string_view s, std::size_t& i, std::string_view keyword) noexcept {
    if (s.size() - i < keyword.size())
        return false;
    for (std::size_t k = 0; k < keyword.size(); ++k) {
        if (std::tolower(static_cast<unsigned char>(s[i + k])) != keyword[k])
            return false;
    }
    if (i + keyword.size() < s.size() && is_identifier_char(s[i + keyword.size()]))
        return false;
    i += keyword.size();
    return true;
}

}  // namespace

std::string parse_deallocate(std::string_view query) {
    std::size_t i = 0;
    skip_space(query, i);
    if (!match_keyword(query, i, "deallocate"))
        return {};
    skip_space(query, i);
    {
        std::size_t j = i;
        if (match_keyword(query, j, "prepare")) {
            skip_space(query, j);
            i = j;
        }
    }
    std::string name;
    if (i < query.size() && query[i] == '"') {
        for (++i;; ++i) {
            if (i >= query.size())
                return {};
            if (query[i] == '"') {
                if (i + 1 < query.size() && query[i + 1] == '"') {
                    name.push_back('"');
                    ++i;
                    continue;
                }
                ++i;
                break;
            }
            name.push_back(query[i]);
        }
        if (name.empty())
            return {};
    } else {
        if (i >= query.size() || !is_identifier_start(query[i]))
            return {};
        while (i < query.size() && is_identifier_char(query[i])) {
            name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(query[i]))));
            ++i;
        }
        if (name == "all")
            return {};
    }
    skip_space(query, i);
    if (i < query.size() && query[i] == ';') {
        ++i;
        skip_space(query, i);
    }
    return i == query.size() ? name : std::string{};
}

// --- expectation_queue ---

void statement_relay::expectation_queue::grow() {
    std::vector<expectation> bigger(std::max<std::size_t>(16, slots_.size() * 2));
    for (std::size_t i = 0; i < count_; ++i)
        bigger[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
    slots_ = std::move(bigger);
    head_ = 0;
}

void statement_relay::expectation_queue::clear() noexcept {
    while (count_ > 0)
        pop_front();
    head_ = 0;
}

// --- statement_relay ---

void statement_relay::attach(server_statement_cache& cache, const statement_limits& limits) noexcept {
    cache_ = &cache;
    limits_ = limits;
    limits_.max_server_statements = std::max<std::size_t>(1, limits_.max_server_statements);
    queue_.clear();
    skipping_to_sync_ = false;
    last_status_ = transaction_status::idle;
    last_bound_.reset();
    unnamed_deallocates_.clear();
    bound_deallocate_.reset();
    deallocate_target_on_server_ = false;
    holding_ = false;
    result_changed_.reset();
}

void statement_relay::detach() noexcept {
    queue_.clear();
    if (deallocate_target_on_server_ && cache_) {
        // A statement under a client's name may still be there (its DEALLOCATE did not run): clear before reuse.
        cache_->state_unknown = true;
    }
    deallocate_target_on_server_ = false;
    holding_ = false;
    result_changed_.reset();
    bound_deallocate_.reset();
    cache_ = nullptr;
    skipping_to_sync_ = false;
    last_bound_.reset();
}

bool statement_relay::head_complete(std::span<const char> available) noexcept {
    if (available.size() < protocol::header_size)
        return false;
    const std::size_t total = std::size_t{protocol::load_u32(available.data() + 1)} + 1;
    if (available.size() >= total)
        return true;
    const auto body = available.subspan(protocol::header_size);
    switch (available[0]) {
        case 'P':
            return !body.empty() && body[0] == '\0';  // unnamed: passes untouched, may stream
        case 'B': {
            protocol::message_reader r(body);
            (void)r.cstring();
            (void)r.cstring();
            return r.ok();
        }
        case 'D':
        case 'C':
            return false;
        default:
            return true;
    }
}

void statement_relay::push(expectation e) {
    if (skipping_to_sync_) {
        if (e.kind != 'S') {
            // The server discards everything up to the next Sync: this message will have no answer and no effect.
            undo(e);
            return;
        }
        skipping_to_sync_ = false;
    }
    queue_.push_back(std::move(e));
}

void statement_relay::undo(const expectation& e) noexcept {
    if ((e.undo & undo_client_parse) && e.client)
        statements_.erase_if_same(e.client);
    if ((e.undo & undo_server_parse) && e.server && cache_)
        cache_->erase(e.server->id);
    if ((e.undo & undo_client_close) && e.client && !statements_.find(e.client->name))
        statements_.insert(e.client);
    if ((e.undo & unknown_if_undone) && cache_)
        cache_->state_unknown = true;
    if (e.undo & verify_shape)
        holding_ = false;  // the check was skipped: the held Bind goes on (and is skipped too)
}

void statement_relay::fail_to_sync() noexcept {
    std::size_t skipped = 1;  // the failed message itself
    while (skipped < queue_.size() && queue_.at(skipped).kind != 'S')
        ++skipped;
    for (std::size_t i = skipped; i-- > 0;)
        undo(queue_.at(i));
    for (std::size_t i = 0; i < skipped; ++i)
        queue_.pop_front();
    if (queue_.empty())
        skipping_to_sync_ = true;
}

void statement_relay::make_room(const std::shared_ptr<const prepared_statement>& s, std::string& out) {
    if (const auto* e = cache_->find(s->id); e && e->stale) {
        append_close_statement(out, s->server_name);
        push({'C', answer::swallow, unknown_if_undone, failure::none, nullptr, s});
        cache_->erase(s->id);
    }
    while (cache_->size() >= limits_.max_server_statements) {
        const auto victim = *cache_->least_recently_used();
        append_close_statement(out, victim->server_name);
        push({'C', answer::swallow, unknown_if_undone, failure::none, nullptr, victim});
        cache_->erase(victim->id);
    }
}

void statement_relay::ensure_prepared(const std::shared_ptr<client_statement>& cs, std::string& out) {
    const auto& s = cs->statement;
    if (const auto* e = cache_->find(s->id); e && !e->stale) {
        cache_->touch(s->id);
        return;
    }
    make_room(s, out);
    append_parse(out, s->server_name, s->query, s->parameter_types);
    cache_->insert(s);
    ++counters_.server_parses;
    push({'P', answer::swallow, undo_server_parse, failure::none, cs, s});
}

void statement_relay::refuse_parse(failure why, std::string& out) {
    if (why == failure::client_limit || why == failure::global_limit)
        ++counters_.rejections;
    append_parse(out, failing_statement, failing_query, std::string_view("\0\0", 2));
    push({'P', answer::fail, 0, why, nullptr, nullptr});
}

void statement_relay::prepare_deallocate_target(std::string_view name, std::string& out) {
    append_close_statement(out, name);
    push(answered('C', answer::swallow));
    append_parse(out, name, "SELECT 1", std::string_view("\0\0", 2));
    push(answered('P', answer::swallow));
    deallocate_target_on_server_ = true;
}

void statement_relay::write_failure(const expectation& e, std::string& out) const {
    switch (e.why) {
        case failure::duplicate_name: {
            std::string text = "prepared statement \"";
            text.append(e.client ? e.client->name : std::string{}).append("\" already exists");
            protocol::write_error(out, protocol::severity::error, protocol::sqlstate::duplicate_prepared_statement,
                                  text);
            break;
        }
        case failure::result_changed: {
            // As PostgreSQL reports it, routine included: drivers (asyncpg) recognise a stale statement by it and
            // prepare it again.
            protocol::message_writer w(out, 'E');
            w.u8('S').cstring("ERROR").u8('V').cstring("ERROR").u8('C').cstring(
                protocol::sqlstate::feature_not_supported);
            w.u8('M').cstring("cached plan must not change result type");
            w.u8('F').cstring("plancache.c").u8('R').cstring("RevalidateCachedQuery").u8(0);
            w.finish();
            break;
        }
        case failure::client_limit:
            protocol::write_error(out, protocol::severity::error, protocol::sqlstate::program_limit_exceeded,
                                  "too much prepared statement text for one client",
                                  "The pooler's max_prepared_statement_bytes_per_client is " +
                                      std::to_string(limits_.max_client_bytes) + " bytes.",
                                  "Close (deallocate) statements that are no longer used.");
            break;
        case failure::global_limit:
            protocol::write_error(
                out, protocol::severity::error, protocol::sqlstate::program_limit_exceeded,
                "too much prepared statement text in the pooler",
                "The pooler's max_prepared_statement_bytes is " + std::to_string(registry_->max_bytes()) + " bytes.");
            break;
        case failure::none:
            break;
    }
}

bool statement_relay::prepare_without_server(std::span<const char> parse_message, const statement_limits& limits) {
    limits_ = limits;
    protocol::message_reader r(parse_message.subspan(protocol::header_size));
    const auto name = r.cstring();
    const auto query = r.cstring();
    if (!r.ok() || name.empty() || statements_.find(name) != nullptr || may_be_deallocate(query))
        return false;
    const auto types_span = parse_message.subspan(protocol::header_size + r.position());
    const std::string_view types(types_span.data(), types_span.size());
    if (statements_.bytes() + name.size() + query.size() + types.size() > limits_.max_client_bytes)
        return false;
    auto statement = registry_->intern(query, types);
    if (!statement || !statement->validated.load(std::memory_order_relaxed))
        return false;
    auto cs = std::make_shared<client_statement>();
    cs->name.assign(name);
    cs->statement = std::move(statement);
    statements_.insert(std::move(cs));
    return true;
}

std::size_t statement_relay::on_client_message(std::span<const char> message, bool whole, std::string& out) {
    if (holding_)
        return hold;
    const char type = message[0];
    const auto body = message.subspan(protocol::header_size);
    switch (type) {
        case 'P': {
            protocol::message_reader r(body);
            const auto name = r.cstring();
            if (!r.ok() || name.empty() || !whole) {
                if (r.ok() && name.empty()) {
                    // The unnamed statement: passes untouched, but `DEALLOCATE name` in it needs Sluice's help.
                    unnamed_deallocates_.clear();
                    const auto query = whole ? r.cstring() : std::string_view{};
                    if (r.ok() && may_be_deallocate(query))
                        unnamed_deallocates_ = parse_deallocate(query);
                }
                push(answered('P'));
                return 0;
            }
            const auto query = r.cstring();
            if (!r.ok()) {
                push(answered('P'));  // malformed: the server will say so
                return 0;
            }
            const auto types_span = body.subspan(r.position());
            const std::string_view types(types_span.data(), types_span.size());
            if (const auto* existing = statements_.find(name)) {
                // PostgreSQL parses the text (syntax errors first, then 25P02 in an aborted transaction), analyses
                // it, then finds the name taken (42P05). The server answers the same questions in the same order.
                const auto cs = *existing;
                const auto& s = cs->statement;
                ++counters_.server_parses;
                if (const auto* cached = cache_->find(s->id); cached && !cached->stale) {
                    // Under the name the statement has there: 42P05 comes back renamed to the client's name.
                    cache_->touch(s->id);
                    append_header(out, 'P', 4 + s->server_name.size() + 1 + body.size() - name.size() - 1);
                    append_cstring(out, s->server_name);
                    push({'P', answer::forward, 0, failure::none, cs, s});
                    return protocol::header_size + name.size() + 1;
                }
                // The server lacks it: parse under the scratch name, and if that succeeds fail with 42P05.
                append_close_statement(out, scratch_statement);
                push(answered('C', answer::swallow));
                const auto rest = body.subspan(name.size() + 1);
                append_header(out, 'P', 4 + scratch_statement.size() + 1 + rest.size());
                append_cstring(out, scratch_statement);
                out.append(rest.data(), rest.size());
                push(answered('P', answer::swallow));
                append_parse(out, failing_statement, failing_query, std::string_view("\0\0", 2));
                push({'P', answer::fail, 0, failure::duplicate_name, cs, nullptr});
                return message.size();
            }
            if (statements_.bytes() + name.size() + query.size() + types.size() > limits_.max_client_bytes) {
                refuse_parse(failure::client_limit, out);
                return message.size();
            }
            auto statement = registry_->intern(query, types);
            if (!statement) {
                refuse_parse(failure::global_limit, out);
                return message.size();
            }
            auto cs = std::make_shared<client_statement>();
            cs->name.assign(name);
            cs->statement = std::move(statement);
            if (may_be_deallocate(query))
                cs->deallocates = parse_deallocate(query);
            statements_.insert(cs);
            const auto& s = cs->statement;
            const auto* cached = cache_->find(s->id);
            if (cached && !cached->stale) {
                cache_->touch(s->id);
                if (queue_.empty() && !skipping_to_sync_ && last_status_ != transaction_status::failed) {
                    // The server has it and nothing can fail before it: answer without a round trip.
                    push({'P', answer::parse_complete, undo_client_parse, failure::none, std::move(cs), nullptr});
                    return message.size();
                }
                // An error or an aborted transaction may be ahead, which PostgreSQL would report for this Parse:
                // let the server parse it under a scratch name for an answer that is right either way.
                append_close_statement(out, scratch_statement);
                push(answered('C', answer::swallow));
                append_header(out, 'P', 4 + scratch_statement.size() + 1 + body.size() - name.size() - 1);
                append_cstring(out, scratch_statement);
                ++counters_.server_parses;
                push({'P', answer::forward, undo_client_parse, failure::none, std::move(cs), nullptr});
                return protocol::header_size + name.size() + 1;
            }
            make_room(s, out);
            append_header(out, 'P', 4 + s->server_name.size() + 1 + body.size() - name.size() - 1);
            append_cstring(out, s->server_name);
            cache_->insert(s);
            ++counters_.server_parses;
            auto server = s;
            push({'P', answer::forward, undo_client_parse | undo_server_parse, failure::none, std::move(cs),
                  std::move(server)});
            return protocol::header_size + name.size() + 1;
        }
        case 'B': {
            protocol::message_reader r(body);
            const auto portal = r.cstring();
            const auto name = r.cstring();
            const auto* found = (r.ok() && !name.empty()) ? statements_.find(name) : nullptr;
            // `DEALLOCATE x` of a client statement x: the server must have a statement named x to drop.
            const std::string_view deallocates =
                found ? std::string_view((*found)->deallocates)
                      : (r.ok() && name.empty() ? std::string_view(unnamed_deallocates_) : std::string_view{});
            bound_deallocate_.reset();
            if (!deallocates.empty()) {
                if (const auto* target = statements_.find(deallocates)) {
                    bound_deallocate_ = *target;
                    prepare_deallocate_target(deallocates, out);
                }
            }
            if (!found) {
                // Unnamed, or unknown to this client: the server answers (26000 for an unknown name, as PostgreSQL).
                last_bound_.reset();
                push(answered('B'));
                return 0;
            }
            const auto cs = *found;
            if (result_changed_ == cs) {
                // The server's fresh copy describes another result than the client was told: PostgreSQL would
                // refuse the Bind (0A000), and so does the server, through a Parse bound to fail.
                result_changed_.reset();
                refuse_parse(failure::result_changed, out);
                last_bound_.reset();
                return message.size();
            }
            if (whole && cs->shape != 0 && deallocates.empty()) {
                const auto* cached = cache_->find(cs->statement->id);
                if (cached && !cached->stale && cached->shape != 0 && cached->shape != cs->shape) {
                    // This server's copy was prepared after a table changed: PostgreSQL would refuse the Bind.
                    refuse_parse(failure::result_changed, out);
                    last_bound_.reset();
                    return message.size();
                }
                if (!cached || cached->stale || cached->shape == 0) {
                    // This server's copy (prepared afresh if need be) may describe another result than the client
                    // was told (a table changed since): check before the Bind goes out.
                    ensure_prepared(cs, out);
                    const auto& s = cs->statement;
                    append_header(out, 'D', 4 + 1 + s->server_name.size() + 1);
                    out.push_back('S');
                    append_cstring(out, s->server_name);
                    append_header(out, 'H', 4);
                    push({'D', answer::swallow, verify_shape, failure::none, cs, s});
                    holding_ = !skipping_to_sync_;
                    if (holding_)
                        return hold;
                }
            }
            ensure_prepared(cs, out);
            const auto& s = cs->statement;
            const std::size_t old_length = protocol::load_u32(message.data() + 1);
            append_header(out, 'B', old_length - name.size() + s->server_name.size());
            append_cstring(out, portal);
            append_cstring(out, s->server_name);
            last_bound_ = s;
            push({'B', answer::forward, 0, failure::none, cs, s});
            return protocol::header_size + portal.size() + 1 + name.size() + 1;
        }
        case 'D': {
            protocol::message_reader r(body);
            const auto target = r.u8();
            const auto name = r.cstring();
            const auto* found = (r.ok() && target == 'S' && !name.empty()) ? statements_.find(name) : nullptr;
            if (!found) {
                push(answered('D'));
                return 0;
            }
            const auto cs = *found;
            ensure_prepared(cs, out);
            const auto& s = cs->statement;
            append_header(out, 'D', 4 + 1 + s->server_name.size() + 1);
            out.push_back('S');
            append_cstring(out, s->server_name);
            push({'D', answer::forward, record_shape, failure::none, cs, s});
            return message.size();
        }
        case 'C': {
            protocol::message_reader r(body);
            const auto target = r.u8();
            const auto name = r.cstring();
            const auto* found = (r.ok() && target == 'S' && !name.empty()) ? statements_.find(name) : nullptr;
            if (!found) {
                push(answered('C'));  // portals, unknown names: the server answers (CloseComplete, as PostgreSQL)
                return 0;
            }
            // Only this client's name goes; the server's copy stays for others until the LRU closes it.
            auto cs = *found;
            statements_.erase_if_same(cs);
            push({'C', answer::close_complete, undo_client_close, failure::none, std::move(cs), nullptr});
            return message.size();
        }
        case 'E': {
            // DEALLOCATE of a client statement: gone for the messages that follow (put back if this one fails).
            auto deallocated = std::move(bound_deallocate_);
            std::uint8_t f = 0;
            if (deallocated) {
                statements_.erase_if_same(deallocated);
                f = deallocate_on_complete | undo_client_close;
            }
            push({'E', answer::forward, f, failure::none, std::move(deallocated), last_bound_});
            return 0;
        }
        case 'Q': {
            if (whole && !statements_.empty()) {
                protocol::message_reader r(body);
                const auto query = r.cstring();
                const auto name = r.ok() ? parse_deallocate(query) : std::string{};
                if (const auto* found = name.empty() ? nullptr : statements_.find(name)) {
                    push({'Q', answer::deallocate, 0, failure::none, *found, nullptr});
                    return message.size();
                }
            }
            push(answered('Q'));
            return 0;
        }
        case 'S':
        case 'F':
            push(answered(type));
            return 0;
        default:
            return 0;  // Flush, CopyData/CopyDone/CopyFail: no answer of their own
    }
}

statement_relay::server_action statement_relay::on_server_message(char type, std::span<const char> body, bool whole,
                                                                  std::string& replacement) {
    switch (type) {
        case 'N':  // NoticeResponse, ParameterStatus, NotificationResponse: asynchronous
        case 'S':
        case 'A':
            return server_action::forward;
        case 'Z':
            if (whole && body.size() == 1)
                last_status_ = static_cast<transaction_status>(body[0]);
            break;
        case 'C':
            if (whole) {
                const std::string_view tag(body.data(), body.empty() ? 0 : body.size() - 1);
                if (tag == "DISCARD ALL" || tag == "DEALLOCATE ALL") {
                    // The server dropped every prepared statement, and PostgreSQL would have dropped the client's.
                    statements_.clear();
                    if (cache_)
                        cache_->clear();
                }
            }
            break;
        default:
            break;
    }
    if (queue_.empty() || queue_.front().synthetic())
        return server_action::forward;  // unsolicited (a FATAL error before closing), or a caller bug
    auto& head = queue_.front();
    if (type == 'E' && !answered_by_ready_for_query(head.kind)) {
        // The message failed: the server now discards everything up to Sync.
        auto action = server_action::forward;
        const auto fields = whole ? protocol::parse_error_fields(body) : protocol::error_fields{};
        if (head.how == answer::fail) {
            if (fields.sqlstate == protocol::sqlstate::syntax_error) {
                write_failure(head, replacement);
                action = server_action::replace;
            }
        } else {
            if (head.server && (head.kind == 'B' || head.kind == 'E') && fields.sqlstate == "0A000" &&
                fields.message.starts_with("cached plan must not change result type") && cache_) {
                if (auto* e = cache_->find(head.server->id))
                    e->stale = true;
                head.server->retired.store(true, std::memory_order_relaxed);
            }
            if (whole && head.server && head.client &&
                rename_in_error(body, head.server->server_name, head.client->name, replacement)) {
                action = server_action::replace;
            }
        }
        fail_to_sync();
        return action;
    }
    if (!completes(type, head.kind))
        return head.how == answer::swallow ? server_action::drop : server_action::forward;
    if (head.kind == 'D' && (head.undo & (record_shape | verify_shape)) && head.client && whole) {
        const auto shape = shape_of(type, body);
        if (head.server && cache_) {
            if (auto* e = cache_->find(head.server->id))
                e->shape = shape;
        }
        if (head.undo & record_shape) {
            head.client->shape = shape;
        } else {
            holding_ = false;
            if (shape != head.client->shape)
                result_changed_ = head.client;
        }
    }
    if (type == '1' && head.server)
        head.server->validated.store(true, std::memory_order_relaxed);
    if (head.kind == 'E' && (head.undo & deallocate_on_complete) && type == 'C')
        deallocate_target_on_server_ = false;
    const auto action = head.how == answer::swallow ? server_action::drop : server_action::forward;
    queue_.pop_front();
    return action;
}

std::uint32_t statement_relay::take_due(std::string& out) {
    std::uint32_t ready = 0;
    while (!queue_.empty() && queue_.front().synthetic()) {
        const auto& e = queue_.front();
        switch (e.how) {
            case answer::parse_complete:
                protocol::write_parse_complete(out);
                break;
            case answer::close_complete:
                protocol::write_close_complete(out);
                break;
            case answer::deallocate:
                if (last_status_ == transaction_status::failed) {
                    protocol::write_error(out, protocol::severity::error, "25P02",
                                          "current transaction is aborted, commands ignored until end of "
                                          "transaction block");
                } else {
                    statements_.erase_if_same(e.client);
                    protocol::write_command_complete(out, "DEALLOCATE");
                }
                protocol::write_ready_for_query(out, last_status_);
                ++ready;
                break;
            default:
                break;
        }
        queue_.pop_front();
    }
    return ready;
}

}  // namespace sluice::session
