"""psql through Sluice in transaction pooling: a script with DDL, DML, \\copy both ways and transactions; login
failures (wrong password, a database the config does not route) reach psql and libpq clients as PostgreSQL's."""

import asyncio
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import textwrap
import unittest

import asyncpg
import psycopg2

from client_fixture import SluiceTestCase
from sluice_harness import TEST_DATABASE, TEST_PASSWORD, TEST_USER, wait_until

PSQL = shutil.which("psql") or "psql"


def run_psql(port, args, password=TEST_PASSWORD, dbname=TEST_DATABASE, stdin_text=None, timeout=60):
    """psql -X -q -A -t against 127.0.0.1:port with ON_ERROR_STOP; returns the CompletedProcess."""
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
    env.pop("PGSERVICE", None)
    argv = [PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port), "-U",
            TEST_USER, "-d", dbname] + args
    return subprocess.run(argv, env=env, input=stdin_text, stdin=None if stdin_text is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


class PsqlScriptTest(SluiceTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="sluice-psql-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def test_script_with_ddl_dml_copy_and_transactions_gives_the_expected_output(self):
        data_in = os.path.join(self.tmp, "in.tsv")
        with open(data_in, "w") as f:
            f.write("10\tten\n11\televen\n12\ttwelve\n")
        data_out = os.path.join(self.tmp, "out.tsv")
        script = os.path.join(self.tmp, "script.sql")
        with open(script, "w") as f:
            f.write(textwrap.dedent(f"""\
                CREATE TABLE psql_items (id int PRIMARY KEY, name text NOT NULL);
                INSERT INTO psql_items VALUES (1, 'one'), (2, 'two'), (3, 'three');
                SELECT 'rows', count(*) FROM psql_items;
                \\copy psql_items FROM '{data_in}'
                \\copy psql_items FROM stdin
                20\ttwenty
                21\ttwenty-one
                \\.
                SELECT 'after copy', count(*), sum(id) FROM psql_items;
                BEGIN;
                DELETE FROM psql_items WHERE id >= 10;
                SELECT 'inside', count(*) FROM psql_items;
                ROLLBACK;
                SELECT 'rolled back', count(*) FROM psql_items;
                BEGIN;
                UPDATE psql_items SET name = upper(name) WHERE id < 10;
                INSERT INTO psql_items VALUES (4, 'FOUR');
                COMMIT;
                SELECT id, name FROM psql_items WHERE id < 10 ORDER BY id;
                \\copy (SELECT id, name FROM psql_items WHERE id >= 10 ORDER BY id) TO '{data_out}'
                \\copy (SELECT id, name FROM psql_items WHERE id >= 20 ORDER BY id) TO stdout
                DROP TABLE psql_items;
                """))
        result = run_psql(self.sluice.port, ["-F", "|", "-f", script])
        self.assertEqual(result.returncode, 0, result.stderr + self.sluice_log_tail())
        self.assertEqual(result.stderr, "")
        self.assertEqual(result.stdout.splitlines(), [
            "rows|3",
            "after copy|8|80",
            "inside|3",
            "rolled back|8",
            "1|ONE", "2|TWO", "3|THREE", "4|FOUR",
            "20\ttwenty", "21\ttwenty-one",
        ])
        with open(data_out) as f:
            self.assertEqual(f.read(), "10\tten\n11\televen\n12\ttwelve\n20\ttwenty\n21\ttwenty-one\n")
        self.assert_log_clean()

    def test_copy_from_psql_stdin_loads_every_row(self):
        rows = "".join(f"{i}\tname-{i}\n" for i in range(5000))
        setup = run_psql(self.sluice.port, ["-c", "CREATE TABLE psql_bulk (id int, name text)"])
        self.assertEqual(setup.returncode, 0, setup.stderr)
        self.addCleanup(run_psql, self.sluice.port, ["-c", "DROP TABLE IF EXISTS psql_bulk"])
        loaded = run_psql(self.sluice.port, ["-c", "\\copy psql_bulk FROM pstdin"], stdin_text=rows)
        self.assertEqual(loaded.returncode, 0, loaded.stderr)
        check = run_psql(self.sluice.port, ["-c", "SELECT count(*), sum(id), count(DISTINCT name) FROM psql_bulk"])
        self.assertEqual(check.stdout.strip(), f"5000|{sum(range(5000))}|5000")

    def test_error_in_script_stops_psql_with_the_server_message_and_the_next_session_works(self):
        failed = run_psql(self.sluice.port, ["-c", "SELECT * FROM psql_no_such_table"])
        self.assertEqual(failed.returncode, 1)
        self.assertIn('relation "psql_no_such_table" does not exist', failed.stderr)
        ok = run_psql(self.sluice.port, ["-c", "SELECT 6 * 7"])
        self.assertEqual((ok.returncode, ok.stdout.strip()), (0, "42"))

    def test_wrong_password_makes_psql_exit_non_zero_with_password_authentication_failed(self):
        result = run_psql(self.sluice.port, ["-c", "SELECT 1"], password="not-the-password")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("password authentication failed", result.stderr)
        self.assertEqual(result.stdout, "")


def read_messages_until_ready(sock, deadline_s=30):
    """Reads backend messages until ReadyForQuery; returns their type bytes. Raises ConnectionError on EOF."""
    sock.settimeout(deadline_s)
    data = b""
    types = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after messages {types}")
        data += chunk
        while len(data) >= 5:
            length = struct.unpack("!I", data[1:5])[0]
            if len(data) < 1 + length:
                break
            types.append(data[:1])
            data = data[1 + length:]
            if types[-1] == b"Z":
                return types


def unread_bytes(local_port, remote_port):
    """Bytes the kernel holds for the process owning the TCP socket 127.0.0.1:local_port <-> :remote_port that it has
    not read yet (the rx_queue column of /proc/net/tcp), or None when there is no such socket."""
    want = (f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}")
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                return int(fields[4].split(":")[1], 16)
    return None


def query_message(sql):
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!I", 4 + len(body)) + body


class MessageSplitAcrossReadsTest(SluiceTestCase):
    """A client message whose header reaches Sluice before its body (psql's \\copy does this at random under
    load). A raw protocol client makes it happen every time: it sends a Query's first 20 bytes, waits until Sluice
    has read them (the kernel's receive queue of Sluice's socket is empty), then sends the rest."""

    sluice_settings = {"auth_type": "trust"}

    def login(self):
        sock = socket.create_connection(("127.0.0.1", self.sluice.port), timeout=30)
        self.addCleanup(sock.close)
        params = b"user\0%s\0database\0%s\0\0" % (TEST_USER.encode(), TEST_DATABASE.encode())
        sock.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
        self.assertEqual(read_messages_until_ready(sock)[-1], b"Z")
        return sock

    def send_in_two_reads(self, sock, message, split=20):
        sock.sendall(message[:split])
        port = sock.getsockname()[1]
        wait_until(lambda: unread_bytes(self.sluice.port, port) == 0, 30, "Sluice to read the first part")
        sock.sendall(message[split:])

    def test_query_split_while_idle_is_answered(self):
        sock = self.login()
        self.send_in_two_reads(sock, query_message("SELECT '" + "x" * 1000 + "' AS filler"))
        self.assertEqual(read_messages_until_ready(sock), [b"T", b"D", b"C", b"Z"])

    def test_query_split_inside_a_transaction_is_answered(self):
        sock = self.login()
        sock.sendall(query_message("BEGIN"))
        self.assertEqual(read_messages_until_ready(sock), [b"C", b"Z"])
        self.send_in_two_reads(sock, query_message("SELECT '" + "x" * 1000 + "' AS filler"))
        self.assertEqual(read_messages_until_ready(sock), [b"T", b"D", b"C", b"Z"])
        sock.sendall(query_message("COMMIT"))
        self.assertEqual(read_messages_until_ready(sock), [b"C", b"Z"])


class UnknownDatabaseTest(SluiceTestCase):
    """A config without a `*` entry: a database it does not name is refused at login with SQLSTATE 3D000."""

    sluice_databases = {TEST_DATABASE: "host=127.0.0.1 port={port} dbname=" + TEST_DATABASE}

    def test_configured_database_is_reachable(self):
        with psycopg2.connect(self.sluice.dsn()) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            self.assertEqual(cur.fetchone(), (TEST_DATABASE,))
        conn.close()

    def test_unknown_database_fails_login_with_3D000_naming_the_database(self):
        # libpq reports login errors as text only (psycopg2's pgcode is None even against PostgreSQL itself), so
        # the SQLSTATE is checked with asyncpg, which parses the ErrorResponse.
        with self.assertRaises(psycopg2.OperationalError) as caught:
            psycopg2.connect(self.sluice.dsn(dbname="no_such_db"))
        self.assertIn("no_such_db", str(caught.exception))

        async def connect():
            await asyncpg.connect(host="127.0.0.1", port=self.sluice.port, user=TEST_USER, password=TEST_PASSWORD,
                                  database="no_such_db", timeout=10)

        with self.assertRaises(asyncpg.PostgresError) as caught:
            asyncio.run(connect())
        self.assertEqual(caught.exception.sqlstate, "3D000")
        self.assertIn("no_such_db", str(caught.exception))

    def test_psql_to_unknown_database_exits_non_zero_naming_the_database(self):
        result = run_psql(self.sluice.port, ["-c", "SELECT 1"], dbname="no_such_db")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no_such_db", result.stderr)


if __name__ == "__main__":
    unittest.main()
