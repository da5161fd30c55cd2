"""Throwaway PostgreSQL clusters and Sluice processes for client tests. Standard library only.

Mirrors tests/support/pg_cluster.hpp and sluice_process.hpp:

    with PgCluster() as pg, Sluice(config_for(pg), auth_file=...) as sluice:
        psycopg2.connect(sluice.dsn())

PgCluster: a fresh cluster in a temporary directory on a free port of 127.0.0.1, scram-sha-256 everywhere, with the
bootstrap superuser ``postgres`` (password ``postgres``) and ``sluice_test`` (password ``sluice_test``, LOGIN
SUPERUSER) owning the database ``sluice_test``. As root, the directory belongs to ``postgres`` and server commands
run through ``runuser -u postgres --``. Binaries: $SLUICE_PG_BINDIR, else a PATH directory with initdb, pg_ctl and
postgres, else the highest /usr/lib/postgresql/<version>/bin.

Sluice: the binary from $SLUICE_BINARY started with a config whose [pgbouncer] section gets listen_addr = 127.0.0.1,
a free listen_port, unix_socket_dir and (when auth text is given) auth_file pointing into its own directory, and a
free metrics_port when the config sets one other than 0.

Everything started is stopped by ``stop()``, the context manager, or at interpreter exit. Directories abandoned by a
killed test process are reaped by the next cluster started (by this module or the C++ harness).

Command line (used by scripts/run; the cluster outlives the command):
    sluice_harness.py pg-start --dir D [--host H] [--port P] [--user U] [--password W] [--dbname N]
                               [--role-attributes "LOGIN CREATEDB"]      prints the port
    sluice_harness.py pg-stop --dir D                                      stops the server and removes D
"""

import argparse
import atexit
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TEST_USER = "sluice_test"
TEST_PASSWORD = "sluice_test"
TEST_DATABASE = "sluice_test"
SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "postgres"

_DIR_PREFIX = "sluice-pg-"
_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
_live = []  # started PgCluster and Sluice objects, stopped at exit


@atexit.register
def _stop_everything():
    for obj in reversed(list(_live)):
        try:
            obj.stop()
        except Exception as e:  # cleanup must go on with the others
            print(f"sluice_harness: cleanup of {obj!r} failed: {e}", file=sys.stderr)


def _is_root():
    return os.geteuid() == 0


def _has_server_binaries(directory):
    return all(os.access(os.path.join(directory, name), os.X_OK) for name in _SERVER_BINARIES)


def find_bindir():
    """The directory of initdb, pg_ctl and postgres; raises RuntimeError when there is none."""
    env = os.environ.get("SLUICE_PG_BINDIR")
    if env:
        if not _has_server_binaries(env):
            raise RuntimeError(f"SLUICE_PG_BINDIR={env} lacks initdb, pg_ctl or postgres")
        return env
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if directory and _has_server_binaries(directory):
            return directory
    versions = []
    if os.path.isdir("/usr/lib/postgresql"):
        for name in os.listdir("/usr/lib/postgresql"):
            bindir = os.path.join("/usr/lib/postgresql", name, "bin")
            if name.isdigit() and _has_server_binaries(bindir):
                versions.append((int(name), bindir))
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries: set SLUICE_PG_BINDIR or run scripts/install-deps")
    return max(versions)[1]


def port_accepts(port, host="127.0.0.1"):
    """True when something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def free_port():
    """A port of 127.0.0.1 nothing listens on, drawn below the ephemeral range so concurrent tests rarely collide.

    The port is released before returning: a caller whose bind then fails should retry with another."""
    for _ in range(1000):
        port = random.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if not port_accepts(port):
            return port
    raise RuntimeError("no free TCP port on 127.0.0.1")


def wait_until(condition, timeout, what):
    """Polls condition() with a short back-off until it is true; raises TimeoutError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def process_alive(pid):
    """True while pid exists and is not a zombie (an orphan not yet reaped still answers kill(pid, 0))."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:][:1] != "Z"


def _tail(path, max_bytes=4096):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _give_to_postgres(path):
    if _is_root():
        account = pwd.getpwnam("postgres")
        os.chown(path, account.pw_uid, account.pw_gid)


def _read_pid(path):
    try:
        with open(path) as f:
            return int(f.readline().strip() or 0)
    except (OSError, ValueError):
        return 0


def _reap_abandoned_clusters(parent):
    """Stops and removes clusters whose owner process (recorded in owner.pid) is gone."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(_DIR_PREFIX):
            continue
        directory = os.path.join(parent, name)
        owner = _read_pid(os.path.join(directory, "owner.pid"))
        if owner == 0 or process_alive(owner):
            continue
        postmaster = _read_pid(os.path.join(directory, "data", "postmaster.pid"))
        if process_alive(postmaster):
            try:
                os.kill(postmaster, signal.SIGCONT)
                os.kill(postmaster, signal.SIGQUIT)  # immediate shutdown: the data is thrown away
                wait_until(lambda: not process_alive(postmaster), 10, "an abandoned postmaster to exit")
            except (OSError, TimeoutError):
                continue  # not ours to reap, or still dying: the next run tries again
        shutil.rmtree(directory, ignore_errors=True)


def _conninfo_value(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class PgCluster:
    """A throwaway PostgreSQL cluster; see the module docstring. Not thread-safe."""

    def __init__(self, directory=None, host="127.0.0.1", port=None, user=TEST_USER, password=TEST_PASSWORD,
                 dbname=TEST_DATABASE, role_attributes="LOGIN SUPERUSER"):
        """directory: where to create the cluster (default: a fresh temporary directory). Either way stop() removes
        it. port: default a free one. user/password/dbname/role_attributes: the role and database created."""
        self.bindir = find_bindir()
        self.dir = directory
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.dbname = dbname
        self.role_attributes = role_attributes
        self._fixed_port = port is not None
        self._owned_tempdir = directory is None
        self.running = False

    def __repr__(self):
        return f"PgCluster(dir={self.dir!r}, port={self.port})"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def data_dir(self):
        return os.path.join(self.dir, "data")

    @property
    def socket_dir(self):
        return self.dir

    # --- lifecycle -------------------------------------------------------------------------------------------------

    def start(self):
        """Creates (unless the data directory exists) and starts the cluster, then creates the role and database."""
        if self.running:
            return
        if self not in _live:
            _live.append(self)
        try:
            if self.dir is None:
                parent = tempfile.gettempdir()
                _reap_abandoned_clusters(parent)
                self.dir = tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=parent)
                with open(os.path.join(self.dir, "owner.pid"), "w") as f:
                    f.write(f"{os.getpid()}\n")
            os.makedirs(self.dir, exist_ok=True)
            _give_to_postgres(self.dir)
            if not os.path.exists(os.path.join(self.data_dir, "PG_VERSION")):
                self._initdb()
            self.start_server()
            self._bootstrap_roles()
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Stops the server and removes the directory; a no-op when nothing was started."""
        if self.dir is None:
            return
        self.stop_server()
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.path.exists(self.dir):
            raise RuntimeError(f"cannot remove {self.dir}")
        if self._owned_tempdir:
            self.dir = None
        if self in _live:
            _live.remove(self)

    def stop_server(self):
        """Stops the server keeping its data: fast shutdown, then immediate, then SIGKILL. A no-op when not running
        (also after a SIGKILL). Resumes a SIGSTOPped postmaster first."""
        pid = _read_pid(os.path.join(self.data_dir, "postmaster.pid")) if self.dir else 0
        self.running = False
        if not process_alive(pid):
            return
        os.kill(pid, signal.SIGCONT)
        for mode in ("fast", "immediate"):
            if self._run([self._bin("pg_ctl"), "-D", self.data_dir, "-m", mode, "-w", "-t", "30", "stop"],
                         check=False) == 0:
                return
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not process_alive(pid), 30, f"postmaster {pid} to die")

    def start_server(self):
        """Starts the server on the existing data directory and waits until it accepts connections. Retries with
        another port when the chosen one was taken meanwhile (unless the port was given)."""
        if self.running:
            return
        # Transient failures, retried until the deadline: another process took the port between free_port() and
        # the bind; orphaned backends of a killed postmaster keep its shared memory attached for a short while; a
        # dying postmaster still holds its lock files.
        deadline = time.monotonic() + 30
        attempt = 0
        while True:
            self._remove_stale_lock_files()
            log = os.path.join(self.dir, "postgres.log")
            open(log, "w").close()
            _give_to_postgres(log)
            rc = self._run([self._bin("pg_ctl"), "-D", self.data_dir, "-l", log, "-w", "-t", "60", "start"],
                           check=False)
            if rc == 0:
                wait_until(lambda: port_accepts(self.port, self._tcp_host()) if self._tcp_host() else True, 30,
                           "PostgreSQL to accept connections")
                self.running = True
                return
            text = self.log_tail(2048)
            port_taken = ("could not bind" in text or "could not create any TCP/IP sockets" in text) \
                and not self._fixed_port
            transient = port_taken or "shared memory block" in text or "lock file" in text
            if not transient or time.monotonic() > deadline:
                self._give_up_starting()
                raise RuntimeError(f"PostgreSQL failed to start on port {self.port}:\n{self._command_log()}\n"
                                   f"--- server log ---\n{text}")
            if port_taken:
                self.port = free_port()
                self._write_config()
            time.sleep(min(0.05, 0.001 * 2 ** attempt))
            attempt += 1

    def restart(self):
        self.stop_server()
        self.start_server()

    def postmaster_pid(self):
        pid = _read_pid(os.path.join(self.data_dir, "postmaster.pid"))
        if not process_alive(pid):
            raise RuntimeError(f"PostgreSQL is not running in {self.data_dir}")
        return pid

    def signal_postmaster(self, sig):
        """Sends sig to the postmaster; for SIGKILL, returns once it is dead."""
        pid = self.postmaster_pid()
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            self.running = False
            wait_until(lambda: not process_alive(pid), 30, f"postmaster {pid} to die")
        elif sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.running = False

    # --- connecting ------------------------------------------------------------------------------------------------

    def dsn(self, user=None, password=None, dbname=None):
        """A libpq keyword/value connection string to this server over TCP (defaults: the created role and db)."""
        return (f"host={self.host} port={self.port} dbname={_conninfo_value(dbname or self.dbname)} "
                f"user={_conninfo_value(user or self.user)} password={_conninfo_value(password or self.password)}")

    def execute(self, sql, dbname=None, user=None, password=None):
        """Runs sql through psql (ON_ERROR_STOP) and returns its unaligned, tuples-only output without the final
        newline. Raises RuntimeError with the server's message."""
        env = dict(os.environ, PGPASSWORD=password or self.password, PGCONNECT_TIMEOUT="10")
        result = subprocess.run(
            [self._psql(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", str(self.port),
             "-U", user or self.user, "-d", dbname or self.dbname, "-c", sql],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip() or f"psql exited with {result.returncode}")
        return result.stdout.rstrip("\n")

    def log_tail(self, max_bytes=4096):
        return _tail(os.path.join(self.dir, "postgres.log"), max_bytes) if self.dir else ""

    # --- internals -------------------------------------------------------------------------------------------------

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _psql(self):
        candidate = self._bin("psql")
        return candidate if os.access(candidate, os.X_OK) else (shutil.which("psql") or "psql")

    def _tcp_host(self):
        return None if self.host.startswith("/") else self.host

    def _run(self, argv, check=True, timeout=120):
        prefix = ["runuser", "-u", "postgres", "--"] if _is_root() else []
        with open(os.path.join(self.dir, "commands.log"), "ab") as out:
            try:
                rc = subprocess.run(prefix + argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"{argv[0]} timed out:\n{self._command_log()}") from None
        if check and rc != 0:
            raise RuntimeError(f"{os.path.basename(argv[0])} failed (exit {rc}):\n{self._command_log()}")
        return rc

    def _command_log(self):
        return _tail(os.path.join(self.dir, "commands.log"))

    def _initdb(self):
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(SUPERUSER_PASSWORD + "\n")
        _give_to_postgres(pwfile)
        try:
            self._run([self._bin("initdb"), "-D", self.data_dir, "--auth=scram-sha-256", "-U", SUPERUSER,
                       f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        finally:
            os.remove(pwfile)
        if self.port is None:
            self.port = free_port()
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("include = 'sluice_test.conf'\n")
        with open(os.path.join(self.data_dir, "pg_hba.conf"), "w") as f:
            f.write("local all all scram-sha-256\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n"
                    "host all all ::1/128 scram-sha-256\n")
        self._write_config()

    def _write_config(self):
        listen = "" if self.host.startswith("/") else self.host
        socket_dir = self.host if self.host.startswith("/") else self.dir
        path = os.path.join(self.data_dir, "sluice_test.conf")
        with open(path, "w") as f:
            f.write(f"listen_addresses = '{listen}'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{socket_dir}'\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "max_connections = 300\n"
                    "shared_buffers = 64MB\n"
                    "password_encryption = 'scram-sha-256'\n"
                    "logging_collector = off\n")
        _give_to_postgres(path)
        with open(os.path.join(self.dir, "cluster.json"), "w") as f:
            json.dump({"host": self.host, "port": self.port, "bindir": self.bindir}, f)

    def _remove_stale_lock_files(self):
        # After a SIGKILL, postmaster.pid and the socket lock file name a postmaster that may linger as a zombie
        # until its adoptive parent reaps it; the server would take it for a live one and refuse to start.
        pid_file = os.path.join(self.data_dir, "postmaster.pid")
        if os.path.exists(pid_file) and not process_alive(_read_pid(pid_file)):
            os.remove(pid_file)
            for name in os.listdir(self.dir):
                if name.startswith(".s.PGSQL."):
                    os.remove(os.path.join(self.dir, name))

    def _give_up_starting(self):
        try:
            self.stop_server()
        except Exception as e:
            print(f"sluice_harness: {e}", file=sys.stderr)

    def _bootstrap_roles(self):
        role, db = self.user, self.dbname
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", role) or not re.fullmatch(r"[a-z_][a-z0-9_]*", db):
            raise ValueError("role and database names must be plain lower-case identifiers")
        password = self.password.replace("'", "''")
        self.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                     f"CREATE ROLE {role} {self.role_attributes} PASSWORD '{password}'; END IF; END $$",
                     dbname="postgres", user=SUPERUSER, password=SUPERUSER_PASSWORD)
        if not self.execute(f"SELECT 1 FROM pg_database WHERE datname = '{db}'", dbname="postgres", user=SUPERUSER,
                            password=SUPERUSER_PASSWORD):
            self.execute(f"CREATE DATABASE {db} OWNER {role}", dbname="postgres", user=SUPERUSER,
                         password=SUPERUSER_PASSWORD)

    @classmethod
    def attach(cls, directory):
        """A PgCluster for a directory made by `pg-start`, to stop it."""
        with open(os.path.join(directory, "cluster.json")) as f:
            state = json.load(f)
        cluster = cls(directory=directory, host=state["host"], port=state["port"])
        cluster.bindir = state["bindir"]
        return cluster


def sluice_binary():
    """The sluice executable under test ($SLUICE_BINARY), or None."""
    return os.environ.get("SLUICE_BINARY") or None


def _is_settings_section(line):
    text = line.strip()
    return text.startswith("[") and text.endswith("]") and text[1:-1].strip().lower() in ("pgbouncer", "sluice")


def get_pgbouncer_setting(ini, key):
    """The last value of key (case-insensitive) in the [pgbouncer] or [sluice] section of ini, or None."""
    value = None
    in_settings = False
    for line in ini.splitlines():
        text = line.strip()
        if text.startswith("[") and text.endswith("]"):
            in_settings = _is_settings_section(text)
        elif in_settings and text and text[0] not in ";#" and "=" in text:
            name, rest = text.split("=", 1)
            if name.strip().lower() == key.lower():
                value = rest.strip()
    return value


def set_pgbouncer_settings(ini, settings):
    """Returns ini with each key of the settings dict set in its [pgbouncer] section (or [sluice], its other name):
    existing assignments (case-insensitive) are replaced, missing keys appended to the first such section, a missing
    section added first."""
    lines = ini.splitlines()
    found = set()
    section_end = None
    in_pgbouncer = False
    for i, line in enumerate(lines):
        text = line.strip()
        if text.startswith("[") and text.endswith("]"):
            in_pgbouncer = _is_settings_section(text)
            if in_pgbouncer and section_end is None:
                section_end = i + 1
            continue
        if not in_pgbouncer:
            continue
        if text:
            section_end = i + 1
        if text and text[0] not in ";#" and "=" in text:
            key = text.split("=", 1)[0].strip().lower()
            for name, value in settings.items():
                if key == name.lower():
                    lines[i] = f"{name} = {value}"
                    found.add(name)
    missing = [f"{name} = {value}" for name, value in settings.items() if name not in found]
    if section_end is None:
        missing = ["[pgbouncer]"] + missing + [""]
        section_end = 0
    lines[section_end:section_end] = missing
    return "\n".join(lines) + "\n"


class Sluice:
    """The sluice binary as a child process with its own directory; see the module docstring. Not thread-safe."""

    def __init__(self, config, auth_file=None, binary=None, start_timeout=30.0, env=None):
        """config: ini text. auth_file: userlist.txt text, written and pointed to by auth_file when given.
        binary: default $SLUICE_BINARY. env: extra environment variables for the process."""
        self.binary = binary or sluice_binary()
        if not self.binary:
            raise RuntimeError("no sluice binary: set SLUICE_BINARY")
        self.config = config
        self.auth_file = auth_file
        self.start_timeout = start_timeout
        self.env = env or {}
        self.dir = None
        self.port = None
        self.metrics_port = None  # a free port when the config sets metrics_port other than 0
        self.process = None

    def __repr__(self):
        return f"Sluice(dir={self.dir!r}, port={self.port})"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def pid(self):
        return self.process.pid

    @property
    def config_path(self):
        return os.path.join(self.dir, "sluice.ini")

    @property
    def log_path(self):
        return os.path.join(self.dir, "sluice.log")

    def start(self):
        """Writes the config, starts the binary and returns once its port accepts connections. Raises RuntimeError
        with the log tail when it exits first or misses the deadline."""
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"sluice binary {self.binary} is not executable")
        self.dir = tempfile.mkdtemp(prefix="sluice-proc-")
        self.port = free_port()
        _live.append(self)
        try:
            self.write_config(self.config, self.auth_file)
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen([self.binary, self.config_path], cwd=self.dir,
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                env=dict(os.environ, **self.env))
            try:
                wait_until(lambda: self.process.poll() is not None or port_accepts(self.port), self.start_timeout,
                           f"sluice to listen on port {self.port}")
            except TimeoutError:
                raise RuntimeError(f"sluice does not accept connections on port {self.port} after "
                                   f"{self.start_timeout} s:\n{_tail(self.log_path)}") from None
            if self.process.returncode is not None:
                raise RuntimeError(f"sluice exited with code {self.process.returncode} before listening on port "
                                   f"{self.port}:\n{_tail(self.log_path)}")
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """SIGTERM, up to 10 s, then SIGKILL; removes the directory. Returns the exit code (negative: signal)."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    print(f"sluice {self.process.pid} ignored SIGTERM for 10 s: SIGKILL", file=sys.stderr)
                    self.process.kill()
                    self.process.wait(10)
            code = self.process.returncode
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _live:
            _live.remove(self)
        return code

    def log(self):
        """Everything the process wrote to stdout and stderr so far."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def write_config(self, config, auth_file=None):
        """(Re)writes the config with this process's port and directory, atomically, for a later SIGHUP or RELOAD.
        auth_file None keeps the auth file written before, if any."""
        auth_path = os.path.join(self.dir, "userlist.txt")
        if auth_file is not None:
            with open(auth_path, "w") as f:
                f.write(auth_file)
        settings = {"listen_addr": "127.0.0.1", "listen_port": str(self.port), "unix_socket_dir": self.dir}
        # Concurrent tests must not share the metrics port either; 0 (off) stays off.
        if get_pgbouncer_setting(config, "metrics_port") not in (None, "0"):
            self.metrics_port = self.metrics_port or free_port()
            settings["metrics_port"] = str(self.metrics_port)
        if os.path.exists(auth_path):
            settings["auth_file"] = auth_path
        temp = self.config_path + ".tmp"
        with open(temp, "w") as f:
            f.write(set_pgbouncer_settings(config, settings))
        os.replace(temp, self.config_path)

    def send_signal(self, sig):
        self.process.send_signal(sig)

    def wait_exit(self, timeout):
        """The exit code (negative: killed by that signal) once exited within timeout seconds, else None."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def dsn(self, user=TEST_USER, password=TEST_PASSWORD, dbname=TEST_DATABASE):
        """A libpq connection string to Sluice over TCP."""
        return (f"host=127.0.0.1 port={self.port} dbname={_conninfo_value(dbname)} user={_conninfo_value(user)} "
                f"password={_conninfo_value(password)}")


def _main(argv):
    parser = argparse.ArgumentParser(description="Start or stop a throwaway PostgreSQL cluster.")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("pg-start", help="create (if needed) and start a cluster in DIR; prints its port")
    start.add_argument("--dir", required=True)
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--port", type=int)
    start.add_argument("--user", default=TEST_USER)
    start.add_argument("--password", default=TEST_PASSWORD)
    start.add_argument("--dbname", default=TEST_DATABASE)
    start.add_argument("--role-attributes", default="LOGIN SUPERUSER")
    stop = commands.add_parser("pg-stop", help="stop the cluster in DIR and remove DIR")
    stop.add_argument("--dir", required=True)
    args = parser.parse_args(argv)

    directory = os.path.abspath(args.dir)
    if args.command == "pg-start":
        cluster = PgCluster(directory=directory, host=args.host, port=args.port, user=args.user,
                            password=args.password, dbname=args.dbname, role_attributes=args.role_attributes)
        cluster.start()
        _live.remove(cluster)  # the cluster outlives this command
        print(cluster.port)
    else:
        if os.path.exists(os.path.join(directory, "cluster.json")):
            PgCluster.attach(directory).stop()
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
