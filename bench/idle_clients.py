#!/usr/bin/python3
"""Holds many idle, logged-in PostgreSQL client connections open. Standard library only.

bench/run uses it to measure a pooler's resident memory per idle client: psql or libpq processes would cost far more
than the pooler under test, so this opens raw sockets, speaks the startup message and the SCRAM-SHA-256 exchange
itself (also cleartext and md5, in case a target asks for them), and stops reading once ReadyForQuery arrives.

Protocol (stdout carries one JSON object per line, so a parent process can drive it):
    idle_clients.py --port P --user U --password W --dbname D --count N [--source-addrs 127.0.0.2-127.0.0.9]
    -> {"opened": n, "failed": f, "seconds": s, "errors": {"message": count, ...}}   once every login finished
    stdin "check" -> {"alive": n}     connections the pooler has not closed (no EOF, no error)
    stdin "close" or end of stdin -> closes every connection with a reset (no TIME_WAIT left behind), prints
                                     {"closed": n} and exits
Progress and diagnostics go to stderr.

SCRAM follows RFC 5802 / RFC 7677 and PostgreSQL's "SASL Authentication" section of the protocol chapter: the user
name inside the SCRAM messages is empty (PostgreSQL takes it from the startup message), no channel binding ("n,,").
The salted password depends only on (password, salt, iterations), so it is derived once and cached: a login then
costs a few HMACs, and the client stays much cheaper than the pooler it measures.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import resource
import secrets
import select
import socket
import struct
import sys
import time

PROTOCOL_VERSION = 3 << 16  # 3.0, PostgreSQL "StartupMessage"

# Authentication request codes (PostgreSQL protocol, "Message Formats", AuthenticationXXX).
AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

MAX_MESSAGE = 1 << 20  # a login never needs more; a larger length means a broken stream
GAVE_UP = "not attempted: too many failures before"


class LoginError(Exception):
    """The server refused the login or broke the protocol; the message is what gets counted and reported."""


# --- SCRAM-SHA-256, pure functions ---------------------------------------------------------------------------------

def _hmac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


_salted_cache = {}


def salted_password(password, salt, iterations):
    """Hi(password, salt, i) of RFC 5802 (PBKDF2-HMAC-SHA-256), cached per (password, salt, iterations)."""
    key = (password, salt, iterations)
    if key not in _salted_cache:
        _salted_cache[key] = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return _salted_cache[key]


def scram_client_final(password, client_first_bare, server_first):
    """Answers a server-first-message: returns (client_final_message, expected_server_signature).

    client_first_bare is "n=<user>,r=<client nonce>" as sent; raises LoginError when the server's nonce does not
    extend ours or an attribute is missing."""
    attrs = dict(part.split("=", 1) for part in server_first.split(",") if "=" in part)
    client_nonce = dict(part.split("=", 1) for part in client_first_bare.split(","))["r"]
    nonce, salt, iterations = attrs.get("r"), attrs.get("s"), attrs.get("i")
    if not nonce or not salt or not iterations or not nonce.startswith(client_nonce):
        raise LoginError(f"bad SCRAM server-first-message: {server_first!r}")
    salted = salted_password(password, base64.b64decode(salt), int(iterations))
    client_key = _hmac(salted, b"Client Key")
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = "c=biws,r=" + nonce  # biws = base64("n,,"): no channel binding
    auth_message = ",".join((client_first_bare, server_first, without_proof)).encode()
    proof = bytes(a ^ b for a, b in zip(client_key, _hmac(stored_key, auth_message)))
    server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
    return without_proof + ",p=" + base64.b64encode(proof).decode(), server_signature


# --- Wire helpers --------------------------------------------------------------------------------------------------

def startup_message(user, dbname):
    body = struct.pack("!I", PROTOCOL_VERSION)
    for key, value in (("user", user), ("database", dbname)):
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def message(type_byte, body):
    return type_byte + struct.pack("!I", len(body) + 4) + body


def error_text(body):
    """The severity, SQLSTATE and message fields of an ErrorResponse body."""
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1]] = part[1:].decode("utf-8", "replace")
    return f"{fields.get(b'S', 'ERROR')} {fields.get(b'C', '?????')}: {fields.get(b'M', '')}"


class Connection:
    """One client socket with its receive buffer. The socket is non-blocking, driven by the asyncio loop."""

    def __init__(self, loop, sock):
        self.loop = loop
        self.sock = sock
        self.buffer = bytearray()

    async def send(self, data):
        await self.loop.sock_sendall(self.sock, data)

    async def receive(self):
        """Returns (type byte, body) of the next backend message."""
        while True:
            if len(self.buffer) >= 5:
                length = struct.unpack_from("!I", self.buffer, 1)[0]
                if length < 4 or length > MAX_MESSAGE:
                    raise LoginError(f"bad message length {length}")
                if len(self.buffer) >= 1 + length:
                    type_byte = bytes(self.buffer[:1])
                    body = bytes(self.buffer[5:1 + length])
                    del self.buffer[:1 + length]
                    return type_byte, body
            chunk = await self.loop.sock_recv(self.sock, 65536)
            if not chunk:
                raise LoginError("connection closed by the server during login")
            self.buffer += chunk


async def login(conn, user, password, dbname):
    """Startup, authentication, then messages up to ReadyForQuery. Raises LoginError or OSError."""
    await conn.send(startup_message(user, dbname))
    client_first_bare = None
    server_signature = None
    while True:
        type_byte, body = await conn.receive()
        if type_byte == b"E":
            raise LoginError(error_text(body))
        if type_byte == b"Z":  # ReadyForQuery: logged in and idle
            return
        if type_byte != b"R":
            continue  # ParameterStatus, BackendKeyData, NoticeResponse: not needed here
        code = struct.unpack_from("!I", body)[0]
        if code == AUTH_OK:
            continue
        if code == AUTH_CLEARTEXT:
            await conn.send(message(b"p", password.encode() + b"\0"))
        elif code == AUTH_MD5:
            inner = hashlib.md5(password.encode() + user.encode()).hexdigest().encode()
            outer = "md5" + hashlib.md5(inner + body[4:8]).hexdigest()
            await conn.send(message(b"p", outer.encode() + b"\0"))
        elif code == AUTH_SASL:
            mechanisms = body[4:].split(b"\0")
            if b"SCRAM-SHA-256" not in mechanisms:
                raise LoginError(f"no SCRAM-SHA-256 among SASL mechanisms {mechanisms}")
            client_first_bare = "n=,r=" + base64.b64encode(secrets.token_bytes(18)).decode()
            first = ("n,," + client_first_bare).encode()
            await conn.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
        elif code == AUTH_SASL_CONTINUE:
            if client_first_bare is None:
                raise LoginError("SASLContinue before SASL")
            final, server_signature = scram_client_final(password, client_first_bare, body[4:].decode())
            await conn.send(message(b"p", final.encode()))
        elif code == AUTH_SASL_FINAL:
            verifier = body[4:].decode()
            if server_signature is None or not verifier.startswith("v=") \
                    or base64.b64decode(verifier[2:]) != server_signature:
                raise LoginError("server signature does not verify")
        else:
            raise LoginError(f"unsupported authentication request {code}")


# --- Opening many connections ----------------------------------------------------------------------------------------

def parse_source_addrs(text):
    """'127.0.0.2-127.0.0.9' or '127.0.0.2,127.0.0.3' -> list of addresses; empty -> [None] (kernel's choice)."""
    if not text:
        return [None]
    addrs = []
    for item in text.split(","):
        if "-" in item:
            first, last = (ipaddress.IPv4Address(a.strip()) for a in item.split("-", 1))
            addrs += [str(ipaddress.IPv4Address(i)) for i in range(int(first), int(last) + 1)]
        else:
            addrs.append(item.strip())
    return addrs


async def open_all(args):
    """Opens args.count connections, at most args.concurrency logins at a time; returns (sockets, errors)."""
    loop = asyncio.get_running_loop()
    sources = parse_source_addrs(args.source_addrs)
    gate = asyncio.Semaphore(args.concurrency)
    opened = []
    errors = {}
    progress_step = max(1, args.count // 10)

    async def one(index):
        async with gate:
            if sum(errors.values()) >= args.max_failures:
                errors[GAVE_UP] = errors.get(GAVE_UP, 0) + 1
                return
            sock = None
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                source = sources[index % len(sources)]
                if source:
                    sock.bind((source, 0))  # each source address has its own ephemeral port range
                await loop.sock_connect(sock, (args.host, args.port))
                await asyncio.wait_for(login(Connection(loop, sock), args.user, args.password, args.dbname),
                                       args.login_timeout)
            except (OSError, LoginError, asyncio.TimeoutError) as e:
                if sock is not None:
                    sock.close()
                text = str(e) or f"{type(e).__name__} (login took over {args.login_timeout:g} s)"
                errors[text] = errors.get(text, 0) + 1
                return
            opened.append(sock)
            if len(opened) % progress_step == 0:
                print(f"idle_clients: {len(opened)} of {args.count} logged in", file=sys.stderr, flush=True)

    await asyncio.gather(*(one(i) for i in range(args.count)))
    return opened, errors


def count_alive(socks):
    """Connections the server has not closed: a readable socket is closed when a peek reads nothing or fails."""
    poller = select.poll()
    by_fd = {}
    for s in socks:
        poller.register(s.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        by_fd[s.fileno()] = s
    dead = 0
    for fd, _ in poller.poll(0):
        try:
            if by_fd[fd].recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                dead += 1
        except BlockingIOError:
            pass
        except OSError:
            dead += 1
    return len(socks) - dead


def close_all(socks):
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset: no TIME_WAIT
        except OSError:
            pass
        s.close()


def raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--dbname", required=True)
    parser.add_argument("--count", type=int, required=True, help="connections to open")
    parser.add_argument("--concurrency", type=int, default=64, help="logins in flight at once (default 64)")
    parser.add_argument("--login-timeout", type=float, default=15.0, help="seconds per login (default 15)")
    parser.add_argument("--max-failures", type=int, default=100,
                        help="stop attempting new logins after this many failed (default 100)")
    parser.add_argument("--source-addrs", default="", help="local addresses to spread connections over")
    args = parser.parse_args()

    limit = raise_fd_limit(args.count + 100)
    if limit < args.count + 20:
        print(f"idle_clients: open-file limit {limit} is below {args.count} connections", file=sys.stderr)
    started = time.monotonic()
    socks, errors = asyncio.run(open_all(args))
    emit({"opened": len(socks), "failed": args.count - len(socks),
          "seconds": round(time.monotonic() - started, 2), "errors": errors})
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "check":
                emit({"alive": count_alive(socks)})
            elif command == "close":
                break
    finally:
        close_all(socks)
        emit({"closed": len(socks)})


if __name__ == "__main__":
    main()
