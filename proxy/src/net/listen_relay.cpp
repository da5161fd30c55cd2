#include "net/listen_relay.hpp"

#include <algorithm>

#include "net/client_connection.hpp"
#include "net/pool.hpp"
#include "net/runtime.hpp"
#include "net/server_connection.hpp"
#include "net/worker.hpp"
#include "sluice/protocol/error.hpp"
#include "sluice/protocol/message_types.hpp"
#include "sluice/protocol/reader.hpp"
#include "sluice/protocol/writer.hpp"
#include "util/log.hpp"

namespace sluice::net {

namespace {

// A channel as a quoted identifier, so that any name (case, spaces, quotes) reaches PostgreSQL unchanged.
void append_quoted_identifier(std::string& sql, std::string_view name) {
    sql.push_back('"');
    for (const char c : name) {
        if (c == '"')
            sql.push_back('"');
        sql.push_back(c);
    }
    sql.push_back('"');
}

}  // namespace

listen_relay::listen_relay(std::weak_ptr<pool> owner, worker& home) : pool_(std::move(owner)), home_(home) {}

bool listen_relay::set_channels(const std::shared_ptr<client_connection>& client, worker& client_worker,
                                const std::vector<std::string>& channels) {
    std::lock_guard lock(mutex_);
    if (stopped_)
        return true;
    for (auto& [name, entry] : channels_) {
        if (!std::binary_search(channels.begin(), channels.end(), name))
            std::erase_if(entry.subscribers, [&](const subscriber& s) { return s.id == client.get(); });
    }
    for (const auto& name : channels) {
        auto it = channels_.find(name);
        if (it == channels_.end())
            it = channels_.emplace(name, channel{}).first;
        it->second.anticipated_until = {};  // committed: the subscription keeps the channel from now on
        auto& subs = it->second.subscribers;
        if (std::none_of(subs.begin(), subs.end(), [&](const subscriber& s) { return s.id == client.get(); }))
            subs.push_back({client.get(), client, &client_worker});
    }
    schedule_sync();
    std::erase_if(waiters_, [&](const waiter& w) { return w.who.id == client.get(); });
    const bool confirmed = std::all_of(channels.begin(), channels.end(),
                                       [&](const std::string& name) { return channels_.find(name)->second.confirmed; });
    if (!confirmed)
        waiters_.push_back({{client.get(), client, &client_worker}, channels});
    return confirmed;
}

void listen_relay::confirm(const std::vector<std::string>& channels) {
    std::vector<subscriber> ready;
    {
        std::lock_guard lock(mutex_);
        for (const auto& name : channels) {
            if (const auto it = channels_.find(name); it != channels_.end())
                it->second.confirmed = true;
        }
        std::erase_if(waiters_, [&](waiter& w) {
            const bool done = std::all_of(w.channels.begin(), w.channels.end(), [&](const std::string& name) {
                const auto it = channels_.find(name);
                return it == channels_.end() || it->second.confirmed;  // gone: nothing left to wait for
            });
            if (done)
                ready.push_back(std::move(w.who));
            return done;
        });
    }
    for (auto& s : ready) {
        s.home->post([client = std::move(s.client)] {
            if (auto c = client.lock())
                c->on_listen_confirmed();
        });
    }
}

void listen_relay::anticipate(const std::vector<std::string>& channels) {
    std::lock_guard lock(mutex_);
    if (stopped_)
        return;
    const auto until = steady_clock::now() + anticipation;
    for (const auto& name : channels) {
        auto it = channels_.find(name);
        if (it == channels_.end())
            it = channels_.emplace(name, channel{}).first;
        it->second.anticipated_until = until;
    }
    schedule_sync();
}

void listen_relay::forget(const client_connection* client) {
    std::lock_guard lock(mutex_);
    for (auto& [name, entry] : channels_)
        std::erase_if(entry.subscribers, [&](const subscriber& s) { return s.id == client; });
    std::erase_if(waiters_, [&](const waiter& w) { return w.who.id == client; });
    schedule_sync();
}

void listen_relay::stop() {
    {
        std::lock_guard lock(mutex_);
        stopped_ = true;
        channels_.clear();
        waiters_.clear();
    }
    home_.post([self = shared_from_this()] {
        if (auto server = self->server_.lock()) {
            self->server_.reset();
            server->close_socket();
        }
    });
}

std::size_t listen_relay::channel_count() const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(channels_.begin(), channels_.end(),
                                                  [](const auto& entry) { return !entry.second.subscribers.empty(); }));
}

void listen_relay::schedule_sync() {
    // Under mutex_. One sync per burst of changes.
    if (sync_posted_ || stopped_)
        return;
    sync_posted_ = true;
    home_.post([self = shared_from_this()] { self->sync(); });
}

void listen_relay::sync() {
    {
        std::lock_guard lock(mutex_);
        sync_posted_ = false;
        if (stopped_)
            return;
    }
    // Decide nothing while a login or a write is in flight: it runs sync again when done, and until then what the
    // connection listens on (listening_) and the table must not drift apart.
    if (connecting_ || writing_)
        return;
    std::vector<std::string> wanted;
    {
        std::lock_guard lock(mutex_);
        const auto now = steady_clock::now();
        for (auto it = channels_.begin(); it != channels_.end();) {
            if (it->second.subscribers.empty() && it->second.anticipated_until <= now) {
                it = channels_.erase(it);
                continue;
            }
            wanted.push_back(it->first);
            ++it;
        }
    }
    auto server = server_.lock();
    if (!server) {
        if (wanted.empty())
            return;
        auto owner = pool_.lock();
        if (!owner)
            return;
        server = std::make_shared<server_connection>(owner, owner->shard(home_.index()), home_.rt().next_id());
        server_ = server;
        connecting_ = true;
        listening_.clear();
        in_flight_.clear();
        asio::co_spawn(home_.context(), run_connection(server), asio::detached);
        return;
    }
    if (wanted.empty()) {
        // No listener left: give the backend back rather than keep an idle connection.
        SLUICE_LOG(info, "LISTEN relay S-" << server->id() << ": no channel left, closing");
        server_.reset();
        listening_.clear();
        in_flight_.clear();
        server->close_socket();
        return;
    }
    std::string sql;
    std::vector<std::string> added;
    std::vector<std::string> removed;
    std::set_difference(wanted.begin(), wanted.end(), listening_.begin(), listening_.end(), std::back_inserter(added));
    std::set_difference(listening_.begin(), listening_.end(), wanted.begin(), wanted.end(),
                        std::back_inserter(removed));
    for (const auto& name : added) {
        sql.append("LISTEN ");
        append_quoted_identifier(sql, name);
        sql.push_back(';');
    }
    for (const auto& name : removed) {
        sql.append("UNLISTEN ");
        append_quoted_identifier(sql, name);
        sql.push_back(';');
    }
    if (sql.empty())
        return;
    listening_ = std::move(wanted);
    in_flight_.push_back(std::move(added));
    std::string query;
    protocol::write_query(query, sql);
    writing_ = true;
    asio::co_spawn(home_.context(), write(std::move(server), std::move(query)), asio::detached);
}

asio::awaitable<void> listen_relay::write(std::shared_ptr<server_connection> server, std::string query) {
    const auto self = shared_from_this();
    const bool written = co_await server->async_write_all(query);
    writing_ = false;
    if (written)
        sync();  // changes that came in meanwhile
    // A failed write: the read loop sees the connection fail and reports it.
}

asio::awaitable<void> listen_relay::run_connection(std::shared_ptr<server_connection> server) {
    const auto self = shared_from_this();
    const auto err = co_await server->async_connect_and_login();
    connecting_ = false;
    if (server_.lock() != server) {
        server->close_socket();  // stopped meanwhile
        co_return;
    }
    if (!err.ok()) {
        server_.reset();
        server->close_socket();
        connection_lost("LISTEN relay could not log into the server: " + err.message);
        co_return;
    }
    SLUICE_LOG(info, "LISTEN relay S-" << server->id() << " connected (backend pid " << server->backend_pid() << ")");
    sync();
    std::string message;
    for (;;) {
        char type = 0;
        if (!co_await server->async_read_message(type))
            break;
        const auto& body = server->message();
        if (type == protocol::to_char(protocol::backend::notification_response)) {
            protocol::message_reader r(body);
            (void)r.i32();  // the notifying backend's pid
            const auto channel_name = r.cstring();
            if (!r.ok())
                continue;
            message.clear();
            protocol::message_writer w(message, type);
            w.bytes(body);
            w.finish();
            deliver(channel_name, message);
        } else if (type == protocol::to_char(protocol::backend::ready_for_query)) {
            if (!in_flight_.empty()) {
                auto done = std::move(in_flight_.front());
                in_flight_.pop_front();
                confirm(done);
            }
        } else if (type == protocol::to_char(protocol::backend::error_response)) {
            const auto fields = protocol::parse_error_fields(body);
            SLUICE_LOG(warning, "LISTEN relay S-" << server->id() << ": " << fields.sqlstate << " " << fields.message);
        }
    }
    if (server_.lock() != server)
        co_return;  // closed on purpose (no channel left, or shutdown)
    server_.reset();
    server->close_socket();
    connection_lost("LISTEN relay lost its server connection");
}

void listen_relay::deliver(std::string_view channel_name, std::string_view message) {
    std::vector<subscriber> to;
    {
        std::lock_guard lock(mutex_);
        const auto it = channels_.find(channel_name);
        if (it == channels_.end() || it->second.subscribers.empty())
            return;
        to = it->second.subscribers;
    }
    auto bytes = std::make_shared<const std::string>(message);
    for (auto& s : to) {
        s.home->post([client = std::move(s.client), bytes] {
            if (auto c = client.lock())
                c->deliver_notification(*bytes);
        });
    }
}

void listen_relay::connection_lost(const std::string& why) {
    std::vector<subscriber> everyone;
    {
        std::lock_guard lock(mutex_);
        for (auto& [name, entry] : channels_) {
            for (auto& s : entry.subscribers) {
                if (std::none_of(everyone.begin(), everyone.end(), [&](const subscriber& e) { return e.id == s.id; }))
                    everyone.push_back(std::move(s));
            }
        }
        channels_.clear();
        waiters_.clear();
    }
    listening_.clear();
    in_flight_.clear();
    SLUICE_LOG(warning, why << "; disconnecting its " << everyone.size() << " listening client(s)");
    const std::string message = why + ": notifications may have been lost";
    for (auto& s : everyone) {
        s.home->post([client = std::move(s.client), message] {
            if (auto c = client.lock())
                c->kill(protocol::sqlstate::connection_failure, message);
        });
    }
}

}  // namespace sluice::net
