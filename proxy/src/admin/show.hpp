#pragma once
// The result sets of the admin console's SHOW commands, written as protocol messages.
//
// Compatibility contract: every SHOW sends exactly PgBouncer 1.25's columns, in PgBouncer's order and with the type
// OIDs PgBouncer puts in its RowDescription (admin.c / stats.c, pktbuf.c): text (25) for strings and for
// timestamps, int4 (23) for counts and sizes, int8 (20) for DNS ttl/serial and the FDS cancel key, numeric (1700)
// for every SHOW STATS / STATS_TOTALS / STATS_AVERAGES / TOTALS figure, bytea (17) for the FDS SCRAM keys.
// Tools such as pgbouncer_exporter, pgmetrics and Datadog look columns up by name or position, so neither may change.
// Row order follows PgBouncer's sorted lists: pools by (database, user), databases, users and stats by name,
// config keys alphabetically; clients and servers in snapshot order.
//
// Values Sluice cannot know the way PgBouncer does:
// - ptr / link: PgBouncer prints object addresses; Sluice prints "0x" and the connection id in hex, so a client's
//   link equals its server's ptr (ids are unique per kind; a client and a server may share one).
// - tls: PgBouncer prints the TLS version and cipher; the snapshot only says whether TLS is on, so "TLS" or "".
// - remote_pid of a client: PgBouncer shows the peer's pid for Unix-socket clients, else 0; Sluice shows 0.
// - id is typed int4 as in PgBouncer, but printed in full (PgBouncer casts its 64-bit id to int), so that
//   KILL_CLIENT <id> always finds the client.
// - Timestamps are "YYYY-MM-DD HH:MM:SS UTC" (PgBouncer uses the local time zone with the same layout).
// - State words are PgBouncer's: a client "active" without a server is "idle", a server still logging in is
//   "new"; SHOW CLIENTS leaves out clients still logging in (PgBouncer keeps them on a separate list).
// - SHOW LISTS: free_clients / free_servers (PgBouncer's slab caches), peers, peer_pools and dns_* are 0; users
//   counts [users] entries and the users of pools and clients (PgBouncer also counts auth_file users).
// - SHOW MEM, DNS_HOSTS, DNS_ZONES, FDS, PEERS, PEER_POOLS and ACTIVE_SOCKETS send their columns and no rows: Sluice
//   has no slab caches, DNS cache, fd passing, peers or buffer positions to show. SHOW SOCKETS lists the connections
//   with zero buffer positions.

#include <string>
#include <string_view>

#include "config/config.hpp"
#include "stats/snapshot.hpp"

namespace sluice::admin {

// SHOW VERSION's single value. It starts with "PgBouncer <x.y.z>" because consumers read the version from it
// (Datadog's check takes the first d.d.d; scripts split on the first space); pgbouncer_exporter exports the whole
// string as the label of pgbouncer_version_info.
inline constexpr std::string_view version_string = "PgBouncer 1.25.0 compatible (Sluice 0.1.0)";

// SHOW STATE: PgBouncer's global pause mode, set by PAUSE (without a database), SUSPEND and RESUME.
enum class pause_state { active, paused, suspended };

// What SHOW needs beyond the snapshot and the configuration; owned by the net layer.
struct show_context {
    // An earlier sample, or nullptr. SHOW STATS / STATS_AVERAGES / TOTALS averages are the change since `previous`
    // per second over [previous->taken_unix_us, snap.taken_unix_us]; times are per transaction, query or server
    // assignment in that window (PgBouncer's calc_average). PgBouncer compares live counters with the sample taken
    // two stats_period ticks ago (its older_stats), so its window is one to two periods long and never tiny just
    // after a tick: to match, keep the samples of the last two ticks and pass the older one.
    // Without a previous sample the averages cover the process lifetime, [started_unix_us, taken_unix_us], using
    // the totals: a meaningful figure at once instead of zeros. Pools are matched by (database, user); a counter
    // that went down (pool recreated) counts from zero. A window of zero or negative length gives zeros.
    const stats::snapshot* previous = nullptr;
    pause_state state = pause_state::active;
};

// Appends RowDescription, one DataRow per row and CommandComplete "SHOW" for `subject` (case-insensitive; the
// subjects is_show_subject() accepts). "help" appends PgBouncer's "Console usage" NOTICE and CommandComplete
// instead. Returns false, appending nothing, for an unknown subject. Never appends ReadyForQuery.
// Reads `snap` and `cfg` only; safe to call from any thread that owns them.
[[nodiscard]] bool render_show(std::string_view subject, const stats::snapshot& snap, const config::config& cfg,
                               std::string& out);
[[nodiscard]] bool render_show(std::string_view subject, const stats::snapshot& snap, const config::config& cfg,
                               const show_context& context, std::string& out);

}  // namespace sluice::admin
