"""CPU of one routine positions read in the core and the store, in-process, against a real
redis-server: the parsed snapshot through ``CoreLoop.handle_many`` (the books, the guard's and
the reaper's steps, the effects runner, ``RedisPublisher.run_many``, the pipelined write).

The daemon's pipeline as ``runtime.build`` wires it with the defaults (no task started, the
HTTP client never used), leading its account on a redis-server of its own; the wall clock is
a ``ManualClock`` moved 900 ms a read. After a first read that publishes 300 open positions,
every read re-verifies them (the same parsed tuple of rows, as binance/protocol/wire_rest.py
returns for an unchanged answer): ``SnapshotRequested`` then the ``PositionSnapshot``, each its
own batch as the poller emits them. The figure: process time per read (both batches), best of
``--repeats`` blocks of ``--reads`` reads; the redis-server's own CPU is not in it.

Usage (compare two trees, under the shared lock)::

    cd bench && flock /work/bench.lock env PYTHONPATH=<tree>:<tree>/client \
        python read_core_cpu.py [--positions 300] [--reads 600] [--repeats 5]

docs/BENCHMARKS.md, "#13 item 2: the read in the core and the store (session 10)".
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import httpx
from loguru import logger

from tests.support.redis_server import RedisServer, free_port
from watchdog.clock import ManualClock
from watchdog.config import Config, Credentials, RedisConfig
from watchdog.core.events import PositionAmount, PositionSnapshot, SnapshotRequested, StreamConnected
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.runtime.build import Endpoints, build

T0 = 1_795_573_638_050


async def measure(url: str, positions: int, reads: int, repeats: int) -> dict[str, object]:
    config = Config(redis=RedisConfig(url=url, account="bench"))
    clock = ManualClock(now_s=1000.0, now_ms=T0)
    rows = tuple(PositionAmount(PositionKey(Symbol(f"S{i:03d}USDT"), PositionSide.BOTH),
                                Decimal("0.010"), Decimal("60000.5"), T0 - 60_000)
                 for i in range(positions))
    async with httpx.AsyncClient(base_url="http://127.0.0.1:1") as http, \
            build(config, Credentials("key", "secret"), clock, Endpoints(http=http)) as pipeline:
        for coro in pipeline.tasks().values():
            coro.close()  # nothing runs beside the reads
        store, core = pipeline.store, pipeline.core
        await store.start()
        assert await store.acquire()
        await store.heartbeat(pipeline.vitals.health(clock.wall_ms()).to_fields(),
                              wall_ms=clock.wall_ms())
        await core.handle_many([StreamConnected(1)])
        request_id = 0

        async def one_read() -> None:
            nonlocal request_id
            request_id += 1
            clock.advance(0.9)
            await core.handle_many([SnapshotRequested(request_id, clock.wall_ms())])
            clock.advance(0.05)
            await core.handle_many([PositionSnapshot(request_id, clock.wall_ms() - 50,
                                                     clock.wall_ms(), rows)])

        for _ in range(20):
            await one_read()
        opened = sum(1 for v in pipeline.book.views() if v.state.value == "open")
        assert opened == positions, opened
        best = float("inf")
        for _ in range(repeats):
            gc.collect()
            started = time.process_time()
            for _ in range(reads):
                await one_read()
            best = min(best, (time.process_time() - started) / reads * 1e6)
        sample = await store._redis.hgetall(store.keys.of(rows[0].key).position)
        assert int(sample["verified_ms"]) == clock.wall_ms(), sample
        return {"positions": positions, "reads": reads, "repeats": repeats,
                "us_per_read": round(best, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--positions", type=int, default=300)
    parser.add_argument("--reads", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(free_port(), Path(tmp))
        server.start()
        try:
            result = asyncio.run(measure(server.url, args.positions, args.reads, args.repeats))
        finally:
            server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
