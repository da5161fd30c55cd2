"""Node.js clients with named prepared statements through Sluice in transaction pooling (issue 4): node-postgres
queries with `name:` (one name for different texts on different connections, errors inside transactions, ROLLBACK
and reuse) and postgres.js with its defaults (prepare: true). The scenarios live in tests/clients/node/prepared.js and
report what they saw as JSON; this module decides what is correct."""

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
class NodePreparedTest(SluiceTestCase):
    sluice_settings = {"max_client_conn": "200", "query_wait_timeout": "120"}

    def run_script(self, scenario, timeout=240):
        env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(self.sluice.port), PGUSER=TEST_USER,
                   PGPASSWORD=TEST_PASSWORD, PGDATABASE=TEST_DATABASE, PGCONNECT_TIMEOUT="60")
        result = subprocess.run([NODE, "prepared.js", scenario], cwd=NODE_DIR, env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=timeout)
        self.assertEqual(result.returncode, 0, f"node prepared.js {scenario} failed:\n{result.stderr[-3000:]}"
                                               f"{self.sluice_log_tail(2000)}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def assert_all_right(self, seen):
        self.assertEqual(seen["errors"], [], f"{seen['errorCount']} failed{self.sluice_log_tail(2000)}")
        self.assertEqual(seen["wrong"], [], f"{seen['wrongCount']} wrong results")

    def test_node_postgres_named_queries_from_40_clients_and_a_pool_have_correct_results(self):
        seen = self.run_script("pg-named")
        self.assert_all_right(seen)
        self.assertEqual((seen["total"], seen["right"]), (seen["expected"], seen["expected"]))
        self.assertEqual(seen["queries"], 1000)
        self.assertLessEqual(seen["backends"], DEFAULT_POOL_SIZE)
        self.assert_log_clean()

    def test_node_postgres_named_statements_survive_errors_rollbacks_and_unique_violations(self):
        seen = self.run_script("pg-named-errors")
        self.assert_all_right(seen)
        # 10 clients x 10 rounds: 5 divisions by zero, 10 syntax errors, 10 unique violations each.
        self.assertEqual(seen["codes"], {"22012": 50, "42601": 100, "23505": 100})
        self.assert_log_clean()

    def test_postgres_js_with_default_prepare_runs_queries_and_transactions_with_correct_results(self):
        seen = self.run_script("postgres-js-defaults")
        self.assert_all_right(seen)
        self.assertEqual(seen["queries"], 2000)
        self.assertEqual((seen["total"], seen["right"], seen["rolled"]), (seen["expected"], seen["expected"], 0))
        self.assertEqual(seen["codes"], ["22012"] * 3)
        self.assertLessEqual(seen["backends"], DEFAULT_POOL_SIZE)
        self.assert_log_clean()


if __name__ == "__main__":
    unittest.main()
