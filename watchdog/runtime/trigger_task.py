"""Trigger watching in the core loop: the market stream's levels and the crossings' follow-up.

The core loop (single writer of the books) calls ``step`` for every event and ``after_batch``
once a batch is applied. After order facts that moved the order book's revision (core/orders.py
rule 8: an orders read showing every order as it was moves none, and the levels read nothing
else) the watched stops are recomputed
(``core.triggers.levels_of``) and, when they changed, handed to the market stream, which then
subscribes and filters prices accordingly. ``StopCrossed`` and ``Tick`` go to the pure
``TriggerWatch`` (core/triggers.py rule 5); the book makes the position suspect itself (book.py
rule 11).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from watchdog.core.effects import Effect
from watchdog.core.events import (
    AlgoUpdate,
    Event,
    OrdersSnapshot,
    OrderUpdate,
    StopCrossed,
    Tick,
)
from watchdog.core.model import Symbol
from watchdog.core.orders import OrderBook
from watchdog.core.triggers import TriggerLevel, TriggerWatch, levels_of

__all__ = ["LevelSink", "TriggerTask"]


class LevelSink(Protocol):
    """The market stream side: what to watch now (must not block)."""

    def set_levels(self, levels: Mapping[Symbol, tuple[TriggerLevel, ...]]) -> None: ...


class TriggerTask:
    """Glue between the core loop, ``TriggerWatch`` and the market stream."""

    def __init__(self, market: LevelSink, watch: TriggerWatch | None = None) -> None:
        self._market = market
        self.watch = watch or TriggerWatch()
        self._levels: dict[Symbol, tuple[TriggerLevel, ...]] = {}
        self._dirty = False
        self._revision = -1  # the order book's revision the levels were computed at
        self.marks_dirty = False  # the pending crossings changed: the firing marks follow

    def step(self, event: Event, orders: OrderBook, now_ms: int) -> list[Effect]:
        match event:
            case StopCrossed():
                self.marks_dirty = True
                return self.watch.on_crossed(event, orders, now_ms)
            case Tick():
                before = len(self.watch.pending())
                effects = self.watch.on_tick(orders, now_ms)
                self.marks_dirty = self.marks_dirty or len(self.watch.pending()) != before
                return effects
            case AlgoUpdate() | OrderUpdate() | OrdersSnapshot():
                self._dirty = True
        return []

    def after_batch(self, orders: OrderBook) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if orders.revision == self._revision:
            return  # the same content: the same levels (300 stops re-sorted per orders read)
        self._revision = orders.revision
        levels = levels_of(orders)
        if levels != self._levels:
            self._levels = levels
            self._market.set_levels(levels)
