"""UserDataStream over real sockets against a minimal scripted Binance look-alike.

This fake only scripts what the simulator cannot order precisely (a frame during the gap
snapshot, a stall, the overlap of a rotation); the simulator-backed scenarios live in
tests/binance/test_adapters_sim.py. Assertions are on the events the core would receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from tests.support.waiting import eventually
from watchdog.binance.rest import BinanceRest
from watchdog.binance.retry import RetryPolicy
from watchdog.binance.stream import UserDataStream
from watchdog.clock import SystemClock
from watchdog.core.events import (
    Event,
    ListenKeyExpired,
    OrdersSnapshot,
    PositionSnapshot,
    SnapshotRequested,
    StreamConnected,
    StreamLost,
    StreamPositions,
)

pytestmark = pytest.mark.integration


def account_update(n: int, amount: str = "1") -> dict[str, Any]:
    return {"e": "ACCOUNT_UPDATE", "E": 1_700_000_000_000 + n, "T": 1_700_000_000_000 + n,
            "a": {"m": "ORDER", "B": [{"a": "USDT", "wb": "100", "cw": "100", "bc": "0"}],
                  "P": [{"s": "BTCUSDT", "pa": amount, "ep": "100.0", "bep": "100.0",
                         "cr": "0", "up": "0", "mt": "cross", "iw": "0", "ps": "BOTH"}]}}


def position_row(amount: str) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": amount,
            "entryPrice": "100.0", "breakEvenPrice": "100.0", "markPrice": "100.0",
            "unRealizedProfit": "0", "liquidationPrice": "0", "isolatedMargin": "0",
            "notional": "100", "marginAsset": "USDT", "isolatedWallet": "0",
            "initialMargin": "10", "maintMargin": "1", "positionInitialMargin": "10",
            "openOrderInitialMargin": "0", "adl": 1, "bidNotional": "0", "askNotional": "0",
            "updateTime": 1_700_000_000_000}


@dataclass
class FakeBinance:
    listen_key: str = "LK-1"
    posts: int = 0
    puts: int = 0
    keepalive_code: int | None = None
    stall: bool = False
    on_connect: list[dict[str, Any]] = field(default_factory=list)
    positions_gate: asyncio.Event | None = None
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    seq: int = 0
    send_on_overlap: bool = False  # a new socket while another is open gets an event on both

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/fapi/v1/time", self.time)
        app.router.add_post("/fapi/v1/listenKey", self.post_key)
        app.router.add_put("/fapi/v1/listenKey", self.put_key)
        app.router.add_get("/fapi/v3/positionRisk", self.positions)
        app.router.add_get("/fapi/v1/openOrders", self.empty)
        app.router.add_get("/fapi/v1/openAlgoOrders", self.empty)
        app.router.add_get("/private/ws", self.ws)
        return app

    async def time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": int(asyncio.get_running_loop().time() * 1000)})

    async def post_key(self, request: web.Request) -> web.Response:
        self.posts += 1
        return web.json_response({"listenKey": self.listen_key})

    async def put_key(self, request: web.Request) -> web.Response:
        self.puts += 1
        if self.keepalive_code is not None:
            return web.json_response({"code": self.keepalive_code,
                                      "msg": "This listenKey does not exist."}, status=400)
        return web.json_response({"listenKey": self.listen_key})

    async def positions(self, request: web.Request) -> web.Response:
        if self.positions_gate is not None:
            await self.positions_gate.wait()
        return web.json_response([position_row("1")])

    async def empty(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        self.urls.append(str(request.rel_url))
        ws = web.WebSocketResponse(autoping=not self.stall)
        await ws.prepare(request)
        self.sockets.append(ws)
        if self.send_on_overlap and any(not s.closed for s in self.sockets[:-1]):
            await self.send_next()
        for frame in self.on_connect:
            await ws.send_str(json.dumps(frame))
        if self.stall:
            await asyncio.sleep(3600)  # never read: pings go unanswered
        async for msg in ws:
            if msg.type is WSMsgType.ERROR:
                break
        return ws

    async def send_next(self) -> int:
        self.seq += 1
        await self.broadcast(account_update(self.seq, str(self.seq)))
        return self.seq

    async def broadcast(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        for ws in list(self.sockets):
            if not ws.closed:
                await ws.send_str(text)


@dataclass
class Harness:
    fake: FakeBinance
    stream: UserDataStream
    events: list[Event]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


@contextlib.asynccontextmanager
async def running(fake: FakeBinance, **stream_kw: Any) -> AsyncIterator[Harness]:
    server = TestServer(fake.app())
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}"
    client = httpx.AsyncClient(base_url=base)

    @dataclass
    class Creds:
        api_key: str = "k"
        api_secret: str = "s"

    rest = BinanceRest(client, Creds(), clock=SystemClock(),
                       retry_policy=RetryPolicy(max_delay_s=1.0, initial_s=0.05))
    kw: dict[str, Any] = {"max_silence_s": 3.0, "reconnect_min_delay_s": 0.05,
                          "reconnect_max_delay_s": 0.2, "rng": random.Random(0)}
    kw.update(stream_kw)
    stream = UserDataStream(rest, ws_url=f"ws://127.0.0.1:{server.port}", clock=SystemClock(),
                            **kw)
    events: list[Event] = []

    async def emit(event: Event) -> None:
        events.append(event)

    task = asyncio.create_task(stream.run(emit))
    try:
        yield Harness(fake, stream, events)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()
        await server.close()


async def _value(x: int) -> int:
    return x


async def until(h: Harness, predicate: Any, what: str, timeout_s: float = 10.0) -> None:
    async def probe() -> list[Event]:
        return list(h.events)
    await eventually(probe, predicate, timeout_s=timeout_s, what=what)


async def test_gap_order_is_connected_snapshot_then_buffered_events() -> None:
    fake = FakeBinance(on_connect=[account_update(1, "2")], positions_gate=asyncio.Event())
    async with running(fake) as h:
        await until(h, lambda ev: len(fake.sockets) == 1 and any(
            isinstance(e, SnapshotRequested) for e in ev), "snapshot requested")
        await eventually(lambda: _value(h.stream.stats.received), lambda n: n >= 1,
                         what="frame buffered while the snapshot waits")
        assert not any(isinstance(e, StreamPositions) for e in h.events)
        fake.positions_gate.set()  # type: ignore[union-attr]
        await until(h, lambda ev: any(isinstance(e, StreamPositions) for e in ev)
                    and any(isinstance(e, OrdersSnapshot) for e in ev), "replay, then open orders")
        kinds = h.kinds()
        assert kinds[:5] == ["StreamConnected", "SnapshotRequested", "PositionSnapshot",
                             "StreamPositions", "OrdersSnapshot"]
        snap = h.events[2]
        assert isinstance(snap, PositionSnapshot)
        assert snap.request_id == h.events[1].request_id  # type: ignore[union-attr]
        url = fake.urls[0]
        assert url.startswith("/private/ws?listenKey=LK-1&events=")
        assert "ALGO_UPDATE" in url
        assert "listenKeyExpired" in url


async def test_server_drop_is_reported_and_resynced() -> None:
    fake = FakeBinance()
    async with running(fake) as h:
        await until(h, lambda ev: any(isinstance(e, PositionSnapshot) for e in ev), "first")
        await fake.sockets[0].close()
        await until(h, lambda ev: sum(isinstance(e, PositionSnapshot) for e in ev) >= 2,
                    "resync after reconnect")
        lost = [e for e in h.events if isinstance(e, StreamLost)]
        connected = [e for e in h.events if isinstance(e, StreamConnected)]
        assert [c.connection_id for c in connected] == [1, 2]
        assert lost[0].connection_id == 1
        assert "closed" in lost[0].reason
        i_lost, i_conn2 = h.events.index(lost[0]), h.events.index(connected[1])
        assert i_lost < i_conn2
        assert fake.posts == 2  # a fresh listen-key check before every connect
        assert h.stream.stats.reconnects == 1


async def test_stalled_socket_is_lost_within_silence_limit() -> None:
    fake = FakeBinance(stall=True)
    async with running(fake, max_silence_s=0.6) as h:
        await until(h, lambda ev: any(isinstance(e, StreamLost) for e in ev), "stall detected")
        lost = next(e for e in h.events if isinstance(e, StreamLost))
        assert "silent" in lost.reason or "1011" in lost.reason


async def test_listen_key_expired_reconnects_and_says_so() -> None:
    fake = FakeBinance()
    async with running(fake) as h:
        await until(h, lambda ev: any(isinstance(e, PositionSnapshot) for e in ev), "first")
        fake.listen_key = "LK-2"
        await fake.broadcast({"e": "listenKeyExpired", "E": "1736996475556",
                              "listenKey": "LK-1"})
        await until(h, lambda ev: sum(isinstance(e, StreamConnected) for e in ev) >= 2,
                    "reconnected")
        kinds = h.kinds()
        i = kinds.index("ListenKeyExpired")
        assert kinds[i + 1] == "StreamLost"
        lost = h.events[i + 1]
        assert isinstance(lost, StreamLost)
        assert lost.reason == "listen_key_expired"
        assert any(isinstance(e, ListenKeyExpired) for e in h.events)
        assert fake.urls[-1].startswith("/private/ws?listenKey=LK-2")


async def test_listen_keys_never_reach_the_log() -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    fake = FakeBinance(listen_key="SECRETKEY1")
    try:
        async with running(fake) as h:
            await until(h, lambda ev: any(isinstance(e, PositionSnapshot) for e in ev), "first")
            fake.listen_key = "SECRETKEY2"
            await fake.broadcast('{"e": "listenKeyExpired", "E": "oops", "listenKey": "SECRETKEY1"}')
            await fake.broadcast({"e": "listenKeyExpired", "E": 1, "listenKey": "SECRETKEY1"})
            await until(h, lambda ev: sum(isinstance(e, StreamConnected) for e in ev) >= 2,
                        "reconnected")
    finally:
        logger.remove(sink)
    text = "\n".join(lines)
    assert "listenKeyExpired" in text or "malformed" in text  # something was logged about it
    assert "SECRETKEY" not in text


async def test_keepalive_minus_1125_gets_a_new_key_and_reconnects() -> None:
    fake = FakeBinance(keepalive_code=-1125)
    async with running(fake, keepalive_interval_s=0.3) as h:
        await until(h, lambda ev: sum(isinstance(e, StreamConnected) for e in ev) >= 2,
                    "reconnect after -1125")
        lost = next(e for e in h.events if isinstance(e, StreamLost))
        assert "-1125" in lost.reason
        assert fake.puts >= 1
        assert fake.posts >= 2


async def test_malformed_frames_are_counted_not_fatal() -> None:
    fake = FakeBinance()
    async with running(fake) as h:
        await until(h, lambda ev: any(isinstance(e, PositionSnapshot) for e in ev), "first")
        await fake.broadcast("not json {")
        await fake.broadcast({"e": "ACCOUNT_UPDATE", "E": 1, "T": 1, "a": {"m": "ORDER"}})
        await fake.broadcast({"e": "SOMETHING_NEW", "E": 1})
        await fake.broadcast(account_update(5))
        await until(h, lambda ev: any(isinstance(e, StreamPositions) for e in ev), "valid event")
        assert h.stream.stats.malformed >= 1
        assert h.stream.stats.ignored >= 1
        assert not any(isinstance(e, StreamLost) for e in h.events)


async def test_blind_request_reconnects() -> None:
    fake = FakeBinance()
    async with running(fake) as h:
        await until(h, lambda ev: any(isinstance(e, PositionSnapshot) for e in ev), "first")
        h.stream.request_reconnect("blind: snapshot shows an unreported change")
        await until(h, lambda ev: sum(isinstance(e, StreamConnected) for e in ev) >= 2,
                    "reconnect")
        lost = next(e for e in h.events if isinstance(e, StreamLost))
        assert lost.reason.startswith("blind")


async def test_rotation_is_make_before_break_without_gap_or_duplicates() -> None:
    fake = FakeBinance(send_on_overlap=True)
    async with running(fake, rotate_after_s=0.4) as h:
        await until(h, lambda ev: any(isinstance(e, PositionSnapshot) for e in ev), "first")
        while h.stream.stats.rotations < 3:
            await fake.send_next()
            await asyncio.sleep(0.005)  # pacing of the event source, not synchronisation
            assert fake.seq < 5000, "no rotation happened"
        last = await fake.send_next()
        await until(h, lambda ev: any(isinstance(e, StreamPositions) and e.event_time_ms ==
                                      1_700_000_000_000 + last for e in ev), "last event")
        seen = [e.event_time_ms - 1_700_000_000_000 for e in h.events
                if isinstance(e, StreamPositions)]
        assert seen == list(range(1, last + 1))  # every event, once, in order
        assert not any(isinstance(e, StreamLost) for e in h.events)
        assert h.stream.stats.duplicates >= 3  # each overlap really carried an event twice
