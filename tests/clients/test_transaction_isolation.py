"""Transaction pooling keeps transactions whole and sessions apart (psycopg2 through Sluice, 5 servers).

A transaction stays on one server from BEGIN to COMMIT while 20 other clients run, and no other client's statement
runs on that server meanwhile. The proof: every statement logs (client, transaction, backend pid, txid_current(),
clock_timestamp()). PostgreSQL runs one transaction at a time per backend, so a statement slipped onto a backend
inside someone else's transaction would carry that transaction's txid: each txid must belong to exactly one client
transaction, each client transaction must have one txid and one backend, and per backend the client transactions'
time spans must not overlap.

Session parameters Sluice tracks (application_name here) belong to the client: set by one client, they are not
seen by another client given the same server, and follow the client to its next server.
"""

import collections
import os
import socket
import threading
import unittest
from unittest import mock

import psycopg2

from client_fixture import DEFAULT_POOL_SIZE, SluiceTestCase, run_on_two_servers, servers_held

OTHER_CLIENTS = 20
TRANSACTIONS = 12
STATEMENTS = 4


class TransactionIsolationTest(SluiceTestCase):
    sluice_settings = {"query_wait_timeout": "30"}
    server_settings = {"shared_preload_libraries": "pg_stat_statements"}

    def connect(self, autocommit=False, **options):
        conn = psycopg2.connect(self.sluice.dsn(), connect_timeout=10, **options)
        conn.autocommit = autocommit
        return conn

    def run_clients(self, target, count):
        """Runs target(i) in `count` threads; returns the exceptions they raised."""
        errors = []

        def guarded(i):
            try:
                target(i)
            except Exception as e:  # reported by the caller
                errors.append(f"client {i}: {e!r}")

        threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running after 120 s")
        return errors

    def test_backend_pid_is_constant_inside_a_transaction_while_20_clients_run(self):
        stop = threading.Event()
        started = threading.Barrier(OTHER_CLIENTS + 1, timeout=60)

        def busy(i):
            conn = self.connect(autocommit=i % 2 == 0)
            try:
                with conn.cursor() as cur:
                    started.wait()
                    while not stop.is_set():
                        cur.execute("SELECT pg_backend_pid(), %s", (i,))
                        self.assertEqual(cur.fetchone()[1], i)
                        if not conn.autocommit:
                            conn.commit()
            finally:
                conn.close()

        errors = []
        others = threading.Thread(target=lambda: errors.extend(self.run_clients(busy, OTHER_CLIENTS)))
        others.start()
        try:
            conn = self.connect()
            started.wait()
            with conn.cursor() as cur:
                pids = set()
                for i in range(40):
                    cur.execute("SELECT pg_backend_pid(), pg_sleep(0.005), %s", (i,))
                    pid, _, echo = cur.fetchone()
                    self.assertEqual(echo, i)
                    pids.add(pid)
                conn.commit()
            conn.close()
        finally:
            stop.set()
            others.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(len(pids), 1, f"one transaction ran on backends {sorted(pids)}")

    def test_no_statement_of_another_client_runs_inside_a_client_transaction(self):
        setup = self.connect(autocommit=True)
        with setup.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS iso_log")
            cur.execute("CREATE TABLE iso_log (client int, tx int, stmt int, backend int, txid bigint, "
                        "at timestamptz)")
        setup.close()
        insert = ("INSERT INTO iso_log VALUES (%s, %s, %s, pg_backend_pid(), txid_current(), clock_timestamp())")

        def client(c):
            autocommit_client = c % 4 == 3  # every fourth client runs single-statement transactions only
            conn = self.connect(autocommit=autocommit_client)
            try:
                with conn.cursor() as cur:
                    for t in range(TRANSACTIONS):
                        for s in range(1 if autocommit_client else STATEMENTS):
                            cur.execute(insert, (c, t, s))
                        if not autocommit_client:
                            conn.commit()
            finally:
                conn.close()

        self.assertEqual(self.run_clients(client, OTHER_CLIENTS + 1), [])

        check = self.connect()
        with check.cursor() as cur:
            cur.execute("SELECT client, tx, backend, txid, at FROM iso_log ORDER BY at")
            rows = cur.fetchall()
        check.close()
        per_transaction = collections.defaultdict(list)
        owners_of_txid = collections.defaultdict(set)
        for client, tx, backend, txid, at in rows:
            per_transaction[(client, tx)].append((backend, txid, at))
            owners_of_txid[txid].add((client, tx))
        self.assertEqual(len(per_transaction), (OTHER_CLIENTS + 1) * TRANSACTIONS)
        shared = {txid: owners for txid, owners in owners_of_txid.items() if len(owners) > 1}
        self.assertEqual(shared, {}, "statements of different client transactions ran in one server transaction")
        split = {key: sorted({(b, x) for b, x, _ in stmts}) for key, stmts in per_transaction.items()
                 if len({(b, x) for b, x, _ in stmts}) > 1}
        self.assertEqual(split, {}, "a client transaction was spread over servers or server transactions")

        spans = collections.defaultdict(list)  # backend -> [(first at, last at, client transaction)]
        for key, stmts in per_transaction.items():
            spans[stmts[0][0]].append((min(s[2] for s in stmts), max(s[2] for s in stmts), key))
        overlaps = []
        for backend, intervals in spans.items():
            intervals.sort()
            for (_, end, key), (start, _, next_key) in zip(intervals, intervals[1:]):
                if start < end:  # equal microseconds prove nothing; interleaving also shows in the txids
                    overlaps.append((backend, key, next_key))
        self.assertEqual(overlaps, [])
        self.assertLessEqual(len(spans), DEFAULT_POOL_SIZE)
        self.assert_log_clean()

    def test_client_gone_inside_a_transaction_leaves_no_open_transaction_to_other_clients(self):
        setup = self.connect(autocommit=True)
        with setup.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS iso_abandoned; CREATE TABLE iso_abandoned (how text)")
        setup.close()
        for how in ("terminate", "eof"):
            with self.subTest(how=how):
                conn = self.connect()
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO iso_abandoned VALUES (%s)", (how,))
                if how == "eof":  # the socket closes without a Terminate message
                    with socket.socket(fileno=os.dup(conn.fileno())) as raw:
                        raw.shutdown(socket.SHUT_RDWR)
                conn.close()
                # Every server of the pool at once: none may still be inside the abandoned transaction, whose
                # uncommitted row only that transaction would see.
                with servers_held(self.connect, DEFAULT_POOL_SIZE) as holders:
                    seen = []
                    for holder in holders:
                        with holder.conn.cursor() as cur:
                            cur.execute("SELECT count(*) FROM iso_abandoned")
                            seen.append(cur.fetchone()[0])
                self.assertEqual(seen, [0] * DEFAULT_POOL_SIZE)

    def test_application_name_set_by_a_client_is_not_seen_by_the_next_client_of_its_server(self):
        conn = self.connect(autocommit=True)
        cur = conn.cursor()

        def set_name():
            cur.execute("SET application_name = 'isolation-x'")
            cur.execute("SELECT pg_backend_pid(), current_setting('application_name')")
            return cur.fetchone()

        def show_name():
            cur.execute("SELECT pg_backend_pid(), current_setting('application_name')")
            return cur.fetchone()

        switch = run_on_two_servers(self.connect, set_name, show_name)
        conn.close()
        self.assertEqual(switch.taker.backend_pid, switch.first_pid)
        self.assertEqual(switch.taker.application_name, "", "a client that set no application_name sees another's")
        self.assertNotEqual(switch.then_pid, switch.first_pid)
        self.assertEqual(switch.then_row[1], "isolation-x")

    def test_application_name_from_startup_is_restored_over_another_clients_set(self):
        setter = self.connect(autocommit=True)
        cur = setter.cursor()

        def set_name():
            cur.execute("SET application_name = 'isolation-y'")
            cur.execute("SELECT pg_backend_pid()")
            return cur.fetchone()

        def show_name():
            cur.execute("SELECT pg_backend_pid(), current_setting('application_name')")
            return cur.fetchone()

        switch = run_on_two_servers(lambda: self.connect(application_name="holder"), set_name, show_name)
        setter.close()
        self.assertEqual(switch.taker.backend_pid, switch.first_pid)
        self.assertEqual(switch.taker.application_name, "holder")
        self.assertEqual(switch.then_row[1], "isolation-y")

    def test_20_clients_with_their_own_application_names_always_see_their_own(self):
        def client(i):
            by_startup = i % 2 == 0
            options = {"application_name": f"startup-{i}"} if by_startup else {}
            conn = self.connect(autocommit=True, **options)
            try:
                with conn.cursor() as cur:
                    expected = f"startup-{i}"
                    if not by_startup:
                        expected = f"set-{i}"
                        cur.execute(f"SET application_name = '{expected}'")
                    for q in range(30):
                        cur.execute("SELECT current_setting('application_name')")
                        seen = cur.fetchone()[0]
                        if seen != expected:
                            raise AssertionError(f"query {q} saw application_name {seen!r}, expected {expected!r}")
            finally:
                conn.close()

        self.assertEqual(self.run_clients(client, OTHER_CLIENTS), [])

    def test_startup_parameters_the_server_spells_differently_are_set_once_per_server_not_per_transaction(self):
        # libpq sends these in the startup packet; the server reports them canonicalised (LATIN1, "ISO, MDY", UTC).
        # Sluice may bring each server to the client's value once, but must then recognise it as equal.
        self.superuser_query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cases = [
            ("client_encoding", {"client_encoding": "latin1"}, {}, "LATIN1"),
            ("DateStyle", {}, {"PGDATESTYLE": "iso"}, "ISO, MDY"),
            ("TimeZone", {}, {"PGTZ": "utc"}, "UTC"),
        ]
        for parameter, options, env, reported in cases:
            with self.subTest(parameter=parameter):
                with mock.patch.dict(os.environ, env):
                    conn = self.connect(autocommit=True, **options)
                try:
                    self.superuser_query("SELECT pg_stat_statements_reset()")
                    with conn.cursor() as cur:
                        for _ in range(20):
                            cur.execute(f"SELECT current_setting('{parameter}')")
                            self.assertEqual(cur.fetchone()[0], reported)
                finally:
                    conn.close()
                sets = int(self.superuser_query("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                                                f"WHERE query ILIKE 'SET {parameter} %'"))
                self.assertLessEqual(sets, DEFAULT_POOL_SIZE, f"SET {parameter} ran {sets} times for 20 queries")


if __name__ == "__main__":
    unittest.main()
