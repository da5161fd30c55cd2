"""TLS between clients and Sluice (client_tls_sslmode = require) with client stacks other than libpq's: psycopg 3
(libpq, sslmode=require) and asyncpg (Python's ssl module on asyncio, its own buffering), with large results both
ways, COPY, and 50 concurrent TLS connections over 5 server connections; a plaintext asyncpg client is refused with
PgBouncer's "SSL required"."""

import asyncio
import atexit
import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile
import unittest

import asyncpg
import psycopg

from client_fixture import SluiceTestCase
from sluice_harness import TEST_DATABASE, TEST_PASSWORD, TEST_USER

CERT_DIR = tempfile.mkdtemp(prefix="sluice-tls-clients-")
atexit.register(shutil.rmtree, CERT_DIR, ignore_errors=True)
CERT = os.path.join(CERT_DIR, "sluice.crt")
KEY = os.path.join(CERT_DIR, "sluice.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout", KEY, "-out", CERT], check=True, capture_output=True)


def client_ssl_context():
    """Verifies Sluice's self-signed certificate and the host name 127.0.0.1 (verify-full's checks)."""
    ctx = ssl.create_default_context(cafile=CERT)
    ctx.check_hostname = True
    return ctx


class TlsClientsTest(SluiceTestCase):
    sluice_settings = {"client_tls_sslmode": "require", "client_tls_cert_file": CERT, "client_tls_key_file": KEY}

    def asyncpg_connect(self, ssl_arg):
        return asyncpg.connect(host="127.0.0.1", port=self.sluice.port, user=TEST_USER, password=TEST_PASSWORD,
                               database=TEST_DATABASE, statement_cache_size=0, timeout=30, ssl=ssl_arg)

    def test_psycopg_over_tls_gets_large_results_and_copies_intact(self):
        dsn = (f"host=127.0.0.1 port={self.sluice.port} user={TEST_USER} password={TEST_PASSWORD} "
               f"dbname={TEST_DATABASE} sslmode=verify-full sslrootcert={CERT}")
        with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
            self.assertEqual(conn.info.pgconn.ssl_in_use, True)
            (length, digest), = conn.execute("SELECT length(v), md5(v) FROM (SELECT repeat('0123456789', 700000) v) s")
            value = conn.execute("SELECT repeat('0123456789', 700000)").fetchone()[0]
            self.assertEqual(len(value), length)
            self.assertEqual(hashlib.md5(value.encode()).hexdigest(), digest)
            rows = conn.execute("SELECT g FROM generate_series(1, 200000) g").fetchall()
            self.assertEqual(sum(r[0] for r in rows), 200000 * 200001 // 2)
            payload = "p" * 1000
            with conn.transaction():
                conn.execute("CREATE TABLE IF NOT EXISTS tls_copy_items (id int, payload text)")
                conn.execute("TRUNCATE tls_copy_items")
                with conn.cursor().copy("COPY tls_copy_items FROM STDIN") as copy:
                    for i in range(5000):
                        copy.write_row((i, payload))
                self.assertEqual(conn.execute("SELECT count(*), sum(length(payload)) FROM tls_copy_items").fetchone(),
                                 (5000, 5000 * 1000))
                conn.execute("DROP TABLE tls_copy_items")
            big = "x" * (3 * 1024 * 1024)
            self.assertEqual(conn.execute("SELECT length(%s::text)", (big,)).fetchone()[0], len(big))
        self.assert_log_clean()

    def test_asyncpg_tls_clients_run_concurrently_with_correct_answers(self):
        async def one(i):
            conn = await self.asyncpg_connect(client_ssl_context())
            try:
                for j in range(10):
                    got = await conn.fetchval("SELECT $1::int * 3 + $2::int", i, j)
                    if got != i * 3 + j:
                        return f"client {i}: {got} != {i * 3 + j}"
                blob = await conn.fetchval("SELECT repeat($1::text, 100000)", f"{i:05d}")
                if blob != f"{i:05d}" * 100000:
                    return f"client {i}: wrong blob"
                echoed = await conn.fetchval("SELECT length($1::text)", "e" * 2_000_000)
                if echoed != 2_000_000:
                    return f"client {i}: echoed {echoed}"
                return None
            finally:
                await conn.close()

        async def storm():
            return await asyncio.gather(*(one(i) for i in range(50)))

        errors = [e for e in asyncio.run(asyncio.wait_for(storm(), 120)) if e]
        self.assertEqual(errors, [])
        self.assert_log_clean()

    def test_plaintext_asyncpg_client_is_refused_with_ssl_required(self):
        async def attempt():
            conn = await self.asyncpg_connect(False)
            await conn.close()

        with self.assertRaises(asyncpg.PostgresError) as raised:
            asyncio.run(attempt())
        self.assertEqual(raised.exception.sqlstate, "28000")
        self.assertIn("SSL required", str(raised.exception))


if __name__ == "__main__":
    unittest.main()
