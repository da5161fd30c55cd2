"""LISTEN/NOTIFY through Sluice in transaction pooling, as async applications use it: asyncpg's add_listener() and
psycopg 3's notifies() receive every notification, in order and exactly once, while the listener holds no server
connection (the other servers are all held by other clients)."""

import asyncio
import unittest

import asyncpg
import psycopg

from client_fixture import DEFAULT_POOL_SIZE, SluiceTestCase
from sluice_harness import TEST_DATABASE, TEST_PASSWORD, TEST_USER

NOTIFICATIONS = 50
LISTENERS = 100


class ListenTest(SluiceTestCase):
    # asyncpg derives SCRAM keys in Python: fewer iterations keep 100 logins quick (see test_asyncpg.py).
    sluice_settings = {"max_client_conn": "300", "query_wait_timeout": "20", "scram_iterations": "256"}

    async def asyncpg_connect(self):
        return await asyncpg.connect(host="127.0.0.1", port=self.sluice.port, user=TEST_USER, password=TEST_PASSWORD,
                                     database=TEST_DATABASE, timeout=30)

    def run_async(self, coro, timeout=90):
        return asyncio.run(asyncio.wait_for(coro, timeout))

    async def hold_servers(self, count):
        """`count` connections, each inside a transaction: they keep that many servers of the pool to themselves."""
        holders = []
        for _ in range(count):
            conn = await self.asyncpg_connect()
            transaction = conn.transaction()
            await transaction.start()
            await conn.fetchval("SELECT 1")
            holders.append((conn, transaction))
        return holders

    async def release(self, holders):
        for conn, transaction in holders:
            await transaction.commit()
            await conn.close()

    def test_asyncpg_add_listener_gets_every_notification_in_order_while_holding_no_server(self):
        async def scenario():
            listener = await self.asyncpg_connect()
            received = asyncio.Queue()
            await listener.add_listener("sluice_orders", lambda _conn, _pid, channel, payload:
                                        received.put_nowait((channel, payload)))
            # Every server but one is held by others; the notifier needs that one: the listener must hold none.
            holders = await self.hold_servers(DEFAULT_POOL_SIZE - 1)
            notifier = await self.asyncpg_connect()
            try:
                for i in range(NOTIFICATIONS):
                    await notifier.execute("SELECT pg_notify('sluice_orders', $1)", f"order-{i}")
                got = [await asyncio.wait_for(received.get(), 10) for _ in range(NOTIFICATIONS)]
                await asyncio.sleep(0.3)
                self.assertTrue(received.empty(), "a notification was delivered twice")
                # The listener still works as a connection (and answers between notifications).
                self.assertEqual(await listener.fetchval("SELECT 6 * 7"), 42)
            finally:
                await self.release(holders)
                await notifier.close()
                await listener.close()
            return got

        got = self.run_async(scenario())
        self.assertEqual(got, [("sluice_orders", f"order-{i}") for i in range(NOTIFICATIONS)])
        self.assert_log_clean()

    def test_psycopg3_async_notifies_receives_a_notification_committed_by_another_client(self):
        async def scenario():
            dsn = self.sluice.dsn()
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener:
                await listener.execute("LISTEN sluice_jobs")  # psycopg 3: Parse/Bind/Execute/Sync
                async with await psycopg.AsyncConnection.connect(dsn) as notifier:
                    await notifier.execute("NOTIFY sluice_jobs, 'job 1'")
                    await notifier.execute("SELECT pg_notify('sluice_jobs', 'job 2')")
                    await notifier.commit()
                notifications = listener.notifies()
                got = []
                for _ in range(2):
                    n = await asyncio.wait_for(notifications.__anext__(), 10)
                    got.append((n.channel, n.payload))
                await notifications.aclose()
                return got

        self.assertEqual(self.run_async(scenario()), [("sluice_jobs", "job 1"), ("sluice_jobs", "job 2")])

    def test_a_hundred_listeners_on_two_channels_each_get_exactly_their_channel(self):
        async def scenario():
            listeners = []
            inboxes = []
            for i in range(LISTENERS):
                conn = await self.asyncpg_connect()
                inbox = asyncio.Queue()
                await conn.add_listener(f"sluice_fan_{i % 2}", lambda _c, _p, channel, payload, q=inbox:
                                        q.put_nowait((channel, payload)))
                listeners.append(conn)
                inboxes.append(inbox)
            notifier = await self.asyncpg_connect()
            try:
                for n in range(10):
                    for channel in (0, 1):
                        await notifier.execute("SELECT pg_notify($1, $2)", f"sluice_fan_{channel}", str(n))
                seen = []
                for inbox in inboxes:
                    seen.append([await asyncio.wait_for(inbox.get(), 10) for _ in range(10)])
                await asyncio.sleep(0.3)
                extra = sum(inbox.qsize() for inbox in inboxes)
            finally:
                await notifier.close()
                for conn in listeners:
                    await conn.close()
            return seen, extra

        seen, extra = self.run_async(scenario())
        self.assertEqual(extra, 0, "a listener got more than its channel's notifications")
        for i, got in enumerate(seen):
            self.assertEqual(got, [(f"sluice_fan_{i % 2}", str(n)) for n in range(10)], f"listener {i}")


if __name__ == "__main__":
    unittest.main()
