"""Node.js clients through Sluice in transaction pooling: node-postgres' Pool (50 connections, 2000 concurrent
queries) and postgres.js with prepare: false. The scripts live in tests/clients/node and report what they saw as
JSON; this module decides what is correct."""

import json
import os
import shutil
import subprocess
import unittest

from client_fixture import CLIENTS_DIR, DEFAULT_POOL_SIZE, SluiceTestCase
from sluice_harness import TEST_DATABASE, TEST_PASSWORD, TEST_USER

NODE = shutil.which("node")
NODE_DIR = os.path.join(CLIENTS_DIR, "node")
HAVE_MODULES = all(os.path.isdir(os.path.join(NODE_DIR, "node_modules", m)) for m in ("pg", "postgres"))


@unittest.skipUnless(NODE and HAVE_MODULES, "needs node and `npm ci` in tests/clients/node")
class NodeClientsTest(SluiceTestCase):
    sluice_settings = {"max_client_conn": "200", "query_wait_timeout": "60"}

    def run_script(self, script, scenario, timeout=120):
        env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(self.sluice.port), PGUSER=TEST_USER,
                   PGPASSWORD=TEST_PASSWORD, PGDATABASE=TEST_DATABASE, PGCONNECT_TIMEOUT="30")
        result = subprocess.run([NODE, script, scenario], cwd=NODE_DIR, env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=timeout)
        self.assertEqual(result.returncode, 0, f"node {script} {scenario} failed:\n{result.stderr[-3000:]}"
                                               f"{self.sluice_log_tail(2000)}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def test_pg_pool_of_50_runs_2000_concurrent_queries_with_correct_results(self):
        seen = self.run_script("pg_pool.js", "concurrent-queries")
        self.assertEqual(seen["errors"], [], f"{seen['errorCount']} queries failed")
        self.assertEqual(seen["wrong"], [], f"{seen['wrongCount']} wrong results")
        self.assertEqual(seen["queries"], 2000)
        self.assertLessEqual(seen["backends"], DEFAULT_POOL_SIZE)
        self.assert_log_clean()

    def test_pg_pool_clients_see_their_own_rows_inside_transactions(self):
        seen = self.run_script("pg_pool.js", "transactions")
        self.assertEqual(seen["errors"], [])
        self.assertEqual(seen["wrong"], [])
        self.assertEqual(seen["total"], seen["expected"])

    def test_pg_unique_violation_has_code_23505_and_the_client_stays_usable(self):
        seen = self.run_script("pg_pool.js", "unique-violation")
        self.assertEqual(seen, {"code": "23505", "ids": [1]})

    def test_postgres_js_without_prepare_runs_concurrent_queries_with_correct_results(self):
        seen = self.run_script("postgres_js.js", "simple-queries")
        self.assertEqual(seen["errors"], [], f"{seen['errorCount']} queries failed")
        self.assertEqual(seen["wrong"], [], f"{seen['wrongCount']} wrong results")
        self.assertEqual(seen["multi"], [{"a": 1}, {"b": 2}])
        self.assert_log_clean()

    def test_postgres_js_transactions_commit_roll_back_and_report_23505(self):
        seen = self.run_script("postgres_js.js", "transactions")
        self.assertEqual(seen, {"inside": 1, "rollbackError": "roll back", "code": "23505", "ids": [1]})


if __name__ == "__main__":
    unittest.main()
