"""A minimal single writer that feeds the core from the Binance adapters.

Used by the adapter integration tests and the detection benchmark; the daemon wires the same
parts (and the store) in its TaskGroup. Rules:
1. One task applies events to the book, in the order they were emitted; adapters only emit.
2. As the daemon's core loop does, ``OrderBlindness`` and ``StreamProof`` see every event (and
   the proof every blind verdict). Effects the adapters can run are routed here:
   ``RequestSnapshot`` and ``ReadNow`` → poller,
   ``Reconnect`` → the stream reconnects; everything else goes to ``on_effect``.
3. With no event for ``tick_interval_s`` the core gets a ``Tick`` (knowledge ages).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from loguru import logger

from watchdog.binance.poller import Poller
from watchdog.binance.stream import UserDataStream
from watchdog.clock import Clock
from watchdog.core.effects import Effect, ReadNow, Reconnect, RequestSnapshot
from watchdog.core.events import Event, Tick
from watchdog.core.order_blindness import OrderBlindness
from watchdog.core.proof import StreamProof

__all__ = ["Book", "CorePump", "run_adapters"]


class Book(Protocol):
    """The part of ``core.book.PositionBook`` the pump needs."""

    def apply(self, event: Event, now_ms: int) -> list[Effect]: ...


class CorePump:
    """Applies emitted events to the book and routes the resulting effects (see rules)."""

    def __init__(self, book: Book, *, clock: Clock, poller: Poller | None = None,
                 stream: UserDataStream | None = None, tick_interval_s: float = 0.5,
                 on_effect: Callable[[Effect], None] | None = None) -> None:
        self.book = book
        self._clock = clock
        self.poller = poller
        self.stream = stream
        self._tick_interval_s = tick_interval_s
        self._on_effect = on_effect
        self.order_blindness = OrderBlindness()
        self.proof = StreamProof()
        self.inbox: asyncio.Queue[Event] = asyncio.Queue()
        self.applied = 0

    async def emit(self, event: Event) -> None:
        """What adapters call: queue one event for the core."""
        self.inbox.put_nowait(event)

    async def run(self) -> None:
        """Apply events forever (never returns)."""
        while True:
            try:
                async with asyncio.timeout(self._tick_interval_s):
                    event: Event = await self.inbox.get()
            except TimeoutError:
                event = Tick()
            self.apply(event)

    def apply(self, event: Event) -> None:
        now_ms = self._clock.wall_ms()
        effects = self.book.apply(event, now_ms)
        effects += self.order_blindness.apply(event, now_ms)
        effects += self.proof.apply(event, now_ms, effects)
        self.applied += 1
        if self.poller is not None:
            self.poller.observe(event)
        for effect in effects:
            self._route(effect)

    def _route(self, effect: Effect) -> None:
        if isinstance(effect, RequestSnapshot) and self.poller is not None:
            self.poller.request_snapshot(effect)
        elif isinstance(effect, ReadNow) and self.poller is not None:
            self.poller.read_now(effect)
        elif isinstance(effect, Reconnect) and self.stream is not None:
            logger.warning("core reports the stream blind: {}", effect.reason)
            self.stream.request_blind_reconnect(effect.reason)
        if self._on_effect is not None:
            self._on_effect(effect)


async def run_adapters(pump: CorePump, stream: UserDataStream, poller: Poller) -> None:
    """Run the core pump, the stream and the poller together (tests and benchmark)."""
    async with asyncio.TaskGroup() as tg:
        tg.create_task(pump.run(), name="core")
        tg.create_task(stream.run(pump.emit), name="stream")
        tg.create_task(poller.run(pump.emit), name="poller")
