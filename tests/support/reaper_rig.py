"""The watchdog as it ships (``runtime.build``), around the reaper, for integration tests.

``reaper_rig`` (factory fixture): ``async with reaper_rig(sim, redis_url, grace_ms=…) as rig``
builds the daemon's pipeline with ``build()`` (stream, poller, core, effects runner, store,
heartbeat, lead, reaper, guard: every task the daemon runs) against the simulator and a real
Redis, at default settings except what a test names (a faster tick and polls, the reaper's
keys). ``rig.bot`` places orders and takes leases as a trading bot would: its own signed HTTP,
and the veto scripts through ``poswatch.client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis.asyncio

from poswatch.client import AsyncWatchdogClient
from tests.support.pipeline import EffectsTap, running
from watchdog.binance.rest import BinanceRest
from watchdog.clock import SystemClock
from watchdog.config import (
    BinanceConfig,
    Config,
    CoreConfig,
    Credentials,
    ReaperConfig,
    RedisConfig,
    ServiceConfig,
    VetoConfig,
)
from watchdog.core.book import PositionBook
from watchdog.core.effects import Effect, Publish, RaiseAlert, Reverified
from watchdog.core.model import PositionKey
from watchdog.core.orders import OrderBook
from watchdog.runtime.build import Endpoints, Pipeline, build, store_of
from watchdog.runtime.reaper_after_cancel import ReadPositions
from watchdog.runtime.reaper_task import ReaperTask
from watchdog.sim import Simulator
from watchdog.store.publisher import RedisPublisher, StoreEffect

__all__ = ["Bot", "ReaperRig", "reaper_rig", "rig_config"]

ACCOUNT = "itest"


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
    """The running pipeline; ``effects`` collects every effect the core and the reaper produced."""

    sim: Simulator
    pipeline: Pipeline
    bot: Bot
    redis: redis.asyncio.Redis
    effects: list[Effect] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def rest(self) -> BinanceRest:
        return self.pipeline.rest

    @property
    def store(self) -> RedisPublisher:
        return self.pipeline.store

    @property
    def book(self) -> PositionBook:
        return self.pipeline.book

    @property
    def orders(self) -> OrderBook:
        return self.pipeline.orders

    @property
    def reaper(self) -> ReaperTask:
        return self.pipeline.reaper

    @property
    def publishing(self) -> bool:
        """False: views stop reaching Redis (as while writes are deferred)."""
        return self.store.publishing  # type: ignore[attr-defined, no-any-return]

    @publishing.setter
    def publishing(self, value: bool) -> None:
        self.store.publishing = value  # type: ignore[attr-defined]

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


class _GatedStore(RedisPublisher):
    """The daemon's publisher; ``publishing`` False drops views (as while writes are deferred)."""

    publishing = True

    async def run(self, effect: StoreEffect) -> bool:
        if self.publishing or not isinstance(effect, Publish | Reverified):
            return await super().run(effect)
        return True  # dropped on purpose, as if written (the tests' gate)

    async def run_many(self, effects: Sequence[StoreEffect]) -> bool:
        return await super().run_many([e for e in effects
                                       if self.publishing or not isinstance(e, Publish | Reverified)])


def rig_config(sim: Simulator, redis_url: str, *, poll_interval_s: float = 0.25,
               tick_interval_s: float = 0.05, max_rest_lag_ms: int = 500,
               **reaper: Any) -> Config:
    """Defaults, except: the simulator and Redis, faster polls and tick (tests take seconds),
    a 6 s silence limit, the whole weight budget (the simulator has no limit), a 5 s veto age
    and the ``[reaper]`` keys a test names."""
    return Config(
        binance=BinanceConfig(rest_url=sim.rest_url, ws_url=sim.ws_url,
                              poll_interval_s=poll_interval_s,
                              orders_poll_interval_s=poll_interval_s,
                              fast_poll_interval_s=poll_interval_s / 2, max_silence_s=6.0,
                              weight_budget_pct=100),
        redis=RedisConfig(url=redis_url, account=ACCOUNT, closed_ttl_s=600, events_maxlen=1000),
        core=CoreConfig(max_age_ms=5000, max_rest_lag_ms=max_rest_lag_ms),
        veto=VetoConfig(max_age_ms=5000),
        reaper=ReaperConfig(**reaper),
        service=ServiceConfig(tick_interval_s=tick_interval_s))


@contextlib.asynccontextmanager
async def _rig(sim: Simulator, redis_url: str, *,
               wrap_reader: Callable[[ReadPositions], ReadPositions] | None = None,
               **settings: Any) -> AsyncIterator[ReaperRig]:
    """``settings``: ``rig_config``'s keywords."""
    config = rig_config(sim, redis_url, **settings)
    effects: list[Effect] = []
    async with contextlib.AsyncExitStack() as stack:
        bot_http = await stack.enter_async_context(httpx.AsyncClient(timeout=5.0))
        store = store_of(config, _GatedStore)
        stack.push_async_callback(store.close)
        pipeline = await stack.enter_async_context(build(
            config, Credentials(sim.api_key, sim.api_secret), SystemClock(),
            Endpoints(store=store, wrap_reader=wrap_reader, effects=EffectsTap(effects))))
        veto = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
        stack.push_async_callback(veto.close)
        plain = redis.asyncio.from_url(redis_url)
        stack.push_async_callback(plain.aclose)
        async with running(pipeline) as tasks:
            assert store.leading  # the only instance: it leads
            rig = ReaperRig(sim, pipeline, Bot(sim, bot_http, veto), plain, effects, tasks)
            await sim.wait_connections(1)
            yield rig


@pytest.fixture
def reaper_rig() -> Callable[..., AbstractAsyncContextManager[ReaperRig]]:
    return _rig
