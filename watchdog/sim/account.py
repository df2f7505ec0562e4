"""One trading account: positions per (symbol, positionSide), orders, algo orders. Pure.

Position arithmetic follows Binance's cross-margin perpetuals: the entry price is the
quantity-weighted average of opening fills; closing fills realise ``(price - entry) * qty``
(sign by side); in one-way mode a fill larger than the position flips it at the fill price.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal

from watchdog.sim.orders import ZERO, AlgoOrder, Order

__all__ = ["Account", "AccountView", "Position", "Trade"]


@dataclass(slots=True)
class Position:
    symbol: str
    position_side: str
    amount: Decimal = ZERO  # signed: > 0 long, < 0 short
    entry: Decimal = ZERO
    realized: Decimal = ZERO  # accumulated realised PnL ("cr")
    update_time_ms: int = 0

    def apply(self, delta: Decimal, price: Decimal) -> Decimal:
        """Apply a signed fill of ``delta`` at ``price``; returns the realised PnL of the fill."""
        pnl = ZERO
        if self.amount == 0 or (self.amount > 0) == (delta > 0):
            total = abs(self.amount) + abs(delta)
            self.entry = (abs(self.amount) * self.entry + abs(delta) * price) / total
            self.amount += delta
            return pnl
        closing = min(abs(delta), abs(self.amount))
        direction = 1 if self.amount > 0 else -1
        pnl = (price - self.entry) * closing * direction
        self.realized += pnl
        self.amount += closing if delta > 0 else -closing
        remainder = abs(delta) - closing
        if self.amount == 0:
            self.entry = ZERO
        if remainder > 0:
            self.amount = remainder if delta > 0 else -remainder
            self.entry = price
        return pnl

    def unrealized(self, mark: Decimal) -> Decimal:
        return (mark - self.entry) * self.amount if self.amount else ZERO


@dataclass(frozen=True, slots=True)
class Trade:
    """One execution, as ``GET /fapi/v1/userTrades`` lists it."""

    trade_id: int
    order_id: int
    symbol: str
    side: str
    position_side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    realized_pnl: Decimal
    maker: bool
    time_ms: int


@dataclass(slots=True)
class Account:
    api_key: str
    api_secret: str
    wallet: Decimal
    dual_side: bool = False
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    algos: dict[int, AlgoOrder] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    listen_key: str | None = None
    listen_key_expires_ms: int = 0
    trades: list[Trade] = field(default_factory=list)  # every execution, oldest first
    # Orders that may still be open (an order never reopens, so closed ones are pruned lazily):
    # keeps open_orders()/open_algos() cheap while ``orders``/``algos`` keep the whole history.
    _live_orders: dict[int, Order] = field(default_factory=dict)
    _live_algos: dict[int, AlgoOrder] = field(default_factory=dict)

    def position(self, symbol: str, position_side: str) -> Position:
        key = (symbol, position_side)
        if key not in self.positions:
            self.positions[key] = Position(symbol, position_side)
        return self.positions[key]

    def add_order(self, order: Order) -> None:
        self.orders[order.order_id] = order
        self._live_orders[order.order_id] = order

    def add_algo(self, algo: AlgoOrder) -> None:
        self.algos[algo.algo_id] = algo
        self._live_algos[algo.algo_id] = algo

    def open_orders(self) -> list[Order]:
        for order_id in [i for i, o in self._live_orders.items() if not o.is_open]:
            del self._live_orders[order_id]
        return list(self._live_orders.values())

    def open_algos(self) -> list[AlgoOrder]:
        for algo_id in [i for i, a in self._live_algos.items() if not a.is_open]:
            del self._live_algos[algo_id]
        return list(self._live_algos.values())

    def view(self, time_ms: int, marks: dict[str, Decimal]) -> AccountView:
        """A frozen copy of everything REST shows, for ``rest_lag_ms`` answers."""
        return AccountView(
            time_ms=time_ms, wallet=self.wallet, dual_side=self.dual_side,
            positions=[copy.copy(p) for p in self.positions.values()],
            open_orders=[copy.copy(o) for o in self.open_orders()],
            open_algos=[copy.copy(a) for a in self.open_algos()],
            marks=dict(marks), leverage=dict(self.leverage),
        )


@dataclass(frozen=True, slots=True)
class AccountView:
    """REST-visible state of an account at ``time_ms``."""

    time_ms: int
    wallet: Decimal
    dual_side: bool
    positions: list[Position]
    open_orders: list[Order]
    open_algos: list[AlgoOrder]
    marks: dict[str, Decimal]
    leverage: dict[str, int]
