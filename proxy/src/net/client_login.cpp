// The login half of client_connection: startup packet, authentication, welcome.
#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <utility>

#include "admin/access.hpp"
#include "auth/md5.hpp"
#include "auth/random.hpp"
#include "auth/scram.hpp"
#include "net/client_connection.hpp"
#include "sluice/bridge/error.hpp"
#include "sluice/bridge/sync_to_async.hpp"
#include "sluice/bridge/thread_pool.hpp"
#include "sluice/protocol/error.hpp"
#include "sluice/protocol/frame.hpp"
#include "sluice/protocol/reader.hpp"
#include "sluice/protocol/startup.hpp"
#include "sluice/protocol/writer.hpp"
#include "util/log.hpp"

namespace sluice::net {

namespace {

// Authentication messages are small; a client sending more during login is not a PostgreSQL client.
constexpr std::size_t max_login_message = 16 * 1024;

std::string canonical_encoding(std::string_view value) {
    std::string lower;
    for (char c : value) {
        if (c != '-' && c != '_')
            lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    if (lower == "utf8" || lower == "unicode")
        return "UTF8";
    return std::string(value);
}

bool contains(const std::vector<std::string>& list, std::string_view name) {
    for (const auto& s : list) {
        if (s == name)
            return true;
    }
    return false;
}

}  // namespace

struct client_connection::login_state {
    // Login messages are small (a startup packet of ~100 bytes, SCRAM messages of ~60-110): one non-blocking read of
    // up to this much takes a whole message, or several pipelined ones, in one syscall where exact reads of header
    // and body took two plus an EAGAIN. A longer message is completed with an exact read into its destination.
    static constexpr std::size_t input_capacity = 1024;
    // The relay's receive buffer size (client_relay.cpp), for bytes a client pipelined after its login.
    static constexpr std::size_t relay_input_capacity = io_buffer::cached_capacity;

    steady_clock::time_point deadline{};                 // client_login_timeout
    std::optional<auth::scram_client_keys> client_keys;  // proven by the client's SCRAM login
    std::optional<auth::secret> looked_up_secret;        // the secret auth_query found for this user
    // AuthenticationOk (after SASLFinal) of a client login, sent with the welcome in one write.
    std::string reply;
    std::size_t begin = 0;  // input[begin, end) is read and not consumed yet
    std::size_t end = 0;
    std::array<char, input_capacity> input;

    [[nodiscard]] std::size_t buffered() const noexcept { return end - begin; }
};

const char* to_string(client_state s) noexcept {
    switch (s) {
        case client_state::login:
            return "login";
        case client_state::idle:
            return "idle";
        case client_state::waiting:
            return "waiting";
        case client_state::active:
            return "active";
        case client_state::closed:
            return "closed";
    }
    return "?";
}

client_connection::client_connection(worker& w, stream_socket socket, std::string peer)
    : worker_(w), id_(w.rt().next_id()), socket_(std::move(socket)), peer_(std::move(peer)) {
    rt().client_count.fetch_add(1, std::memory_order_relaxed);
}

client_connection::~client_connection() {
    rt().client_count.fetch_sub(1, std::memory_order_relaxed);
    // The registry holds a plain pointer to this client: it must not outlive it (close() normally removed it).
    if (cancel_registered_)
        rt().cancels().remove(*this);
    if (counted_in_pool_)
        pool_->remove_client();
    if (static_cast<worker_hook*>(this)->is_linked())
        worker_.clients().erase(worker_.clients().iterator_to(*this));
}

void client_connection::set_names(std::string_view database, std::string_view user) {
    names_.reserve(database.size() + user.size());
    names_.assign(database).append(user);
    database_length_ = static_cast<std::uint32_t>(database.size());
}

std::string client_connection::log_prefix() const {
    std::string s = "C-" + std::to_string(id_) + " ";
    s.append(database().empty() ? "(nodb)" : database()).append("/").append(user().empty() ? "(nouser)" : user());
    s.append("@").append(peer_);
    return s;
}

void client_connection::start() {
    worker_.clients().push_back(*this);
    config_ = rt().config();
    error_code ignored;
    socket_.non_blocking(true, ignored);
    login_ = std::make_unique<login_state>();
    login_->deadline = steady_clock::now() +
                       std::chrono::duration_cast<steady_clock::duration>(config_->settings.client_login_timeout);
    asio::co_spawn(worker_.context(), run_login(), [self = shared_from_this()](std::exception_ptr e) {
        if (!e)
            return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            SLUICE_LOG(error, self->log_prefix() << ": login failed with an internal error: " << ex.what());
        }
        self->close("internal error during login");
    });
}

void client_connection::tick(steady_clock::time_point now) {
    // The latest configuration, so that a RELOAD changes the timeouts of connected clients too.
    const auto& settings = worker_.tick_config().settings;
    auto expired = [&](std::chrono::microseconds limit, steady_clock::time_point since) {
        return limit.count() > 0 && now - since > std::chrono::duration_cast<steady_clock::duration>(limit);
    };
    switch (state_) {
        case client_state::login:
            // Once: the socket stays closed until the login coroutine ends.
            if (settings.client_login_timeout.count() > 0 && login_ && now > login_->deadline && socket_.is_open()) {
                SLUICE_LOG(warning, log_prefix() << ": client_login_timeout expired during login");
                rt().logins.count_login_timeout();
                // Ends the login coroutine: its pending read fails.
                error_code ignored;
                socket_.close(ignored);
            }
            break;
        case client_state::idle:
            if (rt().shutting_down.load(std::memory_order_relaxed)) {
                // SIGTERM drain: a client that finishes its transaction is told why, not left with a closed socket.
                shutdown_notice(true);
            } else if (expired(settings.client_idle_timeout, last_activity_)) {
                if (shard_)
                    shard_->counters.client_idle_timeouts.add();
                send_error_and_close(protocol::sqlstate::idle_session_timeout, "client_idle_timeout");
            } else if (relay_ && now - std::max(last_activity_, last_ready_) > relay_keep_while_idle) {
                // Kept between a busy client's transactions so that they allocate nothing; freed once it rests.
                release_relay_if_idle();
            }
            break;
        case client_state::active:
            if (relay().in_xact && expired(settings.transaction_timeout, relay().xact_start)) {
                // transaction_timeout (PgBouncer 1.25): the whole transaction, queries included, took too long. Like
                // PgBouncer the client is disconnected; close() rolls back an idle transaction and discards a server
                // that is mid-query. SQLSTATE 25P04 is PostgreSQL 17's own transaction_timeout code.
                if (shard_)
                    shard_->counters.transaction_timeouts.add();
                send_error_and_close(protocol::sqlstate::transaction_timeout, "transaction timeout");
            } else if (std::as_const(*this).tracker().awaiting_results()) {
                // query_timeout: cancel the query on the backend; the client gets the server's 57014 and keeps
                // its connection, and the server stays usable (PgBouncer closes both instead).
                if (expired(settings.query_timeout, relay().query_start) && !relay().query_timeout_cancel_sent) {
                    relay().query_timeout_cancel_sent = true;
                    if (shard_)
                        shard_->counters.query_timeouts.add();
                    SLUICE_LOG(warning, log_prefix() << ": query_timeout expired, cancelling the query");
                    forward_cancel();
                }
            } else if (std::as_const(*this).tracker().status() != protocol::transaction_status::idle &&
                       expired(settings.idle_transaction_timeout, last_ready_)) {
                if (shard_)
                    shard_->counters.idle_transaction_timeouts.add();
                send_error_and_close(protocol::sqlstate::idle_in_transaction_session_timeout,
                                     "idle transaction timeout");
            }
            break;
        default:
            break;
    }
}

void client_connection::shutdown_notice(bool idle_only) {
    if (state_ == client_state::closed || state_ == client_state::login)
        return;
    if (idle_only && (state_ != client_state::idle || !drain_done(steady_clock::now())))
        return;
    send_error_and_close(protocol::sqlstate::admin_shutdown, "pooler is shutting down");
}

asio::awaitable<bool> client_connection::write_all(std::string& bytes) {
    std::size_t done = 0;
    if (!tls_) {
        // A non-blocking write first: login messages are small and the socket's buffer is empty, so it takes them
        // whole, without the scheduler round trip (and epoll_wait) that completing an Asio operation costs.
        error_code ec;
        done = socket_.write_some(asio::buffer(bytes), ec);
        if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
            bytes.clear();
            co_return false;
        }
    }
    error_code ec;
    if (done < bytes.size())
        ec = co_await async_write_exact(socket_, tls_.get(), bytes.data() + done, bytes.size() - done);
    bytes.clear();
    co_return !ec;
}

asio::awaitable<bool> client_connection::login_fill() {
    auto& in = *login_;
    if (in.begin == in.end) {
        in.begin = in.end = 0;
    } else if (in.end == in.input.size()) {
        std::memmove(in.input.data(), in.input.data() + in.begin, in.buffered());
        in.end -= in.begin;
        in.begin = 0;
    }
    char* space = in.input.data() + in.end;
    const std::size_t size = in.input.size() - in.end;
    if (!tls_) {
        // Asio reads speculatively first (no wait when the bytes are already there), and after a read that drained
        // the socket it waits for the next edge instead of trying a read that would only say EAGAIN; neither touches
        // epoll_ctl.
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(space, size), use_nothrow);
        in.end += n;
        co_return !ec && n > 0;
    }
    for (;;) {
        error_code ec;
        const std::size_t n = tls_->read_some(space, size, ec);
        in.end += n;
        if (!ec && n > 0)
            co_return true;
        if (ec != asio::error::would_block)
            co_return false;
        const auto wait = tls_->read_wants_write() ? stream_socket::wait_write : stream_socket::wait_read;
        auto [wec] = co_await socket_.async_wait(wait, use_nothrow);
        if (wec)
            co_return false;
    }
}

asio::awaitable<bool> client_connection::login_need(std::size_t bytes) {
    // Precondition: bytes <= input_capacity (a header).
    while (login_->buffered() < bytes) {
        const bool more = co_await login_fill();
        if (!more)
            co_return false;
    }
    co_return true;
}

asio::awaitable<bool> client_connection::login_take(char* data, std::size_t size) {
    auto& in = *login_;
    const std::size_t have = std::min(size, in.buffered());
    std::memcpy(data, in.input.data() + in.begin, have);
    in.begin += have;
    if (have == size)
        co_return true;
    // Longer than what one read took: the rest straight into its destination, without staging.
    co_return !co_await async_read_exact(socket_, tls_.get(), data + have, size - have);
}

asio::awaitable<bool> client_connection::read_startup(std::string& packet) {
    if (!co_await login_need(4))
        co_return false;
    const auto length = protocol::load_u32(login_->input.data() + login_->begin);
    if (length < protocol::startup_header_size || length > protocol::max_startup_length) {
        co_await fail_login(protocol::sqlstate::protocol_violation, "invalid length of startup packet");
        co_return false;
    }
    packet.resize(length);
    co_return co_await login_take(packet.data(), length);
}

asio::awaitable<bool> client_connection::read_message(char& type, std::string& body, std::size_t max_length) {
    if (!co_await login_need(protocol::header_size))
        co_return false;
    const auto h = protocol::read_header({login_->input.data() + login_->begin, protocol::header_size},
                                         static_cast<std::uint32_t>(max_length));
    if (h.status != protocol::header_status::ok) {
        co_await fail_login(protocol::sqlstate::protocol_violation, "invalid message length during login");
        co_return false;
    }
    login_->begin += protocol::header_size;
    type = h.header.type;
    body.resize(h.header.body_size());
    co_return co_await login_take(body.data(), body.size());
}

asio::awaitable<void> client_connection::fail_login(std::string_view sqlstate, std::string_view message) {
    SLUICE_LOG(warning, log_prefix() << ": login failed: " << sqlstate << " " << message);
    if (sqlstate == protocol::sqlstate::too_many_connections) {
        rt().logins.count_max_client_conn_rejection();
    } else {
        rt().logins.count_login_failure();
    }
    std::string out;
    if (login_)
        out.swap(login_->reply);  // an AuthenticationOk held back for the welcome goes first, as it would have
    protocol::write_error(out, protocol::severity::fatal, sqlstate, message);
    co_await write_all(out);
    close(message);
}

asio::awaitable<void> client_connection::handle_cancel_request(std::uint32_t pid, std::uint32_t key) {
    // PostgreSQL closes a cancel connection without an answer, whatever happens.
    if (auto target = rt().cancels().find({pid, key})) {
        auto& target_worker = target->worker_;
        target_worker.post([target] { target->forward_cancel(); });
    } else {
        SLUICE_LOG(debug, log_prefix() << ": cancel request for an unknown key ignored");
    }
    close("cancel request handled");
    co_return;
}

asio::awaitable<bool> client_connection::start_tls(const tls_context& ctx) {
    // Bytes read ahead of the handshake would be plaintext injected into the TLS session (as in CVE-2021-23214):
    // PostgreSQL refuses them the same way.
    if (login_->buffered() != 0) {
        co_await fail_login(protocol::sqlstate::protocol_violation, "received unencrypted data after SSL request");
        co_return false;
    }
    std::string yes = "S";
    if (!co_await write_all(yes)) {
        close("client disconnected during negotiation");
        co_return false;
    }
    tls_ = std::make_unique<tls_stream>(ctx, socket_.native_handle());
    if (const auto ec = co_await async_tls_handshake(socket_, *tls_)) {
        SLUICE_LOG(warning, log_prefix() << ": TLS handshake failed: " << tls_->failure_reason(ec));
        close("TLS handshake failed");
        co_return false;
    }
    SLUICE_LOG(debug, log_prefix() << ": TLS established " << tls_->description() << " client certificate: "
                                   << (tls_->peer_subject().empty() ? "none" : tls_->peer_subject()));
    co_return true;
}

asio::awaitable<void> client_connection::run_login() {
    auto self = shared_from_this();
    std::string packet;
    protocol::startup_packet startup;
    // The TLS settings in force when the client connected; PgBouncer offers no TLS on Unix sockets.
    const auto tls_ctx = rt().client_tls();
    bool offer_tls = tls_ctx && tls_ctx->enabled();
    if (offer_tls) {  // getsockname only when it matters
        error_code family_ec;
        offer_tls = socket_.local_endpoint(family_ec).protocol().family() != AF_UNIX;
    }
    for (int negotiation = 0;; ++negotiation) {
        if (!co_await read_startup(packet)) {
            close("client disconnected during startup");
            co_return;
        }
        auto parsed = protocol::parse_startup_packet(packet);
        if (parsed.error == protocol::startup_error::unsupported_version) {
            {
                const std::string message_text = "unsupported frontend protocol " +
                                                 std::to_string(parsed.packet.major) + "." +
                                                 std::to_string(parsed.packet.minor) + ": server supports 3.0 to 3.0";
                co_await fail_login(protocol::sqlstate::feature_not_supported, message_text);
            };
            co_return;
        }
        if (parsed.error != protocol::startup_error::none) {
            {
                const std::string message_text = std::string(parsed.reason);
                co_await fail_login(protocol::sqlstate::protocol_violation, message_text);
            };
            co_return;
        }
        if (parsed.packet.kind == protocol::startup_kind::cancel_request) {
            co_await handle_cancel_request(parsed.packet.process_id, parsed.packet.secret_key);
            co_return;
        }
        if (parsed.packet.kind == protocol::startup_kind::ssl_request ||
            parsed.packet.kind == protocol::startup_kind::gssenc_request) {
            if (negotiation >= 2 || tls_) {
                co_await fail_login(protocol::sqlstate::protocol_violation, "repeated SSL/GSS negotiation");
                co_return;
            }
            if (parsed.packet.kind == protocol::startup_kind::ssl_request && offer_tls) {
                if (!co_await start_tls(*tls_ctx))
                    co_return;
                continue;
            }
            std::string no = "N";  // GSS encryption, or TLS off: the client continues in plaintext or gives up
            if (!co_await write_all(no)) {
                close("client disconnected during negotiation");
                co_return;
            }
            continue;
        }
        startup = std::move(parsed.packet);
        break;
    }
    // PgBouncer: with client_tls_sslmode require or stricter, TCP clients must use TLS (Unix sockets are exempt).
    if (!tls_ && offer_tls && tls_ctx->required()) {
        co_await fail_login(protocol::sqlstate::invalid_authorization_specification, "SSL required");
        co_return;
    }

    {
        const std::string_view user_name = *startup.parameter("user");
        const std::string_view database_name = startup.parameter("database").value_or(user_name);
        set_names(database_name.empty() ? user_name : database_name, user_name);
    }

    std::string out;
    if (startup.minor > 0 || !startup.protocol_options.empty()) {
        protocol::write_negotiate_protocol_version(out, 0, startup.protocol_options);
    }

    const auto& settings = config_->settings;
    if (rt().client_count.load(std::memory_order_relaxed) > settings.max_client_conn) {
        co_await fail_login(protocol::sqlstate::too_many_connections, "no more connections allowed (max_client_conn)");
        co_return;
    }

    for (const auto& [name, value] : startup.parameters) {
        if (name == "user" || name == "database")
            continue;
        if (name == "client_encoding") {
            parameters_.set(name, canonical_encoding(value));
        } else if (parameters_.set(name, value)) {
            // tracked: client_encoding, DateStyle, TimeZone, IntervalStyle, standard_conforming_strings,
            // application_name
        } else if (contains(settings.ignore_startup_parameters, name) || (name == "replication" && value == "false")) {
            // ignored as configured
        } else {
            {
                const std::string message_text = "unsupported startup parameter: " + name;
                co_await fail_login(protocol::sqlstate::protocol_violation, message_text);
            };
            co_return;
        }
    }

    // The console's names are reserved unless [databases] names one explicitly (the `*` fallback does not count).
    const bool explicit_entry = std::any_of(config_->databases.begin(), config_->databases.end(),
                                            [&](const auto& db) { return db.name == database(); });
    if (admin::is_console_database(database()) && !explicit_entry) {
        if (!out.empty() && !co_await write_all(out)) {
            close("client disconnected during login");
            co_return;
        }
        co_await run_admin_console();
        co_return;
    }
    auto entry = config::resolve_database(*config_, database());
    if (entry && rt().disabled(std::string(database()))) {
        {
            const std::string message_text =
                "database \"" + std::string(database()) + "\" does not allow connections (DISABLE)";
            co_await fail_login(protocol::sqlstate::cannot_connect_now, message_text);
        };
        co_return;
    }
    if (!entry) {
        {
            const std::string message_text = "no such database: " + std::string(database());
            co_await fail_login(protocol::sqlstate::invalid_catalog_name, message_text);
        };
        co_return;
    }

    if (!out.empty() && !co_await write_all(out)) {
        close("client disconnected during login");
        co_return;
    }
    if (!co_await authenticate(&*entry))
        co_return;

    pool_ = rt().get_pool(*entry, database(), user(), login_->looked_up_secret ? &*login_->looked_up_secret : nullptr);
    login_->looked_up_secret.reset();
    shard_ = &pool_->shard(worker_.index());
    {
        std::string refused;
        counted_in_pool_ = pool_->try_add_client(refused);
        if (!counted_in_pool_) {
            co_await fail_login(protocol::sqlstate::too_many_connections, refused);
            co_return;
        }
    }
    if (!login_->reply.empty() && !pool_->welcome()) {
        // The welcome waits for a first server login, which may take long: the client hears its login succeeded now.
        if (!co_await write_all(login_->reply)) {
            close("client disconnected during login");
            co_return;
        }
    }
    finish_login();
}

asio::awaitable<bool> client_connection::authenticate(const config::database_entry* db) {
    const auto creds = rt().credentials();
    auto found = creds ? creds->find(user()) : std::nullopt;
    const auto auth = config_->settings.auth_type;
    std::string out;
    std::string body;
    char type = 0;
    const std::string failure = "password authentication failed for user \"" + std::string(user()) + "\"";
    // A client login sends AuthenticationOk with the welcome (finish_login), one write for both; the admin console
    // writes its own welcome.
    const bool hold_ok = db != nullptr;

    if (auth == config::auth_type::trust || auth == config::auth_type::any) {
        protocol::write_authentication_ok(out);
        if (hold_ok) {
            login_->reply.swap(out);
            co_return true;
        }
        co_return co_await write_all(out);
    }

    // PgBouncer's cert: a TLS client certificate verified against client_tls_ca_file (verify-ca/verify-full) whose
    // CommonName is the user name; no password.
    if (auth == config::auth_type::cert) {
        const std::string common_name = tls_ ? tls_->verified_peer_common_name() : std::string();
        if (common_name.empty()) {
            co_await fail_login(protocol::sqlstate::invalid_authorization_specification,
                                "auth_type cert needs a TLS connection with a verified client certificate");
            co_return false;
        }
        if (common_name != user()) {
            const std::string message_text =
                "certificate authentication failed for user \"" + std::string(user()) + "\"";
            SLUICE_LOG(warning, log_prefix() << ": client certificate is for \"" << common_name << "\"");
            co_await fail_login(protocol::sqlstate::invalid_authorization_specification, message_text);
            co_return false;
        }
        protocol::write_authentication_ok(out);
        if (hold_ok) {
            login_->reply.swap(out);
            co_return true;
        }
        co_return co_await write_all(out);
    }

    // PgBouncer's auth_user: a user missing from auth_file is looked up with auth_query (off the event loop, cached).
    const bool needs_secret =
        auth == config::auth_type::scram_sha_256 || auth == config::auth_type::md5 || auth == config::auth_type::plain;
    if (!found && db && needs_secret) {
        const auto auth_user = db->auth_user ? db->auth_user : config_->settings.auth_user;
        const auto auth_user_cred = creds && auth_user ? creds->find(*auth_user) : std::nullopt;
        const auto plan = plan_auth_query(*config_, *db, auth_user_cred ? &auth_user_cred->stored : nullptr);
        if (!plan.error.empty()) {
            SLUICE_LOG(error, log_prefix() << ": auth_query is misconfigured: " << plan.error);
            co_await fail_login(protocol::sqlstate::invalid_authorization_specification, "auth_query is misconfigured");
            co_return false;
        }
        if (plan.target) {
            auto answer = co_await rt().auth_queries().async_lookup(*plan.target, std::string(user()));
            if (answer.error()) {
                SLUICE_LOG(warning, log_prefix() << ": auth_query failed: " << answer.detail);
                co_await fail_login(answer.sqlstate, answer.message);
                co_return false;
            }
            if (answer.found()) {
                login_->looked_up_secret = answer.stored;
                found = credential{std::move(answer.stored), std::move(answer.scram)};
            }
        }
    }

    const bool use_scram =
        auth == config::auth_type::scram_sha_256 ||
        (auth == config::auth_type::md5 && found && found->stored.type == auth::secret::kind::scram_sha_256);
    if (use_scram && found && found->needs_derivation()) {
        // A plaintext auth_file password, at this user's first SCRAM login: PBKDF2 (milliseconds of CPU) runs on a
        // bridge thread, once per user (the store caches it), while this worker serves its other connections.
        auto derive = [creds, user_name = std::string(user())] { return creds->derive(user_name); };
        bool refused = false;
        try {
            found = co_await bridge::sync_to_async(rt().auth_pool(), std::move(derive), bridge::any_thread);
        } catch (const bridge::bridge_error& e) {
            SLUICE_LOG(warning, log_prefix() << ": SCRAM key derivation did not run: " << e.code().message());
            refused = true;
        }
        if (refused || !found || found->needs_derivation()) {
            co_await fail_login(protocol::sqlstate::connection_failure, "too many logins waiting, try again");
            co_return false;
        }
    }
    if (use_scram) {
        auto fsm =
            found ? auth::scram_server_fsm(found->scram, user()) : auth::scram_server_fsm::for_unknown_user(user());
        protocol::write_authentication_sasl(out, {auth::scram_sha_256_mechanism});
        if (!co_await write_all(out))
            co_return false;
        if (!co_await read_message(type, body, max_login_message))
            co_return false;
        if (type != protocol::to_char(protocol::frontend::password)) {
            co_await fail_login(protocol::sqlstate::protocol_violation, "expected SASL response");
            co_return false;
        }
        protocol::message_reader r(body);
        const auto mechanism = r.cstring();
        const auto length = r.i32();
        const auto data = r.rest();
        if (!r.ok() || mechanism != auth::scram_sha_256_mechanism || length < 0 ||
            static_cast<std::size_t>(length) != data.size()) {
            co_await fail_login(protocol::sqlstate::protocol_violation, "malformed SASLInitialResponse");
            co_return false;
        }
        auto first = fsm.on_client_first({data.data(), data.size()});
        if (!first.ok()) {
            {
                const std::string message_text = std::string(first.reason);
                co_await fail_login(protocol::sqlstate::protocol_violation, message_text);
            };
            co_return false;
        }
        protocol::write_authentication_sasl_continue(out, first.message);
        if (!co_await write_all(out))
            co_return false;
        if (!co_await read_message(type, body, max_login_message))
            co_return false;
        if (type != protocol::to_char(protocol::frontend::password)) {
            co_await fail_login(protocol::sqlstate::protocol_violation, "expected SASL response");
            co_return false;
        }
        auto final_result = fsm.on_client_final(body);
        if (final_result.error == auth::scram_error::invalid_proof || !found) {
            co_await fail_login(protocol::sqlstate::invalid_password, failure);
            co_return false;
        }
        if (!final_result.ok()) {
            {
                const std::string message_text = std::string(final_result.reason);
                co_await fail_login(protocol::sqlstate::protocol_violation, message_text);
            };
            co_return false;
        }
        protocol::write_authentication_sasl_final(out, final_result.message);
        protocol::write_authentication_ok(out);
        login_->client_keys = fsm.client_keys();
        if (hold_ok) {
            login_->reply.swap(out);
            co_return true;
        }
        co_return co_await write_all(out);
    }

    if (auth == config::auth_type::md5) {
        auth::md5_salt salt;
        auth::fill_random(salt);
        protocol::write_authentication_md5(out, salt);
        if (!co_await write_all(out))
            co_return false;
        if (!co_await read_message(type, body, max_login_message))
            co_return false;
        protocol::message_reader r(body);
        const auto response = r.cstring();
        if (type != protocol::to_char(protocol::frontend::password) || !r.ok()) {
            co_await fail_login(protocol::sqlstate::protocol_violation, "expected password response");
            co_return false;
        }
        if (!found || !auth::md5_verify(found->stored, user(), salt, response)) {
            co_await fail_login(protocol::sqlstate::invalid_password, failure);
            co_return false;
        }
        protocol::write_authentication_ok(out);
        if (hold_ok) {
            login_->reply.swap(out);
            co_return true;
        }
        co_return co_await write_all(out);
    }

    if (auth == config::auth_type::plain) {
        protocol::write_authentication_cleartext(out);
        if (!co_await write_all(out))
            co_return false;
        if (!co_await read_message(type, body, max_login_message))
            co_return false;
        protocol::message_reader r(body);
        const auto password = r.cstring();
        if (type != protocol::to_char(protocol::frontend::password) || !r.ok()) {
            co_await fail_login(protocol::sqlstate::protocol_violation, "expected password response");
            co_return false;
        }
        if (!found || !auth::plain_verify(found->stored, user(), password)) {
            co_await fail_login(protocol::sqlstate::invalid_password, failure);
            co_return false;
        }
        protocol::write_authentication_ok(out);
        if (hold_ok) {
            login_->reply.swap(out);
            co_return true;
        }
        co_return co_await write_all(out);
    }

    co_await fail_login(protocol::sqlstate::feature_not_supported, "auth_type not supported by Sluice yet");
    co_return false;
}

void client_connection::finish_login() {
    if (login_->client_keys)
        pool_->remember_client_keys(*login_->client_keys);
    // AuthenticationOk held back, then the welcome: one write (start_relay's flush).
    if (!login_->reply.empty())
        down().queue_injected(login_->reply);
    if (login_->buffered() != 0) {
        // Messages the client pipelined after its login: where the relay reads them (start_relay looks there first).
        up().in.ensure_allocated(login_state::relay_input_capacity);
        std::memcpy(up().in.writable().data(), login_->input.data() + login_->begin, login_->buffered());
        up().in.commit(login_->buffered());
    }
    login_.reset();
    if (auto welcome = pool_->welcome()) {
        send_welcome(*welcome);
        start_relay();
        return;
    }
    // The first client of a pool: a server login tells what to show.
    welcome_pending_ = true;
    state_ = client_state::waiting;
    relay().wait_started = steady_clock::now();
    wait_notified_ = false;
    relay().keep_alive = shared_from_this();
    pool_->shard(worker_.index()).acquire(*this);
}

void client_connection::send_welcome(const std::vector<std::pair<std::string, std::string>>& server_parameters) {
    std::string out;
    for (const auto& [name, value] : server_parameters) {
        const auto index = session::tracked_parameter_index(name);
        if (!index) {
            protocol::write_parameter_status(out, name, value);  // the same for every client
        } else if (auto mine = parameters_.get(*index)) {
            const auto canonical = session::canonical_value(name, *mine, value);
            parameters_.set(*index, canonical);
            protocol::write_parameter_status(out, name, canonical);
        } else {
            // The client adopts the server default, so that later servers are synced to it.
            parameters_.set(*index, value);
            protocol::write_parameter_status(out, name, value);
        }
    }
    pool_->share_login_parameters(parameters_);
    rt().cancels().add(*this);
    cancel_registered_ = true;
    protocol::write_backend_key_data(out, cancel_key_.process_id, cancel_key_.secret_key);
    protocol::write_ready_for_query(out, protocol::transaction_status::idle);
    down().queue_injected(out);
    if (config_->settings.log_connections)
        SLUICE_LOG(info, log_prefix() << ": login ok" << (tls_ ? " (TLS " + tls_->description() + ")" : ""));
}

}  // namespace sluice::net

namespace sluice::net {

void client_connection::fill_snapshot(stats::connection_row& row) const {
    row.is_server = false;
    row.id = id_;
    row.user = user();
    row.database = database();
    switch (state_) {
        case client_state::login:
            row.state = "login";
            break;
        case client_state::waiting:
            row.state = "waiting";
            break;
        case client_state::active:
        case client_state::idle:
            row.state = "active";
            break;
        case client_state::closed:
            row.state = "closed";
            break;
    }
    const auto colon = peer_.rfind(':');
    if (colon != std::string::npos) {
        row.addr = peer_.substr(0, colon);
        row.port = std::atoi(peer_.c_str() + colon + 1);
    } else {
        row.addr = peer_;
    }
    const auto now = steady_clock::now();
    const auto wall_now = std::chrono::system_clock::now();
    auto to_unix_us = [&](steady_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::microseconds>((wall_now - (now - t)).time_since_epoch()).count();
    };
    row.connect_time_unix_us = to_unix_us(connect_time_);
    row.request_time_unix_us =
        request_time_ == steady_clock::time_point{} ? row.connect_time_unix_us : to_unix_us(request_time_);
    if (state_ == client_state::waiting) {
        row.wait_us = std::chrono::duration_cast<std::chrono::microseconds>(now - wait_started()).count();
    }
    if (server_)
        row.link_id = server_->id();
    row.remote_pid = cancel_key_.process_id;
    if (auto app = parameters_.get("application_name"))
        row.application_name = std::string(*app);
    row.worker = worker_.index();
    row.tls = tls_ != nullptr;
}

}  // namespace sluice::net
