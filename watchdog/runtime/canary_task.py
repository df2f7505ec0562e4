"""The canary's shell: runs what ``core/canary.py`` decides against Binance and the core.

One task places and cancels (``run``); the core loop hands it every canary ALGO_UPDATE as an
observer (``observe``), before the event is applied. A missed update leaves as a
``CanaryAlert("stream_blind")`` event through the inbox, so the book raises ``stream_blind``
exactly as for a change the stream never reported (the runtime then reconnects the stream); a
canary that cannot run leaves as ``CanaryAlert("canary_failed")`` (an alert, not blindness).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, Protocol

from loguru import logger

from watchdog.binance.protocol.canary import CanarySpec, canary_params, parse_canary_spec
from watchdog.clock import Clock
from watchdog.config import StreamConfig
from watchdog.core.canary import (
    Canary,
    CanaryAction,
    CanaryBlind,
    CanaryPolicy,
    CanaryProblem,
    CancelCanary,
    PlaceCanary,
    is_canary,
)
from watchdog.core.events import AlgoUpdate, CanaryAlert, Event
from watchdog.errors import ExchangeError, ExchangeRejected

__all__ = ["CanaryRest", "CanaryTask", "canary_policy"]

# -2011 "Unknown order sent." / -2013 "Order does not exist.": never placed, or already gone
_GONE = frozenset({-2011, -2013})
_SPEC_RETRY_S = 60.0


class CanaryRest(Protocol):
    """What the canary needs of ``BinanceRest``."""

    async def exchange_info(self) -> Any: ...

    async def place_algo_order(self, params: Any) -> Any: ...

    async def cancel_algo_order_by_client_id(self, client_algo_id: str) -> None: ...


def canary_policy(section: StreamConfig) -> CanaryPolicy | None:
    """The policy of ``[stream]``; None when the canary is off (``canary_interval_s`` 0)."""
    if section.canary_interval_s <= 0:
        return None
    return CanaryPolicy(interval_ms=round(section.canary_interval_s * 1000),
                        bound_ms=round(section.canary_timeout_s * 1000))


class CanaryTask:
    """Runs the canary of ``symbol``; ``stream_live`` says whether the stream is reconciled."""

    def __init__(self, rest: CanaryRest, emit: Callable[[Event], Awaitable[None]], clock: Clock,
                 *, symbol: str, policy: CanaryPolicy, stream_live: Callable[[], bool],
                 tick_s: float = 0.1) -> None:
        self._rest = rest
        self._emit = emit
        self._clock = clock
        self._symbol = symbol
        self._stream_live = stream_live
        self._tick_s = tick_s
        self.machine = Canary(policy, clock.wall_ms())
        self._pending: deque[CanaryAction] = deque()
        self._wake = asyncio.Event()

    def observe(self, event: Event) -> None:
        """Core-loop observer: a canary's ALGO_UPDATE proves the stream (never blocks)."""
        if isinstance(event, AlgoUpdate) and is_canary(event.client_algo_id):
            self._pending.extend(self.machine.observe(event.client_algo_id, self._clock.wall_ms()))
            self._wake.set()

    async def run(self) -> NoReturn:
        spec = await self._load_spec()
        logger.info("stream canary on {}: every {} ms, update expected within {} ms "
                    "(BUY STOP_MARKET reduce-only {} at {})", self._symbol,
                    self.machine.policy.interval_ms, self.machine.policy.bound_ms, spec.quantity,
                    spec.trigger_price)
        while True:
            self._pending.extend(self.machine.tick(self._clock.wall_ms(),
                                                   stream_live=self._stream_live()))
            while self._pending:
                await self._do(self._pending.popleft(), spec)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick_s):
                    await self._wake.wait()

    async def _load_spec(self) -> CanarySpec:
        """The canary's order from exchangeInfo; retried (and reported) until it can be read."""
        while True:
            try:
                return parse_canary_spec(await self._rest.exchange_info(), self._symbol)
            except ExchangeError as exc:
                message = f"canary on {self._symbol} cannot start (exchangeInfo): {exc}"
                logger.warning("{}; retrying in {:g}s", message, _SPEC_RETRY_S)
                await self._emit(CanaryAlert("canary_failed", message))
            await asyncio.sleep(_SPEC_RETRY_S)

    async def _do(self, action: CanaryAction, spec: CanarySpec) -> None:
        match action:
            case PlaceCanary(client_id=client_id):
                try:
                    await self._rest.place_algo_order(canary_params(spec, client_id))
                    logger.debug("canary {} placed", client_id)
                except ExchangeRejected as exc:
                    self._pending.extend(self.machine.place_failed(
                        self._clock.wall_ms(), str(exc), maybe_placed=False))
                except ExchangeError as exc:  # sent or not, it may exist: cancel by client id
                    self._pending.extend(self.machine.place_failed(
                        self._clock.wall_ms(), str(exc), maybe_placed=True))
            case CancelCanary(client_id=client_id, reason=reason):
                try:
                    await self._rest.cancel_algo_order_by_client_id(client_id)
                    logger.debug("canary {} cancelled ({})", client_id, reason)
                    self.machine.cancel_done(self._clock.wall_ms())
                except ExchangeRejected as exc:
                    if exc.code in _GONE:
                        self.machine.cancel_done(self._clock.wall_ms())
                    else:
                        logger.warning("canary {} cancel refused ({}): retrying", client_id, exc)
                        self.machine.cancel_failed(self._clock.wall_ms())
                except ExchangeError as exc:
                    logger.warning("canary {} cancel failed ({}): retrying", client_id, exc)
                    self.machine.cancel_failed(self._clock.wall_ms())
            case CanaryBlind(message=message):
                logger.warning("stream canary: {}: the stream is blind", message)
                await self._emit(CanaryAlert("stream_blind", message))
            case CanaryProblem(message=message):
                logger.warning("stream canary: {}", message)
                await self._emit(CanaryAlert("canary_failed", message))
