"""asgiref's round trips, measured the way bridge_vs_asgiref measures the bridge's: the median of single calls.

Run by bridge_vs_asgiref with the Debian interpreter (/usr/bin/python3, which has python3-asgiref); prints one JSON
object of medians in nanoseconds. Usage: asgiref_round_trips.py SAMPLES
"""

import asyncio
import json
import statistics
import sys
import time

import asgiref
from asgiref.sync import async_to_sync, sync_to_async

SAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
WARMUP = 200


def one():
    return 1


async def one_async():
    return 1


def median_ns(call, samples):
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(samples):
        t = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - t)
    return statistics.median(times)


async def median_ns_async(make, samples):
    for _ in range(WARMUP):
        await make()
    times = []
    for _ in range(samples):
        t = time.perf_counter_ns()
        await make()
        times.append(time.perf_counter_ns() - t)
    return statistics.median(times)


async def sync_to_async_medians():
    # thread_sensitive=True is asgiref's default: outside a ThreadSensitiveContext every call goes to one shared thread.
    sensitive = sync_to_async(one)
    free = sync_to_async(one, thread_sensitive=False)
    return (await median_ns_async(sensitive, SAMPLES), await median_ns_async(free, SAMPLES))


def main():
    s2a_sensitive, s2a_any = asyncio.run(sync_to_async_medians())
    # From a plain thread with no running loop: asgiref starts a loop on a new thread per call.
    a2s = median_ns(async_to_sync(one_async), max(SAMPLES // 2, 1))
    print(json.dumps({
        "asgiref_version": asgiref.__version__,
        "python": sys.version.split()[0],
        "sync_to_async_thread_sensitive_ns": s2a_sensitive,
        "sync_to_async_any_thread_ns": s2a_any,
        "async_to_sync_plain_thread_ns": a2s,
    }))


if __name__ == "__main__":
    main()
