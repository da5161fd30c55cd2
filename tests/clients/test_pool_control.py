"""Pool control under load, with real clients: 1000 asyncpg clients on a pool of 5 (all served, first come first
served, with the spread of their waits printed), PAUSE/RESUME under pgbench, and the hand-over between two Sluice
processes sharing a port with so_reuseport while pgbench -C runs, plus SIGINT's immediate exit."""

import asyncio
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import threading
import time
import unittest

import asyncpg
import psycopg2

import sluice_harness
from client_fixture import SluiceTestCase, sluice_config, userlist
from sluice_harness import TEST_DATABASE, TEST_PASSWORD, TEST_USER, Sluice, wait_until

PGBENCH = shutil.which("pgbench") or "pgbench"
CLIENTS = 1000
POOL_SIZE = 5


def raise_nofile(wanted):
    """This process opens one socket per client: lift the soft descriptor limit as far as the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def parse_pgbench(output):
    processed = re.search(r"^number of transactions actually processed: (\d+)", output, re.M)
    failed = re.search(r"^number of failed transactions: (\d+)", output, re.M)
    if not processed or not failed:
        raise AssertionError(f"pgbench summary lacks the transaction counts:\n{output}")
    return int(processed.group(1)), int(failed.group(1))


def pgbench_env():
    return dict(os.environ, PGPASSWORD=TEST_PASSWORD, PGCONNECT_TIMEOUT="10")


def pgbench_argv(port, args):
    return [PGBENCH, "-h", "127.0.0.1", "-p", str(port), "-U", TEST_USER] + args + [TEST_DATABASE]


def init_pgbench(port):
    init = subprocess.run(pgbench_argv(port, ["-i", "-q", "-s", "1"]), env=pgbench_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=180)
    if init.returncode != 0:
        raise RuntimeError(f"pgbench -i failed ({init.returncode}):\n{init.stderr}")


class FairnessTest(SluiceTestCase):
    sluice_settings = {"max_client_conn": str(CLIENTS + 50), "default_pool_size": str(POOL_SIZE),
                       "query_wait_timeout": "300", "query_wait_notify": "0", "listen_backlog": "1024"}

    def test_1000_clients_on_a_pool_of_5_are_all_served_first_come_first_served(self):
        self.assertGreaterEqual(raise_nofile(CLIENTS + 200), CLIENTS + 100, "cannot open enough sockets")
        self.pg.execute("DROP SEQUENCE IF EXISTS fairness_order; CREATE SEQUENCE fairness_order")
        report = asyncio.run(self.run_clients())
        waits = sorted(report["waits"])
        spread = {
            "min": waits[0],
            "median": statistics.median(waits),
            "p99": waits[int(len(waits) * 0.99) - 1],
            "max": waits[-1],
        }
        print(f"\n{CLIENTS} clients, pool of {POOL_SIZE}: wait until served (s) "
              + " ".join(f"{k}={v:.3f}" for k, v in spread.items())
              + f"; inversions={report['inversions']}; total {report['elapsed']:.2f} s", flush=True)
        self.assertEqual(report["errors"], [])
        self.assertEqual(len(report["waits"]), CLIENTS)
        # FIFO: a client that sent its query clearly before another (by 0.2 s, far above the sending jitter and a
        # tick) was served before it. Across the two workers the oldest waiter goes first, so this holds too.
        self.assertEqual(report["inversions"], 0, report["inversion_examples"])
        most = int(self.pg.execute("SELECT max(n) FROM (SELECT count(*) n FROM pg_stat_activity "
                                   f"WHERE usename = '{TEST_USER}' AND datname = '{TEST_DATABASE}') s") or 0)
        self.assertLessEqual(most, POOL_SIZE + 1)  # + the counting psql itself
        self.assert_log_clean()

    async def run_clients(self):
        connect_gate = asyncio.Semaphore(50)  # well below listen_backlog

        async def connect():
            async with connect_gate:
                return await asyncpg.connect(host="127.0.0.1", port=self.sluice.port, user=TEST_USER,
                                             password=TEST_PASSWORD, database=TEST_DATABASE,
                                             statement_cache_size=0, timeout=60)

        conns = await asyncio.gather(*(connect() for _ in range(CLIENTS)))
        try:
            # Each query waits for a server, then holds it ~10 ms: 1000 of them queue behind 5 servers.
            sent = [0.0] * CLIENTS
            done = [0.0] * CLIENTS
            order = [0] * CLIENTS
            errors = []

            async def one(i):
                sent[i] = time.monotonic()
                try:
                    order[i] = await conns[i].fetchval(
                        "SELECT nextval('fairness_order') FROM (SELECT pg_sleep(0.01)) s", timeout=300)
                except Exception as e:  # noqa: BLE001 - every failure is reported
                    errors.append(f"client {i}: {e!r}")
                done[i] = time.monotonic()

            started = time.monotonic()
            tasks = []
            for i in range(CLIENTS):
                tasks.append(asyncio.create_task(one(i)))
                await asyncio.sleep(0.001)  # a known arrival order, 1 ms apart
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - started
        finally:
            await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        # The server-side sequence gives the order in which clients got a server.
        by_sent = sorted(range(CLIENTS), key=lambda k: sent[k])
        inversions = 0
        examples = []
        latest_order_before = 0
        j = 0
        for i in by_sent:
            while j < len(by_sent) and sent[by_sent[j]] + 0.2 < sent[i]:
                latest_order_before = max(latest_order_before, order[by_sent[j]])
                j += 1
            if order[i] and order[i] < latest_order_before:
                inversions += 1
                if len(examples) < 5:
                    examples.append((i, sent[i] - started, order[i], latest_order_before))
        # Wait = time to the answer minus the ~10 ms the query itself runs.
        waits = [max(0.0, done[k] - sent[k] - 0.01) for k in range(CLIENTS) if order[k]]
        return {"waits": waits, "errors": errors, "inversions": inversions, "inversion_examples": examples,
                "elapsed": elapsed}



class PauseUnderLoadTest(SluiceTestCase):
    sluice_settings = {"max_client_conn": "200", "admin_users": TEST_USER}

    def admin(self):
        conn = psycopg2.connect(self.sluice.dsn(dbname="pgbouncer"))
        conn.autocommit = True
        return conn

    def history_rows(self):
        return int(self.pg.execute("SELECT count(*) FROM pgbench_history"))

    def test_pause_waits_for_transactions_holds_new_ones_and_resume_releases_them_without_loss(self):
        init_pgbench(self.sluice.port)
        history_before = self.history_rows()
        argv = pgbench_argv(self.sluice.port, ["-n", "-c", "10", "-j", "2", "-T", "8"])
        with subprocess.Popen(argv, env=pgbench_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as bench:
            time.sleep(2)
            admin = self.admin()
            with admin.cursor() as cur:
                cur.execute("PAUSE")  # returns once every running transaction has finished
                cur.execute("SHOW POOLS")
                columns = [d[0] for d in cur.description]
                rows = [dict(zip(columns, r)) for r in cur.fetchall() if r[0] == TEST_DATABASE]
                self.assertTrue(rows)
                self.assertEqual(sum(r["sv_active"] for r in rows), 0, rows)
                frozen = self.history_rows()
                time.sleep(1.0)
                self.assertEqual(self.history_rows(), frozen, "a transaction ran while paused")
                cur.execute("SHOW POOLS")
                waiting = sum(r[columns.index("cl_waiting")] for r in cur.fetchall() if r[0] == TEST_DATABASE)
                self.assertGreater(waiting, 0, "pgbench clients should queue while paused")
                cur.execute("RESUME")
            admin.close()
            output = bench.communicate(timeout=120)[0]
        self.assertEqual(bench.returncode, 0, output + self.sluice_log_tail())
        processed, failed = parse_pgbench(output)
        self.assertEqual(failed, 0, output)
        self.assertGreater(self.history_rows(), frozen, "nothing ran after RESUME")
        self.assertEqual(self.history_rows() - history_before, processed)


class HandOverTest(SluiceTestCase):
    """Two processes on one port (so_reuseport): the old one drains on SIGTERM while the new one takes the new
    connections. pgbench -C opens a connection per transaction, so every transaction starts on a connection that
    one of the two accepted and finishes there."""

    sluice_settings = {"so_reuseport": "1", "max_client_conn": "200", "shutdown_timeout": "20"}

    def start_second_on_same_port(self):
        config = sluice_config(self.pg.port, self.sluice_databases, dict(self.sluice_settings))
        second = Sluice(config, auth_file=userlist())
        original = sluice_harness.free_port
        sluice_harness.free_port = lambda: self.sluice.port
        try:
            second.start()
        finally:
            sluice_harness.free_port = original
        wait_until(lambda: f"listening on 127.0.0.1:{self.sluice.port}" in second.log(), 30, "second listener")
        return second

    def test_sigterm_hands_over_to_a_second_process_on_the_port_without_a_failed_transaction(self):
        init_pgbench(self.sluice.port)
        history_before = self.history_rows()
        first = self.sluice
        argv = pgbench_argv(first.port, ["-n", "-C", "-c", "8", "-j", "2", "-T", "8"])
        second = None
        try:
            with subprocess.Popen(argv, env=pgbench_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) as bench:
                time.sleep(2)
                second = self.start_second_on_same_port()
                time.sleep(1)
                first.send_signal(signal.SIGTERM)
                code = first.wait_exit(30)
                output = bench.communicate(timeout=120)[0]
            self.assertEqual(code, 0, first.log()[-3000:])
            self.assertEqual(bench.returncode, 0, output + "\n--- first ---\n" + first.log()[-3000:]
                             + "\n--- second ---\n" + second.log()[-3000:])
            processed, failed = parse_pgbench(output)
            self.assertEqual(failed, 0, output)
            self.assertNotIn("aborted", output)
            self.assertEqual(self.history_rows() - history_before, processed)
            self.assertIn("login ok", second.log(), "the second process served no client")
        finally:
            if second is not None:
                second.stop()

    def history_rows(self):
        return int(self.pg.execute("SELECT count(*) FROM pgbench_history"))

    def check_sluice_alive(self):
        pass  # the first process is stopped on purpose


class SigintTest(SluiceTestCase):
    sluice_settings = {"shutdown_timeout": "60"}

    def test_sigint_exits_at_once_even_with_a_transaction_open(self):
        conn = psycopg2.connect(self.sluice.dsn())
        cur = conn.cursor()
        cur.execute("SELECT 1")  # psycopg2 opened a transaction: SIGTERM would wait for it
        started = time.monotonic()
        self.sluice.send_signal(signal.SIGINT)
        code = self.sluice.wait_exit(20)
        self.assertIsNotNone(code, "sluice still running 20 s after SIGINT")
        self.assertLess(time.monotonic() - started, 20)
        self.assertEqual(code, 0)
        with self.assertRaises(psycopg2.Error):
            cur.execute("SELECT 2")
        conn.close()

    def check_sluice_alive(self):
        pass  # this test stops it on purpose


if __name__ == "__main__":
    unittest.main()
