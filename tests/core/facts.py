"""Small builders for core events, so tests read like the sequence they describe."""

from __future__ import annotations

from decimal import Decimal

from watchdog.core.events import (
    AlgoUpdate,
    OrderUpdate,
    PositionAmount,
    PositionSnapshot,
    SnapshotFailed,
    SnapshotRequested,
    StreamPositions,
    TradeLite,
)
from watchdog.core.model import AlgoStatus, OrderId, PositionKey, PositionSide, Symbol

__all__ = [
    "BTC", "ETH", "algo_update", "amount", "failed", "key", "order_update", "requested",
    "snapshot", "stream", "trade_lite",
]


def key(symbol: str = "BTCUSDT", side: PositionSide = PositionSide.BOTH) -> PositionKey:
    return PositionKey(Symbol(symbol), side)


BTC = key("BTCUSDT")
ETH = key("ETHUSDT")


def amount(k: PositionKey, qty: str | int, time_ms: int, price: str = "100") -> PositionAmount:
    return PositionAmount(k, Decimal(qty), Decimal(price) if Decimal(qty) else Decimal(0), time_ms)


def stream(k: PositionKey, qty: str | int, time_ms: int, price: str = "100") -> StreamPositions:
    return StreamPositions(time_ms + 1, time_ms, "ORDER", (amount(k, qty, time_ms, price),))


def requested(request_id: int, time_ms: int, *symbols: str) -> SnapshotRequested:
    scope = frozenset(Symbol(s) for s in symbols) if symbols else None
    return SnapshotRequested(request_id, time_ms, scope)


def snapshot(request_id: int, time_ms: int, *rows: PositionAmount,
             symbols: tuple[str, ...] = ()) -> PositionSnapshot:
    scope = frozenset(Symbol(s) for s in symbols) if symbols else None
    return PositionSnapshot(request_id, time_ms, time_ms + 50, tuple(rows), scope)


def failed(request_id: int, reason: str = "HTTP 503") -> SnapshotFailed:
    return SnapshotFailed(request_id, reason)


def trade_lite(symbol: str, time_ms: int, qty: str = "1") -> TradeLite:
    return TradeLite(time_ms + 1, time_ms, Symbol(symbol), OrderId(7), "bot-1", "SELL",
                     Decimal(qty), Decimal(100))


def order_update(symbol: str, time_ms: int, last_filled: str = "0",
                 side: PositionSide = PositionSide.BOTH) -> OrderUpdate:
    filled = Decimal(last_filled)
    return OrderUpdate(
        event_time_ms=time_ms + 1, transaction_time_ms=time_ms, symbol=Symbol(symbol),
        position_side=side, order_id=OrderId(8), client_order_id="bot-2", side="SELL",
        order_type="MARKET", original_type="STOP_MARKET",
        execution_type="TRADE" if filled else "NEW", status="FILLED" if filled else "NEW",
        reduce_only=True, close_position=False, stop_price=Decimal(90), quantity=Decimal(1),
        filled_quantity=filled, last_filled_quantity=filled, realized_profit=Decimal(0),
    )


def algo_update(symbol: str, time_ms: int, status: AlgoStatus = AlgoStatus.NEW) -> AlgoUpdate:
    return AlgoUpdate(
        event_time_ms=time_ms + 1, transaction_time_ms=time_ms, symbol=Symbol(symbol),
        position_side=PositionSide.BOTH, algo_id=OrderId(9), client_algo_id="wd-1", side="SELL",
        order_type="STOP_MARKET", status=status, actual_order_id=None, reduce_only=True,
        close_position=False, trigger_price=Decimal(90), quantity=Decimal(1),
        trigger_time_ms=0, reject_reason="",
    )
