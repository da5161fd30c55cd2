"""What the asyncpg client tests share (test_asyncpg.py, test_prepared_asyncpg.py): connecting to the test Sluice,
running a coroutine with a deadline, room for a storm's descriptors, and the storm's table."""

import asyncio
import resource

import asyncpg

from sluice_harness import TEST_DATABASE, TEST_PASSWORD, TEST_USER

# Both storms: 500 connections running 20 transactions each over the default 5 server connections.
STORM_CLIENTS = 500
STORM_TRANSACTIONS_PER_CLIENT = 20


def ensure_open_files(needed):
    """Raises the soft RLIMIT_NOFILE to `needed` when it is lower (up to the hard limit); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class AsyncpgMixin:
    """For a SluiceTestCase: `connect()` logs the test user into the class's Sluice with `asyncpg_options` (a class's
    own options, e.g. statement_cache_size) plus the call's, and `run_async()` runs a coroutine with a deadline."""

    asyncpg_options = {}
    connect_timeout_s = 60
    run_timeout_s = 120

    async def connect(self, **options):
        merged = dict(self.asyncpg_options, **options)
        return await asyncpg.connect(host="127.0.0.1", port=self.sluice.port, user=TEST_USER, password=TEST_PASSWORD,
                                     database=TEST_DATABASE, timeout=self.connect_timeout_s, **merged)

    def run_async(self, coro, timeout=None):
        return asyncio.run(asyncio.wait_for(coro, self.run_timeout_s if timeout is None else timeout))

    def prepare_storm(self, table, columns):
        """Checks there are descriptors for a storm's connections (Sluice's two sides of each, plus slack), then
        creates the storm's table afresh: `columns` is the column list of CREATE TABLE."""
        self.assertGreaterEqual(ensure_open_files(4 * STORM_CLIENTS), 2 * STORM_CLIENTS + 100)

        async def setup():
            conn = await self.connect()
            try:
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
                await conn.execute(f"CREATE TABLE {table} ({columns})")
            finally:
                await conn.close()

        self.run_async(setup())

    def assert_storm_clean(self, errors):
        """Fails with the kinds of client failures seen and the tail of Sluice's log when there are any."""
        kinds = sorted({f"{type(e).__name__}: {e}" for e in errors})
        self.assertEqual(errors, [], f"{len(errors)} clients failed: {kinds[:5]}{self.sluice_log_tail(2000)}")
