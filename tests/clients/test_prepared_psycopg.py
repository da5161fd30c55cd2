"""psycopg 3 with prepare_threshold=0 (every query a named prepared statement, `_pg3_<n>`, numbered per connection so
that connections give different statements the same names) through Sluice in transaction pooling (issue 4): a
statement used on a server that never saw it, 50 connections running transactions with every result checked, errors
inside transactions followed by ROLLBACK (after which psycopg sends DEALLOCATE ALL) and reuse, a cache small enough
that psycopg deallocates statements one by one (DEALLOCATE <name>), pipelines and executemany."""

import threading
import time
import unittest

import psycopg
import psycopg.errors
import psycopg2

from client_fixture import DEFAULT_POOL_SIZE, SluiceTestCase, run_on_two_servers

CONNECTIONS = 50
TRANSACTIONS_PER_CONNECTION = 20


def run_threads(count, target, timeout=240):
    """Runs target(index) in `count` threads; returns the exceptions raised, as strings."""
    errors = []

    def guarded(index):
        try:
            target(index)
        except Exception as e:  # reported to the test
            errors.append(f"{index}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    if stuck:
        errors.append(f"{stuck} threads still running after {timeout} s")
    return errors


class Psycopg3PreparedTest(SluiceTestCase):
    sluice_settings = {"max_client_conn": "200", "query_wait_timeout": "120"}

    def connect(self, autocommit=False, prepared_max=None):
        conn = psycopg.connect(self.sluice.dsn(), autocommit=autocommit, prepare_threshold=0, connect_timeout=30)
        if prepared_max is not None:
            conn.prepared_max = prepared_max
        return conn

    def open(self, **options):
        conn = self.connect(**options)
        self.addCleanup(conn.close)
        return conn

    def table(self, name, columns):
        self.pg.execute(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({columns})")
        self.addCleanup(self.pg.execute, f"DROP TABLE IF EXISTS {name}")
        return name

    @staticmethod
    def prepared_names(conn):
        """The statements psycopg believes prepared on its connection (its own cache; private API)."""
        return list(conn._prepared._names.values())

    def test_statement_prepared_on_one_server_is_used_on_another(self):
        conn = self.open(autocommit=True)
        query = "SELECT pg_backend_pid(), %s::int * 2, %s::text"

        def first():
            return conn.execute(query, (1, "one")).fetchone()

        def then():
            return conn.execute(query, (21, "two")).fetchone()

        switch = run_on_two_servers(lambda: psycopg2.connect(self.sluice.dsn(), connect_timeout=30), first, then)
        self.assertEqual(switch.taker.backend_pid, switch.first_pid, "more servers than default_pool_size")
        self.assertNotEqual(switch.then_pid, switch.first_pid)
        self.assertEqual(switch.then_row[1:], (42, "two"))
        self.assertEqual(self.prepared_names(conn), [b"_pg3_0"])
        self.assert_log_clean()

    def test_50_connections_run_transactions_of_prepared_statements_with_correct_results(self):
        table = self.table("pg3_ps_tx", "conn_id int, i int, v text, PRIMARY KEY (conn_id, i)")
        wrong = []
        backends = set()

        def client(c):
            with self.connect(autocommit=True) as conn:
                # Only this connection's text, under a name (_pg3_3) every connection uses for its own.
                own = f"SELECT %s::int + {c}, pg_backend_pid()"
                for i in range(TRANSACTIONS_PER_CONNECTION):
                    value = f"v{c}-{i}"
                    with conn.transaction():
                        conn.execute(f"INSERT INTO {table} VALUES (%s, %s, %s)", (c, i, value))
                        row = conn.execute(f"SELECT (SELECT v FROM {table} WHERE conn_id = %s AND i = %s), "
                                           f"(SELECT count(*) FROM {table} WHERE conn_id = %s), pg_backend_pid()",
                                           (c, i, c)).fetchone()
                        sum_row = conn.execute("SELECT %s::int * 1000 + %s::int", (c, i)).fetchone()
                        own_row = conn.execute(own, (i,)).fetchone()
                    echo = conn.execute("SELECT %s::text || '!'", (value,)).fetchone()  # outside a transaction
                    backends.update((row[2], own_row[1]))
                    if (row[:2], sum_row, own_row[0], echo) != ((value, i + 1), (c * 1000 + i,), i + c, (value + "!",)):
                        wrong.append((c, i, row, sum_row, own_row, echo))
                if len(self.prepared_names(conn)) != 5:
                    wrong.append((c, "prepared", self.prepared_names(conn)))

        errors = run_threads(CONNECTIONS, client)
        self.assertEqual(errors[:5], [], f"{len(errors)} connections failed{self.sluice_log_tail(2000)}")
        self.assertEqual(wrong[:5], [], f"{len(wrong)} wrong results")
        self.assertLessEqual(len(backends), DEFAULT_POOL_SIZE)
        with self.connect() as conn:
            self.assertEqual(conn.execute(f"SELECT count(*), count(*) FILTER (WHERE v = 'v' || conn_id || '-' || i) "
                                          f"FROM {table}").fetchone(),
                             (CONNECTIONS * TRANSACTIONS_PER_CONNECTION, CONNECTIONS * TRANSACTIONS_PER_CONNECTION))
        self.assert_log_clean()

    def test_errors_inside_transactions_then_rollback_and_the_connection_is_reused(self):
        table = self.table("pg3_ps_err", "conn_id int, i int, PRIMARY KEY (conn_id, i)")
        wrong = []

        def client(c):
            with self.connect() as conn:
                for i in range(10):
                    # Prepared before the error (and, after a ROLLBACK, again: psycopg sends DEALLOCATE ALL).
                    self.check(wrong, c, i, "before",
                               conn.execute("SELECT 100 / %s::int", (4,)).fetchone(), (25,))
                    conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (c, i))
                    if i % 2:
                        with self.assertRaises(psycopg.errors.DivisionByZero):
                            conn.execute("SELECT 100 / %s::int", (0,))
                    else:
                        with self.assertRaises(psycopg.errors.SyntaxError):
                            conn.execute("SELEC %s::int", (i,))
                    # The transaction is aborted: a statement prepared before and a new one both say so.
                    with self.assertRaises(psycopg.errors.InFailedSqlTransaction):
                        conn.execute("SELECT 100 / %s::int", (5,))
                    with self.assertRaises(psycopg.errors.InFailedSqlTransaction):
                        conn.execute(f"SELECT {i} + %s::int", (1,))
                    conn.rollback()
                    self.check(wrong, c, i, "after", conn.execute("SELECT 100 / %s::int", (5,)).fetchone(), (20,))
                    conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (c, 100 + i))
                    self.check(wrong, c, i, "count", conn.execute(
                        f"SELECT count(*), min(i) FROM {table} WHERE conn_id = %s", (c,)).fetchone(), (i + 1, 100))
                    conn.commit()

        errors = run_threads(10, client)
        self.assertEqual(errors[:5], [], f"{len(errors)} connections failed{self.sluice_log_tail(2000)}")
        self.assertEqual(wrong[:5], [], f"{len(wrong)} wrong results")
        with self.connect() as conn:
            self.assertEqual(conn.execute(f"SELECT count(*), min(i), max(i) FROM {table}").fetchone(), (100, 100, 109))
        self.assert_log_clean()

    @staticmethod
    def check(wrong, c, i, what, got, expected):
        if got != expected:
            wrong.append((c, i, what, got, expected))

    def test_prepared_cache_overflow_deallocates_and_results_stay_correct(self):
        # prepared_max 5 and 20 distinct queries: psycopg sends `DEALLOCATE _pg3_<n>` for the oldest, over and over.
        wrong = []
        deallocated = []

        def client(c):
            with self.connect(autocommit=True, prepared_max=5) as conn:
                for rnd in range(3):
                    for q in range(20):
                        got = conn.execute(f"SELECT %s::int * {q + 1}, %s::text", (c + rnd, f"{c}.{q}")).fetchone()
                        self.check(wrong, c, (rnd, q), "autocommit", got, ((c + rnd) * (q + 1), f"{c}.{q}"))
                    with conn.transaction():
                        for q in range(20):
                            got = conn.execute(f"SELECT %s::int + {q}", (c,)).fetchone()
                            self.check(wrong, c, (rnd, q), "transaction", got, (c + q,))
                names = self.prepared_names(conn)
                deallocated.append(int(names[0][len("_pg3_"):]) if names else -1)
                if len(names) != 5:
                    wrong.append((c, "prepared", names))

        errors = run_threads(1, client)
        self.assertEqual(errors, [], self.sluice_log_tail(2000))
        self.assertEqual(wrong[:5], [], f"{len(wrong)} wrong results")
        errors = run_threads(8, client)
        self.assertEqual(errors[:5], [], f"{len(errors)} connections failed{self.sluice_log_tail(2000)}")
        self.assertEqual(wrong[:5], [], f"{len(wrong)} wrong results")
        # Each connection prepared 120 statements and deallocated all but its last 5.
        self.assertTrue(all(d >= 100 for d in deallocated), deallocated)
        self.assert_log_clean()

    def test_deallocate_by_the_client_removes_only_its_own_statement(self):
        # Two connections prepare the same text under the same name (_pg3_0). One deallocates it by SQL, itself a
        # prepared statement (prepare_threshold=0: Parse("_pg3_1", "DEALLOCATE _pg3_0")): its name is gone, as in
        # PostgreSQL (26000 when psycopg, unaware, binds it again); the other connection's statement still works.
        query = "SELECT %s::int + 1, pg_backend_pid()"
        a = self.open(autocommit=True)
        b = self.open(autocommit=True)
        self.assertEqual(a.execute(query, (1,)).fetchone()[0], 2)
        self.assertEqual(b.execute(query, (2,)).fetchone()[0], 3)
        self.assertEqual(self.prepared_names(a), [b"_pg3_0"])
        self.assertEqual(self.prepared_names(b), [b"_pg3_0"])
        a.execute("DEALLOCATE _pg3_0")
        with self.assertRaises(psycopg.errors.InvalidSqlStatementName):
            a.execute(query, (3,))
        for i in range(3 * DEFAULT_POOL_SIZE):
            self.assertEqual(b.execute(query, (i,)).fetchone()[0], i + 1)
        # DEALLOCATE ALL: psycopg forgets its statements too (as after a ROLLBACK) and prepares them again.
        b.execute("DEALLOCATE ALL", prepare=False)
        b._prepared.clear()
        b._prepared._maint_commands.clear()
        for i in range(3 * DEFAULT_POOL_SIZE):
            self.assertEqual(b.execute(query, (i,)).fetchone()[0], i + 1)
        self.assert_log_clean()

    def test_prepared_statements_in_pipeline_mode_with_an_error_in_the_middle(self):
        table = self.table("pg3_ps_pipe", "id int PRIMARY KEY")
        conn = self.open(autocommit=True)
        for rnd in range(3):
            base = rnd * 100
            with self.assertRaises(psycopg.errors.UniqueViolation):
                with conn.pipeline() as pipeline:
                    cursors = []
                    for i in range(10):
                        conn.execute(f"INSERT INTO {table} VALUES (%s)", (base + i,))
                        cursors.append(conn.execute(f"SELECT count(*) FROM {table} WHERE id >= %s", (base,)))
                    pipeline.sync()
                    conn.execute(f"INSERT INTO {table} VALUES (%s)", (base + 50,))
                    conn.execute(f"INSERT INTO {table} VALUES (%s)", (base,))  # fails: (base + 50) goes too
                    pipeline.sync()
            self.assertEqual([c.fetchone()[0] for c in cursors], list(range(1, 11)))
            self.assertEqual(conn.execute(f"SELECT count(*) FROM {table} WHERE id >= %s", (base,)).fetchone(), (10,))
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} VALUES (%s)", [(1000 + i,) for i in range(200)])
        self.assertEqual(conn.execute(f"SELECT count(*), sum(id) FROM {table} WHERE id >= %s", (1000,)).fetchone(),
                         (200, sum(1000 + i for i in range(200))))
        self.assert_log_clean()


if __name__ == "__main__":
    unittest.main()
