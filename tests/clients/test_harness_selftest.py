"""The Python test harness itself: PgCluster with psycopg2, the pg-start/pg-stop CLI, Sluice with a stand-in binary."""

import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import unittest

import psycopg2

import sluice_harness
from sluice_harness import PgCluster, Sluice

HARNESS = sluice_harness.__file__


class PgClusterTest(unittest.TestCase):
    def test_starts_accepts_the_test_role_and_removes_its_directory(self):
        with PgCluster() as pg:
            directory = pg.dir
            self.assertTrue(os.path.exists(os.path.join(pg.data_dir, "PG_VERSION")))
            with psycopg2.connect(pg.dsn()) as conn, conn.cursor() as cur:
                cur.execute("SELECT current_user, current_database(), 1")
                self.assertEqual(cur.fetchone(), ("sluice_test", "sluice_test", 1))
                cur.execute("SHOW password_encryption")
                self.assertEqual(cur.fetchone()[0], "scram-sha-256")
            conn.close()
            with self.assertRaisesRegex(psycopg2.OperationalError, "password authentication failed"):
                psycopg2.connect(pg.dsn(password="wrong"))
            self.assertEqual(pg.execute("SELECT 40 + 2"), "42")
            with self.assertRaisesRegex(RuntimeError, 'relation "no_such_table" does not exist'):
                pg.execute("SELECT * FROM no_such_table")
        self.assertFalse(os.path.exists(directory))

    def test_comes_back_after_postmaster_sigkill(self):
        with PgCluster() as pg:
            killed = pg.postmaster_pid()
            pg.signal_postmaster(signal.SIGKILL)
            self.assertFalse(sluice_harness.port_accepts(pg.port))
            pg.start_server()
            self.assertNotEqual(pg.postmaster_pid(), killed)
            self.assertEqual(pg.execute("SELECT 1"), "1")


    def test_moves_to_another_port_when_its_port_is_taken_before_the_server_binds(self):
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            taken = squatter.getsockname()[1]
            ports = iter([taken])
            real_free_port = sluice_harness.free_port
            sluice_harness.free_port = lambda: next(ports, None) or real_free_port()
            try:
                with PgCluster() as pg:
                    self.assertNotEqual(pg.port, taken)
                    self.assertEqual(pg.execute("SHOW port"), str(pg.port))
            finally:
                sluice_harness.free_port = real_free_port


class CommandLineTest(unittest.TestCase):
    def test_pg_start_prints_the_port_and_pg_stop_removes_the_directory(self):
        parent = tempfile.mkdtemp(prefix="sluice-cli-")
        os.chmod(parent, 0o755)  # as root, the postgres user must reach the directory inside
        directory = os.path.join(parent, "pg")
        try:
            started = subprocess.run(
                [sys.executable, HARNESS, "pg-start", "--dir", directory, "--user", "sluice", "--password", "sluice",
                 "--dbname", "sluice", "--role-attributes", "LOGIN CREATEDB"],
                capture_output=True, text=True, timeout=120)
            self.assertEqual(started.returncode, 0, started.stderr)
            port = int(started.stdout.strip())
            with psycopg2.connect(host="127.0.0.1", port=port, user="sluice", password="sluice",
                                  dbname="sluice") as conn, conn.cursor() as cur:
                cur.execute("SELECT rolcreatedb, rolsuper FROM pg_roles WHERE rolname = current_user")
                self.assertEqual(cur.fetchone(), (True, False))
            conn.close()
            stopped = subprocess.run([sys.executable, HARNESS, "pg-stop", "--dir", directory], capture_output=True,
                                     text=True, timeout=120)
            self.assertEqual(stopped.returncode, 0, stopped.stderr)
            self.assertFalse(os.path.exists(directory))
            self.assertFalse(sluice_harness.port_accepts(port))
        finally:
            subprocess.run([sys.executable, HARNESS, "pg-stop", "--dir", directory], capture_output=True)
            os.rmdir(parent)


# Listens where the config says, like sluice would, and exits 7 on SIGTERM.
LISTENING_SCRIPT = """#!/usr/bin/python3
import configparser, signal, socket, sys
print("fake sluice reading", sys.argv[1], flush=True)
config = configparser.ConfigParser(interpolation=None)
config.read(sys.argv[1])
settings = config["sluice"] if config.has_section("sluice") else config["pgbouncer"]
server = socket.socket()
server.bind((settings["listen_addr"], int(settings["listen_port"])))
server.listen()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
while True:
    server.accept()[0].close()
"""


class SluiceTest(unittest.TestCase):
    def fake_binary(self, script):
        directory = tempfile.mkdtemp(prefix="sluice-fake-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", directory]))
        path = os.path.join(directory, "fake-sluice")
        with open(path, "w") as f:
            f.write(script)
        os.chmod(path, stat.S_IRWXU)
        return path

    def test_starts_the_binary_on_a_free_port_with_the_config_and_stops_it(self):
        binary = self.fake_binary(LISTENING_SCRIPT)
        sluice = Sluice("[databases]\n* = host=127.0.0.1 port=5432\n[sluice]\nlisten_port = 1\nmetrics_port = 9127\n",
                        auth_file='"sluice_test" "sluice_test"\n', binary=binary)
        with sluice:
            directory = sluice.dir
            self.assertTrue(sluice_harness.port_accepts(sluice.port))
            self.assertIn("fake sluice reading " + sluice.config_path, sluice.log())
            with open(sluice.config_path) as f:
                config = f.read()
            self.assertIn(f"listen_port = {sluice.port}\n", config)
            self.assertIn("listen_addr = 127.0.0.1\n", config)
            self.assertIn(f"unix_socket_dir = {directory}\n", config)
            self.assertIn(f"auth_file = {directory}/userlist.txt\n", config)
            self.assertIn("* = host=127.0.0.1 port=5432\n", config)
            self.assertNotIn(sluice.metrics_port, (None, 9127, sluice.port))
            self.assertEqual(sluice_harness.get_pgbouncer_setting(config, "metrics_port"), str(sluice.metrics_port))
            self.assertIsNone(sluice.wait_exit(0))
            sluice.send_signal(signal.SIGTERM)
            self.assertEqual(sluice.wait_exit(10), 7)
        self.assertFalse(os.path.exists(directory))

    def test_raises_with_the_log_when_the_binary_exits_before_listening(self):
        binary = self.fake_binary('#!/bin/sh\necho "config: bad pool_mode" >&2\nexit 3\n')
        with self.assertRaisesRegex(RuntimeError, "(?s)exited with code 3.*config: bad pool_mode"):
            Sluice("", binary=binary).start()


if __name__ == "__main__":
    unittest.main()
