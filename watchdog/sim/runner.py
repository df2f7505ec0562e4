"""Start the simulator in the current event loop: ``async with run_simulator(...) as sim``.

Used by tests (port 0), the demo and ``position-watchdog sim``. The handle gives the URLs to
configure a client with, direct access to the model for assertions, and awaitable conditions
(never sleep in tests: ``await sim.wait_connections(1)``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from aiohttp import web

from watchdog.sim.exchange import SimExchange
from watchdog.sim.market_stream import run_mark_ticker
from watchdog.sim.server import build_app
from watchdog.sim.settings import SimSettings
from watchdog.sim.venue import Venue

__all__ = ["Simulator", "run_simulator"]


@dataclass
class Simulator:
    """A running simulator. URLs are bases, exactly what goes into ``[binance] rest_url/ws_url``."""

    rest_url: str
    ws_url: str
    control_url: str
    venue: Venue

    @property
    def settings(self) -> SimSettings:
        return self.venue.settings

    @property
    def exchange(self) -> SimExchange:
        """The live model (replaced on reset: read it through this property)."""
        return self.venue.exchange

    @property
    def api_key(self) -> str:
        return self.venue.settings.api_key

    @property
    def api_secret(self) -> str:
        return self.venue.settings.api_secret

    def user_stream_url(self, listen_key: str, events: list[str] | None = None) -> str:
        url = f"{self.ws_url}/private/ws?listenKey={listen_key}"
        return url + ("&events=" + "/".join(events) if events else "")

    async def wait_connections(self, n: int, timeout_s: float = 10.0) -> None:
        """Until exactly ``n`` user-stream connections are open."""
        await self.venue.hub.wait_connections(n, timeout_s)

    async def wait_market_subscribed(self, streams: list[str], timeout_s: float = 10.0) -> None:
        """Until one market connection receives every stream in ``streams``."""
        await self.venue.market.wait_subscribed(streams, timeout_s)

    async def wait_for(self, predicate: Any, timeout_s: float = 10.0, what: str = "condition") -> None:
        """Until ``predicate(sim)`` holds (polled every 10 ms); AssertionError on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate(self):
            if loop.time() > deadline:
                raise AssertionError(f"simulator: {what} not reached within {timeout_s}s")
            await asyncio.sleep(0.01)

    # Direct equivalents of the control API (same effects, no HTTP).
    def set_mark_price(self, symbol: str, price: str | Decimal,
                       contract_price: str | Decimal | None = None) -> None:
        mark = Decimal(str(price))
        last = Decimal(str(contract_price)) if contract_price is not None else mark
        self.venue.exchange.set_price(symbol, mark=mark, last=last)
        self.venue.flush()

    def fill(self, symbol: str, side: str, qty: str | Decimal, position_side: str | None = None, *,
             parts: int = 1) -> None:
        self.venue.exchange.market_fill(self.api_key, symbol, side, Decimal(str(qty)), position_side,
                                        parts=parts)
        self.venue.flush()

    def liquidate(self, symbol: str, position_side: str = "BOTH", *, kind: str = "liquidation",
                  account_update: bool = True) -> None:
        """Close the position the way the exchange does (``autoclose-…`` / ``adl_autoclose-…``)."""
        self.venue.exchange.force_close(self.api_key, symbol, position_side, kind=kind,
                                        account_update=account_update)
        self.venue.flush()

    def set_faults(self, **faults: Any) -> None:
        self.venue.set_faults(faults)

    def clear_faults(self) -> None:
        self.venue.clear_faults()

    def reset(self) -> None:
        self.venue.reset()


async def _housekeeping(venue: Venue) -> None:
    while True:
        await asyncio.sleep(venue.settings.housekeeping_interval_s)
        venue.housekeeping()


@contextlib.asynccontextmanager
async def run_simulator(settings: SimSettings | None = None, **overrides: Any) -> AsyncIterator[Simulator]:
    """Serve REST, user streams and the control API on one port until the block exits.

    Args:
        settings: a full :class:`SimSettings`; ``overrides`` replace single fields
            (``host``, ``port``, ``api_key``, ``api_secret``, ``symbols``, ``time_scale``,
            ``ping_interval_s``, ``pong_timeout_s``, ``dual_side``, ``weight_limit``, …).
    """
    settings = replace(settings or SimSettings(), **overrides)
    if isinstance(settings.symbols, list):
        settings = replace(settings, symbols=tuple(settings.symbols))
    venue = Venue(settings)
    app = build_app(venue)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    for extra in settings.extra_hosts:  # the same app on another address, same port
        await web.TCPSite(runner, extra, port).start()
    keeper = asyncio.create_task(_housekeeping(venue), name="sim-housekeeping")
    marks = asyncio.create_task(run_mark_ticker(venue), name="sim-mark-price")
    try:
        yield Simulator(f"http://{host}:{port}", f"ws://{host}:{port}", f"http://{host}:{port}/sim/v1", venue)
    finally:
        for task in (keeper, marks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        venue.hub.drop_all()
        venue.market.drop_all()
        await runner.cleanup()
