"""Trigger watching (PURE): which public prices to follow, and what a crossing means.

A stop fires because a *public* price crossed its trigger, and public prices are free; the user
stream may say nothing (the BASUSDT incident). So for every open protective stop the watchdog
follows the price it triggers on and doubts the position the moment that price crosses.

Rules of this module:
1. A *watched stop* is an open order that can only shrink its position (reduce-only,
   close-position, or hedge-closing; ``TrackedOrder.reduces_only``) of a triggered type
   (``STOP_MARKET``, ``STOP``, ``TAKE_PROFIT_MARKET``, ``TAKE_PROFIT``) with a trigger price,
   algo (status NEW) or regular (status NEW, not an algo's child). Trailing stops are left out:
   their trigger moves with the price and Binance does not publish it. An algo already
   TRIGGERING/TRIGGERED needs no watching: the exchange said it fires.
2. ``MARK_PRICE`` stops follow ``<symbol>@markPrice@1s``, every other working type (the default
   ``CONTRACT_PRICE``) ``<symbol>@aggTrade`` (docs/BINANCE.md §1.2: both on the routed
   ``/market`` URL; FACTS: mark price at best every 1 s, last price every 100 ms).
3. Crossing, as Binance triggers (New-Algo-Order): STOP* BUY when price ≥ trigger, SELL when
   ≤; TAKE_PROFIT* BUY when ≤, SELL when ≥. ``CrossingDetector`` reports a stop once per
   crossing; the price moving back re-arms it.
4. Subscriptions change by ``SUBSCRIBE``/``UNSUBSCRIBE`` frames, batched (one frame carries up
   to ``MAX_PARAMS_PER_FRAME`` names) and paced (``FramePacer``: at most ``MAX_FRAMES_PER_S``
   frames a second, half of Binance's 10 incoming messages a second, leaving room for pings
   and pongs, docs/BINANCE.md §1.3); never more than ``MAX_STREAMS`` (1024, same section) on the
   one connection: the names past it are reported (``FramePlan.dropped``) and not followed.
5. ``TriggerWatch`` (the core's side): a ``StopCrossed`` for a stop still watched is recorded;
   if no sign that the exchange acted (the algo TRIGGERING/TRIGGERED, or a terminal fact of the
   order; merely vanishing from a REST list is no sign: a stuck trigger does that, docs/BINANCE.md §3.6)
   follows within ``confirm_bound_ms``, one ``trigger_not_acted`` alert is raised: a trigger the
   exchange did not act on (stuck, price protection) or a blind user stream. Both are looked
   at on a Tick; ``next_due_ms`` asks the shell for every Tick while a crossing is pending. The book makes the
   position suspect (book.py rule 12); the watch only follows up.
6. *Near its trigger* (issue 13 item 2, the poller's calm rule): a watched stop whose price
   is not known yet, or is within ``NEAR_TRIGGER_FRACTION`` of its trigger (on either side).
   ``CrossingDetector.near`` answers for all stops; the prices it remembers are the last ones
   the market connection delivered (the adapter forgets them when the connection is lost).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from watchdog.core.effects import Effect, Firing, Notify, RaiseAlert
from watchdog.core.events import StopCrossed
from watchdog.core.model import ZERO, OrderId, PositionKey, Symbol
from watchdog.core.orders import OrderBook, TrackedOrder

__all__ = [
    "CONFIRM_BOUND_MS",
    "MAX_FRAMES_PER_S",
    "MAX_PARAMS_PER_FRAME",
    "MAX_STREAMS",
    "NEAR_TRIGGER_FRACTION",
    "CrossingDetector",
    "FramePacer",
    "FramePlan",
    "TriggerLevel",
    "TriggerWatch",
    "crosses",
    "levels_of",
    "plan_frames",
    "stream_name",
    "wanted_streams",
]

MAX_STREAMS = 1024
MAX_FRAMES_PER_S = 5
MAX_PARAMS_PER_FRAME = 100
# A crossing the exchange has not acted on after this long raises trigger_not_acted: our own
# target, not a Binance figure (docs/ADAPTERS.md § Trigger watching; stuck TRIGGERING §3.6 of
# docs/BINANCE.md).
CONFIRM_BOUND_MS = 3_000
# Rule 6: 0.5 % of the price. A stop this close may fire within the next few routine polls on a
# fast market; farther, a crossing needs a move the market connection reports first anyway.
NEAR_TRIGGER_FRACTION = Decimal("0.005")
MARK = "markPrice@1s"
LAST = "aggTrade"
_TRIGGERED_TYPES = frozenset({"STOP_MARKET", "STOP", "TAKE_PROFIT_MARKET", "TAKE_PROFIT"})


@dataclass(frozen=True, slots=True)
class TriggerLevel:
    """One watched stop (rule 1): what to compare a price with."""

    key: PositionKey
    order_id: OrderId
    is_algo: bool
    side: str
    order_type: str
    trigger_price: Decimal
    working_type: str

    @property
    def stream(self) -> str:
        return stream_name(self.key.symbol, self.working_type)


def stream_name(symbol: str, working_type: str) -> str:
    """Rule 2: the market stream a stop of ``working_type`` on ``symbol`` triggers on."""
    return f"{symbol.lower()}@{MARK if working_type == 'MARK_PRICE' else LAST}"


def _watched(order: TrackedOrder) -> bool:
    if order.order_type not in _TRIGGERED_TYPES or order.trigger_price <= ZERO:
        return False
    if not order.reduces_only or order.status != "NEW":
        return False
    return order.is_algo or order.parent_algo_id is None


def levels_of(orders: OrderBook) -> dict[Symbol, tuple[TriggerLevel, ...]]:
    """Rule 1: the watched stops per symbol, in the book's stable order."""
    out: dict[Symbol, list[TriggerLevel]] = {}
    for order in orders.orders():
        if _watched(order):
            out.setdefault(order.key.symbol, []).append(TriggerLevel(
                order.key, order.order_id, order.is_algo, order.side, order.order_type,
                order.trigger_price, order.working_type))
    return {symbol: tuple(levels) for symbol, levels in out.items()}


def wanted_streams(levels: Mapping[Symbol, Iterable[TriggerLevel]]) -> frozenset[str]:
    return frozenset(level.stream for group in levels.values() for level in group)


def crosses(level: TriggerLevel, price: Decimal) -> bool:
    """Rule 3: ``price`` is at or beyond the trigger in the stop's firing direction."""
    if level.order_type.startswith("STOP"):
        return price >= level.trigger_price if level.side == "BUY" else price <= level.trigger_price
    return price <= level.trigger_price if level.side == "BUY" else price >= level.trigger_price


@dataclass(frozen=True, slots=True)
class FramePlan:
    """Frames to send, in order (UNSUBSCRIBE first: room for the new names), and the names
    that do not fit on one connection (rule 4)."""

    unsubscribe: tuple[tuple[str, ...], ...]
    subscribe: tuple[tuple[str, ...], ...]
    dropped: tuple[str, ...]


def _batches(names: list[str], size: int) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(names[i:i + size]) for i in range(0, len(names), size))


def plan_frames(current: frozenset[str], wanted: frozenset[str], *, max_streams: int = MAX_STREAMS,
                per_frame: int = MAX_PARAMS_PER_FRAME) -> FramePlan:
    """From what the connection follows to what the stops need (rule 4); deterministic."""
    ordered = sorted(wanted)
    kept, dropped = frozenset(ordered[:max_streams]), tuple(ordered[max_streams:])
    return FramePlan(_batches(sorted(current - kept), per_frame),
                     _batches(sorted(kept - current), per_frame), dropped)


@dataclass(slots=True)
class FramePacer:
    """At most ``per_s`` frames in any second (rule 4); ``now_s`` is monotonic seconds."""

    per_s: int = MAX_FRAMES_PER_S
    sent: list[float] = field(default_factory=list)

    def wait_s(self, now_s: float) -> float:
        """0 when a frame may go now, else how long until one may."""
        self.sent = [t for t in self.sent if t > now_s - 1.0]
        if len(self.sent) < self.per_s:
            return 0.0
        return self.sent[0] + 1.0 - now_s

    def record(self, now_s: float) -> None:
        self.sent.append(now_s)


class CrossingDetector:
    """The market adapter's filter (rule 3): prices in, newly crossed stops out.

    Holds the levels the core last handed over; a price that crosses a level it had not
    crossed before reports it; a price back on the safe side re-arms it.
    """

    def __init__(self) -> None:
        self._levels: dict[Symbol, tuple[TriggerLevel, ...]] = {}
        self._crossed: set[tuple[bool, OrderId]] = set()
        self._prices: dict[tuple[Symbol, str], Decimal] = {}  # last price per (symbol, kind)

    def set_levels(self, levels: Mapping[Symbol, tuple[TriggerLevel, ...]]) -> None:
        self._levels = dict(levels)
        alive = {(lv.is_algo, lv.order_id) for group in levels.values() for lv in group}
        self._crossed &= alive

    def symbols(self) -> frozenset[Symbol]:
        return frozenset(self._levels)

    def observe(self, symbol: Symbol, kind: str, price: Decimal) -> list[TriggerLevel]:
        """``kind``: ``MARK`` (markPrice) or ``LAST`` (aggTrade). Newly crossed levels."""
        self._prices[(symbol, kind)] = price
        found: list[TriggerLevel] = []
        for level in self._levels.get(symbol, ()):
            if (MARK if level.working_type == "MARK_PRICE" else LAST) != kind:
                continue
            ident = (level.is_algo, level.order_id)
            if crosses(level, price):
                if ident not in self._crossed:
                    self._crossed.add(ident)
                    found.append(level)
            else:
                self._crossed.discard(ident)
        return found

    def forget_prices(self) -> None:
        """The market connection is lost: a remembered price no longer says where a stop is."""
        self._prices.clear()

    def near(self, fraction: Decimal = NEAR_TRIGGER_FRACTION) -> bool:
        """Rule 6: is any watched stop near its trigger, or of unknown distance (no price)?"""
        prices = self._prices
        for symbol, group in self._levels.items():
            for level in group:
                price = prices.get((symbol, MARK if level.working_type == "MARK_PRICE" else LAST))
                if price is None or abs(price - level.trigger_price) <= price * fraction:
                    return True
        return False


@dataclass(frozen=True, slots=True)
class _Pending:
    event: StopCrossed
    at_ms: int  # our wall clock when the crossing reached the core


class TriggerWatch:
    """The core's follow-up of crossings (rule 5). ``now_ms`` is the injected wall clock."""

    def __init__(self, confirm_bound_ms: int = CONFIRM_BOUND_MS) -> None:
        self.confirm_bound_ms = confirm_bound_ms
        self._pending: dict[tuple[bool, OrderId], _Pending] = {}
        self.crossings = 0
        self.not_acted = 0

    def next_due_ms(self, now_ms: int) -> int | None:
        """When ``on_tick`` may act (rule 5): at once while a crossing is pending (whether the
        exchange acted is settled on a Tick), else never. The shell's ticker keeps its every
        grid point while this says ``now_ms`` (runtime/ticker.py)."""
        return now_ms if self._pending else None

    def pending(self) -> tuple[StopCrossed, ...]:
        return tuple(p.event for p in self._pending.values())

    def firing(self) -> dict[PositionKey, Firing]:
        """Per position, the earliest pending crossing as a firing mark (status ``CROSSED``):
        ``begin`` answers ``stop_triggered`` until the exchange acts or the alert is raised."""
        out: dict[PositionKey, Firing] = {}
        for p in sorted(self._pending.values(),
                        key=lambda p: (p.event.price_time_ms, p.event.order_id)):
            out.setdefault(p.event.key, Firing(p.event.order_id, "CROSSED", p.event.price_time_ms))
        return out

    def on_crossed(self, event: StopCrossed, orders: OrderBook, now_ms: int) -> list[Effect]:
        """Record a crossing of a stop still watched; a stale report (the stop already fired,
        ended or changed) is dropped."""
        order = orders.get(event.order_id, is_algo=event.is_algo)
        if order is None or not _watched(order):
            return []
        ident = (event.is_algo, event.order_id)
        if ident in self._pending:
            return []
        self._pending[ident] = _Pending(event, now_ms)
        self.crossings += 1
        return [Notify("stop_crossed", event.key, (
            ("order_id", str(event.order_id)), ("algo", "1" if event.is_algo else "0"),
            ("trigger_price", f"{event.trigger_price:f}"), ("price", f"{event.price:f}"),
            ("price_time_ms", str(event.price_time_ms))))]

    def on_tick(self, orders: OrderBook, now_ms: int) -> list[Effect]:
        """Settle crossings the exchange acted on; alert on those past the bound."""
        effects: list[Effect] = []
        for ident, pending in list(self._pending.items()):
            e = pending.event
            order = orders.get(e.order_id, is_algo=e.is_algo)
            if (order is not None and order.status != "NEW") or orders.is_gone(
                    e.order_id, is_algo=e.is_algo):
                del self._pending[ident]  # TRIGGERING/TRIGGERED, or ended: the exchange acted
                continue
            if now_ms - pending.at_ms < self.confirm_bound_ms:
                continue
            del self._pending[ident]
            self.not_acted += 1
            kind = "algo" if e.is_algo else "order"
            message = (f"price {e.price} crossed the trigger {e.trigger_price} of {kind} "
                       f"{e.order_id} on {e.key} {now_ms - pending.at_ms} ms ago and the "
                       "exchange has not reported it firing: a stuck trigger or a blind user "
                       "stream; check that position")
            effects.append(RaiseAlert("trigger_not_acted", message, e.key))
        return effects
