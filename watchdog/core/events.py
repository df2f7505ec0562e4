"""Normalized inputs to the core: facts from the stream and from REST, and shell happenings.

Rules of this module:
1. Events are frozen, slotted dataclasses with no behaviour; ``binance/wire.py`` builds the
   exchange-derived ones, the runtime builds the rest.
2. Exchange times (``*_time_ms``) are Binance epoch ms. The runtime converts its own wall clock
   to exchange time with the server-time offset before filling ``requested_time_ms``.
3. A REST read is bracketed: ``SnapshotRequested(request_id)`` is sent *before* the HTTP call,
   then exactly one of ``PositionSnapshot``/``SnapshotFailed`` with the same ``request_id``. That
   lets the core tell a snapshot requested after a stream gap from one that started before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from watchdog.core.model import AlgoStatus, OrderId, PositionKey, PositionSide, Symbol

__all__ = [
    "AccountConfigUpdate",
    "AlgoUpdate",
    "CanaryAlert",
    "Event",
    "ListenKeyExpired",
    "MalformedFrame",
    "MarginCall",
    "OpenAlgoOrder",
    "OpenOrder",
    "OrderUpdate",
    "OrdersSnapshot",
    "PositionAmount",
    "PositionSnapshot",
    "SnapshotFailed",
    "SnapshotRequested",
    "StandbyListening",
    "StopCrossed",
    "StreamConnected",
    "StreamLost",
    "StreamPositions",
    "Tick",
    "TradeLite",
]


@dataclass(frozen=True, slots=True)
class PositionAmount:
    """One position row: signed amount (0 = flat) and entry price for a (symbol, side).

    ``update_time_ms`` is the row's own exchange time: ACCOUNT_UPDATE ``T`` for stream rows,
    positionRisk ``updateTime`` for REST rows (0 when Binance does not know it).
    """

    key: PositionKey
    amount: Decimal
    entry_price: Decimal
    update_time_ms: int


# ---------------------------------------------------------------- stream facts


@dataclass(frozen=True, slots=True)
class StreamPositions:
    """ACCOUNT_UPDATE: only the positions that changed are listed (absence is not flatness)."""

    event_time_ms: int
    transaction_time_ms: int
    reason: str
    positions: tuple[PositionAmount, ...]


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """ORDER_TRADE_UPDATE for a regular order (including a triggered algo order's child)."""

    event_time_ms: int
    transaction_time_ms: int
    symbol: Symbol
    position_side: PositionSide
    order_id: OrderId
    client_order_id: str
    side: str
    order_type: str
    original_type: str
    execution_type: str
    status: str
    reduce_only: bool
    close_position: bool
    stop_price: Decimal
    quantity: Decimal
    filled_quantity: Decimal
    last_filled_quantity: Decimal
    realized_profit: Decimal
    working_type: str = "CONTRACT_PRICE"  # wt: the price a conditional order triggers on


@dataclass(frozen=True, slots=True)
class AlgoUpdate:
    """ALGO_UPDATE: lifecycle of a conditional (algo) order."""

    event_time_ms: int
    transaction_time_ms: int
    symbol: Symbol
    position_side: PositionSide
    algo_id: OrderId
    client_algo_id: str
    side: str
    order_type: str
    status: AlgoStatus
    actual_order_id: OrderId | None
    reduce_only: bool
    close_position: bool
    trigger_price: Decimal
    quantity: Decimal
    trigger_time_ms: int
    reject_reason: str
    working_type: str = "CONTRACT_PRICE"  # wt: MARK_PRICE or CONTRACT_PRICE


@dataclass(frozen=True, slots=True)
class TradeLite:
    """TRADE_LITE: the fast fill notice (fewer fields, no position side)."""

    event_time_ms: int
    transaction_time_ms: int
    symbol: Symbol
    order_id: OrderId
    client_order_id: str
    side: str
    last_filled_quantity: Decimal
    last_filled_price: Decimal


@dataclass(frozen=True, slots=True)
class ListenKeyExpired:
    """listenKeyExpired: no more events arrive on this connection until a new key is used."""

    event_time_ms: int


@dataclass(frozen=True, slots=True)
class AccountConfigUpdate:
    """ACCOUNT_CONFIG_UPDATE: leverage (``ac``) or multi-assets mode (``ai``) changed."""

    event_time_ms: int
    transaction_time_ms: int
    symbol: Symbol | None
    leverage: int | None
    multi_assets: bool | None


@dataclass(frozen=True, slots=True)
class MarginCall:
    """MARGIN_CALL: risk guidance; the position may already be liquidated when it arrives."""

    event_time_ms: int
    positions: tuple[PositionAmount, ...]


# ---------------------------------------------------------------- REST facts


@dataclass(frozen=True, slots=True)
class SnapshotRequested:
    """The shell is about to read positions from REST (sent before the HTTP call)."""

    request_id: int
    requested_time_ms: int
    symbols: frozenset[Symbol] | None = None


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A complete positionRisk answer.

    ``symbols`` is the scope of the read: ``None`` means all symbols, so a key missing from
    ``positions`` is flat; otherwise only keys of the listed symbols are covered.
    """

    request_id: int
    requested_time_ms: int
    received_time_ms: int
    positions: tuple[PositionAmount, ...]
    symbols: frozenset[Symbol] | None = None


@dataclass(frozen=True, slots=True)
class SnapshotFailed:
    """A REST read failed or answered something we could not trust. Never means flat."""

    request_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A row of GET /fapi/v1/openOrders."""

    symbol: Symbol
    position_side: PositionSide
    order_id: OrderId
    client_order_id: str
    side: str
    order_type: str
    original_type: str
    status: str
    reduce_only: bool
    close_position: bool
    stop_price: Decimal
    quantity: Decimal
    time_ms: int
    update_time_ms: int
    working_type: str = "CONTRACT_PRICE"


@dataclass(frozen=True, slots=True)
class OpenAlgoOrder:
    """A row of GET /fapi/v1/openAlgoOrders (docs/BINANCE.md §3.4)."""

    symbol: Symbol
    position_side: PositionSide
    algo_id: OrderId
    client_algo_id: str
    side: str
    order_type: str
    status: AlgoStatus
    actual_order_id: OrderId | None
    reduce_only: bool
    close_position: bool
    trigger_price: Decimal
    quantity: Decimal
    create_time_ms: int
    update_time_ms: int
    working_type: str = "CONTRACT_PRICE"


@dataclass(frozen=True, slots=True)
class OrdersSnapshot:
    """Open regular and algo orders read from REST for ``symbols`` (``None``: all symbols).

    ``covers_orders`` / ``covers_algo``: which of the two lists this read holds. A per-symbol
    read holds both; the sweep reads each list on its own, half an interval apart (poller.py
    rule 4), so its snapshot holds one, and the other list's tuple is empty and *not read*
    (core/orders.py rule 6: an order of a list not read is never taken for gone)."""

    request_id: int
    requested_time_ms: int
    orders: tuple[OpenOrder, ...]
    algo_orders: tuple[OpenAlgoOrder, ...]
    symbols: frozenset[Symbol] | None = None
    covers_orders: bool = True
    covers_algo: bool = True


# ---------------------------------------------------------------- shell happenings


@dataclass(frozen=True, slots=True)
class StreamConnected:
    """A user-data connection is open; events may have been missed before it.

    ``standby``: this connection is the standby that a ``StandbyListening`` with the same id
    announced (make-before-break at suspicion, book rule 9): it listened since that mark, and
    the events it buffered meanwhile come right after this one."""

    connection_id: int
    standby: bool = False


@dataclass(frozen=True, slots=True)
class StandbyListening:
    """A standby user-data connection (opened when REST first showed a change the live stream
    had not reported, ``PrepareStandby``) listens: every event from now on reaches it, and it
    buffers them until it replaces the current connection or is dropped (book rule 9)."""

    connection_id: int


@dataclass(frozen=True, slots=True)
class StreamLost:
    """A user-data connection ended, or was found blind (stalled, muted, key expired)."""

    connection_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class StopCrossed:
    """A public price (mark or last, the one the stop triggers on) crossed the trigger of an
    open protective stop in its firing direction (core/triggers.py): the exchange may be
    closing the position right now, whatever the user stream says."""

    key: PositionKey
    order_id: OrderId
    is_algo: bool
    trigger_price: Decimal
    price: Decimal
    price_time_ms: int  # exchange time of the price print (aggTrade T / markPriceUpdate E)


@dataclass(frozen=True, slots=True)
class CanaryAlert:
    """What the stream's liveness canary found (core/canary.py): ``code`` ``stream_blind`` when
    its order's ALGO_UPDATE did not come in time, ``canary_failed`` when it could not run."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class MalformedFrame:
    """The user stream got a frame it could not read (``problem`` says why). It may have carried
    a position change, so the book asks REST at once (book rule 7)."""

    problem: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; lets the core age knowledge and schedule work. ``wall_stepped_back_ms``:
    the shell saw the wall clock step back by this much since its last look (0: none seen);
    the book then expires what it holds (core/ageing.py rule 3) even when this Tick's
    ``now_ms`` is not below the previous event's (the shell ticks only when something is due,
    runtime/ticker.py, so two applies may lie further apart than the step)."""

    wall_stepped_back_ms: int = 0


Event = (
    StreamPositions
    | OrderUpdate
    | AlgoUpdate
    | TradeLite
    | ListenKeyExpired
    | AccountConfigUpdate
    | MarginCall
    | SnapshotRequested
    | PositionSnapshot
    | SnapshotFailed
    | OrdersSnapshot
    | StreamConnected
    | StandbyListening
    | StreamLost
    | StopCrossed
    | CanaryAlert
    | MalformedFrame
    | Tick
)
