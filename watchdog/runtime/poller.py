"""The daemon's poller: ``binance.poller`` wired to the inbox and to the store's leases.

The polling decisions live in ``watchdog/binance/poller.py`` (``PollSchedule``, pure, and
``binance.poller.Poller``, its shell): they are about Binance's costs. This module only adds
what the daemon has and ``binance`` may not import: the store (for leased symbols) and the
inbox's ``emit``. A store outage never stops polling: leases are an accelerator, so a failed
lease read is logged and polling continues at the normal pace.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from loguru import logger

from watchdog.binance.poller import Poller as BinancePoller
from watchdog.binance.poller import PollSchedule
from watchdog.binance.rest import BinanceRest
from watchdog.binance.snapshots import Emit
from watchdog.config import BinanceConfig
from watchdog.core.effects import RequestSnapshot
from watchdog.core.events import Event
from watchdog.core.model import PositionKey
from watchdog.errors import StoreError
from watchdog.runtime.clock import Clock

__all__ = ["LeaseSource", "Poller"]


class LeaseSource(Protocol):
    """What the poller needs of ``store.publisher.RedisPublisher``."""

    async def leased_symbols(self) -> frozenset[PositionKey]: ...


class Poller:
    """Positions every ``poll_interval_s``, orders per symbol (fast while leased), all symbols'
    orders every ``orders_sweep_interval_s`` (see binance.poller)."""

    def __init__(self, rest: BinanceRest, store: LeaseSource, emit: Emit, clock: Clock,
                 config: BinanceConfig) -> None:
        self._store = store
        self._emit = emit
        self._lease_failures = 0
        self.inner = BinancePoller(rest, PollSchedule.from_config(config), clock=clock,
                                   leased_symbols=self._leased)

    def request_snapshot(self, request: RequestSnapshot) -> None:
        """Run a ``RequestSnapshot`` effect (coalesced; never blocks)."""
        self.inner.request_snapshot(request)

    def observe(self, event: Event) -> None:
        """Optional: feed applied events so symbols with activity are polled fast."""
        self.inner.observe(event)

    async def run(self) -> None:
        """Poll forever (never returns)."""
        await self.inner.run(self._emit)

    async def _leased(self) -> Collection[str]:
        try:
            keys = await self._store.leased_symbols()
        except StoreError as exc:
            self._lease_failures += 1
            logger.warning("poller: lease read failed ({} so far), polling at the normal pace: {}",
                           self._lease_failures, exc)
            return ()
        return {key.symbol for key in keys}
