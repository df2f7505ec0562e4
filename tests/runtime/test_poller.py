"""The daemon's poller against the simulator: leases speed up order reads; a store outage does
not stop polling (leases are an accelerator, not a dependency)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.waiting import eventually
from watchdog.binance.rest import BinanceRest, make_http_client
from watchdog.config import BinanceConfig, Credentials
from watchdog.core.events import Event, OrdersSnapshot, PositionSnapshot, SnapshotRequested
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.errors import StoreUnavailable
from watchdog.runtime.clock import SystemClock
from watchdog.runtime.poller import Poller
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


class Leases:
    """Stands in for RedisPublisher.leased_symbols (the only call the poller makes)."""

    def __init__(self) -> None:
        self.symbols: set[str] = set()
        self.down = False

    async def leased_symbols(self) -> frozenset[PositionKey]:
        if self.down:
            raise StoreUnavailable("redis://127.0.0.1:1: connection refused")
        return frozenset(PositionKey(Symbol(s), PositionSide.BOTH) for s in self.symbols)


@contextlib.asynccontextmanager
async def polling(sim: Simulator, leases: Leases) -> AsyncIterator[list[Event]]:
    cfg = BinanceConfig(rest_url=sim.rest_url, ws_url=sim.ws_url, poll_interval_s=0.3,
                        orders_poll_interval_s=60.0, fast_poll_interval_s=0.1,
                        weight_budget_pct=50)
    http = make_http_client(cfg.rest_url, cfg.request_timeout_s)
    rest = BinanceRest.from_config(http, Credentials(sim.api_key, sim.api_secret), cfg,
                                   clock=SystemClock())
    events: list[Event] = []

    async def emit(event: Event) -> None:
        events.append(event)

    poller = Poller(rest, leases, emit, SystemClock(), cfg)
    task = asyncio.create_task(poller.run())
    try:
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http.aclose()


def count(events: list[Event], kind: type[Any], symbol: str | None = None) -> int:
    return sum(1 for e in events if isinstance(e, kind)
               and (symbol is None or e.symbols == frozenset({symbol})))


async def test_leased_symbol_orders_are_read_fast(sim: Simulator) -> None:
    leases = Leases()
    async with polling(sim, leases) as events:
        async def probe() -> int:
            return count(events, OrdersSnapshot, "ETHUSDT")
        await eventually(lambda: probe(), lambda n: n == 0, what="no lease, no ETH order reads")
        leases.symbols.add("ETHUSDT")
        await eventually(probe, lambda n: n >= 4, what="fast order reads while leased")
        # Positions reads stay bracketed: every snapshot has its request before it.
        requested = {e.request_id for e in events if isinstance(e, SnapshotRequested)}
        assert all(e.request_id in requested for e in events if isinstance(e, PositionSnapshot))


async def test_store_outage_does_not_stop_polling(sim: Simulator) -> None:
    leases = Leases()
    leases.down = True
    async with polling(sim, leases) as events:
        async def probe() -> int:
            return count(events, PositionSnapshot)
        await eventually(probe, lambda n: n >= 3, what="positions polled with Redis down")
