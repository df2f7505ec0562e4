"""The public market stream: one routed ``/market`` connection that follows the prices the open
stops trigger on, and reports crossings to the core (core/triggers.py).

Rules of this module:
1. One connection, ``{ws_url}/market/ws`` (raw frames). Market streams are served only on the
   routed ``/market`` URL since 2026-04-23; an un-routed one connects and delivers nothing
   (docs/BINANCE.md §1.2). What it follows changes by ``SUBSCRIBE``/``UNSUBSCRIBE`` frames,
   batched and paced within Binance's limits (core/triggers.py rule 4).
2. Checked like the user stream (stream.py rule 3): our pings every ``ping_interval_s`` (at
   most ``max_silence_s/3``) with the pong due as fast; any frame proves the link alive;
   ``max_silence_s`` without one ends it as "silent". A lost connection is re-opened with the
   same backoff as the user stream (a connection that lived ``HEALTHY_AFTER_S`` resets it) and
   every wanted stream is subscribed again. Binance cuts connections at 24 h: it is replaced
   after ``rotate_after_s`` (a logged rotation, not a failure).
3. Losing this connection never makes a position look safer: it only removes a way to doubt
   one. Nothing is emitted to the core on a loss (the REST poll is the truth as before); the
   loss is logged and counted in ``stats``.
4. Frames are filtered here (``CrossingDetector``): only a price that crosses a watched stop's
   trigger becomes a core event (``StopCrossed``), so a busy ``aggTrade`` costs the core
   nothing. The core hands over the watched stops with ``set_levels`` after order changes.
5. ``near_trigger`` tells the poller whether any watched stop is near its trigger
   (core/triggers.py rule 6); while the connection is down every watched stop counts as near
   (its distance is unknown), so a lost market connection never makes the routine positions
   poll rarer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from loguru import logger
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from watchdog.binance.connection import StampedConnection, close_text, describe_error, open_stamped
from watchdog.binance.protocol.reconnect import Backoff
from watchdog.binance.protocol.session import (
    ROTATION,
    Do,
    Session,
    aborts,
    market_stream_ending,
)
from watchdog.binance.snapshots import Emit
from watchdog.cancel import raise_if_cancelling
from watchdog.clock import Clock
from watchdog.core.events import StopCrossed
from watchdog.core.model import Symbol
from watchdog.core.triggers import (
    LAST,
    MARK,
    CrossingDetector,
    FramePacer,
    TriggerLevel,
    plan_frames,
    wanted_streams,
)

__all__ = ["MarketStats", "MarketStream", "market_stream_url"]

_loads: Callable[[str | bytes], Any] = json.loads
try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - optional
    pass
_KINDS = {"aggTrade": LAST, "markPriceUpdate": MARK}


def market_stream_url(ws_url: str) -> str:
    """``{ws_url}/market/ws``: the routed market URL in raw mode (rule 1)."""
    return f"{ws_url.rstrip('/')}/market/ws"


@dataclass
class MarketStats:
    """Counters for status output and tests (never reset)."""

    connects: int = 0
    losses: int = 0
    rotations: int = 0
    frames: int = 0
    prices: int = 0
    crossings: int = 0
    malformed: int = 0
    refused: int = 0          # SUBSCRIBE/UNSUBSCRIBE answered with an error
    frames_sent: int = 0
    last_lost_reason: str = ""


class MarketStream:
    """Runs the market connection (see the module rules); ``run(emit)`` never returns."""

    def __init__(self, *, ws_url: str, clock: Clock, max_silence_s: float = 10.0,
                 ping_interval_s: float = 5.0, reconnect_min_delay_s: float = 0.2,
                 reconnect_max_delay_s: float = 30.0, open_timeout_s: float = 10.0,
                 rotate_after_s: float = 23 * 3600.0, rng: random.Random | None = None) -> None:
        self._url = market_stream_url(ws_url)
        self._clock = clock
        self._max_silence_s = max_silence_s
        self._ping_interval_s = min(ping_interval_s, max_silence_s / 3)
        self._open_timeout_s = open_timeout_s
        self._rotate_after_s = rotate_after_s
        self._backoff = Backoff(reconnect_min_delay_s, reconnect_max_delay_s, rng or random.Random())
        self._detector = CrossingDetector()
        self._wanted: frozenset[str] = frozenset()
        self._subscribed: frozenset[str] = frozenset()
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)
        self._pacer = FramePacer()
        self._ws: StampedConnection | None = None
        self.stats = MarketStats()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def subscribed(self) -> frozenset[str]:
        """The streams the connection follows now (empty while disconnected)."""
        return self._subscribed

    @property
    def wanted(self) -> frozenset[str]:
        return self._wanted

    def near_trigger(self) -> bool:
        """Rule 5: a watched stop is near its trigger, or its distance is unknown."""
        if self._ws is None:
            return bool(self._detector.symbols())
        return self._detector.near()

    def set_levels(self, levels: Mapping[Symbol, tuple[TriggerLevel, ...]]) -> None:
        """The watched stops changed (called by the core loop): filter and subscriptions follow."""
        self._detector.set_levels(levels)
        wanted = wanted_streams(levels)
        if wanted != self._wanted:
            self._wanted = wanted
            self._changed.set()

    async def run(self, emit: Emit) -> None:
        cause, delay_s = "startup", 0.0
        while True:
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            try:
                ws = await open_stamped(self._url, open_timeout_s=self._open_timeout_s,
                                        ping_interval_s=self._ping_interval_s)
            except (InvalidHandshake, OSError, TimeoutError) as exc:
                delay_s = self._backoff.next_delay_s()
                logger.warning("market stream connect failed error={} next_delay_s={:.2f} (trigger "
                               "watching paused; REST polls as usual)", describe_error(exc), delay_s)
                continue
            session = Session(opened_at=self._clock.monotonic(),
                              rotate_after_s=self._rotate_after_s,
                              max_silence_s=self._max_silence_s)
            self._ws, self._subscribed = ws, frozenset()
            self.stats.connects += 1
            logger.info("market stream connected cause={} streams_wanted={}", cause, len(self._wanted))
            self._changed.set()  # subscribe everything wanted on the new connection
            reason = await self._serve(ws, emit, session)
            self._ws, self._subscribed = None, frozenset()
            self._detector.forget_prices()
            rotated = reason == ROTATION
            if rotated:
                self.stats.rotations += 1
                logger.info("market stream rotated before Binance's 24 h cut")
            else:
                self.stats.losses += 1
                self.stats.last_lost_reason = reason
                logger.warning("market stream lost reason={}: trigger watching paused until it is "
                               "back (no position is taken as safer; REST polls as usual)", reason)
            if aborts(reason):
                ws.transport.abort()
            else:
                try:
                    await ws.close()
                except ConnectionClosed as exc:
                    logger.debug("market stream close: {}", close_text(exc))
            ending = market_stream_ending(
                reason, lived_s=self._clock.monotonic() - session.opened_at)
            if ending.reset_backoff:
                self._backoff.reset()
            cause, delay_s = reason, (0.0 if ending.at_once else self._backoff.next_delay_s())

    async def _serve(self, ws: StampedConnection, emit: Emit, session: Session) -> str:
        writer = asyncio.create_task(self._write(ws), name="market-stream-writer")
        try:
            return await self._read(ws, emit, session)
        finally:
            writer.cancel()
            try:
                await writer
            except asyncio.CancelledError:
                pass
            except (ConnectionClosed, OSError) as exc:
                logger.debug("market stream writer ended: {}", describe_error(exc))

    async def _read(self, ws: StampedConnection, emit: Emit, session: Session) -> str:
        """Handle frames until the connection ends; silence and rotation are ``session``'s call
        (a due rotation ends this connection: rule 2)."""
        while True:
            wait_s = session.wait_s(self._clock.monotonic(),
                                    ws.silence_left_s(self._max_silence_s))
            try:
                async with asyncio.timeout(max(0.0, wait_s)):
                    message = await ws.recv()
            except TimeoutError as exc:
                raise_if_cancelling(exc)  # a stop lost earlier must not be waited through
                step = session.timed_out(self._clock.monotonic(),
                                         ws.silence_left_s(self._max_silence_s))
                if step.do is Do.END:
                    return step.reason
                if step.do is Do.ROTATE:
                    return ROTATION
                continue
            except ConnectionClosed as exc:
                return f"closed: {close_text(exc)}"
            await self._handle(message, emit)

    async def _handle(self, message: str | bytes, emit: Emit) -> None:
        self.stats.frames += 1
        try:
            raw = _loads(message)
        except ValueError:
            self._malformed("not JSON", message)
            return
        if not isinstance(raw, dict):
            self._malformed("not a JSON object", message)
            return
        kind = _KINDS.get(str(raw.get("e")))
        if kind is None:
            if "result" in raw or "error" in raw:
                self._reply(raw)
            else:
                logger.debug("market stream frame ignored e={}", raw.get("e"))
            return
        try:
            symbol = Symbol(str(raw["s"]))
            price = Decimal(str(raw["p"]))
            time_ms = int(raw["T"] if kind == LAST else raw["E"])
        except (KeyError, InvalidOperation, ValueError, TypeError):
            self._malformed("missing or bad s/p/T/E", message)
            return
        if not price.is_finite() or price <= 0:
            self._malformed("price not a positive number", message)
            return
        self.stats.prices += 1
        for level in self._detector.observe(symbol, kind, price):
            self.stats.crossings += 1
            logger.info("price {} on {} crossed the trigger {} of {} {} ({})", price, symbol,
                        level.trigger_price, "algo" if level.is_algo else "order", level.order_id,
                        level.key)
            await emit(StopCrossed(level.key, level.order_id, level.is_algo, level.trigger_price,
                                   price, time_ms))

    def _reply(self, raw: dict[str, Any]) -> None:
        if raw.get("error") is not None:
            self.stats.refused += 1
            logger.error("market stream refused request id={}: {}", raw.get("id"), raw.get("error"))

    def _malformed(self, problem: str, message: str | bytes) -> None:
        self.stats.malformed += 1
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        logger.warning("market stream malformed frame problem={} excerpt={!r}", problem, text[:200])

    async def _write(self, ws: StampedConnection) -> None:
        """Send the frames that bring ``subscribed`` to ``wanted`` (paced), whenever it changes."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            plan = plan_frames(self._subscribed, self._wanted)
            if plan.dropped:
                logger.error("market stream: {} stream(s) past Binance's per-connection limit are "
                             "not followed: {}", len(plan.dropped), ", ".join(plan.dropped[:10]))
            for method, frames in (("UNSUBSCRIBE", plan.unsubscribe), ("SUBSCRIBE", plan.subscribe)):
                for names in frames:
                    wait_s = self._pacer.wait_s(self._clock.monotonic())
                    if wait_s > 0:
                        await asyncio.sleep(wait_s)
                    self._pacer.record(self._clock.monotonic())
                    await ws.send(json.dumps({"method": method, "params": list(names),
                                              "id": next(self._ids)}))
                    self.stats.frames_sent += 1
                    after = set(self._subscribed)
                    after = after - set(names) if method == "UNSUBSCRIBE" else after | set(names)
                    self._subscribed = frozenset(after)
                    logger.debug("market stream {} {}", method, ",".join(names))
