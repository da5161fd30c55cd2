"""Backend faults under load: a backend terminated (pg_terminate_backend) or SIGKILLed mid-transaction, PostgreSQL
restarted (fast shutdown), a backend stalled with SIGSTOP and resumed.

Load: client threads (psycopg2) each run short insert transactions through Sluice in a loop, reconnecting after an
error, and record which inserts they saw commit; where the fault spares them, pgbench runs a multi-statement script
beside them. Checks: the client whose server was hit gets an error (or, for a stall, waits and then finishes); the
others are not disturbed where PostgreSQL itself spares them; no server with leftover state is reused (every
transaction starts with no transaction id assigned, an interrupted transaction's insert is never committed later);
the pool serves every client again once PostgreSQL is back; every insert a client saw commit is in the table, and
nothing else is, apart from inserts whose COMMIT was cut off (their outcome is unknown to the client).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import psycopg2
import psycopg2.extensions

from client_fixture import SluiceTestCase
from sluice_harness import SUPERUSER, SUPERUSER_PASSWORD, TEST_DATABASE, TEST_PASSWORD, TEST_USER, wait_until

PGBENCH = shutil.which("pgbench") or "pgbench"
LOAD_CLIENTS = 6
VICTIM = -1  # the client number of the transaction the fault hits
STALLED = -2  # the client number of the transaction whose backend is stopped and resumed
# SQLSTATEs a client may see when its server goes away: connection failures, admin shutdown, crash shutdown, "cannot
# connect now", and Sluice's own errors for a server that cannot be reached (None: libpq saw the socket close).
CONNECTION_LOSS = {None, "08000", "08003", "08006", "08001", "08004", "57P01", "57P02", "57P03"}


class LoadClient(threading.Thread):
    """A client running `INSERT (client, seq)` transactions in a loop until stopped; reconnects after an error."""

    def __init__(self, number, dsn):
        super().__init__(daemon=True, name=f"load-{number}")
        self.number = number
        self.dsn = dsn
        self.stop = threading.Event()
        self.committed = set()  # seqs whose COMMIT succeeded
        self.uncertain = set()  # seqs whose COMMIT was cut off
        self.errors = []  # (seq, pgcode, first line of the message)
        self.leftovers = []  # (seq, txid) of transactions that started with a transaction id already assigned
        self.seq = 0
        self.lock = threading.Lock()

    def commits(self):
        with self.lock:
            return len(self.committed)

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(self.dsn, connect_timeout=10)
                self.seq += 1
                self.transaction(conn, self.seq)
            except psycopg2.Error as e:
                with self.lock:
                    self.errors.append((self.seq, e.pgcode, str(e).splitlines()[0] if str(e) else type(e).__name__))
                if conn is not None:
                    conn.close()
                    conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()

    def transaction(self, conn, seq):
        with conn.cursor() as cur:
            cur.execute("SELECT txid_current_if_assigned()")  # psycopg2 sends BEGIN first
            txid = cur.fetchone()[0]
            if txid is not None:
                with self.lock:
                    self.leftovers.append((seq, txid))
            # The test cluster runs with synchronous_commit off, which may lose commits a crash restart follows.
            cur.execute("SET LOCAL synchronous_commit = on")
            cur.execute("INSERT INTO fault_rows VALUES (%s, %s)", (self.number, seq))
            cur.execute("SELECT pg_sleep(0.005)")
        try:
            conn.commit()
        except psycopg2.Error:
            with self.lock:
                self.uncertain.add(seq)
            raise
        with self.lock:
            self.committed.add(seq)


class FaultTest(SluiceTestCase):
    # A stuck wait turns into an error well within the test's deadlines.
    sluice_settings = {"query_wait_timeout": "15", "max_client_conn": "200"}

    def setUp(self):
        super().setUp()
        self.superuser_query("SELECT 1")
        self.pg.execute("DROP TABLE IF EXISTS fault_rows; CREATE TABLE fault_rows (client int, seq int, "
                        "PRIMARY KEY (client, seq))")
        self.clients = []
        self.bench = None

    def tearDown(self):
        self.stop_load()
        if self.bench is not None and self.bench.poll() is None:
            self.bench.kill()
            self.bench.wait()
        super().tearDown()

    # --- load ---

    def start_load(self):
        self.clients = [LoadClient(i, self.sluice.dsn()) for i in range(LOAD_CLIENTS)]
        for c in self.clients:
            c.start()
        self.wait_for_commits(3, 20, "every load client to commit")

    def stop_load(self):
        for c in self.clients:
            c.stop.set()
        for c in self.clients:
            c.join(30)
        stuck = [c.name for c in self.clients if c.is_alive()]
        self.clients = [c for c in self.clients if not c.is_alive()]
        self.assertEqual(stuck, [], "load clients still blocked 30 s after being stopped")

    def wait_for_commits(self, more, timeout, what):
        """Waits until every load client has committed `more` transactions beyond its count now."""
        targets = [(c, c.commits() + more) for c in self.clients]
        wait_until(lambda: all(c.commits() >= n for c, n in targets), timeout, what)

    def start_pgbench(self, seconds):
        """pgbench with a multi-statement transaction through Sluice, beside the load clients."""
        script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
        script.write("BEGIN;\nSELECT count(*) FROM fault_rows WHERE client = 0;\nSELECT pg_sleep(0.002);\nEND;\n")
        script.close()
        self.addCleanup(os.unlink, script.name)
        argv = [PGBENCH, "-h", "127.0.0.1", "-p", str(self.sluice.port), "-U", TEST_USER, "-n", "-c", "8", "-j", "2",
                "-T", str(seconds), "-f", script.name, TEST_DATABASE]
        self.bench = subprocess.Popen(argv, env=dict(os.environ, PGPASSWORD=TEST_PASSWORD, PGCONNECT_TIMEOUT="10"),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True)

    def check_pgbench_undisturbed(self):
        output = self.bench.communicate(timeout=60)[0]
        self.assertEqual(self.bench.returncode, 0, f"pgbench was disturbed:\n{output}{self.sluice_log_tail()}")
        self.assertRegex(output, r"number of failed transactions: 0 ")
        self.assertNotIn("aborted", output)

    # --- the client the fault hits ---

    def victim_in_transaction(self):
        """A connection through Sluice inside a transaction that inserted the victim row; returns (conn, pid)."""
        conn = psycopg2.connect(self.sluice.dsn(), connect_timeout=10)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO fault_rows VALUES (%s, 1)", (VICTIM,))
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        return conn, pid

    def superuser_conn(self):
        conn = psycopg2.connect(self.pg.dsn(user=SUPERUSER, password=SUPERUSER_PASSWORD), connect_timeout=10)
        conn.autocommit = True
        return conn

    def backend_gone(self, pid):
        return self.pg.execute(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}",
                               user=SUPERUSER, password=SUPERUSER_PASSWORD) == "0"

    def assert_victim_failed(self, conn):
        """The victim's next statement fails with a connection-loss error and its insert is not committed."""
        with self.assertRaises(psycopg2.Error) as caught:
            with conn.cursor() as cur:
                cur.execute("SELECT 'after the fault'")
            conn.commit()
        self.assertIn(caught.exception.pgcode, CONNECTION_LOSS, str(caught.exception))
        conn.close()

    # --- the checks after the fault ---

    def check_recovered_and_data(self, disturbed_allowed):
        """Every load client commits again; then the committed data is all there and nothing more."""
        self.wait_for_commits(3, 20, "every load client to commit again after the fault")
        self.stop_load()
        rows = {}
        for line in self.pg.execute("SELECT client, seq FROM fault_rows").splitlines():
            client, seq = map(int, line.split("|"))
            rows.setdefault(client, set()).add(seq)
        self.assertNotIn(VICTIM, rows, "the interrupted transaction's insert was committed")
        for c in self.clients:
            present = rows.get(c.number, set())
            self.assertEqual(c.committed - present, set(), f"{c.name}: committed inserts missing")
            self.assertEqual(present - c.committed - c.uncertain, set(),
                             f"{c.name}: inserts of failed transactions committed")
            self.assertEqual(c.leftovers, [], f"{c.name}: transactions began on a server left in a transaction")
            unexpected = [e for e in c.errors if e[1] not in CONNECTION_LOSS]
            self.assertEqual(unexpected, [], f"{c.name}: errors other than a lost connection")
            if not disturbed_allowed:
                self.assertEqual(c.errors, [], f"{c.name}: a client the fault spared saw errors")
        self.assertNotIn("protocol violation", self.sluice.log())
        # A new client is served at once.
        with psycopg2.connect(self.sluice.dsn(), connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM fault_rows WHERE client = %s", (VICTIM,))
            self.assertEqual(cur.fetchone()[0], 0)
        conn.close()

    # --- the faults ---

    def test_terminated_backend_fails_only_its_client(self):
        self.start_load()
        self.start_pgbench(6)
        victim, pid = self.victim_in_transaction()
        with self.superuser_conn() as su, su.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            self.assertTrue(cur.fetchone()[0])
        su.close()
        wait_until(lambda: self.backend_gone(pid), 10, f"backend {pid} to exit")
        self.assert_victim_failed(victim)
        self.check_pgbench_undisturbed()
        self.check_recovered_and_data(disturbed_allowed=False)

    def test_sigkilled_backend_fails_clients_and_the_pool_recovers_after_crash_recovery(self):
        # PostgreSQL answers a backend killed by a signal with a crash restart of every backend: every client with a
        # server may see the connection lost, none may see anything else.
        self.start_load()
        victim, pid = self.victim_in_transaction()
        os.kill(pid, signal.SIGKILL)
        self.assert_victim_failed(victim)
        self.check_recovered_and_data(disturbed_allowed=True)

    def test_postgres_fast_restart_under_load_and_the_pool_recovers(self):
        self.start_load()
        victim, _ = self.victim_in_transaction()
        self.pg.restart()  # pg_ctl stop -m fast, then start on the same port and data
        self.assert_victim_failed(victim)
        self.check_recovered_and_data(disturbed_allowed=True)

    def test_stalled_backend_holds_only_its_client_and_finishes_after_sigcont(self):
        self.start_load()
        self.start_pgbench(8)
        conn = psycopg2.connect(self.sluice.dsn(), connect_timeout=10)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        os.kill(pid, signal.SIGSTOP)
        try:
            result = {}

            def stalled_insert():
                try:
                    with conn.cursor() as cur:
                        cur.execute("INSERT INTO fault_rows VALUES (%s, 2) RETURNING seq", (STALLED,))
                        result["seq"] = cur.fetchone()[0]
                    conn.commit()
                    result["committed"] = True
                except psycopg2.Error as e:
                    result["error"] = e

            stalled = threading.Thread(target=stalled_insert, daemon=True)
            stalled.start()
            # While the backend is stopped, its client waits and every other client goes on.
            self.wait_for_commits(5, 20, "the other clients to commit while one backend is stopped")
            self.assertTrue(stalled.is_alive(), f"the stalled client finished early: {result}")
        finally:
            os.kill(pid, signal.SIGCONT)
        stalled.join(20)
        self.assertFalse(stalled.is_alive(), "the stalled client did not finish after SIGCONT")
        self.assertEqual(result, {"seq": 2, "committed": True})
        conn.close()
        self.check_pgbench_undisturbed()
        self.check_recovered_and_data(disturbed_allowed=False)
        self.assertEqual(self.pg.execute(f"SELECT seq FROM fault_rows WHERE client = {STALLED}"), "2")


if __name__ == "__main__":
    unittest.main()
