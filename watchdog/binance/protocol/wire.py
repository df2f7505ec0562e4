"""Translate decoded Binance JSON into the core's events, once, at the edge (pure, no I/O).

User-data stream events live here; REST bodies in ``wire_rest``.

Everything the core knows about the exchange passes through here, so this module is strict
where a wrong guess could hurt a position and lenient only where Binance itself omits a value.

Rules of this module:
1. Input is what ``json.loads``/``orjson.loads`` returned; output is ``watchdog.core.events``
   values. Quantities and prices are ``Decimal`` (see ``wirefields``), ids are ints.
2. A required field that is missing, null or malformed raises ``WireFormatError`` naming the
   event type and the field path (``o.sp``, ``a.P[1].pa``, ``[3].positionAmt``) with a short,
   listenKey-free excerpt. Required fields are never defaulted.
3. Optional fields (listed per parser) default to Binance's own "none" value (``0``, ``""``,
   false) — only where Binance documents or is observed to omit or null them.
4. Unknown user-data event types return ``Ignored(event_type)``: the caller counts and logs
   them; they are never an error (Binance adds event types without notice).
5. Enumerations: order status, execution type, order type and side stay ``str`` (Binance adds
   values such as ``NEW_ADL``/``NEW_INSURANCE``). ``positionSide`` must be BOTH/LONG/SHORT and the
   algo status must be one of ``AlgoStatus``: an unknown algo status raises ``WireFormatError``
   (field ``o.X``/``algoStatus``) rather than being guessed, because deciding whether a stop
   still protects a position from a status we do not understand is exactly the guess that
   must not be made (rule 1 of the product: when in doubt, wait and say why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from watchdog.binance.protocol.wirefields import (
    ROOT,
    BadField,
    JsonObject,
    algo_status,
    describe,
    excerpt,
    flag,
    number,
    obj,
    opt_flag,
    opt_number,
    opt_order_id,
    opt_text,
    opt_uint,
    position_key,
    position_side,
    rows,
    symbol,
    text,
    uint,
)
from watchdog.core.events import (
    AccountConfigUpdate,
    AlgoUpdate,
    Event,
    ListenKeyExpired,
    MarginCall,
    OrderUpdate,
    PositionAmount,
    StreamPositions,
    TradeLite,
)
from watchdog.core.model import ZERO, OrderId, Symbol
from watchdog.errors import WireFormatError

__all__ = [
    "USER_EVENT_TYPES",
    "Ignored",
    "parse_user_event",
]

_UNKNOWN_EVENT: Final = "user-data event"


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed user-data event of a type the watchdog does not use (count and log it)."""

    event_type: str


# ---------------------------------------------------------------- user-data stream events
# Each parser takes the event object (wrapper removed) and returns a 1-tuple of events.


def _account_update(event: JsonObject) -> tuple[Event, ...]:
    """ACCOUNT_UPDATE (docs/BINANCE.md §2.1). Optional: ``a.P`` (absent in crossed FUNDING_FEE updates)."""
    event_time_ms = uint(event, "E")
    transaction_time_ms = uint(event, "T")
    account = obj(event, "a")
    reason = text(account, "m")
    positions = []
    for index, row in enumerate(rows(account, "P")):
        try:
            if type(row) is not dict:
                raise BadField("", f"expected an object, got {describe(row)}")
            positions.append(PositionAmount(
                position_key(row, "s", "ps"), number(row, "pa"), number(row, "ep"), transaction_time_ms))
        except BadField as exc:
            raise exc.within(f"a.P[{index}]") from None
    return (StreamPositions(event_time_ms, transaction_time_ms, reason, tuple(positions)),)


def _order_trade_update(event: JsonObject) -> tuple[Event, ...]:
    """ORDER_TRADE_UPDATE (docs/BINANCE.md §2.1).

    Optional: ``o.sp`` (null for MARKET/liquidation orders → 0, Binance's "no stop price"),
    ``o.cp`` ("pushed with conditional order" only → false), ``o.ot`` (→ ``o.o``),
    ``o.rp`` (→ 0).
    """
    event_time_ms = uint(event, "E")
    transaction_time_ms = uint(event, "T")
    order = obj(event, "o")
    try:
        order_type = text(order, "o")
        update = OrderUpdate(
            event_time_ms=event_time_ms,
            transaction_time_ms=transaction_time_ms,
            symbol=Symbol(symbol(order, "s")),
            position_side=position_side(order, "ps"),
            order_id=OrderId(uint(order, "i")),
            client_order_id=text(order, "c"),
            side=text(order, "S"),
            order_type=order_type,
            original_type=opt_text(order, "ot", order_type),
            execution_type=text(order, "x"),
            status=text(order, "X"),
            reduce_only=flag(order, "R"),
            close_position=opt_flag(order, "cp"),
            stop_price=opt_number(order, "sp"),
            quantity=number(order, "q"),
            filled_quantity=number(order, "z"),
            last_filled_quantity=number(order, "l"),
            realized_profit=opt_number(order, "rp"),
            working_type=opt_text(order, "wt", "CONTRACT_PRICE"),
        )
    except BadField as exc:
        raise exc.within("o") from None
    return (update,)


def _algo_update(event: JsonObject) -> tuple[Event, ...]:
    """ALGO_UPDATE (docs/BINANCE.md §2.2).

    ``E`` → event time, ``T`` → transaction time, as for every other event (the documented
    example's comments swap the labels; the values agree with this reading, E ≥ T).
    Optional: ``o.ai`` ("" until triggered → None), ``o.tt`` (→ 0), ``o.rm`` (→ "").
    """
    event_time_ms = uint(event, "E")
    transaction_time_ms = uint(event, "T")
    order = obj(event, "o")
    try:
        update = AlgoUpdate(
            event_time_ms=event_time_ms,
            transaction_time_ms=transaction_time_ms,
            symbol=Symbol(symbol(order, "s")),
            position_side=position_side(order, "ps"),
            algo_id=OrderId(uint(order, "aid")),
            client_algo_id=text(order, "caid"),
            side=text(order, "S"),
            order_type=text(order, "o"),
            status=algo_status(order, "X"),
            actual_order_id=opt_order_id(order, "ai"),
            reduce_only=flag(order, "R"),
            close_position=flag(order, "cp"),
            trigger_price=number(order, "tp"),
            quantity=number(order, "q"),
            trigger_time_ms=opt_uint(order, "tt"),
            reject_reason=opt_text(order, "rm"),
            working_type=opt_text(order, "wt", "CONTRACT_PRICE"),
        )
    except BadField as exc:
        raise exc.within("o") from None
    return (update,)


def _trade_lite(event: JsonObject) -> tuple[Event, ...]:
    """TRADE_LITE (docs/BINANCE.md §2.1): all used fields required."""
    return (TradeLite(
        event_time_ms=uint(event, "E"),
        transaction_time_ms=uint(event, "T"),
        symbol=Symbol(symbol(event, "s")),
        order_id=OrderId(uint(event, "i")),
        client_order_id=text(event, "c"),
        side=text(event, "S"),
        last_filled_quantity=number(event, "l"),
        last_filled_price=number(event, "L"),
    ),)


def _listen_key_expired(event: JsonObject) -> tuple[Event, ...]:
    """listenKeyExpired (docs/BINANCE.md §1.1): ``E`` documented as a string, newer SDKs say int."""
    return (ListenKeyExpired(uint(event, "E")),)


def _account_config_update(event: JsonObject) -> tuple[Event, ...]:
    """ACCOUNT_CONFIG_UPDATE (docs/BINANCE.md §2.1): ``ac`` (symbol leverage) and/or ``ai`` (multi-assets).

    Neither present is accepted (all None): the event still means "account config changed",
    which is what the caller acts on (refresh the position mode).
    """
    event_time_ms = uint(event, "E")
    transaction_time_ms = uint(event, "T")
    symbol_: Symbol | None = None
    leverage: int | None = None
    multi_assets: bool | None = None
    if event.get("ac") is not None:
        leverage_cfg = obj(event, "ac")
        try:
            symbol_ = Symbol(symbol(leverage_cfg, "s"))
            leverage = uint(leverage_cfg, "l")
        except BadField as exc:
            raise exc.within("ac") from None
    if event.get("ai") is not None:
        assets_cfg = obj(event, "ai")
        try:
            multi_assets = flag(assets_cfg, "j")
        except BadField as exc:
            raise exc.within("ai") from None
    return (AccountConfigUpdate(event_time_ms, transaction_time_ms, symbol_, leverage, multi_assets),)


def _margin_call(event: JsonObject) -> tuple[Event, ...]:
    """MARGIN_CALL (docs/BINANCE.md §2.1): rows carry no entry price (→ 0) and no ``T`` (row time = ``E``)."""
    event_time_ms = uint(event, "E")
    positions = []
    for index, row in enumerate(rows(event, "p")):
        try:
            if type(row) is not dict:
                raise BadField("", f"expected an object, got {describe(row)}")
            positions.append(
                PositionAmount(position_key(row, "s", "ps"), number(row, "pa"), ZERO, event_time_ms))
        except BadField as exc:
            raise exc.within(f"p[{index}]") from None
    return (MarginCall(event_time_ms, tuple(positions)),)


_USER_PARSERS: Final[dict[str, Callable[[JsonObject], tuple[Event, ...]]]] = {
    "ACCOUNT_UPDATE": _account_update,
    "ORDER_TRADE_UPDATE": _order_trade_update,
    "ALGO_UPDATE": _algo_update,
    "TRADE_LITE": _trade_lite,
    "listenKeyExpired": _listen_key_expired,
    "ACCOUNT_CONFIG_UPDATE": _account_config_update,
    "MARGIN_CALL": _margin_call,
}
USER_EVENT_TYPES: Final = tuple(_USER_PARSERS)
"""The event types ``parse_user_event`` translates, in a fixed order: the stream's explicit
``events=`` filter asks for exactly these (binance/connection.py)."""


def parse_user_event(payload: object) -> tuple[Event, ...] | Ignored:
    """Translate one decoded user-data stream message.

    Args:
        payload: the decoded JSON frame, either the event object itself (``/private/ws``) or
            the stream-mode wrapper ``{"stream": …, "data": {…}}`` (``/private/stream``).

    Returns:
        The events it carries (currently always one), or ``Ignored(event_type)`` for a
        well-formed event of a type we do not use; the caller counts and logs those.

    Raises:
        WireFormatError: the frame is not an object, has no string ``e``, or a field of a known
            event is missing or malformed. The excerpt never contains a listenKey.
    """
    event = payload
    if type(event) is dict and "e" not in event and "data" in event:
        event = event["data"]
    if type(event) is not dict:
        raise WireFormatError(_UNKNOWN_EVENT, "data" if event is not payload else ROOT,
                              f"expected an object, got {describe(event)}", excerpt(event))
    event_type = event.get("e")
    if type(event_type) is not str:
        problem = "missing" if event_type is None else f"expected a string, got {describe(event_type)}"
        raise WireFormatError(_UNKNOWN_EVENT, "e", problem, excerpt(event))
    parser = _USER_PARSERS.get(event_type)
    if parser is None:
        return Ignored(event_type)
    try:
        return parser(event)
    except BadField as exc:
        raise WireFormatError(event_type, exc.field, exc.problem, excerpt(event)) from None
