"""Ticks only when due, end to end: with REST answering nothing (held by a proxy in front of
the simulator) and a silent stream, no event reaches the core, and only the Tick the ticker sends
for the book's ageing deadline (runtime/ticker.py) publishes the position unknown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import redis.asyncio

from tests.integration.test_daemon import ACCOUNT, BASUSDT, KEYS, start_daemon
from tests.support.waiting import eventually
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

MAX_AGE_MS = 5000  # [core] max_age_ms at its default


class HoldingProxy:
    """TCP in front of the simulator's REST port; ``hold()`` stops passing the client's bytes
    (a request then neither answers nor fails until the client's own timeout)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    def hold(self) -> None:
        self._flowing.clear()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    gated: bool) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if gated:
                    await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        for task in (asyncio.create_task(self._pump(reader, up_writer, True)),
                     asyncio.create_task(self._pump(up_reader, writer, False))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HoldingProxy]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()


async def test_an_unverified_position_is_published_unknown_by_the_due_tick(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    # Protected, so the guard has no run to judge (no lease reads, no Tick of its own).
    sim.exchange.place_algo(sim.api_key, {
        "algoType": "CONDITIONAL", "symbol": "BASUSDT", "side": "SELL", "type": "STOP_MARKET",
        "quantity": "1216", "reduceOnly": "true",
        "triggerPrice": f"{(sim.exchange.mark['BASUSDT'] / 2).quantize(Decimal('0.00000001')):f}"})
    rest = urlsplit(sim.rest_url)
    async with HoldingProxy(rest.hostname or "127.0.0.1", rest.port or 80).running() as proxy:
        table = {
            "binance": {"rest_url": f"http://127.0.0.1:{proxy.port}", "ws_url": sim.ws_url,
                        "request_timeout_s": 60.0},  # a held read fails only after a minute
            "redis": {"url": redis_url, "account": ACCOUNT},
        }  # everything else at its default: the ticker's grid is 0.25 s
        daemon, stop = start_daemon(sim, table)
        try:
            await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                             lambda h: h.get("state") == "open" and h.get("knowledge") == "confirmed",
                             timeout_s=20, what="BASUSDT:BOTH published open")
            await eventually(lambda: rclient.hget(KEYS.health, "ready"), lambda v: v == "true",
                             timeout_s=20, what="ready")
            proxy.hold()
            held_ms = time.time_ns() // 1_000_000
            # The last read let through may still re-verify the key: its verified_ms is read
            # from what is finally published unknown. The deadline is a liveness bound, not a
            # speed figure: max_age_ms plus 16 grid points (without the ageing's due Tick the
            # key waits for some unrelated event, about 10 s later here).
            expired = await eventually(
                lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                lambda h: h.get("knowledge") == "expired",
                timeout_s=MAX_AGE_MS / 1000 + 4, interval_s=0.05,
                what="BASUSDT:BOTH published unknown once not verified for max_age_ms")
            seen_ms = time.time_ns() // 1_000_000
            assert expired["state"] == "unknown"
            assert f"not verified for more than {MAX_AGE_MS} ms" in expired["reason"]
            verified_ms = int(expired["verified_ms"])
            assert verified_ms <= held_ms + 1000  # no read came through after the hold
            assert seen_ms > verified_ms + MAX_AGE_MS  # aged, not failed or doubted
            health = await rclient.hgetall(KEYS.health)
            assert health["stream_state"] == "live"  # no gap: no event made it unknown
        finally:
            stop.set()
            await asyncio.wait_for(daemon, timeout=90)
