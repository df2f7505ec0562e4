"""A minimal watchdog around the reaper for integration tests: real adapters, sim, real Redis.

``reaper_rig`` (async factory fixture): ``async with reaper_rig(sim, redis_url, grace_ms=…) as rig``
starts the user stream, the poller, a core pump (PositionBook + OrderBook + ``ReaperTask.step`` on
every Tick) and the reaper task, all on real sockets. ``rig.bot`` places orders and takes leases
like a trading bot would (its own signed HTTP, the store's veto scripts).
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
from watchdog.binance.poller import Poller, PollSchedule
from watchdog.binance.rest import BinanceRest
from watchdog.binance.stream import UserDataStream
from watchdog.core.book import BookPolicy, PositionBook
from watchdog.runtime.clock import SystemClock
from watchdog.runtime.pump import CorePump
from watchdog.sim import Simulator
from watchdog.store.publisher import RedisPublisher

from watchdog.core.effects import CancelOrder, Effect, RaiseAlert
from watchdog.core.events import Event, Tick
from watchdog.core.model import PositionKey
from watchdog.core.orders import OrderBook
from watchdog.runtime.reaper_task import ReadPositions, ReaperTask, bracketed_reader

__all__ = ["Bot", "ReaperRig", "RigSettings", "reaper_rig"]

ACCOUNT = "itest"


@dataclass(frozen=True)
class _Credentials:
    api_key: str
    api_secret: str = field(repr=False)


@dataclass(frozen=True)
class RigSettings:
    """The ``[reaper]`` section, as the rig passes it to ``ReaperTask``."""

    enabled: bool = True
    dry_run: bool = False
    grace_ms: int = 2000
    client_id_prefix: str = ""
    max_cancels_per_min: int = 20
    stuck_triggering_s: float = 10.0


class Bot:
    """What a trading bot does: signed REST orders on the simulator, leases through Redis."""

    def __init__(self, sim: Simulator, http: httpx.AsyncClient, store: RedisPublisher) -> None:
        self._sim = sim
        self._http = http
        self._store = store

    async def call(self, method: str, path: str, **params: Any) -> dict[str, Any]:
        full = {**params, "timestamp": int(time.time() * 1000)}
        query = urlencode(full)
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

    async def begin(self, key: PositionKey, ttl_ms: int = 10_000) -> Any:
        """The veto protocol's ``begin`` (what the bot runs before cancelling its stop)."""
        return await self._store.begin(key, holder="bot", ttl_ms=ttl_ms)


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
    effects: list[Effect] = field(default_factory=list)

    def alerts(self, code: str) -> list[RaiseAlert]:
        return [e for e in self.effects if isinstance(e, RaiseAlert) and e.code == code]

    def algo_open(self, algo_id: int) -> bool:
        algo = self.sim.exchange.accounts[self.sim.api_key].algos.get(algo_id)
        return algo is not None and algo.is_open

    async def events(self, kind: str) -> list[dict[str, str]]:
        """Entries of the Redis events stream of this ``kind``."""
        raw = await self.store.read_events()
        return [fields for fields in raw if fields.get("kind") == kind]


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


@contextlib.asynccontextmanager
async def _rig(sim: Simulator, redis_url: str, *, poll_interval_s: float = 0.25,
               tick_interval_s: float = 0.05,
               wrap_reader: Callable[[ReadPositions], ReadPositions] | None = None,
               **reaper: Any) -> AsyncIterator[ReaperRig]:
    clock = SystemClock()
    async with httpx.AsyncClient(base_url=sim.rest_url, timeout=5.0) as http:
        rest = BinanceRest(http, _Credentials(sim.api_key, sim.api_secret), clock=clock,
                           weight_budget_per_min=2000)
        await rest.sync_time()
        store = RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=5000,
                                        closed_ttl_s=600, events_maxlen=1000,
                                        veto_max_age_ms=5000, socket_timeout_s=2.0)
        await store.start()
        book = PositionBook(BookPolicy(max_age_ms=5000, max_rest_lag_ms=500))
        orders = OrderBook()
        effects: list[Effect] = []

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
        task = ReaperTask(rest, store, emit, clock, RigSettings(**reaper),
                          read_positions=wrap_reader(reader) if wrap_reader else reader)

        def route(effect: Effect) -> None:
            effects.append(effect)
            if isinstance(effect, CancelOrder):
                task.submit(effect)

        pump = CorePump(_Core(book, orders, task), clock=clock, poller=poller, stream=stream,
                        tick_interval_s=tick_interval_s, on_effect=route)
        pumps.append(pump)
        async with httpx.AsyncClient(timeout=5.0) as bot_http:
            rig = ReaperRig(sim, rest, store, book, orders, task, pump,
                            Bot(sim, bot_http, store), effects)
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(pump.run(), name="core"),
                         tg.create_task(stream.run(pump.emit), name="stream"),
                         tg.create_task(poller.run(pump.emit), name="poller"),
                         tg.create_task(task.run(), name="reaper"),
                         tg.create_task(_tick(pump, tick_interval_s), name="ticker")]
                try:
                    yield rig
                finally:
                    for t in tasks:
                        t.cancel()
        await store.close()


@pytest.fixture
def reaper_rig() -> Callable[..., AbstractAsyncContextManager[ReaperRig]]:
    return _rig
