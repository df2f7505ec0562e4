"""Builders for the reaper's core tests: orders, views and a stub positions reader (pure values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from watchdog.core.events import (
    AlgoUpdate,
    OpenAlgoOrder,
    OpenOrder,
    OrdersSnapshot,
    OrderUpdate,
)
from watchdog.core.model import (
    ZERO,
    AlgoStatus,
    Knowledge,
    OrderId,
    PositionKey,
    PositionSide,
    PositionState,
    PositionView,
    Source,
    Symbol,
)
from watchdog.core.orders import OrderBook

BAS = Symbol("BASUSDT")
BTC = Symbol("BTCUSDT")
KEY = PositionKey(BAS, PositionSide.BOTH)
LONG = PositionKey(BTC, PositionSide.LONG)
SHORT = PositionKey(BTC, PositionSide.SHORT)


def view(key: PositionKey = KEY, *, knowledge: Knowledge = Knowledge.CONFIRMED,
         amount: Decimal = ZERO, state: PositionState | None = None) -> PositionView:
    """A published view; state follows knowledge and amount unless given."""
    if state is None:
        if knowledge is not Knowledge.CONFIRMED:
            state = PositionState.UNKNOWN
        else:
            state = PositionState.CLOSED if amount == ZERO else PositionState.OPEN
    return PositionView(key=key, state=state, knowledge=knowledge, amount=amount,
                        entry_price=ZERO, source=Source.REST, as_of_time_ms=0, verified_ms=0,
                        version=1)


@dataclass
class StubPositions:
    """Implements the reaper's PositionsReader protocol from two plain dicts."""

    views: dict[PositionKey, PositionView] = field(default_factory=dict)
    flat: dict[PositionKey, int] = field(default_factory=dict)
    # newest REST read of the run; absent: a read far in the future (the grace is then
    # measured against now_ms alone, as these tests were written before REST lag counted)
    proven: dict[PositionKey, int] = field(default_factory=dict)

    def view(self, key: PositionKey) -> PositionView | None:
        return self.views.get(key)

    def flat_since(self, key: PositionKey) -> int | None:
        return self.flat.get(key)

    def flat_proven_ms(self, key: PositionKey) -> int | None:
        if key not in self.flat:
            return None
        return self.proven.get(key, 2**62)

    def set_flat(self, key: PositionKey, since_ms: int) -> StubPositions:
        self.views[key] = view(key)
        self.flat[key] = since_ms
        return self


def algo_row(algo_id: int, *, key: PositionKey = KEY, side: str = "SELL",
             status: AlgoStatus = AlgoStatus.NEW, reduce_only: bool = True,
             close_position: bool = False, created_ms: int = 1_000, updated_ms: int | None = None,
             client_id: str = "bot-sl", child: int | None = None,
             order_type: str = "STOP_MARKET") -> OpenAlgoOrder:
    return OpenAlgoOrder(symbol=key.symbol, position_side=key.side, algo_id=OrderId(algo_id),
                         client_algo_id=client_id, side=side, order_type=order_type, status=status,
                         actual_order_id=None if child is None else OrderId(child),
                         reduce_only=reduce_only, close_position=close_position,
                         trigger_price=Decimal("0.0077"), quantity=Decimal(1216),
                         create_time_ms=created_ms,
                         update_time_ms=created_ms if updated_ms is None else updated_ms)


def order_row(order_id: int, *, key: PositionKey = KEY, side: str = "SELL",
              reduce_only: bool = True, close_position: bool = False, created_ms: int = 1_000,
              client_id: str = "bot-tp", order_type: str = "LIMIT",
              status: str = "NEW") -> OpenOrder:
    return OpenOrder(symbol=key.symbol, position_side=key.side, order_id=OrderId(order_id),
                     client_order_id=client_id, side=side, order_type=order_type,
                     original_type=order_type, status=status, reduce_only=reduce_only,
                     close_position=close_position, stop_price=ZERO, quantity=Decimal(1216),
                     time_ms=created_ms, update_time_ms=created_ms)


def snapshot(*, algos: tuple[OpenAlgoOrder, ...] = (), orders: tuple[OpenOrder, ...] = (),
             at_ms: int = 1_500, symbols: frozenset[Symbol] | None = None,
             request_id: int = 1) -> OrdersSnapshot:
    return OrdersSnapshot(request_id=request_id, requested_time_ms=at_ms, orders=orders,
                          algo_orders=algos, symbols=symbols)


def algo_update(algo_id: int, status: AlgoStatus, *, at_ms: int, key: PositionKey = KEY,
                child: int | None = None, reduce_only: bool = True, side: str = "SELL",
                client_id: str = "bot-sl", close_position: bool = False) -> AlgoUpdate:
    return AlgoUpdate(event_time_ms=at_ms, transaction_time_ms=at_ms, symbol=key.symbol,
                      position_side=key.side, algo_id=OrderId(algo_id), client_algo_id=client_id,
                      side=side, order_type="STOP_MARKET", status=status,
                      actual_order_id=None if child is None else OrderId(child),
                      reduce_only=reduce_only, close_position=close_position,
                      trigger_price=Decimal("0.0077"), quantity=Decimal(1216),
                      trigger_time_ms=at_ms if status is AlgoStatus.TRIGGERED else 0,
                      reject_reason="")


def order_update(order_id: int, status: str, *, at_ms: int, key: PositionKey = KEY,
                 reduce_only: bool = True, side: str = "SELL", client_id: str = "bot-sl",
                 order_type: str = "LIMIT") -> OrderUpdate:
    execution = {"NEW": "NEW", "CANCELED": "CANCELED", "FILLED": "TRADE",
                 "PARTIALLY_FILLED": "TRADE", "EXPIRED": "EXPIRED"}[status]
    return OrderUpdate(event_time_ms=at_ms, transaction_time_ms=at_ms, symbol=key.symbol,
                       position_side=key.side, order_id=OrderId(order_id),
                       client_order_id=client_id, side=side, order_type=order_type,
                       original_type=order_type, execution_type=execution, status=status,
                       reduce_only=reduce_only, close_position=False, stop_price=ZERO,
                       quantity=Decimal(1216), filled_quantity=ZERO, last_filled_quantity=ZERO,
                       realized_profit=ZERO)


def listed_book(*, max_rest_lag_ms: int = 0) -> OrderBook:
    """An ``OrderBook`` as after the start's sweep of both lists (empty then): every symbol's
    lists read (core/orders.py rule 7), so the orders the test adds may be reaped."""
    book = OrderBook(max_rest_lag_ms=max_rest_lag_ms)
    book.apply(OrdersSnapshot(request_id=0, requested_time_ms=0, orders=(), algo_orders=()))
    return book
