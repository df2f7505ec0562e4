"""Translate Binance REST response bodies into core values (pure, no I/O).

Same rules as ``wire`` (see its docstring): Decimal quantities, int ids, required fields never
defaulted, malformed rows raise ``WireFormatError`` naming the endpoint and ``[row].field``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from operator import itemgetter
from typing import TypeVar

from watchdog.binance.protocol.wirefields import (
    ROOT,
    BadField,
    JsonObject,
    algo_status,
    describe,
    excerpt,
    flag,
    number,
    opt_number,
    opt_order_id,
    opt_text,
    position_key,
    position_side,
    symbol,
    text,
    uint,
)
from watchdog.core.events import OpenAlgoOrder, OpenOrder, PositionAmount, PositionSnapshot
from watchdog.core.model import OrderId, PositionKey, Symbol
from watchdog.errors import WireFormatError

__all__ = [
    "parse_algo_id",
    "parse_error_body",
    "parse_marks",
    "parse_open_algo_orders",
    "parse_open_orders",
    "parse_position_mode",
    "parse_position_risk",
    "parse_server_time",
    "parse_tick_size",
]

_T = TypeVar("_T")

# positionRisk rows per key, as their (positionAmt, entryPrice, updateTime) texts and what they
# parsed to: 300 open positions are read every 0.9 s, nearly always unchanged. Bounded as
# wirefields' caches (a key beyond the bound is parsed every time).
_LAST_ROWS: dict[PositionKey, tuple[tuple[object, object, object], PositionAmount]] = {}
_CACHED_ROWS = 8192

# The fields of a positionRisk row that its parse reads, one getter each: a whole read whose
# columns equal an earlier read's (markPrice, unRealizedProfit… are not read) is that read's
# very tuple of rows, found by comparing lists in C instead of 300 rows in Python. Kept: the
# last few reads (one per account of the process), newest first.
_READ_FIELDS = ("symbol", "positionSide", "positionAmt", "entryPrice", "updateTime")
_COLUMN_OF = tuple(itemgetter(name) for name in _READ_FIELDS)
_TEXT_COLUMNS = 4  # the first four are texts; updateTime an int (other types: parsed anew)
_LAST_READS: list[tuple[list[list[object]], tuple[PositionAmount, ...]]] = []
_CACHED_READS = 4


def _each_row(endpoint: str, body: object) -> Iterable[tuple[int, JsonObject]]:
    if type(body) is not list:
        raise WireFormatError(endpoint, ROOT, f"expected an array, got {describe(body)}", excerpt(body))
    for index, row in enumerate(body):
        if type(row) is not dict:
            raise WireFormatError(endpoint, f"[{index}]", f"expected an object, got {describe(row)}",
                                  excerpt(row))
        yield index, row


def parse_position_risk(
    rows_: object,
    *,
    request_id: int,
    requested_time_ms: int,
    received_time_ms: int,
    symbols: Iterable[str] | None = None,
) -> PositionSnapshot:
    """Translate a positionRisk answer (v2 or v3) or an account answer's ``positions``.

    Every row is kept, flat ones included: v2 lists every symbol (``positionAmt`` "0",
    ``updateTime`` 0), v3 only symbols with a position or open orders; either way a key the
    answer does not list is flat within ``symbols`` (the request's scope; None = all symbols).

    Args:
        rows_: ``GET /fapi/v2|v3/positionRisk`` (a list), or ``GET /fapi/v2|v3/account`` (an
            object; its ``positions`` list is used and ``entryPrice``, absent in v3, is 0).
        request_id / requested_time_ms / received_time_ms: copied into the snapshot (see
            ``SnapshotRequested``).
        symbols: the scope of the request.

    Raises:
        WireFormatError: a row lacks symbol/positionSide/positionAmt/updateTime (or
            entryPrice for positionRisk), or two rows name the same (symbol, positionSide).
    """
    endpoint = "positionRisk"
    entry_required = True
    body = rows_
    if type(body) is dict:
        endpoint, entry_required = "account", False
        body = body.get("positions")
        if type(body) is not list:
            raise WireFormatError(endpoint, "positions", f"expected an array, got {describe(body)}",
                                  excerpt(rows_))
    columns = _columns(body) if entry_required else None
    if columns is not None:
        for read_columns, read_positions in _LAST_READS:
            if read_columns == columns:
                scope = None if symbols is None else frozenset(Symbol(s) for s in symbols)
                return PositionSnapshot(request_id, requested_time_ms, received_time_ms,
                                        read_positions, scope)
    seen: dict[PositionKey, int] = {}
    positions = []
    last_rows = _LAST_ROWS
    for index, row in _each_row(endpoint, body):
        try:
            key = position_key(row, "symbol", "positionSide")
            # The row as its texts: a position unchanged since the last read (all but mark
            # price and profit, which are not read) is the very PositionAmount of that read.
            texts = (row.get("positionAmt"), row.get("entryPrice"), row.get("updateTime"))
            last = last_rows.get(key) if entry_required else None
            if last is not None and last[0] == texts and type(texts[0]) is str \
                    and type(texts[1]) is str and type(texts[2]) is int:
                amount = last[1]
            else:
                entry = number(row, "entryPrice") if entry_required else opt_number(row, "entryPrice")
                amount = PositionAmount(key, number(row, "positionAmt"), entry,
                                        uint(row, "updateTime"))
                if entry_required and (key in last_rows or len(last_rows) < _CACHED_ROWS):
                    last_rows[key] = (texts, amount)
            if key in seen:
                raise BadField("positionSide", f"duplicate row for {key} (first at [{seen[key]}])")
        except BadField as exc:
            raise WireFormatError(endpoint, exc.within(f"[{index}]").field, exc.problem,
                                  excerpt(row)) from None
        seen[key] = index
        positions.append(amount)
    parsed = tuple(positions)
    if columns is not None:
        _LAST_READS.insert(0, (columns, parsed))
        del _LAST_READS[_CACHED_READS:]
    scope = None if symbols is None else frozenset(Symbol(s) for s in symbols)
    return PositionSnapshot(request_id, requested_time_ms, received_time_ms, parsed, scope)


def _columns(body: object) -> list[list[object]] | None:
    """The fields a positionRisk parse reads, column by column (in C), or None when a read of
    them could not be a remembered one: a row not an object, a field missing, or a field of
    another type than a valid row has (equal is not enough: ``1 == 1.0 == True``, and a row
    with ``True`` is malformed where one with ``1`` is not). Only valid reads are remembered,
    so columns equal to one of them, of these exact types, parse to its very rows."""
    if type(body) is not list or not body or set(map(type, body)) != {dict}:
        return None
    try:
        columns = [list(map(column_of, body)) for column_of in _COLUMN_OF]
    except KeyError:
        return None
    texts = set(map(type, columns[0]))
    for column in columns[1:_TEXT_COLUMNS]:
        texts.update(map(type, column))
    if texts != {str} or set(map(type, columns[_TEXT_COLUMNS])) != {int}:
        return None
    return columns


def parse_open_orders(rows_: object) -> tuple[OpenOrder, ...]:
    """Translate ``GET /fapi/v1/openOrders`` (regular orders only; algo orders are separate).

    Optional: ``origType`` (→ ``type``), ``stopPrice`` (→ 0).
    """
    orders = []
    for index, row in _each_row("openOrders", rows_):
        try:
            order_type = text(row, "type")
            orders.append(OpenOrder(
                symbol=Symbol(symbol(row, "symbol")),
                position_side=position_side(row, "positionSide"),
                order_id=OrderId(uint(row, "orderId")),
                client_order_id=text(row, "clientOrderId"),
                side=text(row, "side"),
                order_type=order_type,
                original_type=opt_text(row, "origType", order_type),
                status=text(row, "status"),
                reduce_only=flag(row, "reduceOnly"),
                close_position=flag(row, "closePosition"),
                stop_price=opt_number(row, "stopPrice"),
                quantity=number(row, "origQty"),
                time_ms=uint(row, "time"),
                update_time_ms=uint(row, "updateTime"),
                working_type=opt_text(row, "workingType", "CONTRACT_PRICE"),
            ))
        except BadField as exc:
            raise WireFormatError("openOrders", exc.within(f"[{index}]").field, exc.problem,
                                  excerpt(row)) from None
    return tuple(orders)


def parse_open_algo_orders(rows_: object) -> tuple[OpenAlgoOrder, ...]:
    """Translate ``GET /fapi/v1/openAlgoOrders`` (docs/BINANCE.md §3.4): the key is ``orderType``.

    Optional: ``actualOrderId`` ("" until triggered → None).
    """
    orders = []
    for index, row in _each_row("openAlgoOrders", rows_):
        try:
            orders.append(OpenAlgoOrder(
                symbol=Symbol(symbol(row, "symbol")),
                position_side=position_side(row, "positionSide"),
                algo_id=OrderId(uint(row, "algoId")),
                client_algo_id=text(row, "clientAlgoId"),
                side=text(row, "side"),
                order_type=text(row, "orderType"),
                status=algo_status(row, "algoStatus"),
                actual_order_id=opt_order_id(row, "actualOrderId"),
                reduce_only=flag(row, "reduceOnly"),
                close_position=flag(row, "closePosition"),
                trigger_price=number(row, "triggerPrice"),
                quantity=number(row, "quantity"),
                create_time_ms=uint(row, "createTime"),
                update_time_ms=uint(row, "updateTime"),
                working_type=opt_text(row, "workingType", "CONTRACT_PRICE"),
            ))
        except BadField as exc:
            raise WireFormatError("openAlgoOrders", exc.within(f"[{index}]").field, exc.problem,
                                  excerpt(row)) from None
    return tuple(orders)


def parse_marks(rows_: object) -> dict[PositionKey, tuple[Decimal, Decimal]]:
    """positionRisk (v3) rows → (signed amount, mark price) per key: the guard's re-check
    before it places a last-resort stop, and the price it places it from."""
    marks: dict[PositionKey, tuple[Decimal, Decimal]] = {}
    for index, row in _each_row("positionRisk", rows_):
        try:
            marks[position_key(row, "symbol", "positionSide")] = (number(row, "positionAmt"),
                                                                  number(row, "markPrice"))
        except BadField as exc:
            raise WireFormatError("positionRisk", exc.within(f"[{index}]").field, exc.problem,
                                  excerpt(row)) from None
    return marks


def parse_tick_size(body: object, wanted: str) -> Decimal:
    """``GET /fapi/v1/exchangeInfo`` → the PRICE_FILTER tickSize of symbol ``wanted``."""

    def read(b: JsonObject) -> Decimal:
        listed = b.get("symbols")
        if type(listed) is not list:
            raise BadField("symbols", f"expected an array, got {describe(listed)}")
        for entry in listed:
            if type(entry) is dict and entry.get("symbol") == wanted:
                for rule in entry.get("filters") or ():
                    if type(rule) is dict and rule.get("filterType") == "PRICE_FILTER":
                        return number(rule, "tickSize")
                raise BadField("symbols", f"{wanted} has no PRICE_FILTER")
        raise BadField("symbols", f"{wanted} is not listed")

    return _single("exchangeInfo", body, read)


def parse_algo_id(body: object) -> OrderId:
    """``POST /fapi/v1/algoOrder`` → the new order's ``algoId``."""
    return _single("algoOrder", body, lambda b: OrderId(uint(b, "algoId")))


def _single(endpoint: str, body: object, read: Callable[[JsonObject], _T]) -> _T:
    if type(body) is not dict:
        raise WireFormatError(endpoint, ROOT, f"expected an object, got {describe(body)}", excerpt(body))
    try:
        return read(body)
    except BadField as exc:
        raise WireFormatError(endpoint, exc.field, exc.problem, excerpt(body)) from None


def parse_server_time(body: object) -> int:
    """``GET /fapi/v1/time`` → server time in epoch ms."""
    return _single("time", body, lambda b: uint(b, "serverTime"))


def parse_position_mode(body: object) -> bool:
    """``GET /fapi/v1/positionSide/dual`` → True in hedge mode (LONG/SHORT), False in one-way."""
    return _single("positionSide/dual", body, lambda b: flag(b, "dualSidePosition"))


def parse_error_body(body: object) -> tuple[int, str] | None:
    """Binance's ``{"code": -2015, "msg": "…"}`` → ``(code, msg)``; anything else → None.

    Never raises: it is used on bodies of failed requests, which may be HTML from a proxy.
    Binance also answers some successes as ``{"code": 200, "msg": "…"}``; the HTTP status
    decides which it is, not this function.
    """
    if type(body) is not dict:
        return None
    code = body.get("code")
    if type(code) is not int:
        return None
    msg = body.get("msg")
    return code, msg if type(msg) is str else ""
