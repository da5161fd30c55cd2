"""asyncpg with its default statement cache through Sluice in transaction pooling (named prepared statements, issue
4): a cached statement used on a server that never saw it, two connections giving different statements the same
generated name (in one process and across processes), errors in prepared statements, and 500 connections running 20
transactions each over 5 server connections with every result checked."""

import asyncio
import json
import os
import subprocess
import sys
import time
import unittest

import asyncpg
import asyncpg.connection

from asyncpg_support import STORM_CLIENTS as CLIENTS
from asyncpg_support import STORM_TRANSACTIONS_PER_CLIENT as TRANSACTIONS_PER_CLIENT
from asyncpg_support import AsyncpgMixin
from client_fixture import DEFAULT_POOL_SIZE, SluiceTestCase, run_on_two_servers
from sluice_harness import TEST_DATABASE, TEST_PASSWORD, TEST_USER

import psycopg2

CONNECT_BATCH = 100  # logins at once (asyncpg's SCRAM runs on the one event loop)
STORM_DEADLINE_S = 240  # the whole storm, logins included; a loaded 2-core machine runs it in well under that


# A process of its own (its own asyncpg name counter, as every application process has): `connections` connections
# with the default statement cache each run `rounds` queries whose text is particular to this process, and print what
# they saw as JSON. Run by test_processes_share_generated_names_for_different_statements.
PROCESS_SCRIPT = r"""
import asyncio, json, sys
import asyncpg
port, process, connections, rounds = map(int, sys.argv[1:5])
names, wrong, errors = set(), [], []

async def client(c):
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user=sys.argv[5], password=sys.argv[6],
                                 database=sys.argv[7], timeout=60)
    try:
        # Same shape in every process, different text: process p multiplies by p + 2 and tags with p.
        query = f"SELECT $1::int * {process + 2} AS n, 'p{process}-' || $2::text AS tag"
        statement = await conn.prepare(query)
        names.add(statement.get_name())
        for i in range(rounds):
            async with conn.transaction():
                if i % 2:
                    row = await statement.fetchrow(i, f"{c}-{i}")
                else:
                    row = await conn.fetchrow(query, i, f"{c}-{i}")  # the cache's own statement
            if (row["n"], row["tag"]) != (i * (process + 2), f"p{process}-{c}-{i}"):
                wrong.append([c, i, list(row)])
    except Exception as e:
        errors.append(f"{c}: {type(e).__name__}: {e}")
    finally:
        await conn.close()

async def main():
    await asyncio.gather(*(client(c) for c in range(connections)))

asyncio.run(main())
print(json.dumps({"names": sorted(names), "wrong": wrong[:5], "wrong_count": len(wrong), "errors": errors[:5],
                  "error_count": len(errors)}))
"""


class AsyncpgPreparedTest(AsyncpgMixin, SluiceTestCase):
    # As in test_asyncpg: fewer SCRAM iterations keep 500 asyncpg logins (a Python loop each) about the proxy.
    sluice_settings = {"max_client_conn": "1000", "query_wait_timeout": "120", "scram_iterations": "256"}

    # No statement_cache_size (AsyncpgMixin's defaults): asyncpg's default cache (100 statements), every query a
    # named statement.

    def psycopg2_connect(self):
        return psycopg2.connect(self.sluice.dsn(), connect_timeout=30)

    def test_default_cache_is_on_and_statements_are_named(self):
        async def scenario():
            conn = await self.connect()
            try:
                statement = await conn.prepare("SELECT $1::int + 1")
                self.assertTrue(statement.get_name().startswith("__asyncpg_stmt_"))
                self.assertEqual(await statement.fetchval(41), 42)
                self.assertEqual(await conn.fetchval("SELECT $1::int + 1", 1), 2)
            finally:
                await conn.close()

        self.run_async(scenario())

    def test_cached_statement_runs_on_a_server_that_never_saw_it(self):
        loop = asyncio.new_event_loop()
        conn = loop.run_until_complete(self.connect())
        try:
            query = "SELECT pg_backend_pid(), $1::int * 3, $2::text || '!'"

            def first():
                return tuple(loop.run_until_complete(conn.fetchrow(query, 1, "a")))

            def then():
                return tuple(loop.run_until_complete(conn.fetchrow(query, 14, "b")))

            switch = run_on_two_servers(self.psycopg2_connect, first, then)
            self.assertEqual(switch.taker.backend_pid, switch.first_pid, "more servers than default_pool_size")
            self.assertNotEqual(switch.then_pid, switch.first_pid)
            self.assertEqual(switch.then_row[1:], (42, "b!"))
            # One statement, prepared once by asyncpg, used on both servers.
            self.assertEqual(len(conn._stmt_cache), 1)
            # A prepared statement object, used explicitly, moves on as well.
            statement = loop.run_until_complete(conn.prepare("SELECT $1::int - 1, pg_backend_pid()"))
            pids = set()
            for i in range(3 * DEFAULT_POOL_SIZE):
                value, pid = loop.run_until_complete(statement.fetchrow(i))
                self.assertEqual(value, i - 1)
                pids.add(pid)
            self.assertLessEqual(len(pids), DEFAULT_POOL_SIZE)
        finally:
            loop.run_until_complete(conn.close())
            loop.close()
        self.assert_log_clean()

    def test_two_connections_with_the_same_generated_name_for_different_statements(self):
        # asyncpg numbers its statements with one counter per process: two application processes (or two
        # connections here, with the counter reset in between, as in a second process) give different statements
        # the same name.
        async def scenario():
            asyncpg.connection._uid = 0
            first = await self.connect()
            a = await first.prepare("SELECT $1::int + 1000 AS v, pg_backend_pid() AS pid")
            asyncpg.connection._uid = 0
            second = await self.connect()
            b = await second.prepare("SELECT 'b:' || $1::text AS v, pg_backend_pid() AS pid")
            try:
                self.assertEqual(a.get_name(), b.get_name())
                pids = set()

                async def use(i):
                    async with first.transaction():
                        ra = await a.fetchrow(i)
                    async with second.transaction():
                        rb = await b.fetchrow(str(i))
                    # The cache: the same texts through fetchrow reuse the same names.
                    ca = await first.fetchrow("SELECT $1::int + 1000 AS v, pg_backend_pid() AS pid", i)
                    cb = await second.fetchrow("SELECT 'b:' || $1::text AS v, pg_backend_pid() AS pid", str(i))
                    pids.update((ra["pid"], rb["pid"], ca["pid"], cb["pid"]))
                    return ra["v"], rb["v"], ca["v"], cb["v"]

                for i in range(40):
                    self.assertEqual(await use(i), (i + 1000, f"b:{i}", i + 1000, f"b:{i}"))
                # The names collide while other clients keep the servers changing hands.
                others = [await self.connect() for _ in range(8)]
                try:
                    async def churn(conn, k):
                        for j in range(20):
                            async with conn.transaction():
                                self.assertEqual(await conn.fetchval("SELECT $1::int * 2", j + k), 2 * (j + k))

                    async def uses():
                        return [await use(i) for i in range(40, 60)]

                    results = await asyncio.gather(uses(), *(churn(o, k) for k, o in enumerate(others)))
                    self.assertEqual(results[0], [(i + 1000, f"b:{i}", i + 1000, f"b:{i}") for i in range(40, 60)])
                finally:
                    for o in others:
                        await o.close()
                self.assertLessEqual(len(pids), DEFAULT_POOL_SIZE)
            finally:
                await first.close()
                await second.close()

        self.run_async(scenario())
        self.assert_log_clean()

    def test_processes_share_generated_names_for_different_statements(self):
        processes = 4
        argv = lambda p: [sys.executable, "-c", PROCESS_SCRIPT, str(self.sluice.port), str(p), "10", "15",
                          TEST_USER, TEST_PASSWORD, TEST_DATABASE]
        running = [subprocess.Popen(argv(p), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    stdin=subprocess.DEVNULL, env=dict(os.environ)) for p in range(processes)]
        seen = []
        for p, proc in enumerate(running):
            out, err = proc.communicate(timeout=180)
            self.assertEqual(proc.returncode, 0, f"process {p} failed:\n{err[-3000:]}{self.sluice_log_tail(2000)}")
            seen.append(json.loads(out.strip().splitlines()[-1]))
        for p, s in enumerate(seen):
            self.assertEqual(s["errors"], [], f"process {p}: {s['error_count']} connections failed")
            self.assertEqual(s["wrong"], [], f"process {p}: {s['wrong_count']} wrong results")
        # Every process used the same generated names for its own text.
        shared = set.intersection(*(set(s["names"]) for s in seen))
        self.assertTrue(shared, f"no name in common: {[s['names'] for s in seen]}")
        self.assert_log_clean()

    def test_statement_whose_result_changed_after_ddl_is_prepared_again_on_another_server(self):
        # PostgreSQL answers a Bind of a statement whose result columns changed since it was prepared with 0A000
        # "cached plan must not change result type"; asyncpg (outside a transaction) then prepares it again and
        # runs it once more. Through Sluice the client's statement may next run on a server that never had it, where
        # Sluice prepares it afresh: the rows then no longer match what the client was told when it prepared.
        self.pg.execute("DROP TABLE IF EXISTS apg_ps_ddl; CREATE TABLE apg_ps_ddl (a int); "
                        "INSERT INTO apg_ps_ddl VALUES (1)")
        self.addCleanup(self.pg.execute, "DROP TABLE IF EXISTS apg_ps_ddl")
        loop = asyncio.new_event_loop()
        conn = loop.run_until_complete(self.connect())
        query = "SELECT pg_backend_pid(), * FROM apg_ps_ddl"
        try:
            def first():
                return tuple(loop.run_until_complete(conn.fetchrow(query)))

            def then():
                self.pg.execute("ALTER TABLE apg_ps_ddl ADD COLUMN b int DEFAULT 7")
                return tuple(loop.run_until_complete(conn.fetchrow(query)))

            switch = run_on_two_servers(self.psycopg2_connect, first, then)
            self.assertNotEqual(switch.then_pid, switch.first_pid)
            self.assertEqual(switch.then_row[1:], (1, 7))
        finally:
            loop.run_until_complete(conn.close())
            loop.close()

    def test_statements_of_many_clients_whose_result_changed_after_ddl_still_give_right_rows(self):
        # Ten connections, each with its own asyncpg statement for the same text, all five servers holding it; then
        # the table gains a column. Against PostgreSQL every connection gets 0A000 once, prepares again and reads the
        # new rows; so must it through Sluice, whichever servers the retries land on.
        self.pg.execute("DROP TABLE IF EXISTS apg_ps_ddl2; CREATE TABLE apg_ps_ddl2 (a int); "
                        "INSERT INTO apg_ps_ddl2 VALUES (1)")
        self.addCleanup(self.pg.execute, "DROP TABLE IF EXISTS apg_ps_ddl2")

        async def scenario():
            conns = [await self.connect() for _ in range(2 * DEFAULT_POOL_SIZE)]
            try:
                async def use(conn):
                    async with conn.transaction():
                        rows = await conn.fetch("SELECT * FROM apg_ps_ddl2")
                        await asyncio.sleep(0.3)  # all servers busy at once: each prepares the statement
                    return [tuple(r) for r in rows]

                self.assertEqual(await asyncio.gather(*(use(c) for c in conns)), [[(1,)]] * len(conns))
                self.pg.execute("ALTER TABLE apg_ps_ddl2 ADD COLUMN b int DEFAULT 7")
                seen = []
                for _ in range(3):
                    for conn in conns:
                        try:
                            seen.append([tuple(r) for r in await conn.fetch("SELECT * FROM apg_ps_ddl2")])
                        except Exception as e:  # collected: the assertion below shows them all
                            seen.append(f"{type(e).__name__}: {e}")
                return seen
            finally:
                for conn in conns:
                    await conn.close()

        self.assertEqual(self.run_async(scenario()), [[(1, 7)]] * (3 * 2 * DEFAULT_POOL_SIZE))

    def test_errors_in_prepared_statements_leave_the_connection_and_its_statements_usable(self):
        async def scenario():
            conn = await self.connect()
            try:
                await conn.execute("DROP TABLE IF EXISTS apg_ps_err")
                await conn.execute("CREATE TABLE apg_ps_err (id int PRIMARY KEY)")
                self.assertEqual(await conn.fetchval("SELECT 10 / $1::int", 2), 5)
                for _ in range(3):
                    with self.assertRaises(asyncpg.PostgresSyntaxError) as caught:
                        await conn.fetchval("SELEC $1::int")
                    self.assertEqual(caught.exception.sqlstate, "42601")
                    with self.assertRaises(asyncpg.DivisionByZeroError):
                        async with conn.transaction():
                            await conn.execute("INSERT INTO apg_ps_err VALUES ($1)", 1)
                            await conn.fetchval("SELECT 10 / $1::int", 0)
                    with self.assertRaises(asyncpg.UniqueViolationError):
                        async with conn.transaction():
                            await conn.execute("INSERT INTO apg_ps_err VALUES ($1)", 7)
                            await conn.execute("INSERT INTO apg_ps_err VALUES ($1)", 7)
                    self.assertEqual(await conn.fetchval("SELECT 10 / $1::int", 5), 2)
                    self.assertEqual(await conn.fetchval("SELECT count(*) FROM apg_ps_err"), 0)
                async with conn.transaction():
                    await conn.execute("INSERT INTO apg_ps_err VALUES ($1)", 3)
                self.assertEqual(await conn.fetchval("SELECT array_agg(id) FROM apg_ps_err"), [3])
                await conn.execute("DROP TABLE apg_ps_err")
            finally:
                await conn.close()

        self.run_async(scenario())
        self.assert_log_clean()

    def test_500_connections_running_20_transactions_of_prepared_statements_all_correct(self):
        self.prepare_storm("apg_ps_storm",
                           "conn_id int NOT NULL, i int NOT NULL, v text NOT NULL, PRIMARY KEY (conn_id, i)")
        failures = []
        backends = set()
        transactions_done = [0]

        async def client(conn_id, conn):
            # A text only this connection uses: 500 distinct statements over 5 servers that keep at most
            # max_prepared_statements (200) each, so servers also evict and prepare again.
            own = f"SELECT $1::int + {conn_id} AS own, pg_backend_pid() AS pid"
            try:
                for i in range(TRANSACTIONS_PER_CLIENT):
                    value = f"v{conn_id}-{i}"
                    async with conn.transaction():
                        await conn.execute("INSERT INTO apg_ps_storm VALUES ($1, $2, $3)", conn_id, i, value)
                        row = await conn.fetchrow(
                            "SELECT (SELECT v FROM apg_ps_storm WHERE conn_id = $1 AND i = $2) AS v, "
                            "(SELECT count(*) FROM apg_ps_storm WHERE conn_id = $1) AS n, "
                            "$1::int * 1000 + $2::int AS k, pg_backend_pid() AS pid", conn_id, i)
                        mine = await conn.fetchrow(own, i)
                    backends.update((row["pid"], mine["pid"]))
                    if (row["v"], row["n"], row["k"]) != (value, i + 1, conn_id * 1000 + i):
                        failures.append(f"client {conn_id} transaction {i}: saw {tuple(row)}")
                    if mine["own"] != i + conn_id:
                        failures.append(f"client {conn_id} transaction {i}: own statement gave {mine['own']}")
                    # Outside a transaction: asyncpg's Parse/Describe round trip and its Bind/Execute may each run
                    # on a different server.
                    echoed = await conn.fetchval("SELECT $1::text || ':' || $2::int", value, i)
                    if echoed != f"{value}:{i}":
                        failures.append(f"client {conn_id} transaction {i}: echo gave {echoed!r}")
                    transactions_done[0] += 1
            finally:
                await conn.close()

        async def storm():
            conns = []
            errors = []
            for start in range(0, CLIENTS, CONNECT_BATCH):
                batch = await asyncio.gather(*(self.connect() for _ in range(start, min(CLIENTS, start + CONNECT_BATCH))),
                                             return_exceptions=True)
                for c in batch:
                    (errors if isinstance(c, BaseException) else conns).append(c)
            if errors:
                for c in conns:
                    await c.close()
                return errors, 0.0
            started = time.monotonic()
            results = await asyncio.gather(*(client(i, c) for i, c in enumerate(conns)), return_exceptions=True)
            return [r for r in results if isinstance(r, BaseException)], time.monotonic() - started

        started = time.monotonic()
        errors, running_s = self.run_async(storm(), timeout=STORM_DEADLINE_S)
        elapsed = time.monotonic() - started
        self.assert_storm_clean(errors)
        self.assertEqual(failures[:10], [], f"{len(failures)} wrong results")
        self.assertEqual(transactions_done[0], CLIENTS * TRANSACTIONS_PER_CLIENT)
        self.assertLessEqual(len(backends), DEFAULT_POOL_SIZE)

        async def check():
            conn = await self.connect()
            try:
                return await conn.fetchrow(
                    "SELECT count(*), count(DISTINCT conn_id), "
                    "count(*) FILTER (WHERE v = 'v' || conn_id || '-' || i) FROM apg_ps_storm")
            finally:
                await conn.close()

        total, clients, right = self.run_async(check())
        self.assertEqual((total, clients, right),
                         (CLIENTS * TRANSACTIONS_PER_CLIENT, CLIENTS, CLIENTS * TRANSACTIONS_PER_CLIENT))
        print(f"\n{CLIENTS} x {TRANSACTIONS_PER_CLIENT} transactions of prepared statements in {elapsed:.1f} s "
              f"({running_s:.1f} s after the logins)", flush=True)
        self.assert_log_clean()


if __name__ == "__main__":
    unittest.main()
