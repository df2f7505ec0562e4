"""A minimal watchdog around the reaper for integration tests: real adapters, sim, real Redis.

``reaper_rig`` (factory fixture): ``async with reaper_rig(sim, redis_url, grace_ms=…) as rig``
starts the user stream, the poller, a core pump (OrderBook + PositionBook + ``ReaperTask.step``
on every Tick), a store writer (views, events, alerts to Redis; a heartbeat) and the reaper
task, all on real sockets. ``rig.bot`` places orders and takes leases as a trading bot would:
its own signed HTTP, and the veto scripts through ``watchdog.client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis.asyncio

from poswatch.client import AsyncWatchdogClient
from watchdog.binance.poller import Poller, PollSchedule
from watchdog.binance.rest import BinanceRest
from watchdog.binance.stream import UserDataStream
from watchdog.config import ReaperConfig
from watchdog.core.book import BookPolicy, PositionBook
from watchdog.core.effects import CancelOrder, Effect, Notify, Publish, RaiseAlert, Retract
from watchdog.core.events import Event, Tick
from watchdog.core.model import PositionKey
from watchdog.core.orders import OrderBook
from watchdog.runtime.clock import SystemClock
from watchdog.runtime.pump import CorePump
from watchdog.runtime.reaper_after_cancel import ReadPositions
from watchdog.runtime.reaper_task import ReaperTask, bracketed_reader
from watchdog.sim import Simulator
from watchdog.store.publisher import RedisPublisher

__all__ = ["Bot", "ReaperRig", "reaper_rig"]

ACCOUNT = "itest"


@dataclass(frozen=True)
class _Credentials:
    api_key: str
    api_secret: str = field(repr=False)


class Bot:
    """What a trading bot does: signed REST orders on the simulator, leases through Redis."""

    def __init__(self, sim: Simulator, http: httpx.AsyncClient, veto: AsyncWatchdogClient) -> None:
        self._sim = sim
        self._http = http
        self.veto = veto
        self.time_offset_ms = 0  # the bot's own correction to the exchange clock (clock skew)

    async def call(self, method: str, path: str, **params: Any) -> dict[str, Any]:
        query = urlencode({**params,
                           "timestamp": int(time.time() * 1000) + self.time_offset_ms})
        signature = hmac.new(self._sim.api_secret.encode(), query.encode(),
                             hashlib.sha256).hexdigest()
        response = await self._http.request(
            method, f"{self._sim.rest_url}{path}?{query}&signature={signature}",
            headers={"X-MBX-APIKEY": self._sim.api_key})
        body: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise AssertionError(f"{method} {path} -> {response.status_code} {body}")
        return body

    async def place_stop(self, symbol: str, side: str, trigger_price: str, *, qty: str = "",
                         position_side: str = "BOTH", reduce_only: bool = True,
                         close_position: bool = False, client_id: str = "") -> int:
        """``POST /fapi/v1/algoOrder`` STOP_MARKET; returns the algoId."""
        params: dict[str, Any] = {"algoType": "CONDITIONAL", "symbol": symbol, "side": side,
                                  "type": "STOP_MARKET", "triggerPrice": trigger_price}
        if position_side != "BOTH":
            params["positionSide"] = position_side
        if close_position:
            params["closePosition"] = "true"
        else:
            params["quantity"] = qty
            if reduce_only and position_side == "BOTH":
                params["reduceOnly"] = "true"
        if client_id:
            params["clientAlgoId"] = client_id
        return int((await self.call("POST", "/fapi/v1/algoOrder", **params))["algoId"])

    async def begin(self, key: PositionKey, ttl_ms: int = 30_000) -> int:
        """The veto protocol's ``begin`` (run before cancelling a stop); returns the lease."""
        verdict = await self.veto.begin(key.symbol, key.side.value, holder="bot", ttl_ms=ttl_ms)
        assert verdict.allowed, verdict
        assert verdict.lease is not None, verdict
        return verdict.lease

    async def end(self, key: PositionKey, lease: int) -> None:
        ended = await self.veto.end(key.symbol, key.side.value, lease)
        assert ended.released, ended


@dataclass
class ReaperRig:
    """The running parts; ``effects`` collects every effect the core and the reaper produced."""

    sim: Simulator
    rest: BinanceRest
    store: RedisPublisher
    book: PositionBook
    orders: OrderBook
    reaper: ReaperTask
    pump: CorePump
    bot: Bot
    redis: redis.asyncio.Redis
    effects: list[Effect] = field(default_factory=list)
    publishing: bool = True  # False: views stop reaching Redis (as while writes are deferred)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def check_alive(self) -> None:
        """Fail at once (not at a wait's deadline) when a part of the rig died."""
        for t in self.tasks:
            if t.done() and not t.cancelled():
                raise AssertionError(f"rig task {t.get_name()} ended: {t.exception()!r}")

    async def until(self, what: str, probe: Callable[[], Any], timeout_s: float = 10.0) -> Any:
        """Poll ``probe`` until truthy; fails at ``timeout_s`` or when a rig task died."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self.check_alive()
            value = probe()
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"{what} not reached within {timeout_s}s; last: {value!r}")
            await asyncio.sleep(0.02)

    def alerts(self, code: str) -> list[RaiseAlert]:
        return [e for e in self.effects if isinstance(e, RaiseAlert) and e.code == code]

    def algo_open(self, algo_id: int) -> bool:
        algo = self.sim.exchange.accounts[self.sim.api_key].algos.get(algo_id)
        return algo is not None and algo.is_open

    async def events_of_kind(self, kind: str) -> list[dict[str, str]]:
        """Entries of this account's Redis events stream with this ``kind``."""
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await self.redis.xrange(  # type: ignore[assignment]
            self.store.keys.events)
        decoded = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
        return [e for e in decoded if e.get("kind") == kind]


class _Core:
    """The single writer's unit of work: orders, positions, then the reaper on a Tick."""

    def __init__(self, book: PositionBook, orders: OrderBook, reaper: ReaperTask) -> None:
        self.book, self.orders, self.reaper = book, orders, reaper

    def apply(self, event: Event, now_ms: int) -> list[Effect]:
        self.orders.apply(event)
        effects = self.book.apply(event, now_ms)
        if isinstance(event, Tick):
            effects += self.reaper.step(self.book, self.orders, now_ms)
        return effects


async def _tick(pump: CorePump, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await pump.emit(Tick())


async def _write(rig: ReaperRig, queue: asyncio.Queue[Publish | Retract | Notify | RaiseAlert]) -> None:
    while True:
        effect = await queue.get()
        if isinstance(effect, Publish) and not rig.publishing:
            continue
        await rig.store.run(effect)


async def _heartbeat(store: RedisPublisher, clock: SystemClock) -> None:
    while True:
        await store.heartbeat({"stream": "live"}, wall_ms=clock.wall_ms())
        await asyncio.sleep(0.5)


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel until every task has ended.

    redis-py 8.1 on Python 3.11 can swallow a cancellation that lands while a command with a
    ``socket_timeout`` is in flight (seen here: the task keeps running), so cancel again.
    """
    pending = set(tasks)
    for _ in range(20):
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.25)
        if not pending:
            return
    raise AssertionError(f"rig tasks ignore cancellation: {[t.get_name() for t in pending]}")


@contextlib.asynccontextmanager
async def _rig(sim: Simulator, redis_url: str, *, poll_interval_s: float = 0.25,
               tick_interval_s: float = 0.05, max_rest_lag_ms: int = 500,
               wrap_reader: Callable[[ReadPositions], ReadPositions] | None = None,
               **reaper: Any) -> AsyncIterator[ReaperRig]:
    clock = SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=sim.rest_url,
                                                                 timeout=5.0))
        bot_http = await stack.enter_async_context(httpx.AsyncClient(timeout=5.0))
        rest = BinanceRest(http, _Credentials(sim.api_key, sim.api_secret), clock=clock,
                           weight_budget_per_min=2000)
        await rest.sync_time()
        store = RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=5000,
                                        closed_ttl_s=600, events_maxlen=1000,
                                        veto_max_age_ms=5000, socket_timeout_s=2.0)
        await store.start()
        assert await store.acquire()  # the only instance: it leads
        stack.push_async_callback(store.close)
        veto = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
        stack.push_async_callback(veto.close)
        plain = redis.asyncio.from_url(redis_url)
        stack.push_async_callback(plain.aclose)
        book = PositionBook(BookPolicy(max_age_ms=5000, max_rest_lag_ms=max_rest_lag_ms))
        orders = OrderBook(max_rest_lag_ms=max_rest_lag_ms)

        async def leased_symbols() -> list[str]:
            return [key.symbol for key in await store.leased_symbols()]

        poller = Poller(rest, PollSchedule(poll_interval_s=poll_interval_s,
                                           orders_poll_interval_s=poll_interval_s,
                                           fast_poll_interval_s=poll_interval_s / 2),
                        clock=clock, leased_symbols=leased_symbols)
        stream = UserDataStream(rest, ws_url=sim.ws_url, clock=clock, max_silence_s=6.0)
        pumps: list[CorePump] = []

        async def emit(event: Event) -> None:
            await pumps[0].emit(event)

        reader = bracketed_reader(rest, emit)
        task = ReaperTask(rest, store, emit, clock, ReaperConfig(**reaper),
                          read_positions=wrap_reader(reader) if wrap_reader else reader,
                          max_rest_lag_ms=max_rest_lag_ms)
        writes: asyncio.Queue[Publish | Retract | Notify | RaiseAlert] = asyncio.Queue()
        effects: list[Effect] = []

        def route(effect: Effect) -> None:
            effects.append(effect)
            if isinstance(effect, CancelOrder):
                task.submit(effect)
            elif isinstance(effect, Publish | Retract | Notify | RaiseAlert):
                writes.put_nowait(effect)

        pump = CorePump(_Core(book, orders, task), clock=clock, poller=poller, stream=stream,
                        tick_interval_s=tick_interval_s, on_effect=route)
        pumps.append(pump)
        rig = ReaperRig(sim, rest, store, book, orders, task, pump, Bot(sim, bot_http, veto),
                        plain, effects)
        await store.heartbeat({"stream": "starting"}, wall_ms=clock.wall_ms())
        runners = {"core": pump.run(), "stream": stream.run(pump.emit),
                   "poller": poller.run(pump.emit), "reaper": task.run(),
                   "ticker": _tick(pump, tick_interval_s), "store": _write(rig, writes),
                   "heartbeat": _heartbeat(store, clock)}
        tasks = [asyncio.create_task(coro, name=name) for name, coro in runners.items()]
        rig.tasks = tasks
        try:
            await sim.wait_connections(1)
            yield rig
        finally:
            await _cancel_all(tasks)
        failed = [(t.get_name(), t.exception()) for t in tasks
                  if not t.cancelled() and t.exception() is not None]
        assert not failed, f"rig tasks failed: {failed}"


@pytest.fixture
def reaper_rig() -> Callable[..., AbstractAsyncContextManager[ReaperRig]]:
    return _rig
