"""pgbench through Sluice: 50 clients share 5 server connections in transaction pooling, in the simple, the
extended and the prepared query protocol (named statements, issue 4), with no failed transaction, no protocol trouble
and never more than 5 servers."""

import os
import re
import shutil
import subprocess
import unittest

import psycopg2

from client_fixture import DEFAULT_POOL_SIZE, SluiceTestCase
from sluice_harness import TEST_DATABASE, TEST_PASSWORD, TEST_USER

PGBENCH = shutil.which("pgbench") or "pgbench"
CLIENTS = 50
DURATION_S = 10


def parse_pgbench(output):
    """(processed, failed) transaction counts from pgbench's summary; raises AssertionError when one is missing."""
    processed = re.search(r"^number of transactions actually processed: (\d+)", output, re.M)
    failed = re.search(r"^number of failed transactions: (\d+)", output, re.M)
    if not processed or not failed:
        raise AssertionError(f"pgbench summary lacks the transaction counts:\n{output}")
    return int(processed.group(1)), int(failed.group(1))


class PgbenchTest(SluiceTestCase):
    sluice_settings = {"max_client_conn": "200"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        init = subprocess.run(cls.pgbench_argv(cls.sluice.port, ["-i", "-q", "-s", "1"]), env=cls.pgbench_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"pgbench -i through Sluice failed ({init.returncode}):\n{init.stderr}\n"
                               f"--- sluice log ---\n{cls.sluice.log()[-3000:]}")

    @staticmethod
    def pgbench_env():
        return dict(os.environ, PGPASSWORD=TEST_PASSWORD, PGCONNECT_TIMEOUT="10")

    @staticmethod
    def pgbench_argv(port, args):
        return [PGBENCH, "-h", "127.0.0.1", "-p", str(port), "-U", TEST_USER] + args + [TEST_DATABASE]

    def run_bench(self, protocol, jobs):
        """Runs the bench; returns (stdout + stderr, the most server connections of the test role seen meanwhile)."""
        argv = self.pgbench_argv(self.sluice.port, ["-n", "-c", str(CLIENTS), "-j", str(jobs), "-T", str(DURATION_S),
                                                    "-M", protocol])
        most_servers = 0
        with psycopg2.connect(self.pg.dsn(user="postgres", password="postgres", dbname="postgres")) as watcher:
            watcher.autocommit = True
            with watcher.cursor() as cur, subprocess.Popen(argv, env=self.pgbench_env(), stdin=subprocess.DEVNULL,
                                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                           text=True) as bench:
                deadline_s = DURATION_S + 60
                waited_s = 0.0
                while True:
                    # The harness's own psql (history_rows) may still be exiting: only Sluice's servers count.
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND datname = %s"
                                " AND application_name <> 'psql'",
                                (TEST_USER, TEST_DATABASE))
                    most_servers = max(most_servers, cur.fetchone()[0])
                    try:
                        output = bench.communicate(timeout=0.25)[0]
                        break
                    except subprocess.TimeoutExpired:
                        waited_s += 0.25
                        if waited_s > deadline_s:
                            bench.kill()
                            raise AssertionError(f"pgbench -M {protocol} still running after {deadline_s} s")
        watcher.close()
        self.assertEqual(bench.returncode, 0, f"pgbench -M {protocol} failed:\n{output}\n"
                                              f"--- sluice log ---\n{self.sluice.log()[-3000:]}")
        return output, most_servers

    def history_rows(self):
        return int(self.pg.execute("SELECT count(*) FROM pgbench_history"))

    def check_bench(self, protocol, jobs=2):
        history_before = self.history_rows()
        output, most_servers = self.run_bench(protocol, jobs)
        processed, failed = parse_pgbench(output)
        self.assertEqual(failed, 0, output)
        self.assertGreater(processed, 0, output)
        # Every TPC-B-like transaction inserts one history row: none was lost or run twice.
        self.assertEqual(self.history_rows() - history_before, processed)
        self.assertNotIn("aborted", output)
        self.assertLessEqual(most_servers, DEFAULT_POOL_SIZE, "more server connections than default_pool_size")
        self.assertNotIn("protocol violation", self.sluice.log())
        self.assert_log_clean()
        return output

    def test_simple_protocol_50_clients_complete_transactions_without_failures(self):
        self.check_bench("simple")

    def test_extended_protocol_50_clients_complete_transactions_without_failures(self):
        self.check_bench("extended")

    def test_prepared_protocol_50_clients_complete_transactions_without_failures(self):
        # -M prepared: each client prepares its statements once (under pgbench's names, the same in every client)
        # and binds them in later transactions on whichever server it gets. pgbench prepares with a
        # blocking PQprepare per thread, which waits for a server while the thread's other clients hold theirs: with
        # fewer servers than clients per thread any transaction pooler deadlocks, hence one thread per client.
        output = self.check_bench("prepared", jobs=CLIENTS)
        tps = re.search(r"^tps = ([0-9.]+)", output, re.M)
        self.assertIsNotNone(tps, output)
        self.assertGreater(float(tps.group(1)), 0.0, output)
        print(f"\npgbench -M prepared -c {CLIENTS} -j {CLIENTS}: tps = {tps.group(1)}", flush=True)


if __name__ == "__main__":
    unittest.main()
