"""psycopg2 and psycopg 3 through Sluice in transaction pooling: CRUD with executemany, transactions, server errors,
COPY, large values, and a client's TimeZone surviving the move to another server connection."""

import contextlib
import datetime
import io
import threading
import time
import unittest
import zoneinfo

import psycopg
import psycopg2
import psycopg2.errors

from client_fixture import DEFAULT_POOL_SIZE, SluiceTestCase, run_on_two_servers, servers_held
from sluice_harness import wait_until

ROWS = 1000
KATHMANDU = "Asia/Kathmandu"  # +05:45: no other zone's rendering of a timestamp looks like it


class DriverBehaviour:
    """Tests run with both drivers. A subclass provides connect(**options) and table prefix `name`."""

    name = None
    # Waiting for a server is bounded, so that a leaked server fails the test instead of hanging it.
    sluice_settings = {"query_wait_timeout": "20"}

    def connect(self, autocommit=False):
        raise NotImplementedError

    def table(self, suffix):
        """A fresh table name for this driver and test, dropped at cleanup."""
        name = f"{self.name}_{suffix}"
        self.pg.execute(f"DROP TABLE IF EXISTS {name}")
        self.addCleanup(self.pg.execute, f"DROP TABLE IF EXISTS {name}")
        return name

    def open(self, autocommit=False):
        conn = self.connect(autocommit=autocommit)
        self.addCleanup(conn.close)
        return conn

    def test_executemany_insert_then_select_update_delete(self):
        table = self.table("crud")
        conn = self.open()
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL)")
            cur.executemany(f"INSERT INTO {table} (id, name, qty) VALUES (%s, %s, %s)",
                            [(i, f"item-{i}", i % 7) for i in range(ROWS)])
            conn.commit()
            cur.execute(f"SELECT count(*), sum(id), sum(qty) FROM {table}")
            self.assertEqual(cur.fetchone(), (ROWS, sum(range(ROWS)), sum(i % 7 for i in range(ROWS))))
            cur.execute(f"SELECT name FROM {table} WHERE id = %s", (123,))
            self.assertEqual(cur.fetchall(), [("item-123",)])
            cur.execute(f"UPDATE {table} SET qty = qty + 100 WHERE id < %s", (100,))
            self.assertEqual(cur.rowcount, 100)
            cur.execute(f"DELETE FROM {table} WHERE id >= %s", (900,))
            self.assertEqual(cur.rowcount, 100)
            conn.commit()
        with self.open() as other, other.cursor() as cur:
            cur.execute(f"SELECT count(*), count(*) FILTER (WHERE qty >= 100) FROM {table}")
            self.assertEqual(cur.fetchone(), (900, 100))
        self.assert_log_clean()

    def test_rollback_discards_and_commit_keeps_rows(self):
        table = self.table("tx")
        conn = self.open()
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id int)")
            conn.commit()
            cur.execute(f"INSERT INTO {table} VALUES (1), (2)")
            cur.execute(f"SELECT count(*) FROM {table}")
            self.assertEqual(cur.fetchone(), (2,))  # the transaction sees its own rows
            conn.rollback()
            cur.execute(f"SELECT count(*) FROM {table}")
            self.assertEqual(cur.fetchone(), (0,))
            cur.execute(f"INSERT INTO {table} VALUES (3)")
            conn.commit()
        with self.open() as other, other.cursor() as cur:
            cur.execute(f"SELECT array_agg(id) FROM {table}")
            self.assertEqual(cur.fetchone(), ([3],))

    def test_unique_violation_gives_23505_and_the_connection_stays_usable(self):
        table = self.table("uniq")
        conn = self.open()
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
            cur.execute(f"INSERT INTO {table} VALUES (1)")
            conn.commit()
            with self.assertRaises(self.integrity_error) as caught:
                cur.execute(f"INSERT INTO {table} VALUES (1)")
            self.assertEqual(self.sqlstate(caught.exception), "23505")
            conn.rollback()
            cur.execute(f"INSERT INTO {table} VALUES (2)")
            cur.execute(f"SELECT array_agg(id ORDER BY id) FROM {table}")
            self.assertEqual(cur.fetchone(), ([1, 2],))
            conn.commit()

    def test_unique_violation_in_autocommit_leaves_the_connection_usable(self):
        table = self.table("uniq_auto")
        conn = self.open(autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
            cur.execute(f"INSERT INTO {table} VALUES (1)")
            for _ in range(3):
                with self.assertRaises(self.integrity_error) as caught:
                    cur.execute(f"INSERT INTO {table} VALUES (1)")
                self.assertEqual(self.sqlstate(caught.exception), "23505")
            cur.execute("SELECT 1")
            self.assertEqual(cur.fetchone(), (1,))

    def test_large_result_and_large_parameter_cross_intact(self):
        conn = self.open(autocommit=True)
        big = "".join(chr(0x41 + i % 26) for i in range(3 * 1024 * 1024))  # bigger than any relay buffer
        with conn.cursor() as cur:
            cur.execute("SELECT length(%s), md5(%s)", (big, big))
            length, digest = cur.fetchone()
            self.assertEqual(length, len(big))
            cur.execute("SELECT %s::text", (big,))
            self.assertEqual(cur.fetchone()[0], big)
            cur.execute("SELECT i, repeat('x', 100) FROM generate_series(1, 50000) AS i")
            rows = cur.fetchall()
            self.assertEqual(len(rows), 50000)
            self.assertEqual(sum(r[0] for r in rows), 50000 * 50001 // 2)
            self.assertTrue(all(r[1] == "x" * 100 for r in rows))

    def test_set_timezone_is_seen_by_the_client_on_another_server(self):
        conn = self.open(autocommit=True)
        cur = conn.cursor()

        def set_timezone():
            cur.execute(f"SET TimeZone = '{KATHMANDU}'")
            cur.execute("SELECT pg_backend_pid()")
            return cur.fetchone()

        def show_timezone():
            cur.execute("SELECT pg_backend_pid(), current_setting('TimeZone'), "
                        "'2024-01-01 00:00:00+00'::timestamptz::text")
            return cur.fetchone()

        switch = run_on_two_servers(self.connect, set_timezone, show_timezone)
        self.assertEqual(switch.taker.backend_pid, switch.first_pid, "more servers than default_pool_size")
        self.assertNotEqual(switch.taker.timezone, KATHMANDU, "another client sees this client's TimeZone")
        self.assertEqual(switch.then_pid, switch.freed_pid)
        self.assertNotEqual(switch.then_pid, switch.first_pid)
        self.assertEqual(switch.then_row[1:], (KATHMANDU, "2024-01-01 05:45:00+05:45"))
        self.assertEqual(self.parameter_status(conn, "TimeZone"), KATHMANDU)
        # A client that never set it keeps the server default on the server that ran the SET.
        with self.open(autocommit=True) as other, other.cursor() as ocur:
            ocur.execute("SELECT current_setting('TimeZone')")
            self.assertNotEqual(ocur.fetchone()[0], KATHMANDU)

    def test_cancel_stops_a_running_query_with_57014_and_the_connection_stays_usable(self):
        conn = self.open(autocommit=True)
        cancelled = threading.Event()

        def cancel_when_running():
            # Cancel once the server runs the query (pg_stat_activity seen directly, not through Sluice).
            with contextlib.closing(self.connect_direct()) as watcher:
                watcher.autocommit = True
                with watcher.cursor() as cur:
                    def running():
                        cur.execute("SELECT count(*) FROM pg_stat_activity "
                                    "WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'")
                        return cur.fetchone()[0] == 1

                    wait_until(running, 30, "the query to run")
                    conn.cancel()
                    cancelled.set()

        canceller = threading.Thread(target=cancel_when_running)
        canceller.start()
        started = time.monotonic()
        with self.assertRaises(self.query_canceled) as caught:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(30) /* cancel me */")
        canceller.join(30)
        self.assertTrue(cancelled.is_set())
        self.assertEqual(self.sqlstate(caught.exception), "57014")
        self.assertLess(time.monotonic() - started, 20)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            self.assertEqual(cur.fetchone(), (1,))

    def connect_direct(self):
        """A psycopg2 connection straight to PostgreSQL as the superuser (to watch, not to test)."""
        return psycopg2.connect(self.pg.dsn(user="postgres", password="postgres", dbname="postgres"))

    def test_set_timezone_rolled_back_is_not_kept(self):
        conn = self.open()
        cur = conn.cursor()
        cur.execute("SELECT current_setting('TimeZone')")
        original = cur.fetchone()[0]
        conn.commit()

        def set_and_roll_back():
            cur.execute(f"SET TimeZone = '{KATHMANDU}'")
            cur.execute("SELECT pg_backend_pid(), current_setting('TimeZone')")
            row = cur.fetchone()
            self.assertEqual(row[1], KATHMANDU)
            conn.rollback()
            return row

        def show_timezone():
            cur.execute("SELECT pg_backend_pid(), current_setting('TimeZone')")
            row = cur.fetchone()
            conn.commit()
            return row

        switch = run_on_two_servers(self.connect, set_and_roll_back, show_timezone)
        self.assertNotEqual(switch.then_pid, switch.first_pid)
        self.assertEqual(switch.then_row[1], original)
        self.assertEqual(self.parameter_status(conn, "TimeZone"), original)


class Psycopg2Test(DriverBehaviour, SluiceTestCase):
    name = "pg2"
    integrity_error = psycopg2.IntegrityError
    query_canceled = psycopg2.errors.QueryCanceled

    def connect(self, autocommit=False):
        conn = psycopg2.connect(self.sluice.dsn(), connect_timeout=10)
        conn.autocommit = autocommit
        return conn

    @staticmethod
    def sqlstate(error):
        return error.pgcode

    @staticmethod
    def parameter_status(conn, name):
        return conn.get_parameter_status(name)

    def test_error_inside_explicit_transaction_keeps_the_client_on_its_failed_transaction(self):
        table = self.table("failed_tx")
        conn = self.open(autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY); INSERT INTO {table} VALUES (1)")
            with self.assertRaises(psycopg2.errors.UniqueViolation):
                cur.execute(f"BEGIN; INSERT INTO {table} VALUES (2); INSERT INTO {table} VALUES (1); COMMIT")
            # The server is left in the aborted transaction: the client must still be on it.
            with self.assertRaises(psycopg2.errors.InFailedSqlTransaction):
                cur.execute("SELECT 1")
            cur.execute("ROLLBACK")
            cur.execute(f"SELECT array_agg(id) FROM {table}")
            self.assertEqual(cur.fetchone(), ([1],))

    def test_servers_terminated_while_idle_are_replaced_without_client_errors(self):
        with servers_held(self.connect, DEFAULT_POOL_SIZE) as holders:  # the pool opens all its servers
            pids = sorted(h.backend_pid for h in holders)
        with contextlib.closing(self.connect_direct()) as admin:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE pid = ANY(%s)", (pids,))
                self.assertEqual(cur.fetchone()[0], DEFAULT_POOL_SIZE)

                def all_gone():
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))
                    return cur.fetchone()[0] == 0

                wait_until(all_gone, 30, "the terminated servers to exit")
        conn = self.open(autocommit=True)
        with conn.cursor() as cur:
            for i in range(2 * DEFAULT_POOL_SIZE):
                cur.execute("SELECT pg_backend_pid(), %s", (i,))
                pid, echo = cur.fetchone()
                self.assertEqual(echo, i)
                self.assertNotIn(pid, pids)

    def test_copy_expert_in_and_out(self):
        table = self.table("copy")
        conn = self.open()
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id int, name text)")
            data = "".join(f"{i}\tname {i}\n" for i in range(20000))
            cur.copy_expert(f"COPY {table} FROM STDIN", io.StringIO(data))
            conn.commit()
            out = io.StringIO()
            cur.copy_expert(f"COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT", out)
            conn.commit()
            self.assertEqual(out.getvalue(), data)

    def test_copy_of_bad_data_fails_with_22P02_and_the_connection_recovers(self):
        table = self.table("copy_bad")
        conn = self.open()
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id int)")
            conn.commit()
            data = "".join(f"{i}\n" for i in range(5000)) + "not a number\n"
            with self.assertRaises(psycopg2.errors.InvalidTextRepresentation):
                cur.copy_expert(f"COPY {table} FROM STDIN", io.StringIO(data))
            conn.rollback()
            cur.execute(f"SELECT count(*) FROM {table}")
            self.assertEqual(cur.fetchone(), (0,))
        conn.commit()

    def test_notices_raised_by_the_server_reach_the_client(self):
        conn = self.open(autocommit=True)
        with conn.cursor() as cur:
            cur.execute("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$")
        self.assertEqual([n.strip() for n in conn.notices], ["NOTICE:  hello 42", "WARNING:  careful"])

    def test_named_cursor_fetches_in_batches_inside_one_transaction(self):
        conn = self.open()
        with conn.cursor(name="batches") as cur:
            cur.itersize = 100
            cur.execute("SELECT i FROM generate_series(1, 1000) AS i")
            total = 0
            while batch := cur.fetchmany(100):
                total += sum(r[0] for r in batch)
            self.assertEqual(total, 1000 * 1001 // 2)
        conn.commit()


class Psycopg3Test(DriverBehaviour, SluiceTestCase):
    name = "pg3"
    integrity_error = psycopg.errors.IntegrityError
    query_canceled = psycopg.errors.QueryCanceled

    def connect(self, autocommit=False):
        return psycopg.connect(self.sluice.dsn(), autocommit=autocommit, prepare_threshold=None, connect_timeout=10)

    @staticmethod
    def sqlstate(error):
        return error.sqlstate

    @staticmethod
    def parameter_status(conn, name):
        return conn.info.parameter_status(name)

    def test_timestamptz_is_loaded_in_the_session_time_zone(self):
        conn = self.open(autocommit=True)
        conn.execute(f"SET TimeZone = '{KATHMANDU}'")
        value = conn.execute("SELECT '2024-01-01 00:00:00+00'::timestamptz").fetchone()[0]
        self.assertEqual(value.tzinfo, zoneinfo.ZoneInfo(KATHMANDU))
        self.assertEqual(value, datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))

    def test_pipeline_mode_runs_queued_statements_in_order(self):
        table = self.table("pipeline")
        conn = self.open(autocommit=True)
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        with conn.pipeline():
            cursors = []
            for i in range(50):
                conn.execute(f"INSERT INTO {table} VALUES (%s)", (i,))
                cursors.append(conn.execute(f"SELECT count(*) FROM {table}"))
        self.assertEqual([c.fetchone()[0] for c in cursors], list(range(1, 51)))

    def test_pipeline_error_rolls_back_its_sync_group_and_the_connection_recovers(self):
        table = self.table("pipeline_err")
        conn = self.open(autocommit=True)
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
        with self.assertRaises(psycopg.errors.UniqueViolation):
            with conn.pipeline() as pipeline:
                conn.execute(f"INSERT INTO {table} VALUES (1)")
                pipeline.sync()  # commits the first group
                conn.execute(f"INSERT INTO {table} VALUES (3)")
                conn.execute(f"INSERT INTO {table} VALUES (1)")  # fails: the group's (3) goes too
                pipeline.sync()
                conn.execute(f"INSERT INTO {table} VALUES (2)")
        self.assertEqual(conn.execute(f"SELECT array_agg(id) FROM {table}").fetchone()[0], [1])
        self.assertEqual(conn.execute("SELECT 1").fetchone(), (1,))

    def test_copy_in_and_out(self):
        table = self.table("copy")
        conn = self.open()
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id int, name text)")
            with cur.copy(f"COPY {table} (id, name) FROM STDIN") as copy:
                for i in range(20000):
                    copy.write_row((i, f"name {i}"))
            conn.commit()
            with cur.copy(f"COPY (SELECT id, name FROM {table} ORDER BY id) TO STDOUT") as copy:
                rows = [(int(i), name) for i, name in copy.rows()]
            conn.commit()
        self.assertEqual(rows, [(i, f"name {i}") for i in range(20000)])


class MaxClientConnTest(SluiceTestCase):
    sluice_settings = {"max_client_conn": "3"}

    def test_client_past_max_client_conn_is_refused_until_one_leaves(self):
        conns = [psycopg2.connect(self.sluice.dsn(), connect_timeout=10) for _ in range(3)]
        try:
            with self.assertRaisesRegex(psycopg2.OperationalError, "no more connections allowed"):
                psycopg2.connect(self.sluice.dsn(), connect_timeout=10).close()
            conns.pop().close()

            def can_connect():
                try:
                    conns.append(psycopg2.connect(self.sluice.dsn(), connect_timeout=10))
                    return True
                except psycopg2.OperationalError:
                    return False

            wait_until(can_connect, 10, "a place to free up")
            with conns[-1].cursor() as cur:
                cur.execute("SELECT 1")
                self.assertEqual(cur.fetchone(), (1,))
        finally:
            for conn in conns:
                conn.close()


if __name__ == "__main__":
    unittest.main()
