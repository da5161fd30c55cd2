#pragma once
// Who reaches the admin console and what they may do there (PgBouncer docs, usage.md "Admin console"; admin.c
// admin_pre_login / admin_post_login):
// - The console is the virtual database `pgbouncer`; Sluice also answers to `sluice`. Names compare exactly, as
//   database names do.
// - Users listed in admin_users may run every command; users listed in stats_users only SHOW (see
//   command_needs_admin). Membership is an exact, case-sensitive match, as PgBouncer's strlist_contains.
// - With auth_type = any, every user is let in, as a stats user unless listed in admin_users.
// - The user named `pgbouncer` connecting over the Unix socket from the process's own Unix user is an admin
//   without a password. The net layer decides the "same Unix user" part (peer credentials) and passes it in.
// - auth_user gets no console rights of its own: PgBouncer documents none.

#include <algorithm>
#include <array>
#include <string_view>

#include "config/settings.hpp"

namespace sluice::admin {

inline constexpr std::array<std::string_view, 2> console_database_names{"pgbouncer", "sluice"};

// The user PgBouncer lets in as admin over its own Unix socket.
inline constexpr std::string_view unix_socket_admin_user = "pgbouncer";

// True for the virtual console databases.
[[nodiscard]] inline bool is_console_database(std::string_view database) {
    return std::find(console_database_names.begin(), console_database_names.end(), database) !=
           console_database_names.end();
}

// True if `user` is listed in admin_users.
[[nodiscard]] inline bool is_admin_user(const config::settings& settings, std::string_view user) {
    return std::find(settings.admin_users.begin(), settings.admin_users.end(), user) != settings.admin_users.end();
}

// True if `user` is listed in stats_users. Admin users are not stats users unless listed; they need not be, since
// admin rights include SHOW.
[[nodiscard]] inline bool is_stats_user(const config::settings& settings, std::string_view user) {
    return std::find(settings.stats_users.begin(), settings.stats_users.end(), user) != settings.stats_users.end();
}

enum class console_access {
    none,   // refuse the login ("not allowed")
    stats,  // SHOW only
    admin,  // every command
};

// The rights of `user` logging in to the console. `own_unix_user_peer`: the connection came over the Unix socket
// from a process running as the same Unix user as Sluice.
[[nodiscard]] inline console_access console_access_for(const config::settings& settings, std::string_view user,
                                                       bool own_unix_user_peer = false) {
    if (own_unix_user_peer && user == unix_socket_admin_user)
        return console_access::admin;
    if (is_admin_user(settings, user))
        return console_access::admin;
    if (is_stats_user(settings, user) || settings.auth_type == config::auth_type::any)
        return console_access::stats;
    return console_access::none;
}

}  // namespace sluice::admin
