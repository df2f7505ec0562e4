"""Property test of ``core/order_blindness.py``: random orders, lagging REST reads answered out
of order, gaps and a stream that is sometimes muted. The model knows which changes the stream
was never told: ``stream_blind`` may only name such an order (no false alarm)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.core.effects import RaiseAlert, Reconnect
from watchdog.core.events import (
    Event,
    ListenKeyExpired,
    OpenOrder,
    OrdersSnapshot,
    OrderUpdate,
    SnapshotRequested,
    StreamConnected,
    StreamLost,
)
from watchdog.core.model import ZERO, OrderId, PositionSide, Symbol
from watchdog.core.order_blindness import OrderBlindness

MAX_LAG_MS = 2000
SYMBOLS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))


@dataclass
class _Order:
    symbol: Symbol
    created_ms: int
    ended_ms: int | None = None


@dataclass
class World:
    watch: OrderBlindness = field(default_factory=lambda: OrderBlindness(
        blind_after_ms=1000, max_rest_lag_ms=MAX_LAG_MS))
    now_ms: int = 10_000
    connected: bool = False
    muted: bool = False
    orders: list[_Order] = field(default_factory=list)
    missed: set[int] = field(default_factory=set)  # muted changes since the last gap
    pending: list[OrdersSnapshot] = field(default_factory=list)
    last_info_ms: int = 0
    next_id: int = 1

    def apply(self, event: Event) -> None:
        for effect in self.watch.apply(event, 0):
            assert isinstance(effect, RaiseAlert | Reconnect) or effect.kind == "stream_blind"
            if isinstance(effect, RaiseAlert):
                named = [i for i in range(len(self.orders))
                         if f"order {i + 1} " in effect.message]
                assert named, effect.message
                assert named[0] in self.missed, (effect.message, self.missed)

    def tell(self, index: int, status: str) -> None:
        if not self.connected:
            return
        if self.muted:
            self.missed.add(index)
            return
        o = self.orders[index]
        self.apply(OrderUpdate(self.now_ms, self.now_ms, o.symbol, PositionSide.BOTH,
                               OrderId(index + 1), "c", "BUY", "LIMIT", "LIMIT", status, status,
                               False, False, ZERO, Decimal(1), ZERO, ZERO, ZERO))

    # ------------------------------------------------------------ operations

    def advance(self, dt_ms: int) -> None:
        self.now_ms += dt_ms

    def create(self, symbol_index: int) -> None:
        self.now_ms += 1
        self.orders.append(_Order(SYMBOLS[symbol_index], self.now_ms))
        self.tell(len(self.orders) - 1, "NEW")

    def end(self, index: int) -> None:
        self.now_ms += 1
        open_ = [i for i, o in enumerate(self.orders) if o.ended_ms is None]
        if open_:
            i = open_[index % len(open_)]
            self.orders[i].ended_ms = self.now_ms
            self.tell(i, "CANCELED")

    def positions_request(self) -> None:
        self.now_ms += 1
        self.apply(SnapshotRequested(self.next_id, self.now_ms))
        self.next_id += 1

    def orders_read(self, scope_index: int, lag_ms: int) -> None:
        self.now_ms += 1
        info_ms = max(self.now_ms - lag_ms, self.last_info_ms)
        self.last_info_ms = info_ms
        scope = None if scope_index >= len(SYMBOLS) else frozenset({SYMBOLS[scope_index]})
        listed = tuple(
            OpenOrder(o.symbol, PositionSide.BOTH, OrderId(i + 1), "c", "BUY", "LIMIT", "LIMIT",
                      "NEW", False, False, ZERO, Decimal(1), o.created_ms, o.created_ms)
            for i, o in enumerate(self.orders)
            if o.created_ms <= info_ms and (o.ended_ms is None or o.ended_ms > info_ms)
            and (scope is None or o.symbol in scope))
        self.pending.append(OrdersSnapshot(self.next_id, self.now_ms, listed, (), scope))
        self.next_id += 1

    def answer(self, index: int) -> None:
        if self.pending:
            self.apply(self.pending.pop(index % len(self.pending)))

    def gap(self, kind: int) -> None:
        self.connected = kind == 1
        self.missed.clear()
        self.apply((StreamLost(1, "1006"), StreamConnected(2), ListenKeyExpired(1))[kind])


_ops = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 1500)),
    st.tuples(st.just("create"), st.integers(0, 1)),
    st.tuples(st.just("create"), st.integers(0, 1)),
    st.tuples(st.just("end"), st.integers(0, 9)),
    st.tuples(st.just("end"), st.integers(0, 9)),
    st.tuples(st.just("positions_request")),
    st.tuples(st.just("orders_read"), st.integers(0, 2), st.integers(0, MAX_LAG_MS)),
    st.tuples(st.just("orders_read"), st.integers(0, 2), st.integers(0, MAX_LAG_MS)),
    st.tuples(st.just("answer"), st.integers(0, 3)),
    st.tuples(st.just("answer"), st.integers(0, 3)),
    st.tuples(st.just("mute"), st.booleans()),
    st.tuples(st.just("gap"), st.integers(0, 2)),
    st.tuples(st.just("advance"), st.integers(900, 1100)),
)
_start = [("gap", 1), ("positions_request",)]


# Half the runs start muted: where blindness is decided (and where a false one would show).
_scripts = st.tuples(st.booleans(), st.lists(_ops, min_size=10, max_size=80)).map(
    lambda t: [*_start, ("mute", t[0]), *t[1]])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scripts)
def test_blind_only_for_an_order_change_the_stream_was_never_told(
        ops: list[tuple[object, ...]]) -> None:
    world = World()
    for name, *args in ops:
        if name == "mute":
            world.muted = bool(args[0])
        else:
            getattr(world, str(name))(*args)
