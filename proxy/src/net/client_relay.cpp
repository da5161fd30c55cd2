// The relay half of client_connection: moving bytes between a client and its server once logged in.
#include <sys/socket.h>
#include <sys/uio.h>
#include <array>
#include <boost/asio/bind_allocator.hpp>
#include <cctype>
#include <cerrno>
#include <span>
#include <utility>

#include "net/client_connection.hpp"
#include "net/listen_relay.hpp"
#include "sluice/protocol/error.hpp"
#include "sluice/protocol/message_types.hpp"
#include "sluice/protocol/reader.hpp"
#include "sluice/protocol/writer.hpp"
#include "util/log.hpp"

namespace sluice::net {

namespace {

// Receive buffer per direction while a client is busy. Idle clients hold none.
constexpr std::size_t relay_buffer_size = io_buffer::cached_capacity;
// Messages Sluice must see whole (ReadyForQuery, ParameterStatus) are tiny; anything claiming more is broken.
constexpr std::size_t max_inspected_message = 1024 * 1024;

using protocol::piece_kind;

// Asio allocates an operation from the blocks its thread freed last, whatever their size (recycling suits operations
// that end soon). A resting client's read-wait may stay pending for hours: bound to this allocator it gets a block of
// its own size instead of, typically, the larger one a completed accept left (idle memory per client).
template <class T>
struct exact_size_allocator {
    using value_type = T;
    exact_size_allocator() noexcept = default;
    template <class U>
    exact_size_allocator(const exact_size_allocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
    void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
};
template <class T, class U>
bool operator==(const exact_size_allocator<T>&, const exact_size_allocator<U>&) noexcept {
    return true;
}

// What the relay must see whole from servers; the same for every client.
const protocol::split_policy& down_policy() noexcept {
    static const protocol::split_policy policy = [] {
        protocol::split_policy p;
        p.max_length = 0x7fffffff;
        p.buffer_capacity = relay_buffer_size;
        p.set_inspect(protocol::to_char(protocol::backend::ready_for_query));
        p.set_inspect(protocol::to_char(protocol::backend::parameter_status));
        p.set_inspect(protocol::to_char(protocol::backend::command_complete));
        // Whole, so that a listener's relay can drop those its own server sends (listen_relay delivers them).
        p.set_inspect(protocol::to_char(protocol::backend::notification_response));
        return p;
    }();
    return policy;
}

// Writes as much of the batch as the socket takes without blocking, one sendmsg per call (with TLS, one record per
// call). `tls` null: plaintext.
void write_batch(stream_socket& socket, tls_stream* tls, relay_pump& pump, error_code& ec) {
    constexpr std::size_t max_pieces = 32;
    while (pump.written < pump.batch_bytes) {
        // Left uninitialised: only the first `count` entries are filled, and only they are read (callgrind: zeroing
        // Asio's buffer array cost more than the rest of the call).
        std::array<iovec, max_pieces> pieces;
        std::size_t count = 0;
        std::size_t skip = pump.written;
        for (const auto& s : pump.batch) {
            if (skip >= s.length) {
                skip -= s.length;
                continue;
            }
            const char* base = s.injected ? pump.injected.data() + s.offset : pump.in.base() + s.offset;
            pieces[count++] = iovec{const_cast<char*>(base + skip), s.length - skip};
            skip = 0;
            if (count == max_pieces)
                break;
        }
        std::size_t n = 0;
        if (tls) {
            std::array<asio::const_buffer, max_pieces> buffers;
            for (std::size_t i = 0; i < count; ++i)
                buffers[i] = asio::const_buffer(pieces[i].iov_base, pieces[i].iov_len);
            n = tls->write_some(std::span<const asio::const_buffer>(buffers.data(), count), ec);
        } else {
            // The socket is non-blocking (the relay waits for writability itself); MSG_NOSIGNAL as Asio sends.
            msghdr message{};
            message.msg_iov = pieces.data();
            message.msg_iovlen = count;
            const ssize_t sent = ::sendmsg(socket.native_handle(), &message, MSG_NOSIGNAL);
            if (sent < 0) {
                if (errno == EINTR)
                    continue;
                ec.assign(errno, boost::system::system_category());
                return;
            }
            n = static_cast<std::size_t>(sent);
        }
        pump.written += n;
        if (ec)
            return;
    }
}

// Reads until the socket has no more data or the buffer is full. Returns true on EOF or a hard error. With TLS, reads
// until OpenSSL reports WANT_READ/WANT_WRITE (a short read says nothing about what OpenSSL still holds).
bool drain_into(stream_socket& socket, tls_stream* tls, io_buffer& buffer, error_code& hard_error) {
    for (;;) {
        auto space = buffer.writable();
        if (space.empty())
            return false;
        error_code ec;
        const std::size_t n = tls ? tls->read_some(space.data(), space.size(), ec)
                                  : socket.read_some(asio::buffer(space.data(), space.size()), ec);
        buffer.commit(n);
        if (ec == asio::error::would_block || ec == asio::error::try_again)
            return false;
        if (ec) {
            if (ec != asio::error::eof)
                hard_error = ec;
            return true;
        }
        if (!tls && n < space.size())
            return false;  // drained: skip the read that would only say EAGAIN
    }
}

}  // namespace

void relay_pump::queue_injected(std::string_view bytes) {
    if (bytes.empty())
        return;
    const std::size_t offset = injected.size();
    injected.append(bytes);
    if (!batch.empty() && batch.back().injected && batch.back().offset + batch.back().length == offset) {
        batch.back().length += bytes.size();
    } else {
        batch.push_back({offset, bytes.size(), true});
    }
    batch_bytes += bytes.size();
}

void relay_pump::complete_batch() noexcept {
    in.consume(scanned);
    scanned = 0;
    batch.clear();
    batch_bytes = 0;
    written = 0;
    injected.clear();
}

relay_state& client_connection::create_relay() {
    relay_ = std::make_unique<relay_state>();
    relay_->up_policy.max_length = static_cast<std::uint32_t>(std::min<std::size_t>(
        config_ ? config_->settings.max_packet_size : protocol::large_message_limit, protocol::large_message_limit));
    relay_->up_policy.buffer_capacity = relay_buffer_size;
    return *relay_;
}

const relay_state& client_connection::no_relay() noexcept {
    static const relay_state none;
    return none;
}

void client_connection::release_relay_if_idle() noexcept {
    if (!relay_ || state_ != client_state::idle || server_)
        return;
    const auto& r = *relay_;
    const auto drained = [](const relay_pump& pump) {
        return pump.in.empty() && pump.batch.empty() && !pump.write_waiting && !pump.splitter.mid_message();
    };
    if (!drained(r.up) || !drained(r.down) || r.swallow_ready != 0 || r.up_needs_growth || r.resume_up || r.in_xact ||
        r.in_query)
        return;
    if (relay_release_requested_)
        return;  // the cancelled receive's handler is on its way
    if (r.up.in.receiving()) {
        // The kernel may still copy into up.in: cancel the receive; its handler frees the block and waits without a
        // buffer (on_client_received).
        relay_release_requested_ = true;
        error_code ignored;
        socket_.cancel(ignored);
        return;
    }
    relay_.reset();
}

void client_connection::start_relay() {
    state_ = client_state::idle;
    flush_down();  // the welcome
    if (state_ != client_state::idle)
        return;
    // A client that logged in and sent nothing yet rests until it does: its block goes now, so that the next login
    // reuses the memory (idle memory per client).
    release_relay_if_idle();
    if (has_complete_header()) {
        request_server();
    } else {
        arm_client_read();
    }
}

bool client_connection::has_complete_header() const noexcept {
    // True when the splitter can produce a piece: a whole message, the head of one too large to buffer (it
    // streams), or more of a message being streamed. A bare header of a small message is not enough: acting on it
    // would take a server for nothing.
    const auto pending = up().in.data().subspan(up().scanned);
    if (up().splitter.mid_message())
        return !pending.empty();
    if (pending.size() < protocol::header_size)
        return false;
    const std::size_t total = std::size_t{protocol::load_u32(pending.data() + 1)} + 1;
    return total <= pending.size() || total > relay().up_policy.buffer_capacity;
}

void client_connection::arm_client_read() {
    if (client_read_armed_ || state_ == client_state::closed || client_eof_)
        return;
    // Reads only: an idle client without a relay block must not get one here.
    if (std::as_const(*this).up().batch_pending())
        return;  // backpressure: the server has not taken the previous batch yet
    if (std::as_const(*this).up().in.allocated()) {
        if (up().in.empty() && up().in.capacity() > relay_buffer_size) {
            up().in.release();  // grown for one large message: back to the usual size
        } else {
            if (up().scanned == 0)
                up().in.compact();
            if (up().in.free_space() == 0)
                return;
        }
    }
    client_read_armed_ = true;
    if (!tls_ && relay_) {
        // A relaying client (it keeps its relay block between transactions) receives straight into its buffer. An
        // async_wait costs an epoll_ctl(MOD) every time (Asio 1.81 re-arms the edge-triggered registration); a
        // receive costs a speculative recv instead, which often finds the data already there, else returns EAGAIN
        // (cheaper than the epoll_ctl) and queues until the next edge. bench/results/2026-11-22-vm-perf-2.md.
        up().in.ensure_allocated(relay_buffer_size);
        const auto space = up().in.begin_receive();
        socket_.async_receive(asio::buffer(space.data(), space.size()),
                              [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                  self->client_read_armed_ = false;
                                  self->on_client_received(ec, n);
                              });
        return;
    }
    auto on_ready = [self = shared_from_this()](const error_code& ec) {
        self->client_read_armed_ = false;
        self->on_client_readable(ec);
    };
    if (tls_ && !tls_->read_drained()) {
        // OpenSSL may hold bytes the socket no longer signals (net/tls.hpp, readiness rule): read again first.
        asio::post(socket_.get_executor(), [handler = std::move(on_ready)] { handler(error_code{}); });
        return;
    }
    const auto wait = tls_ && tls_->read_wants_write() ? stream_socket::wait_write : stream_socket::wait_read;
    if (!relay_) {
        // Resting: the wait may last long. A busy TLS client waits per read and keeps the recycled blocks (no
        // allocation per transaction).
        socket_.async_wait(wait, asio::bind_allocator(exact_size_allocator<void>{}, std::move(on_ready)));
        return;
    }
    socket_.async_wait(wait, std::move(on_ready));
}

void client_connection::on_client_received(const error_code& ec, std::size_t n) {
    if (state_ == client_state::closed)
        return;  // close() released the buffer (the receive was cancelled)
    const std::size_t space = up().in.free_space();
    up().in.end_receive(n);
    if (ec == asio::error::operation_aborted && relay_release_requested_) {
        // release_relay_if_idle cancelled the receive to free the buffer under it.
        relay_release_requested_ = false;
        release_relay_if_idle();
        arm_client_read();
        return;
    }
    relay_release_requested_ = false;
    if (ec && ec != asio::error::eof) {
        close(ec == asio::error::operation_aborted ? "client connection cancelled" : "client read failed");
        return;
    }
    if (ec)
        client_eof_ = true;
    // A read that filled the free space may have left more in the socket: drain it as on_client_readable does.
    on_client_data(n, !ec && n == space);
}

void client_connection::on_client_readable(const error_code& ec) {
    SLUICE_LOG(debug, log_prefix() << ": client readable state=" << to_string(state_) << " ec=" << ec.message());
    if (state_ == client_state::closed)
        return;
    if (ec) {
        close(ec == asio::error::operation_aborted ? "client connection cancelled" : "client read failed");
        return;
    }
    on_client_data(0, true);
}

void client_connection::on_client_data(std::size_t received, bool drain) {
    up().in.ensure_allocated(relay_buffer_size);
    if (up().scanned == 0)
        up().in.compact();
    const std::size_t before = up().in.size();
    last_activity_ = steady_clock::now();
    error_code hard;
    if (drain && drain_into(socket_, tls_.get(), up().in, hard))
        client_eof_ = true;
    if (shard_)
        shard_->counters.bytes_received.add(received + up().in.size() - before);

    switch (state_) {
        case client_state::idle:
            if (has_complete_header()) {
                request_server();
            } else if (client_eof_) {
                close("client disconnected");
            } else {
                arm_client_read();
            }
            break;
        case client_state::waiting:
            if (client_eof_) {
                close("client disconnected while waiting for a server");
            } else {
                arm_client_read();
            }
            break;
        case client_state::active:
            process_up();
            if (client_eof_ && state_ != client_state::closed)
                close("client disconnected");
            break;
        default:
            break;
    }
}

bool client_connection::answer_parse_without_server() {
    // PQprepare (Parse + Sync) of a statement some server already accepted needs no server: answering it here keeps
    // clients that prepare synchronously (pgbench -M prepared, one thread for many connections) from queueing for
    // a server just to be told ParseComplete.
    if (pool_->cfg().mode == config::pool_mode::session || config_->settings.max_prepared_statements <= 0)
        return false;
    const auto pending = up().in.data().subspan(up().scanned);
    if (pending.size() < protocol::header_size || pending[0] != protocol::to_char(protocol::frontend::parse))
        return false;
    const std::size_t parse_size = std::size_t{protocol::load_u32(pending.data() + 1)} + 1;
    if (parse_size > relay_buffer_size || pending.size() < parse_size + protocol::header_size)
        return false;
    const auto sync = pending.subspan(parse_size);
    if (sync[0] != protocol::to_char(protocol::frontend::sync) || protocol::load_u32(sync.data() + 1) != 4)
        return false;
    const session::statement_limits limits{static_cast<std::size_t>(config_->settings.max_prepared_statements),
                                           config_->settings.max_prepared_statement_bytes_per_client};
    if (!statements().prepare_without_server(pending.first(parse_size), limits))
        return false;
    up().in.consume(up().scanned + parse_size + protocol::header_size);
    up().scanned = 0;
    shard_->counters.client_parse_count.add();
    relay().rewritten.clear();
    protocol::write_parse_complete(relay().rewritten);
    protocol::write_ready_for_query(relay().rewritten, protocol::transaction_status::idle);
    down().queue_injected(relay().rewritten);
    return true;
}

void client_connection::request_server() {
    if (!down().writing()) {
        bool answered = false;
        while (state_ == client_state::idle && answer_parse_without_server())
            answered = true;
        if (answered) {
            flush_down();
            if (state_ != client_state::idle)
                return;
            if (!has_complete_header()) {
                if (client_eof_) {
                    close("client disconnected");
                } else {
                    arm_client_read();
                }
                return;
            }
        }
    }
    // Validate the first message before taking a server for it.
    const auto pending = up().in.data().subspan(up().scanned);
    const char type = pending[0];
    if (type == protocol::to_char(protocol::frontend::terminate)) {
        close("client sent Terminate");
        return;
    }
    if (!protocol::is_frontend_type(type)) {
        protocol_violation("invalid frontend message type");
        return;
    }
    const auto header = protocol::read_header(pending, relay().up_policy.max_length);
    if (header.status == protocol::header_status::bad_length ||
        header.header.length > protocol::max_frontend_length(type)) {
        protocol_violation("invalid message length");
        return;
    }
    if (rt().shutting_down.load(std::memory_order_relaxed) && drain_done(steady_clock::now())) {
        send_error_and_close(protocol::sqlstate::admin_shutdown, "pooler is shutting down");
        return;
    }
    state_ = client_state::waiting;
    relay().wait_started = steady_clock::now();
    wait_notified_ = false;
    relay().keep_alive = shared_from_this();
    (*shard_).acquire(*this);
    // A queued client that goes away leaves the queue at once (pool control).
    if (state_ == client_state::waiting)
        arm_client_read();
}

void client_connection::on_server_assigned(std::shared_ptr<server_connection> server) {
    SLUICE_LOG(debug, log_prefix() << ": server assigned S-" << server->id() << " welcome=" << welcome_pending_);
    const auto self = std::move(relay().keep_alive);
    if (welcome_pending_) {
        // Login of a pool's first client: show the server's parameters, give the (clean) server back.
        welcome_pending_ = false;
        pool_->set_welcome(server->login_parameters());
        send_welcome(server->login_parameters());
        state_ = client_state::idle;
        (*shard_).release(std::move(server));
        start_relay();
        return;
    }
    server_ = std::move(server);
    server_->client = this;
    rt().active_clients.fetch_add(1, std::memory_order_relaxed);
    {
        const auto now = steady_clock::now();
        const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(now - wait_started()).count();
        auto& c = shard_->counters;
        c.server_assignment_count.add();
        c.wait_time_us.add(static_cast<std::uint64_t>(waited));
        c.wait_time.observe_microseconds(static_cast<std::uint64_t>(waited));
        request_time_ = now;
    }
    server_generation_ = server_->generation();
    state_ = client_state::active;
    tracker().reset();
    relay().swallow_ready = 0;
    rewriting_statements_ =
        pool_->cfg().mode != config::pool_mode::session && config_->settings.max_prepared_statements > 0;
    if (rewriting_statements_) {
        statements().attach(server_->prepared_statements,
                            {static_cast<std::size_t>(config_->settings.max_prepared_statements),
                             config_->settings.max_prepared_statement_bytes_per_client});
    }
    // Make the server's session parameters match this client's before its first message.
    relay().scratch.clear();
    bool sync = session::append_parameter_sync(parameters_, server_->parameters(), relay().scratch);
    if (session_state_ && session_state_->append_restore(relay().scratch)) {
        // The client's own SETs of other settings (session_state.hpp): reset before the server is handed on.
        server_->session_dirty = true;
        sync = true;
    }
    if (sync) {
        std::string query;
        protocol::write_query(query, relay().scratch);
        up().queue_injected(query);
        tracker().on_injected_query();
        ++relay().swallow_ready;
    }
    process_up();
    arm_server_read();
}

void client_connection::on_server_failed(const server_error& err) {
    const auto self = relay_ ? std::move(relay_->keep_alive) : nullptr;
    if (state_ != client_state::waiting)
        return;
    state_ = client_state::idle;
    send_error_and_close(err.sqlstate, err.message);
}

void client_connection::process_up() {
    if (state_ != client_state::active || up().writing())
        return;
    const auto data = up().in.data();
    while (up().scanned < data.size()) {
        if (rewriting_statements_ && !up().splitter.mid_message() &&
            !session::statement_relay::head_complete(data.subspan(up().scanned))) {
            if (!wait_for_inspected_message(data.subspan(up().scanned)))
                return;
            break;
        }
        const auto piece = up().splitter.next_piece(data.subspan(up().scanned), relay().up_policy);
        if (piece.kind == piece_kind::need_more) {
            break;
        }
        if (piece.kind == piece_kind::bad_length) {
            protocol_violation("invalid message length");
            return;
        }
        if (piece.kind == piece_kind::whole || piece.kind == piece_kind::stream_head) {
            const char type = piece.header.type;
            if (type == protocol::to_char(protocol::frontend::terminate)) {
                terminate_received_ = true;
                up().scanned = data.size();  // nothing after Terminate counts
                break;
            }
            if (!protocol::is_frontend_type(type) || type == protocol::to_char(protocol::frontend::password)) {
                protocol_violation("invalid frontend message type");
                return;
            }
            if (piece.header.length > protocol::max_frontend_length(type)) {
                protocol_violation("invalid message length");
                return;
            }
            std::size_t keep_from = 0;
            if (rewriting_statements_) {
                relay().rewritten.clear();
                keep_from = statements_->on_client_message(data.subspan(up().scanned, piece.size),
                                                           piece.kind == piece_kind::whole, relay().rewritten);
                up().queue_injected(relay().rewritten);
                if (keep_from == session::statement_relay::hold)
                    break;  // offered again once the server's answer to Sluice's check is in (process_down)
            }
            tracker().on_client_message(type);
            if (type == protocol::to_char(protocol::frontend::parse)) {
                shard_->counters.client_parse_count.add();
            } else if (type == protocol::to_char(protocol::frontend::bind)) {
                shard_->counters.bind_count.add();
            }
            if (!relay().in_query || !relay().in_xact) {
                const auto now = steady_clock::now();
                if (!relay().in_query)
                    relay().query_start = now;
                if (!relay().in_xact)
                    relay().xact_start = now;
                relay().in_query = relay().in_xact = true;
            }
            if ((type == protocol::to_char(protocol::frontend::query) ||
                 type == protocol::to_char(protocol::frontend::parse)) &&
                piece.kind == piece_kind::whole &&
                inspect_session_sql(type, data.subspan(up().scanned, piece.size), keep_from == 0)) {
                up().scanned += piece.size;
                continue;
            }
            if (keep_from != 0) {
                up().queue_in(up().scanned + keep_from, piece.size - keep_from);
                up().scanned += piece.size;
                continue;
            }
        }
        up().queue_in(up().scanned, piece.size);
        up().scanned += piece.size;
    }
    if (rewriting_statements_) {
        const auto counts = statements_->take_counters();
        if (counts.server_parses != 0)
            shard_->counters.server_parse_count.add(counts.server_parses);
        if (counts.rejections != 0)
            shard_->counters.prepared_statement_rejections.add(counts.rejections);
        // Answers Sluice owes at once (a Parse the server already had, a Close): send them unless the client's
        // batch is being written, in which case process_down sends them when it is done.
        if (statements_->has_due() && !down().writing()) {
            queue_due_answers();
            flush_down();
            if (state_ != client_state::active)
                return;
        }
    }
    flush_up();
}

bool client_connection::wait_for_inspected_message(std::span<const char> pending) {
    // A named Parse, a Describe or a Close must be seen whole, a Bind up to its statement name.
    if (pending.size() < protocol::header_size)
        return true;  // not even the length yet (ASan caught the read past a buffer ending mid-header)
    const std::size_t total = std::size_t{protocol::load_u32(pending.data() + 1)} + 1;
    if (pending[0] == protocol::to_char(protocol::frontend::bind)) {
        if (pending.size() >= relay_buffer_size) {
            protocol_violation("Bind portal and statement names too long");
            return false;
        }
        return true;
    }
    if (total > relay().up_policy.max_length + std::size_t{1} ||
        total > protocol::max_frontend_length(pending[0]) + 1) {
        protocol_violation("invalid message length");
        return false;
    }
    if (total > up().in.capacity()) {
        // Grow now if nothing of the buffer is queued for the server, otherwise once the batch is out (views).
        if (up().scanned != 0 || !up().in.reserve_total(total))
            relay().up_needs_growth = true;
    }
    return true;
}

void client_connection::queue_due_answers() {
    relay().rewritten.clear();
    const auto ready = statements_->take_due(relay().rewritten);
    down().queue_injected(relay().rewritten);
    for (std::uint32_t i = 0; i < ready; ++i) {
        // Sluice answered a whole Query (DEALLOCATE name) itself.
        tracker().on_ready_for_query(statements_->last_status());
        ++readies_;
        if (session_state_)
            (void)session_state_->on_ready(readies_, statements_->last_status());
        if (relay().in_query)
            record_ready_for_query();
    }
}

bool client_connection::inspect_session_sql(char type, std::span<const char> message, bool replaceable) {
    if (!config_->settings.track_session_state || pool_->cfg().mode == config::pool_mode::session)
        return false;
    std::string_view body(message.data() + protocol::header_size, message.size() - protocol::header_size);
    std::string_view statement_name;
    const bool parse = type == protocol::to_char(protocol::frontend::parse);
    if (parse) {
        const auto nul = body.find('\0');
        if (nul == std::string_view::npos)
            return false;
        statement_name = body.substr(0, nul);
        body.remove_prefix(nul + 1);
    }
    const auto sql = body.substr(0, body.find('\0'));
    // The ReadyForQuery that ends the statement: this Query's, or the Sync after a Parse.
    const std::uint64_t ready = readies_ + tracker().pending_ready() + (parse ? 1 : 0);
    const auto found = session::session_state::scan(sql, ready, session_state_);
    if (found.server_dirty && server_)
        server_->session_dirty = true;
    const bool refuse_pins =
        found.pins != 0 && config_->settings.session_state_pinning == config::session_state_pinning::refuse;
    const bool relay_listen = config_->settings.listen_relay;
    const bool refuse_listen = found.listen && (!relay_listen || !found.listen_refusal.empty());
    // A replaced named Parse would leave the statement relay believing the server holds the client's text.
    replaceable = replaceable && (!parse || statement_name.empty() || !rewriting_statements_);
    if ((!refuse_listen && !refuse_pins) || !replaceable) {
        session::session_state::expect_pins(found.pins, found.unpins, found.may_unpin, ready, session_state_);
        if (found.listen && !refuse_listen) {
            // The relay starts listening now, so that it is in place before the client's own LISTEN commits.
            if (!listen_)
                listen_ = std::make_unique<listen_state>();
            if (!found.listen_channels.empty()) {
                if (!listen_->relay)
                    listen_->relay = pool_->listen_relay_instance();
                listen_->relay->anticipate(found.listen_channels);
            }
        } else if (found.listen) {
            SLUICE_LOG(warning, log_prefix() << ": LISTEN in transaction pooling: notifications will be lost");
        }
        return false;
    }
    // Answered by the server itself, in order with everything else: an error raised by a DO block (0A000).
    std::string text = "DO $sluice$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = '";
    if (refuse_listen && !relay_listen) {
        text.append(
            "LISTEN is not supported in transaction pooling with listen_relay = 0: notifications would be lost', "
            "HINT = 'Set listen_relay = 1, or use a database entry with pool_mode=session for LISTEN/NOTIFY.");
    } else if (refuse_listen) {
        text.append("LISTEN/UNLISTEN refused in transaction pooling: ")
            .append(found.listen_refusal)
            .append("', HINT = 'Use a plain or double-quoted channel name, at most ")
            .append(std::to_string(session::session_state::max_channels))
            .append(" channels per client, or a database entry with pool_mode=session.");
    } else {
        text.append(session::describe_pins(found.pins))
            .append(
                " not allowed in transaction pooling (session_state_pinning = refuse)', HINT = 'Use "
                "transaction-scoped state (pg_advisory_xact_lock, ON COMMIT DROP, WITHOUT HOLD) or a database "
                "entry with pool_mode=session.");
    }
    text.append("'; END$sluice$");
    std::string replacement;
    if (parse) {
        protocol::write_parse(replacement, statement_name, text, {});
    } else {
        protocol::write_query(replacement, text);
    }
    up().queue_injected(replacement);
    SLUICE_LOG(info, log_prefix() << ": refused " << (refuse_listen ? "LISTEN" : session::describe_pins(found.pins))
                                  << " in transaction pooling");
    return true;
}

void client_connection::send_pin_check() {
    // Only at a clean boundary: the check's answer must come before anything of the client's (it is swallowed).
    if (!tracker().idle() || relay().swallow_ready != 0 || up().batch_pending() || up().writing() ||
        up().splitter.mid_message())
        return;
    std::string query;
    protocol::write_query(query, session::session_state::pin_check_query);
    up().queue_injected(query);
    tracker().on_injected_query();
    ++relay().swallow_ready;
    session_state_->pin_check_sent(readies_ + 1);
    flush_up();
}

bool client_connection::sync_listen_channels() {
    if (!config_->settings.listen_relay || pool_->cfg().mode == config::pool_mode::session)
        return true;
    if (!listen_)
        listen_ = std::make_unique<listen_state>();
    if (!listen_->relay)
        listen_->relay = pool_->listen_relay_instance();
    SLUICE_LOG(debug, log_prefix() << ": listening on " << session_state_->channels().size() << " channel(s)");
    return listen_->relay->set_channels(shared_from_this(), worker_, session_state_->channels());
}

void client_connection::on_listen_confirmed() {
    if (state_ == client_state::closed || !listen_ || !listen_->holding_ready)
        return;
    listen_->holding_ready = false;
    process_down();
}

void client_connection::deliver_notification(std::string_view message) {
    if (state_ == client_state::closed || state_ == client_state::login || !listen_)
        return;
    // A client that does not read its socket must not make Sluice hold its notifications without bound.
    constexpr std::size_t max_pending_notification_bytes = std::size_t{1} << 20;
    if (listen_->pending.size() + message.size() > max_pending_notification_bytes) {
        SLUICE_LOG(warning, log_prefix() << ": over " << max_pending_notification_bytes
                                         << " bytes of notifications waiting; disconnecting");
        kill(protocol::sqlstate::program_limit_exceeded,
             "too many notifications waiting for this client (it is not reading them)");
        return;
    }
    listen_->pending.append(message);
    flush_notifications();
}

void client_connection::flush_notifications() {
    if (listen_->pending.empty() || down().writing() || listen_->holding_ready)
        return;
    if (state_ != client_state::idle && state_ != client_state::waiting && state_ != client_state::active)
        return;
    // PostgreSQL sends notifications between transactions: a client inside one (or mid-answer) gets them after it.
    if (server_ && (!tracker().idle() || relay().swallow_ready != 0 || down().splitter.mid_message() ||
                    down().scanned < down().in.size() || down().batch_pending()))
        return;
    down().queue_injected(listen_->pending);
    if (listen_->pending.capacity() > 4096) {
        std::string().swap(listen_->pending);
    } else {
        listen_->pending.clear();
    }
    flush_down();
}

void client_connection::flush_up() {
    SLUICE_LOG(debug, log_prefix() << ": flush_up pending=" << up().batch_bytes << " written=" << up().written);
    if (state_ != client_state::active || !server_)
        return;
    if (up().batch_pending()) {
        error_code ec;
        write_batch(server_->socket(), server_->tls(), up(), ec);
        if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
            server_failed("write to server failed");
            return;
        }
        if (up().batch_pending()) {
            if (!up().write_waiting) {
                up().write_waiting = true;
                const bool wants_read = server_->tls() && server_->tls()->write_wants_read();
                server_->socket().async_wait(
                    wants_read ? stream_socket::wait_read : stream_socket::wait_write,
                    [self = shared_from_this(), gen = server_generation_](const error_code& wec) {
                        self->up().write_waiting = false;
                        if (self->state_ == client_state::closed || !self->server_ ||
                            self->server_->generation() != gen) {
                            return;
                        }
                        if (wec) {
                            self->server_failed("server write wait failed");
                            return;
                        }
                        self->flush_up();
                    });
            }
            return;
        }
    }
    up().complete_batch();
    if (relay().resume_up) {
        relay().resume_up = false;
        process_up();
        return;
    }
    if (relay().up_needs_growth) {
        relay().up_needs_growth = false;
        const auto pending = up().in.data();
        if (pending.size() >= protocol::header_size &&
            !up().in.reserve_total(std::size_t{protocol::load_u32(pending.data() + 1)} + 1))
            relay().up_needs_growth = true;
    }
    if (terminate_received_) {
        close("client sent Terminate");
        return;
    }
    // Whatever is left unscanned is a partial message (process_up scans all it can before flushing): read more.
    arm_client_read();
    maybe_release_server();  // or arms the server's read-wait when the server stays
}

void client_connection::arm_server_read() {
    if (!server_ || server_read_armed_ || down().batch_pending() || state_ != client_state::active)
        return;
    server_read_armed_ = true;
    auto* tls = server_->tls();
    if (!tls && tracker().awaiting_results()) {
        // Answers are due: receive straight into the down buffer (a speculative recv, no epoll_ctl; see
        // arm_client_read). Only then: a server detached while its receive may already have consumed bytes is one
        // with results outstanding, and such a server is always discarded, never handed to another client.
        down().in.ensure_allocated(relay_buffer_size);
        if (down().scanned == 0)
            down().in.compact();
        if (down().in.free_space() > 0) {
            const auto space = down().in.begin_receive();
            server_->socket().async_receive(
                asio::buffer(space.data(), space.size()),
                [self = shared_from_this(), gen = server_generation_](const error_code& ec, std::size_t n) {
                    self->on_server_received(ec, n, gen);
                });
            return;
        }
    }
    auto on_ready = [self = shared_from_this(), gen = server_generation_](const error_code& ec) {
        self->on_server_readable(ec, gen);
    };
    if (tls && !tls->read_drained()) {
        // OpenSSL may hold bytes the socket no longer signals (net/tls.hpp, readiness rule): read again first.
        asio::post(server_->socket().get_executor(), [handler = std::move(on_ready)] { handler(error_code{}); });
        return;
    }
    server_->socket().async_wait(tls && tls->read_wants_write() ? stream_socket::wait_write : stream_socket::wait_read,
                                 std::move(on_ready));
}

void client_connection::on_server_received(const error_code& ec, std::size_t n, std::uint64_t server_generation) {
    // Detached since (detach_server_from abandoned the receive): the bytes, if any, went with a discarded server.
    if (state_ == client_state::closed || !server_ || server_->generation() != server_generation)
        return;
    server_read_armed_ = false;
    const std::size_t space = down().in.free_space();
    down().in.end_receive(n);
    if (ec && ec != asio::error::eof) {
        server_failed(ec == asio::error::operation_aborted ? "server read cancelled" : "server connection reset");
        return;
    }
    // A read that filled the free space may have left more in the socket.
    on_server_data(ec == asio::error::eof, !ec && n == space);
}

void client_connection::on_server_readable(const error_code& ec, std::uint64_t server_generation) {
    if (state_ == client_state::closed || !server_ || server_->generation() != server_generation)
        return;
    server_read_armed_ = false;
    if (ec) {
        server_failed("server read wait failed");
        return;
    }
    on_server_data(false, true);
}

void client_connection::on_server_data(bool eof, bool drain) {
    down().in.ensure_allocated(relay_buffer_size);
    if (down().scanned == 0)
        down().in.compact();
    error_code hard;
    bool server_gone = eof;
    if (drain)
        server_gone = drain_into(server_->socket(), server_->tls(), down().in, hard);
    process_down();
    if (server_gone && server_ && state_ != client_state::closed)
        server_failed(hard ? "server connection reset" : "server closed the connection unexpectedly");
}

void client_connection::process_down() {
    if (down().writing() || !server_ || (listen_ && listen_->holding_ready))
        return;
    const bool was_holding = rewriting_statements_ && statements_->holding();
    const auto data = down().in.data();
    while (down().scanned < data.size()) {
        const auto piece = down().splitter.next_piece(data.subspan(down().scanned), down_policy());
        if (piece.kind == piece_kind::need_more) {
            const auto total = piece.header.total_size();
            if (piece.header.length != 0 && total > down().in.capacity()) {
                if (total > max_inspected_message) {
                    server_failed("oversized message from server");
                    return;
                }
                // An inspected message larger than the buffer: grow, but only once the batch is out (views).
                if (down().scanned == 0)
                    (void)down().in.reserve_total(total);  // deferred while a receive is in flight: asked again
            }
            break;
        }
        if (piece.kind == piece_kind::bad_length) {
            server_failed("invalid message length from server");
            return;
        }
        const bool swallowing = relay().swallow_ready > 0;
        if (piece.kind == piece_kind::stream_body) {
            if (!swallowing)
                down().queue_in(down().scanned, piece.size);
            down().scanned += piece.size;
            continue;
        }
        const char type = piece.header.type;
        if (type == protocol::to_char(protocol::backend::data_row) && !swallowing &&
            (!rewriting_statements_ || statements_->passes_data_rows())) {
            // Result rows, most of what a server sends: nothing below applies to them in this state.
            down().queue_in(down().scanned, piece.size);
            down().scanned += piece.size;
            continue;
        }
        if (!protocol::is_backend_type(type)) {
            server_failed("invalid message type from server");
            return;
        }
        if (listen_ && listen_->ready_accounted && type == protocol::to_char(protocol::backend::ready_for_query)) {
            // The ReadyForQuery held for the listen_relay (below), already accounted for: pass it on now.
            listen_->ready_accounted = false;
            if (listen_->held_forward)
                down().queue_in(down().scanned, piece.size);
            down().scanned += piece.size;
            continue;
        }
        bool forward = !swallowing;
        if (rewriting_statements_ && !swallowing) {
            if (statements_->has_due())
                queue_due_answers();
            const bool whole = piece.kind == piece_kind::whole;
            const auto body = data.subspan(down().scanned + protocol::header_size,
                                           whole ? piece.header.body_size() : piece.size - protocol::header_size);
            relay().rewritten.clear();
            switch (statements_->on_server_message(type, body, whole, relay().rewritten)) {
                case session::statement_relay::server_action::forward:
                    break;
                case session::statement_relay::server_action::drop:
                    forward = false;
                    break;
                case session::statement_relay::server_action::replace:
                    forward = false;
                    down().queue_injected(relay().rewritten);
                    break;
            }
        }
        if (type == protocol::to_char(protocol::backend::ready_for_query)) {
            const auto body = data.subspan(down().scanned + protocol::header_size, piece.header.body_size());
            if (body.size() != 1) {
                server_failed("malformed ReadyForQuery from server");
                return;
            }
            tracker().on_ready_for_query(static_cast<protocol::transaction_status>(body[0]));
            ++readies_;
            if (session_state_) {
                const auto pins_before = session_state_->pins();
                if (session_state_->on_ready(readies_, static_cast<protocol::transaction_status>(body[0]))) {
                    const auto pins = session_state_->pins();
                    SLUICE_LOG(info, log_prefix() << ": " << (pins == 0 ? "released" : "pinned to") << " server S-"
                                                  << server_->id() << ": "
                                                  << session::describe_pins(pins == 0 ? pins_before : pins));
                }
                if (!swallowing && session_state_->take_channels_changed() && !sync_listen_channels()) {
                    // Hold this ReadyForQuery (and all after it) until the relay listens on the new channels.
                    listen_->holding_ready = true;
                    listen_->ready_accounted = true;
                    listen_->held_forward = forward;
                    if (relay().in_query)
                        record_ready_for_query();
                    break;
                }
            }
            if (swallowing) {
                --relay().swallow_ready;
                // Sluice's SETs are done: take the server's spelling of the values it set (PostgreSQL sends no
                // ParameterStatus for a value that did not change, so copy rather than wait for reports).
                if (relay().swallow_ready == 0) {
                    for (std::size_t i = 0; i < session::tracked_parameter_names.size(); ++i) {
                        const auto& theirs = server_->parameters().get(i);
                        if (parameters_.get(i) && theirs)
                            parameters_.set(i, *theirs);
                    }
                }
            } else if (relay().in_query) {
                record_ready_for_query();
            }
        } else if (type == protocol::to_char(protocol::backend::parameter_status)) {
            protocol::message_reader r(data.subspan(down().scanned + protocol::header_size, piece.header.body_size()));
            const auto name = r.cstring();
            const auto value = r.cstring();
            if (r.ok()) {
                server_->parameters().set(name, value);
                // While swallowing Sluice's own SETs, the server reports the client's values in canonical
                // spelling: adopt them so the next assignment compares equal.
                parameters_.set(name, value);
            }
        } else if (type == protocol::to_char(protocol::backend::command_complete)) {
            // A SET or RESET (outside SET LOCAL's transaction scope, we cannot tell) leaves session state on the
            // server that the next client must not inherit: the server is reset before it is handed on.
            const auto tag = data.subspan(down().scanned + protocol::header_size, piece.header.body_size());
            const std::string_view t(tag.data(), tag.size());
            if (!swallowing && (t.starts_with("SET") || t.starts_with("RESET"))) {
                server_->session_dirty = true;
                // Remembered for the client's next servers when its statement was understood (session_state.hpp).
                if (session_state_)
                    (void)session_state_->on_set_tag(readies_ + 1);
            } else if (session_state_ && !swallowing && t.starts_with("ROLLBACK")) {
                session_state_->on_rollback_tag();
            } else if (session_state_ && swallowing && session_state_->on_pin_check_tag(readies_ + 1, t)) {
                SLUICE_LOG(info, log_prefix()
                                     << ": released server S-" << server_->id() << ": no session state left on it");
            } else if (!swallowing && (t.starts_with("LISTEN") || t.starts_with("UNLISTEN"))) {
                server_->listening = true;  // UNLISTEN * before the next client
                if (session_state_)
                    (void)session_state_->on_set_tag(readies_ + 1);
            }
        } else if (type == protocol::to_char(protocol::backend::notification_response) && listen_) {
            forward = false;  // listen_relay delivers it, exactly once
        } else if (swallowing && type == protocol::to_char(protocol::backend::error_response)) {
            const auto fields = protocol::parse_error_fields(
                data.subspan(down().scanned + protocol::header_size, piece.header.body_size()));
            SLUICE_LOG(warning, log_prefix() << ": parameter sync failed on server S-" << server_->id() << ": "
                                             << fields.sqlstate << " " << fields.message);
        }
        if (type == protocol::to_char(protocol::backend::error_response) && session_state_ && !swallowing)
            session_state_->on_error();
        if (forward)
            down().queue_in(down().scanned, piece.size);
        down().scanned += piece.size;
    }
    if (rewriting_statements_ && statements_->has_due())
        queue_due_answers();
    flush_down();
    if (session_state_ && session_state_->pin_check_due() && state_ == client_state::active)
        send_pin_check();
    if (was_holding && rewriting_statements_ && !statements_->holding() && state_ == client_state::active) {
        // The client's held message can go on now.
        if (up().writing()) {
            relay().resume_up = true;
        } else {
            process_up();
        }
        return;
    }
    maybe_release_server();
}

void client_connection::record_ready_for_query() {
    const auto now = steady_clock::now();
    auto& c = shard_->counters;
    const auto query_us = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(now - relay().query_start).count());
    c.query_count.add();
    last_ready_ = now;
    relay().query_timeout_cancel_sent = false;
    c.query_time_us.add(query_us);
    c.query_time.observe_microseconds(query_us);
    relay().query_start = now;
    relay().in_query = tracker().awaiting_results();
    if (tracker().idle() && relay().in_xact) {
        const auto xact_us = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(now - relay().xact_start).count());
        c.xact_count.add();
        c.xact_time_us.add(xact_us);
        c.xact_time.observe_microseconds(xact_us);
        relay().in_xact = false;
    }
}

void client_connection::flush_down() {
    if (state_ == client_state::closed)
        return;
    if (down().batch_pending()) {
        error_code ec;
        write_batch(socket_, tls_.get(), down(), ec);
        if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
            close("client write failed");
            return;
        }
        if (down().batch_pending()) {
            if (!down().write_waiting) {
                down().write_waiting = true;
                const bool wants_read = tls_ && tls_->write_wants_read();
                socket_.async_wait(wants_read ? stream_socket::wait_read : stream_socket::wait_write,
                                   [self = shared_from_this()](const error_code& wec) {
                                       self->down().write_waiting = false;
                                       if (self->state_ == client_state::closed)
                                           return;
                                       if (wec) {
                                           self->close("client write wait failed");
                                           return;
                                       }
                                       self->flush_down();
                                       if (self->state_ != client_state::closed && !self->down().batch_pending())
                                           self->process_down();
                                   });
            }
            return;
        }
    }
    if (shard_)
        shard_->counters.bytes_sent.add(down().batch_bytes);
    down().complete_batch();
    if (listen_ && !listen_->pending.empty() && !server_) {
        flush_notifications();  // those that came while the batch was being written
        return;
    }
    // The buffers stay for the next transaction (no allocation per transaction) until the client rests
    // (release_relay_if_idle); one grown for a large message goes back to the usual size now.
    if (down().in.empty() && !server_ && down().in.capacity() > relay_buffer_size)
        down().in.release();
    // A server about to be released (its transaction is over) needs no read-wait: arming one here only to cancel it
    // in maybe_release_server costs an epoll_ctl and a cancelled handler per transaction.
    if (!server_release_due())
        arm_server_read();
}

bool client_connection::server_release_due() const noexcept {
    if (state_ != client_state::active || !server_)
        return false;
    if (pool_->cfg().mode == config::pool_mode::session)
        return false;
    if (!tracker().idle() || relay().swallow_ready != 0 || up().batch_pending() || up().splitter.mid_message())
        return false;
    if (pinned())
        return false;  // session state that cannot move: the server stays until it is released or the client leaves
    if (rewriting_statements_ && !statements_->idle())
        return false;
    if (down().splitter.mid_message() || down().scanned < down().in.size())
        return false;
    return true;
}

void client_connection::maybe_release_server() {
    if (listen_ && !listen_->pending.empty())
        flush_notifications();
    if (state_ != client_state::active)
        return;
    if (!server_release_due()) {
        arm_server_read();  // the server stays: watch it (arm_server_read checks whether a read is due)
        return;
    }
    auto server = std::move(server_);
    detach_server_from(server);
    state_ = client_state::idle;
    if (server->session_dirty || server->listening || server->prepared_statements.state_unknown) {
        std::vector<std::string> reset;
        if (server->session_dirty)
            reset.emplace_back("RESET ALL");
        if (server->listening)
            reset.emplace_back("UNLISTEN *");
        add_statement_reset(*server, reset);
        server->session_dirty = false;
        server->listening = false;
        (*shard_).release_after(std::move(server), std::move(reset));
    } else {
        (*shard_).release(std::move(server));
    }
    if (state_ != client_state::idle)
        return;
    if (has_complete_header()) {
        request_server();
    } else if (client_eof_) {
        close("client disconnected");
    } else {
        arm_client_read();
    }
}

void client_connection::add_statement_reset(server_connection& server, std::vector<std::string>& sql) {
    auto& cache = server.prepared_statements;
    bool clears = false;
    for (const auto& statement : sql) {
        // DISCARD ALL (a reset_query) and DEALLOCATE drop the server's prepared statements.
        std::string lower(statement);
        for (auto& c : lower)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        clears =
            clears || lower.find("discard all") != std::string::npos || lower.find("deallocate") != std::string::npos;
    }
    if (cache.state_unknown && !clears) {
        // A Close of Sluice's was skipped after an error: start the next client from a known empty set.
        sql.emplace_back("DEALLOCATE ALL");
        clears = true;
    }
    if (clears)
        cache.clear();
}

void client_connection::detach_server_from(const std::shared_ptr<server_connection>& server) {
    if (server_read_armed_ || up().write_waiting) {
        error_code ignored;
        server->socket().cancel(ignored);
        server_read_armed_ = false;
        if (relay_)
            relay_->down.in.abandon_receive();
        server->idle_wait_armed = false;  // the cancel also ended a pool idle read-wait still pending (pool.cpp)
    }
    server->client = nullptr;
    server_.reset();
    rt().active_clients.fetch_sub(1, std::memory_order_relaxed);
    tracker().reset();
    if (rewriting_statements_) {
        statements_->detach();
        rewriting_statements_ = false;
    }
    relay().swallow_ready = 0;
    up().splitter.reset();
    down().splitter.reset();
}

void client_connection::forward_cancel() {
    if (state_ != client_state::active || !server_)
        return;
    SLUICE_LOG(info, log_prefix() << ": forwarding cancel request to server S-" << server_->id());
    // Until PostgreSQL has taken the cancel (it closes the cancel connection), the server must not serve another
    // client, or the cancel could hit that client's query (pool_shard::release holds it back).
    auto server = server_;
    ++server->cancels_in_flight;
    auto* shard = shard_;
    asio::co_spawn(
        worker_.context(),
        async_send_cancel(worker_.context(), server->host(), server->port(), server->backend_pid(),
                          server->backend_key(), rt().server_tls(), worker_.tick_config().settings.cancel_wait_timeout),
        [server, shard](std::exception_ptr, bool unconfirmed) {
            if (unconfirmed)
                server->cancel_unconfirmed = true;
            if (--server->cancels_in_flight == 0 && server->release_after_cancel) {
                server->release_after_cancel = false;
                shard->finish_release_after_cancel(server);
            }
        });
}

void client_connection::server_failed(std::string_view why) {
    if (!server_)
        return;
    auto server = std::move(server_);
    SLUICE_LOG(warning, log_prefix() << ": server S-" << server->id() << " failed: " << why);
    detach_server_from(server);
    (*shard_).discard(*server, close_reason::error);
    state_ = client_state::idle;
    send_error_and_close(protocol::sqlstate::connection_failure, std::string("server connection failed: ").append(why));
}

void client_connection::protocol_violation(std::string_view why) {
    SLUICE_LOG(warning, log_prefix() << ": protocol violation: " << why);
    send_error_and_close(protocol::sqlstate::protocol_violation, std::string(why));
}

void client_connection::send_error_and_close(std::string_view sqlstate, std::string_view message) {
    if (state_ == client_state::closed)
        return;
    // Whatever the client has not been sent yet goes first, then the error; best effort without blocking.
    std::string error;
    protocol::write_error(error, protocol::severity::fatal, sqlstate, message);
    down().queue_injected(error);
    error_code ec;
    write_batch(socket_, tls_.get(), down(), ec);
    close(message);
}

void client_connection::close(std::string_view why) {
    if (state_ == client_state::closed)
        return;
    const auto previous = state_;
    state_ = client_state::closed;
    const auto self = relay_ ? std::move(relay_->keep_alive) : nullptr;
    if (previous == client_state::waiting && pool_)
        (*shard_).cancel_wait(*this);
    if (server_) {
        auto server = std::move(server_);
        const bool nothing_outstanding =
            !tracker().awaiting_results() && !tracker().unsynced() && relay().swallow_ready == 0 &&
            !up().batch_pending() && !up().splitter.mid_message() && !down().splitter.mid_message() &&
            down().scanned == down().in.size() && (!rewriting_statements_ || statements_->idle());
        const auto status = tracker().status();
        detach_server_from(server);
        auto& shard = (*shard_);
        const auto& reset = pool_->cfg().reset_query;
        const bool session_mode = pool_->cfg().mode == config::pool_mode::session;
        if (!nothing_outstanding) {
            // Mid-query or mid-message: the server's state is unknown. Never hand it on.
            shard.discard(*server, close_reason::client_dirty);
        } else {
            std::vector<std::string> sql;
            if (status != protocol::transaction_status::idle)
                sql.emplace_back("ROLLBACK");
            if (pinned() && !session_mode) {
                // Advisory locks, temporary tables, cursors, prepared statements: DISCARD ALL drops them all.
                sql.emplace_back("DISCARD ALL");
            } else if ((session_mode || pool_->cfg().reset_query_always) && !reset.empty()) {
                sql.push_back(reset);
            } else if (server->session_dirty) {
                sql.emplace_back("RESET ALL");
            }
            if (server->listening)
                sql.emplace_back("UNLISTEN *");
            server->session_dirty = false;
            server->listening = false;
            add_statement_reset(*server, sql);
            if (sql.empty()) {
                shard.release(std::move(server));
            } else {
                shard.release_after(std::move(server), std::move(sql));
            }
        }
    }
    if (listen_ && listen_->relay)
        listen_->relay->forget(this);
    if (cancel_registered_) {
        rt().cancels().remove(*this);
        cancel_registered_ = false;
    }
    // Failed logins are logged where they fail; log_disconnections covers the rest (PgBouncer's setting).
    if (previous != client_state::login && config_ && config_->settings.log_disconnections) {
        SLUICE_LOG(info, log_prefix() << ": closing because: " << why);
    }
    if (static_cast<worker_hook*>(this)->is_linked())
        worker_.clients().erase(worker_.clients().iterator_to(*this));
    error_code ignored;
    if (tls_ && socket_.is_open())
        tls_->shutdown();  // close_notify, best effort
    // close() alone: no other descriptor shares the socket, so the peer sees the FIN (or the RST unread input causes,
    // which shutdown() would not prevent either) without a shutdown() syscall per connection.
    socket_.close(ignored);
    if (relay_) {
        relay_->up.in.release();
        relay_->down.in.release();
    }
}

}  // namespace sluice::net
