"""asyncpg (statement_cache_size=0) through Sluice in transaction pooling: CRUD, errors, COPY, and 500 concurrent
connections running 20 transactions each over 5 server connections with every result correct."""

import asyncio
import time
import unittest

import asyncpg

from asyncpg_support import STORM_CLIENTS as CLIENTS
from asyncpg_support import STORM_TRANSACTIONS_PER_CLIENT as TRANSACTIONS_PER_CLIENT
from asyncpg_support import AsyncpgMixin
from client_fixture import DEFAULT_POOL_SIZE, SluiceTestCase

STORM_DEADLINE_S = 100  # the whole storm, logins included


class AsyncpgTest(AsyncpgMixin, SluiceTestCase):
    # asyncpg computes SCRAM's salted password in a Python loop (about 10 ms per 1000 iterations here), all 500
    # logins on one event loop: at PostgreSQL's 4096 iterations the logins alone would take over 20 s. Sluice derives
    # the clients' SCRAM secret from the auth_file's plain password with scram_iterations, so fewer keep the storm
    # about the proxy.
    sluice_settings = {"max_client_conn": "1000", "query_wait_timeout": "60", "scram_iterations": "256"}
    server_settings = {"shared_preload_libraries": "pg_stat_statements"}

    asyncpg_options = {"statement_cache_size": 0}
    connect_timeout_s = 30
    run_timeout_s = 60

    def test_crud_with_parameters_executemany_and_transactions(self):
        async def scenario():
            conn = await self.connect()
            try:
                await conn.execute("DROP TABLE IF EXISTS apg_crud")
                await conn.execute("CREATE TABLE apg_crud (id int PRIMARY KEY, name text NOT NULL, price numeric)")
                await conn.executemany("INSERT INTO apg_crud VALUES ($1, $2, $3)",
                                       [(i, f"item-{i}", i / 4) for i in range(1000)])
                row = await conn.fetchrow("SELECT count(*) AS n, sum(id) AS s FROM apg_crud")
                self.assertEqual((row["n"], row["s"]), (1000, sum(range(1000))))
                self.assertEqual(await conn.fetchval("SELECT name FROM apg_crud WHERE id = $1", 321), "item-321")
                self.assertEqual(await conn.execute("UPDATE apg_crud SET price = price * 2 WHERE id < $1", 10),
                                 "UPDATE 10")
                self.assertEqual(await conn.execute("DELETE FROM apg_crud WHERE id >= $1", 500), "DELETE 500")
                async with conn.transaction():
                    await conn.execute("INSERT INTO apg_crud VALUES (5000, 'kept', NULL)")
                with self.assertRaises(RuntimeError):
                    async with conn.transaction():
                        await conn.execute("INSERT INTO apg_crud VALUES (5001, 'rolled back', NULL)")
                        raise RuntimeError("roll back")
                names = await conn.fetch("SELECT name FROM apg_crud WHERE id >= 5000 ORDER BY id")
                self.assertEqual([r["name"] for r in names], ["kept"])
                self.assertEqual(await conn.fetchval("SELECT price FROM apg_crud WHERE id = 3"),
                                 await conn.fetchval("SELECT 1.5::numeric"))
                await conn.execute("DROP TABLE apg_crud")
            finally:
                await conn.close()

        self.run_async(scenario())
        self.assert_log_clean()

    def test_unique_violation_raises_23505_and_the_connection_stays_usable(self):
        async def scenario():
            conn = await self.connect()
            try:
                await conn.execute("DROP TABLE IF EXISTS apg_uniq; CREATE TABLE apg_uniq (id int PRIMARY KEY)")
                await conn.execute("INSERT INTO apg_uniq VALUES (1)")
                with self.assertRaises(asyncpg.UniqueViolationError) as caught:
                    await conn.execute("INSERT INTO apg_uniq VALUES ($1)", 1)
                self.assertEqual(caught.exception.sqlstate, "23505")
                with self.assertRaises(asyncpg.UniqueViolationError):
                    async with conn.transaction():
                        await conn.execute("INSERT INTO apg_uniq VALUES (2)")
                        await conn.execute("INSERT INTO apg_uniq VALUES (1)")
                self.assertEqual(await conn.fetchval("SELECT array_agg(id) FROM apg_uniq"), [1])
                await conn.execute("DROP TABLE apg_uniq")
            finally:
                await conn.close()

        self.run_async(scenario())

    def test_client_encoding_spelled_by_asyncpg_is_not_set_again_on_every_transaction(self):
        # asyncpg logs in with client_encoding 'utf-8' (quotes included); the server reports UTF8. Bringing a server
        # to the client's setting once is fine; repeating it before every transaction doubles the round trips and
        # (a simple Query) destroys the unnamed statement asyncpg prepared before its last Sync.
        self.superuser_query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

        async def scenario():
            conn = await self.connect()
            try:
                self.superuser_query("SELECT pg_stat_statements_reset()")
                for i in range(30):
                    self.assertEqual(await conn.fetchval("SELECT $1::int + 1", i), i + 1)
            finally:
                await conn.close()

        self.run_async(scenario())
        encoding_sets = int(self.superuser_query(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE 'SET client_encoding%'"))
        self.assertLessEqual(encoding_sets, DEFAULT_POOL_SIZE)

    def test_query_timeout_cancels_the_query_and_the_connection_stays_usable(self):
        async def scenario():
            conn = await self.connect()
            try:
                started = time.monotonic()
                with self.assertRaises(asyncio.TimeoutError):
                    await conn.fetchval("SELECT pg_sleep(20)", timeout=0.5)  # asyncpg sends a CancelRequest
                self.assertEqual(await conn.fetchval("SELECT 41 + $1::int", 1), 42)
                return time.monotonic() - started
            finally:
                await conn.close()

        self.assertLess(self.run_async(scenario()), 15, "the cancelled query ran on")

    def test_copy_records_in_and_out(self):
        async def scenario():
            conn = await self.connect()
            try:
                await conn.execute("DROP TABLE IF EXISTS apg_copy; CREATE TABLE apg_copy (id int, name text)")
                records = [(i, f"name {i}") for i in range(20000)]
                self.assertEqual(await conn.copy_records_to_table("apg_copy", records=records), "COPY 20000")
                rows = await conn.fetch("SELECT id, name FROM apg_copy ORDER BY id")
                self.assertEqual([tuple(r) for r in rows], records)
                await conn.execute("DROP TABLE apg_copy")
            finally:
                await conn.close()

        self.run_async(scenario())

    def test_500_connections_running_20_transactions_each_all_see_their_own_rows(self):
        self.prepare_storm("apg_storm",
                           "conn_id int NOT NULL, i int NOT NULL, backend int NOT NULL, PRIMARY KEY (conn_id, i)")
        failures = []
        backends = set()

        async def client(conn_id):
            conn = await self.connect()
            try:
                for i in range(TRANSACTIONS_PER_CLIENT):
                    async with conn.transaction():
                        await conn.execute("INSERT INTO apg_storm VALUES ($1, $2, pg_backend_pid())", conn_id, i)
                        count, backend = await conn.fetchrow(
                            "SELECT count(*), pg_backend_pid() FROM apg_storm WHERE conn_id = $1", conn_id)
                    backends.add(backend)
                    if count != i + 1:
                        failures.append(f"client {conn_id} transaction {i}: saw {count} rows, expected {i + 1}")
            finally:
                await conn.close()

        async def storm():
            results = await asyncio.gather(*(client(c) for c in range(CLIENTS)), return_exceptions=True)
            return [r for r in results if isinstance(r, BaseException)]

        started = time.monotonic()
        errors = self.run_async(storm(), timeout=STORM_DEADLINE_S)
        elapsed = time.monotonic() - started
        self.assert_storm_clean(errors)
        self.assertEqual(failures, [])
        self.assertLessEqual(len(backends), DEFAULT_POOL_SIZE)

        async def check():
            conn = await self.connect()
            try:
                return await conn.fetchrow(
                    "SELECT (SELECT count(*) FROM apg_storm), count(*), min(n), max(n) FROM "
                    "(SELECT conn_id, count(*) AS n FROM apg_storm GROUP BY conn_id) AS per_client")
            finally:
                await conn.close()

        total, clients, fewest, most = self.run_async(check())
        self.assertEqual((total, clients, fewest, most),
                         (CLIENTS * TRANSACTIONS_PER_CLIENT, CLIENTS, TRANSACTIONS_PER_CLIENT, TRANSACTIONS_PER_CLIENT))
        print(f"\n{CLIENTS} x {TRANSACTIONS_PER_CLIENT} transactions in {elapsed:.1f} s", flush=True)
        self.assert_log_clean()


if __name__ == "__main__":
    unittest.main()
