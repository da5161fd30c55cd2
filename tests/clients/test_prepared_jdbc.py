"""PgJDBC with prepareThreshold=1 (server-side named statements S_1, S_2, ... numbered per connection) through Sluice
in transaction pooling (issue 4): threads with a connection each run transactions of prepared statements, batches
and autocommit queries with every result checked, with PgJDBC's statement cache large and small (a small one closes
statements: Close messages); and statements failing inside transactions followed by rollback and reuse. The program
is tests/clients/java/PreparedThreads.java, compiled at test time; it reports what it saw as JSON and this module
decides what is correct. Needs Debian's libpostgresql-jdbc-java (scripts/install-deps) and a JDK."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from client_fixture import CLIENTS_DIR, DEFAULT_POOL_SIZE, SluiceTestCase
from sluice_harness import TEST_DATABASE, TEST_PASSWORD, TEST_USER

JAVA = shutil.which("java")
JAVAC = shutil.which("javac")
JDBC_JAR = os.environ.get("SLUICE_JDBC_JAR") or "/usr/share/java/postgresql.jar"
SOURCE = os.path.join(CLIENTS_DIR, "java", "PreparedThreads.java")


@unittest.skipUnless(os.path.isfile(JDBC_JAR), f"needs PgJDBC at {JDBC_JAR} (Debian: libpostgresql-jdbc-java)")
@unittest.skipUnless(JAVA and JAVAC, "needs a JDK (java and javac)")
class JdbcPreparedTest(SluiceTestCase):
    # PgJDBC sends extra_float_digits in its startup packet: ignored, as PgBouncer's docs advise for JDBC.
    sluice_settings = {"max_client_conn": "200", "query_wait_timeout": "120",
                       "ignore_startup_parameters": "extra_float_digits"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.classes = tempfile.mkdtemp(prefix="sluice-jdbc-")
        compiled = subprocess.run([JAVAC, "-d", cls.classes, "-cp", JDBC_JAR, SOURCE], capture_output=True,
                                  text=True, stdin=subprocess.DEVNULL, timeout=300)
        if compiled.returncode != 0:
            shutil.rmtree(cls.classes, ignore_errors=True)
            raise RuntimeError(f"javac failed:\n{compiled.stderr}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.classes, ignore_errors=True)
        super().tearDownClass()

    def run_program(self, *args, timeout=300):
        env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(self.sluice.port), PGUSER=TEST_USER,
                   PGPASSWORD=TEST_PASSWORD, PGDATABASE=TEST_DATABASE)
        # A small heap and one JIT thread: several JVMs must not crowd a 2-core machine.
        argv = [JAVA, "-Xmx256m", "-XX:CICompilerCount=2", "-XX:+UseSerialGC",
                "-cp", os.pathsep.join([self.classes, JDBC_JAR]), "PreparedThreads", *map(str, args)]
        result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=timeout)
        self.assertEqual(result.returncode, 0, f"PreparedThreads {args} failed:\n{result.stderr[-3000:]}"
                                               f"{self.sluice_log_tail(2000)}")
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual(seen["errors"], [], f"{seen['errorCount']} threads failed{self.sluice_log_tail(2000)}")
        self.assertEqual(seen["wrong"], [], f"{seen['wrongCount']} wrong results")
        return seen

    def check_transactions(self, threads, transactions, statement_cache):
        seen = self.run_program("transactions", threads, transactions, statement_cache)
        self.assertEqual(seen["transactions"], threads * transactions)
        rows = threads * (transactions + 50)
        self.assertEqual((seen["rows"], seen["right"]), (rows, rows))
        self.assertEqual(seen["serverPrepared"], threads, "PgJDBC did not use server-side statements")
        self.assertLessEqual(seen["backends"], DEFAULT_POOL_SIZE)
        self.assert_log_clean()

    def test_16_threads_run_transactions_of_server_prepared_statements_with_correct_results(self):
        self.check_transactions(16, 30, 256)

    def test_a_statement_cache_of_2_closes_statements_and_results_stay_correct(self):
        # Three statements in turn through a cache of two: PgJDBC closes the one it evicts (Close 'S' S_<n>) and
        # prepares it again under a new name.
        self.check_transactions(8, 30, 2)

    def test_errors_inside_transactions_then_rollback_and_the_statements_are_reused(self):
        threads, rounds = 8, 10
        seen = self.run_program("errors", threads, rounds)
        self.assertEqual(seen["codes"], {"22012": threads * rounds // 2, "23505": threads * rounds // 2})
        self.assert_log_clean()


if __name__ == "__main__":
    unittest.main()
