"""Coverage: is an open position protected by a stop right now? (PURE, no clock, no I/O.)

Rules of this module:
1. Only a *stop* protects: an algo or regular order of type STOP, STOP_MARKET or
   TRAILING_STOP_MARKET. Take-profits (TAKE_PROFIT, TAKE_PROFIT_MARKET), limits and market
   orders never count: a take-profit does not fire when the price runs away.
2. It must be on the closing side of the position: SELL for a long (one-way amount > 0 or
   hedge LONG), BUY for a short, on the same (symbol, positionSide).
3. It must only be able to reduce the position: ``closePosition`` (covers any amount), or
   reduce-only (hedge mode: a closing-side order on LONG/SHORT, where Binance forbids the flag).
   A stop that could open the other way is an entry, as for the reaper. A reduce-only stop for
   the whole amount or more covers; for less it is ``partial``. Orders are judged one by one,
   never summed (two half stops at different prices are two partial protections).
4. It must be live: the order book holds only orders not known terminal; an algo order that
   is TRIGGERED counts only while its child order is known open (a triggered algo whose child
   is gone protects nothing). TRIGGERING counts: it is the stop executing right now.
5. ``covered`` beats ``partial`` beats ``none``. Whether the orders are known fresh is decided
   by the caller (``core/guard.py``); this module only judges the orders it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from enum import StrEnum

from watchdog.core.model import AlgoStatus, OrderId, PositionKey, PositionSide
from watchdog.core.orders import TrackedOrder

__all__ = ["STOP_TYPES", "Protection", "closing_side", "coverage", "order_cover"]

STOP_TYPES = frozenset({"STOP", "STOP_MARKET", "TRAILING_STOP_MARKET"})


class Protection(StrEnum):
    """The answer published with each open position (``protection`` field)."""

    COVERED = "covered"   # a live stop closes the whole position
    PARTIAL = "partial"   # only reduce-only stops for less than the position
    NONE = "none"         # no live stop on the closing side
    UNKNOWN = "unknown"   # orders (or the position) not known fresh: no answer


def closing_side(key: PositionKey, amount: Decimal) -> str | None:
    """The order side that closes this position (None when flat)."""
    if key.side is PositionSide.LONG:
        return "SELL"
    if key.side is PositionSide.SHORT:
        return "BUY"
    if amount > 0:
        return "SELL"
    if amount < 0:
        return "BUY"
    return None


def order_cover(order: TrackedOrder, amount: Decimal,
                child_open: Callable[[OrderId], bool]) -> Protection:
    """How much one order protects a position of signed ``amount`` on ``order.key`` (rules 1-4)."""
    closing = closing_side(order.key, amount)
    if closing is None or order.order_type not in STOP_TYPES or order.side != closing:
        return Protection.NONE
    if order.is_algo and order.status == AlgoStatus.TRIGGERED.value and (
            order.child_order_id is None or not child_open(order.child_order_id)):
        return Protection.NONE
    if order.close_position:
        return Protection.COVERED
    if not order.reduces_only or order.quantity <= 0:
        return Protection.NONE
    return Protection.COVERED if order.quantity >= abs(amount) else Protection.PARTIAL


def coverage(amount: Decimal, orders: Iterable[TrackedOrder],
             child_open: Callable[[OrderId], bool]) -> Protection:
    """The best cover any single order of ``orders`` (all on the position's key) gives."""
    best = Protection.NONE
    for order in orders:
        cover = order_cover(order, amount, child_open)
        if cover is Protection.COVERED:
            return cover
        if cover is Protection.PARTIAL:
            best = cover
    return best
