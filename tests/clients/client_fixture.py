"""What the client test modules share: one PostgreSQL cluster per module and Sluice processes in front of it.

    class PsqlTest(SluiceTestCase):
        def test_x(self):
            psycopg2.connect(self.sluice.dsn())

The default Sluice: transaction pooling, 5 server connections per pool, 2 workers, SCRAM clients, and a `*` entry
sending every database to the cluster. A class changes it through `sluice_settings` (keys of the [pgbouncer] section)
and `sluice_databases` (the [databases] section, name -> connection string, where `{port}` stands for the cluster's
port). Classes of a module with the same configuration share one Sluice.
"""

import collections
import contextlib
import os
import re
import socket
import struct
import unittest

from sluice_harness import SUPERUSER, SUPERUSER_PASSWORD, TEST_PASSWORD, TEST_USER, PgCluster, Sluice

DEFAULT_POOL_SIZE = 5
SOURCE_DIR = os.environ.get("SLUICE_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CLIENTS_DIR = os.path.join(SOURCE_DIR, "tests", "clients")

DEFAULT_SETTINGS = {
    "pool_mode": "transaction",
    "default_pool_size": str(DEFAULT_POOL_SIZE),
    "workers": "2",
    "auth_type": "scram-sha-256",
    "max_client_conn": "100",
}

# Lines Sluice writes only when something went wrong between a client and a server. A correct client never causes
# them, so after a clean run the log has none.
TROUBLE_IN_LOG = re.compile(r"protocol violation|parameter sync failed|server S-\d+ failed|oversized message")


def sluice_config(pg_port, databases=None, settings=None):
    """The ini text of a Sluice in front of the cluster on pg_port; see the module docstring."""
    databases = databases if databases is not None else {"*": "host=127.0.0.1 port={port}"}
    merged = dict(DEFAULT_SETTINGS, **(settings or {}))
    lines = ["[databases]"]
    lines += [f"{name} = {target.format(port=pg_port)}" for name, target in databases.items()]
    lines += ["", "[pgbouncer]"]
    lines += [f"{key} = {value}" for key, value in merged.items()]
    return "\n".join(lines) + "\n"


def userlist(users=None):
    """An auth_file in PgBouncer's format; default: the test role with its password."""
    users = users or {TEST_USER: TEST_PASSWORD}
    return "".join(f'"{user}" "{password}"\n' for user, password in users.items())


class ServerHolder:
    """A client connection inside a transaction, so that it keeps one server connection of the pool to itself.

    connect: a callable returning a DB-API connection that is not in autocommit (psycopg2, psycopg 3)."""

    def __init__(self, connect):
        self.conn = connect()
        with self.conn.cursor() as cur:
            # Opens the transaction; also records the session as this client sees it on that server.
            cur.execute("SELECT pg_backend_pid(), current_setting('application_name'), current_setting('TimeZone')")
            self.backend_pid, self.application_name, self.timezone = cur.fetchone()

    def release(self):
        if self.conn is not None:
            self.conn.commit()
            self.conn.close()
            self.conn = None


@contextlib.contextmanager
def servers_held(connect, count):
    """Yields `count` ServerHolders; releases those still holding at exit."""
    holders = []
    try:
        for _ in range(count):
            holders.append(ServerHolder(connect))
        yield holders
    finally:
        for holder in holders:
            holder.release()


ServerSwitch = collections.namedtuple("ServerSwitch", "first_pid then_pid then_row taker freed_pid")


def run_on_two_servers(connect, first, then):
    """Runs first() and then then() on different server connections of a pool of DEFAULT_POOL_SIZE. Each is a
    statement of the client under test returning a row that starts with pg_backend_pid(). While first() runs, the
    other servers are held; a new holder (taker, a ServerHolder) then takes first()'s server and one held server is
    freed (freed_pid) for then(). connect: as for ServerHolder. Returns a ServerSwitch."""
    with servers_held(connect, DEFAULT_POOL_SIZE - 1) as held:
        first_pid = first()[0]
        with servers_held(connect, 1) as taker:
            held[0].release()
            row = then()
    return ServerSwitch(first_pid, row[0], row, taker[0], held[0].backend_pid)


def _answers_ssl_request(port):
    """False when a connection to port is refused or closed before Sluice answers an SSLRequest; True when it
    answers or is merely slow (10 s)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(struct.pack("!II", 8, 80877103))
            return len(sock.recv(1)) == 1
    except socket.timeout:
        return True
    except OSError:
        return False


def sluice_died(sluice):
    """True when the Sluice process exited. One that no longer answers is dying (a crashing process can close a
    client's socket a moment before it is gone): it gets a few seconds to finish."""
    if sluice.process.poll() is not None:
        return True
    if _answers_ssl_request(sluice.port):
        return False
    return sluice.wait_exit(5) is not None


_module_clusters = {}  # module name -> PgCluster
_module_sluices = {}  # (module name, config text) -> Sluice


def module_cluster(module, server_settings=None):
    """The PgCluster of a test module, started on first use and stopped after the module's last test.
    server_settings: postgresql.conf settings (ALTER SYSTEM, then a restart) applied when the cluster is made."""
    if module not in _module_clusters:
        pg = PgCluster()
        pg.start()
        _module_clusters[module] = pg
        unittest.addModuleCleanup(lambda: _module_clusters.pop(module).stop())
        if server_settings:
            for name, value in server_settings.items():
                pg.execute(f"ALTER SYSTEM SET {name} = '{value}'", user=SUPERUSER, password=SUPERUSER_PASSWORD,
                           dbname="postgres")
            pg.restart()
    return _module_clusters[module]


def module_sluice(module, databases=None, settings=None):
    """A running Sluice in front of the module's cluster, one per distinct config, stopped after the module's last
    test. One that died (a crash a previous test caused) is replaced by a fresh one on another port."""
    pg = module_cluster(module)
    config = sluice_config(pg.port, databases, settings)
    key = (module, config)
    sluice = _module_sluices.get(key)
    if sluice is not None and sluice_died(sluice):
        sluice.stop()
        sluice = None
    if sluice is None:
        sluice = Sluice(config, auth_file=userlist())
        sluice.start()
        first = key not in _module_sluices
        _module_sluices[key] = sluice
        if first:
            # Module cleanups run last-in first-out: every Sluice stops before the cluster it points to.
            unittest.addModuleCleanup(lambda: _module_sluices.pop(key).stop())
    return sluice


class SluiceTestCase(unittest.TestCase):
    """`pg`: the module's PgCluster; `sluice`: a Sluice in front of it configured by the class attributes. Classes
    of one module with the same configuration share the processes."""

    sluice_settings = {}
    sluice_databases = None
    server_settings = None  # for the module's cluster; the first class of a module to start it decides

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg = module_cluster(cls.__module__, cls.server_settings)
        cls.sluice = module_sluice(cls.__module__, cls.sluice_databases, cls.sluice_settings)

    def setUp(self):
        super().setUp()
        type(self).sluice = module_sluice(type(self).__module__, self.sluice_databases, self.sluice_settings)
        self.addCleanup(self.check_sluice_alive)

    def superuser_query(self, sql):
        """Runs sql on the cluster directly (not through Sluice) as the superuser; psql's unaligned output."""
        return self.pg.execute(sql, user=SUPERUSER, password=SUPERUSER_PASSWORD, dbname="postgres")

    def check_sluice_alive(self):
        """Fails the test during which Sluice exited, with its exit code and log."""
        if sluice_died(self.sluice):
            self.fail(f"Sluice exited during the test with code {self.sluice.process.returncode}"
                      f"{self.sluice_log_tail()}")

    def sluice_log_tail(self, max_chars=4000):
        return "\n--- sluice log (tail) ---\n" + self.sluice.log()[-max_chars:]

    def assert_log_clean(self):
        """Fails with the offending lines when Sluice logged trouble between a client and a server."""
        bad = [line for line in self.sluice.log().splitlines() if TROUBLE_IN_LOG.search(line)]
        self.assertEqual(bad, [], "Sluice logged trouble")
