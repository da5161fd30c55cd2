#pragma once
// LISTEN/NOTIFY under transaction pooling: a client that LISTENs keeps receiving its notifications while it holds no
// server, through one server connection per pool that Sluice keeps for the purpose.
//
// Flow: the client's LISTEN runs on whichever server it holds (so the client gets PostgreSQL's own answers, errors and
// transaction semantics), and that server is given `UNLISTEN *` before anyone else uses it. When the client sends a
// LISTEN, the relay is asked to anticipate() the channel, so that its own LISTEN is normally in place before the
// client's commits. At the client's ReadyForQuery 'I' its committed channels (session_state::channels()) are handed
// to set_channels(). The relay's connection LISTENs on the union of every subscriber's channels, and each
// NotificationResponse it reads is posted to the subscribers of its channel on their own workers
// (client_connection::deliver_notification). Notifications that reach a client's own server are dropped by the
// client's relay: this connection delivers every one of them, exactly once.
//
// The relay's connection lives on one worker (home) and is opened at first need and closed when no channel is left.
// It is not one of the pool's default_pool_size servers. If it fails (PostgreSQL restarts, the backend is
// terminated), every subscriber is told 08006 and disconnected, as a direct connection would be, since notifications
// may have been lost; their applications reconnect and LISTEN again.
//
// Threading: set_channels/anticipate/forget run on any worker and touch the subscriber table under a mutex, which is
// never held across I/O; everything about the connection runs on the home worker.

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "net/asio_fwd.hpp"

namespace sluice::net {

class client_connection;
class pool;
class server_connection;
class worker;

class listen_relay : public std::enable_shared_from_this<listen_relay> {
  public:
    // How long an anticipated channel is kept without a subscriber: covers the client's LISTEN round trip.
    static constexpr std::chrono::seconds anticipation{10};

    listen_relay(std::weak_ptr<pool> owner, worker& home);

    // `client` (living on `client_worker`) listens on exactly `channels` from now on (empty: on none). Any thread.
    // Returns true when the relay already listens on all of them; otherwise the client is called back with
    // client_connection::on_listen_confirmed() on its worker once it does (the client holds its ReadyForQuery until
    // then, so that nothing committed after the client saw its LISTEN commit can be missed).
    [[nodiscard]] bool set_channels(const std::shared_ptr<client_connection>& client, worker& client_worker,
                                    const std::vector<std::string>& channels);
    // A client sent LISTEN on `channels`: listen ahead of its commit. Any thread.
    void anticipate(const std::vector<std::string>& channels);
    // A client is gone. Any thread.
    void forget(const client_connection* client);
    // Closes the connection (shutdown). Any thread.
    void stop();

    // Channels with at least one subscriber. Any thread.
    [[nodiscard]] std::size_t channel_count() const;

  private:
    struct subscriber {
        const client_connection* id;
        std::weak_ptr<client_connection> client;
        worker* home;
    };
    struct channel {
        std::vector<subscriber> subscribers;
        steady_clock::time_point anticipated_until{};
        bool confirmed = false;  // the relay's LISTEN on it has completed
    };
    struct waiter {
        subscriber who;
        std::vector<std::string> channels;
    };

    void schedule_sync();
    // On home: connects when channels are wanted, sends LISTEN/UNLISTEN for the difference, or closes when none are.
    void sync();
    asio::awaitable<void> run_connection(std::shared_ptr<server_connection> server);
    asio::awaitable<void> write(std::shared_ptr<server_connection> server, std::string query);
    void deliver(std::string_view channel_name, std::string_view message);
    // The connection failed: every subscriber is told and disconnected.
    void connection_lost(const std::string& why);
    // The relay's query that LISTENed on `channels` completed: wake the clients waiting for them.
    void confirm(const std::vector<std::string>& channels);

    std::weak_ptr<pool> pool_;
    worker& home_;

    mutable std::mutex mutex_;  // guards channels_, sync_posted_, stopped_
    std::map<std::string, channel, std::less<>> channels_;
    std::vector<waiter> waiters_;
    bool sync_posted_ = false;
    bool stopped_ = false;

    // On home only.
    std::weak_ptr<server_connection> server_;
    bool connecting_ = false;
    bool writing_ = false;
    std::vector<std::string> listening_;  // sorted: what the connection was told to LISTEN on
    // Channels each query in flight LISTENs on, oldest first: its ReadyForQuery confirms them.
    std::deque<std::vector<std::string>> in_flight_;
};

}  // namespace sluice::net
