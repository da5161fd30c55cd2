#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<target>/) and dictionaries (fuzz/dict/<target>.dict).

Seeds are small, meaningful inputs: real protocol streams, startup packets, the RFC 7677 SCRAM exchange, config files
and admin commands. Run it again after changing a target's input format; libFuzzer's own finds are not checked in.
Usage: fuzz/corpus/generate.py   (from anywhere; overwrites the generated files, leaves others alone)
"""
import hashlib
import pathlib
import re
import struct

FUZZ = pathlib.Path(__file__).resolve().parent.parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"
DICT = FUZZ / "dict"


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (directory / name).write_bytes(data)


def msg(kind, body=b""):
    return kind.encode() + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def control(inspect, limit, capacity, seed):
    """message_codec's 8-byte control block (see message_codec_fuzz.cpp)."""
    return bytes([inspect, limit]) + struct.pack("!H", capacity) + struct.pack("!I", seed)


def error_fields(*fields):
    return b"".join(code.encode() + cstr(value) for code, value in fields) + b"\0"


# --- message_codec -----------------------------------------------------------------------------------------------
# Limits index (control[1]): 0=4 1=5 2=16 3=small 4=large 5=0x7fffffff 6=65536 7=0xffffffff.
frontend_simple = msg("Q", cstr("SELECT 1")) + msg("X")
frontend_extended = (msg("P", cstr("") + cstr("SELECT $1::int") + struct.pack("!H", 1) + struct.pack("!I", 23)) +
                     msg("B", cstr("") + cstr("") + struct.pack("!HH", 0, 1) + struct.pack("!I", 1) + b"7" +
                         struct.pack("!H", 0)) +
                     msg("D", b"P" + cstr("")) + msg("E", cstr("") + struct.pack("!I", 0)) + msg("S"))
backend_login = (msg("R", struct.pack("!I", 0)) + msg("S", cstr("server_version") + cstr("15.8")) +
                 msg("S", cstr("client_encoding") + cstr("UTF8")) + msg("K", struct.pack("!II", 4242, 0x5eed)) +
                 msg("Z", b"I"))
backend_result = (msg("T", struct.pack("!H", 1) + cstr("?column?") + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0)) +
                  msg("D", struct.pack("!H", 1) + struct.pack("!I", 1) + b"1") + msg("C", cstr("SELECT 1")) +
                  msg("Z", b"I"))
backend_error = (msg("E", error_fields(("S", "ERROR"), ("V", "ERROR"), ("C", "42P01"),
                                       ("M", 'relation "nope" does not exist'), ("P", "15"), ("F", "parse_relation.c"),
                                       ("L", "1392"), ("R", "parserOpenTable"))) +
                 msg("N", error_fields(("S", "NOTICE"), ("C", "00000"), ("M", "table does not exist, skipping"),
                                       ("H", "a hint"), ("D", "some detail"))) +
                 msg("Z", b"E"))
copy_in = (msg("G", b"\0" + struct.pack("!Hhh", 2, 0, 0)) + b"".join(msg("d", b"%d\tvalue %d\n" % (i, i))
                                                                     for i in range(5)) + msg("c") +
           msg("C", cstr("COPY 5")) + msg("Z", b"I"))
big_row = msg("D", struct.pack("!H", 1) + struct.pack("!I", 6000) + b"x" * 6000) + msg("C", cstr("SELECT 1"))

write("message_codec", "frontend_simple_query", control(2, 3, 256, 1) + frontend_simple)
write("message_codec", "frontend_extended_query", control(2, 4, 64, 2) + frontend_extended)
write("message_codec", "backend_login", control(0, 5, 32, 3) + backend_login)
write("message_codec", "backend_result", control(1, 5, 1024, 4) + backend_result)
write("message_codec", "backend_error_notice", control(2, 5, 128, 5) + backend_error)
write("message_codec", "copy_in", control(3, 4, 40, 6) + copy_in)
write("message_codec", "large_row_streamed", control(0, 5, 512, 7) + big_row)
write("message_codec", "large_row_inspected", control(1, 6, 512, 8) + big_row)
write("message_codec", "too_long_for_small_limit", control(2, 3, 256, 9) + msg("Q", cstr("x" * 12000)))
write("message_codec", "bad_length", control(0, 5, 64, 10) + msg("Z", b"I") + b"Q\0\0\0\x02")
write("message_codec", "partial_last_message", control(0, 7, 16, 11) + backend_result[:-3])

# --- startup_packet ----------------------------------------------------------------------------------------------


def startup(params, version=196608):
    body = struct.pack("!i", version) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


write("startup_packet", "psql", startup([("user", "alice"), ("database", "app"), ("application_name", "psql"),
                                         ("client_encoding", "UTF8")]))
write("startup_packet", "jdbc", startup([("user", "app"), ("database", "app"), ("client_encoding", "UTF8"),
                                         ("DateStyle", "ISO"), ("TimeZone", "UTC"), ("extra_float_digits", "2")]))
write("startup_packet", "protocol_options", startup([("user", "bob"), ("_pq_.command_marker", "1"),
                                                     ("options", "-c search_path=x")], version=(3 << 16) | 2))
write("startup_packet", "ssl_request", struct.pack("!Ii", 8, 80877103))
write("startup_packet", "gssenc_request", struct.pack("!Ii", 8, 80877104))
write("startup_packet", "cancel_request", struct.pack("!IiII", 16, 80877102, 4242, 0x5eed))
write("startup_packet", "protocol_2", startup([("user", "old")], version=2 << 16))
write("startup_packet", "no_user", startup([("database", "app")]))
write("startup_packet", "unterminated", startup([("user", "alice")])[:-1])

# --- scram_server / scram_client (RFC 7677 section 3) ------------------------------------------------------------
client_nonce = "rOprNGfwEbeRWgbNEkqO"
server_nonce = client_nonce + "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
server_first = "r=%s,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096" % server_nonce
pg_secret = ("SCRAM-SHA-256$4096:xI0mwPVmmH29E1ik0yYEWA==$2odxTA3TM3sFfD/dtbGEj3v0qMVTErNwob06ZH2nwos=:"
             "982PEhbn/XbU7MY2Pl0EAaU+r/Pj7oLLUu0FC4Ry5Mk=")
write("scram_server", "rfc7677", "n,,n=user,r=%s\0c=biws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=" %
      (client_nonce, server_nonce))
write("scram_server", "rfc7677_empty_user", "n,,n=,r=%s\0c=biws,r=%s,p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k=" %
      (client_nonce, server_nonce))
write("scram_server", "wrong_proof_with_secret", "y,,n=,r=%s,x=ext\0c=eSws,r=%s,x=1,p=%s\0%s" %
      (client_nonce, server_nonce, "A" * 43 + "=", pg_secret))
write("scram_server", "channel_binding_requested", "p=tls-server-end-point,,n=,r=%s" % client_nonce)
write("scram_server", "authzid", "n,a=admin,n=,r=%s" % client_nonce)
write("scram_server", "md5_secret_part", "n,,n=,r=abc\0c=biws,r=abc\0md5" + hashlib.md5(b"pencilalice").hexdigest())
write("scram_client", "rfc7677", "%s\0v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg=" % server_first)
write("scram_client", "server_error", "%s\0e=invalid-proof" % server_first)
write("scram_client", "extensions", "%s,x=ext\0v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,y=1" % server_first)
write("scram_client", "nonce_mismatch", "r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
write("scram_client", "iterations_too_large", "r=%s,s=QUJD,i=99999999999" % server_nonce)

# --- ini / config ------------------------------------------------------------------------------------------------
deploy_ini = (ROOT / "deploy" / "sluice.ini").read_text()
full = """[databases]
app = host=127.0.0.1 port=5432 dbname=app pool_size=10
"my db" = host=/var/run/postgresql dbname='my db' user=app password='it''s' pool_mode=session
reports = host=db1,db2 port=5433 load_balance_hosts=disable query_wait_timeout=-1 connect_query='SET x=1'
* = host=127.0.0.1 auth_user=pgbouncer auth_query='SELECT usename, passwd FROM pg_shadow WHERE usename=$1'

[users]
alice = pool_mode=statement max_user_connections=5 query_timeout=30

[pgbouncer]
listen_addr = *
listen_port = 6432
unix_socket_dir = /tmp
auth_type = md5
auth_file = /etc/sluice/userlist.txt
admin_users = admin, sluice
stats_users = stats
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
server_lifetime = 3600
server_idle_timeout = 600.5
ignore_startup_parameters = extra_float_digits, options
log_connections = 0
server_reset_query = DISCARD ALL
"""
write("ini", "deploy_sluice_ini", deploy_ini)
write("config", "deploy_sluice_ini", deploy_ini)
write("ini", "full", full)
write("config", "full", full)
includes = ("; main\n[pgbouncer]\n%%include conf.d/1.ini\n%%include /etc/sluice/2.ini\n\0"
            "listen_port = 6433\n[databases]\nx = host=h\n\0"
            "[users]\nbob = pool_size=3\n%%include 1.ini\n")
write("ini", "includes", includes)
write("config", "includes", includes)
write("ini", "include_cycle", "[pgbouncer]\n%include 0.ini\n%include missing.ini\n")
write("ini", "quoted_and_bom", '\ufeff[Databases]\n"a ""b"" c" = host=x\n# comment\n  ; comment\nkey_without_value =\n')
write("config", "errors", "[pgbouncer]\nlisten_port = 99999\npool_mode = sometimes\nunknown_setting = 1\n"
      "[databases]\nbad = host=x port=abc\n[other]\n")

# --- userlist ----------------------------------------------------------------------------------------------------
write("userlist", "deploy_userlist", (ROOT / "deploy" / "userlist.txt").read_text())
write("userlist", "forms", '"alice" "pencil"\r\n"bob" "md5%s"\n# comment\n\t"c ""quoted"" d"\t"%s" "extra"\n' %
      (hashlib.md5(b"pencilbob").hexdigest(), pg_secret))
write("userlist", "errors", '"alice" "pencil"\n"bob"\n')

# --- admin_command -----------------------------------------------------------------------------------------------
for i, command in enumerate(["SHOW POOLS;", "show stats_totals", "SHOW help", "select version", "PAUSE app",
                             "RESUME", "RECONNECT \"my db\";", "KILL app", "KILL_CLIENT 42", "SUSPEND", "RELOAD;",
                             "SHUTDOWN WAIT_FOR_CLIENTS", "WAIT_CLOSE app", "ENABLE \"a \"\" b\"", "DISABLE app",
                             "SET default_pool_size = 30", "set server_reset_query to 'DISCARD ''ALL'''",
                             "SET client_encoding='UTF8';", " \t;\r\n", "SHOW", "bogus command"]):
    write("admin_command", "%02d" % i, command)

# --- dictionaries ------------------------------------------------------------------------------------------------


def dictionary(target, words):
    lines = ["# libFuzzer dictionary for fuzz_%s (generated by fuzz/corpus/generate.py)" % target]
    for word in words:
        escaped = "".join(c if 0x20 <= ord(c) < 0x7f and c not in '"\\' else "\\x%02X" % ord(c) for c in word)
        lines.append('"%s"' % escaped)
    DICT.mkdir(exist_ok=True)
    (DICT / ("%s.dict" % target)).write_text("\n".join(lines) + "\n")


settings = re.findall(r"^\| `([a-z_]+)`", (ROOT / "docs" / "settings.md").read_text(), re.M)
connstring_keys = ["host", "port", "dbname", "user", "password", "auth_user", "auth_query", "auth_dbname",
                   "pool_size", "min_pool_size", "reserve_pool", "reserve_pool_size", "max_db_connections",
                   "max_db_client_connections", "connect_query", "pool_mode", "server_lifetime",
                   "query_wait_timeout", "client_encoding", "datestyle", "timezone", "application_name",
                   "load_balance_hosts", "max_user_connections", "max_user_client_connections", "query_timeout",
                   "idle_transaction_timeout", "transaction_timeout", "client_idle_timeout"]
ini_words = ["[pgbouncer]", "[sluice]", "[databases]", "[users]", "[peers]", "%include ", "\n", " = ", "\"", "\0",
             "1.ini", "\xef\xbb\xbf"]
dictionary("ini", ini_words + settings[:40])
dictionary("config", ini_words + settings + [k + "=" for k in connstring_keys] +
           ["session", "transaction", "statement", "scram-sha-256", "md5", "plain", "trust", "any", "hba", "cert",
            "disable", "round-robin", "'", "-1", "0", "1s", "10ms", "2min", "1h", "1d", "true", "false", "*"])
dictionary("admin_command", ["SHOW", "SELECT", "PAUSE", "RESUME", "RECONNECT", "KILL", "KILL_CLIENT", "SUSPEND",
                             "RELOAD", "SHUTDOWN", "WAIT_CLOSE", "SET", "ENABLE", "DISABLE", "TO", "=", ";", "\"",
                             "'", "WAIT_FOR_SERVERS", "WAIT_FOR_CLIENTS", "pools", "stats", "clients", "fds",
                             "client_encoding", "18446744073709551616"])
scram_words = ["n,,", "y,,", "p=", "n=", "r=", "s=", "i=", "c=", "m=", "a=", "e=", "v=", "c=biws", "c=eSws", ",p=",
               client_nonce, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "W22ZaJ0SNY7soEsUEjb6gQ==", "\0", "=="]
dictionary("scram_server", scram_words + ["SCRAM-SHA-256$", "md5", "$", ":"])
dictionary("scram_client", scram_words + ["i=4096", "i=0", "i=2147483648", "invalid-proof"])
dictionary("startup_packet", ["user\0", "database\0", "options\0", "application_name\0", "replication\0",
                              "_pq_.", "\0\x03\0\0", "\0\x03\0\x02", "\x04\xd2\x16\x2f", "\x04\xd2\x16\x30",
                              "\x04\xd2\x16\x2e", "\0\0\0\x08", "\0\0\0\x10"])
dictionary("userlist", ['"', '""', "SCRAM-SHA-256$4096:", "md5", "\r\n", "\t", ";", "#"])
