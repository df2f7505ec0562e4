"""Parse and validate order parameters the way Binance does, before the model acts. Pure.

Input is the merged query+body parameters as strings; output a typed request or a
:class:`Rejection` with Binance's code. Checks that depend on live state (position size,
would-immediately-trigger, the 200 cap) live in the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from watchdog.sim import rejections as rj
from watchdog.sim.market import SymbolSpec
from watchdog.sim.orders import ALGO_TYPES

__all__ = ["NewAlgo", "NewOrder", "parse_bool", "parse_new_algo", "parse_new_order", "require"]

_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
Params = dict[str, str]


@dataclass(frozen=True, slots=True)
class NewOrder:
    symbol: str
    side: str
    type: str
    position_side: str
    qty: Decimal
    price: Decimal
    time_in_force: str
    reduce_only: bool
    client_id: str | None
    result_response: bool


@dataclass(frozen=True, slots=True)
class NewAlgo:
    symbol: str
    side: str
    type: str
    position_side: str
    qty: Decimal
    trigger_price: Decimal
    price: Decimal
    time_in_force: str
    working_type: str
    close_position: bool
    reduce_only: bool
    price_protect: bool
    activate_price: Decimal | None
    callback_rate: Decimal | None
    client_algo_id: str | None


def require(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise rj.mandatory_param(name)
    return value


def parse_bool(params: Params, name: str) -> bool:
    value = params.get(name)
    if value is None:
        return False
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise rj.invalid_param(name)


def _decimal(params: Params, name: str, *, required: bool, label: str | None = None) -> Decimal | None:
    text = params.get(name)
    if text is None or text == "":
        if required:
            raise rj.mandatory_param(label or name)
        return None
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise rj.mandatory_param(label or name) from exc
    if not value.is_finite():
        raise rj.mandatory_param(label or name)
    return value


def _check_qty(qty: Decimal, spec: SymbolSpec) -> None:
    if qty <= 0:
        raise rj.quantity_not_positive()
    if qty % spec.step_size != 0:
        raise rj.bad_precision()


def _check_price(price: Decimal, spec: SymbolSpec) -> None:
    if price <= 0 or price % spec.tick_size != 0:
        raise rj.tick_size()


def _common(params: Params, specs: dict[str, SymbolSpec], dual_side: bool) -> tuple[SymbolSpec, str, str]:
    symbol = require(params, "symbol")
    spec = specs.get(symbol)
    if spec is None:
        raise rj.invalid_symbol()
    side = require(params, "side")
    if side not in ("BUY", "SELL"):
        raise rj.invalid_side()
    position_side = params.get("positionSide", "BOTH")
    if position_side not in ("BOTH", "LONG", "SHORT"):
        raise rj.invalid_param("positionSide")
    if (position_side == "BOTH") == dual_side:
        raise rj.position_side_mismatch()
    return spec, side, position_side


def _client_id(params: Params, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not _CLIENT_ID.match(value):
        raise rj.invalid_client_id()
    return value


def _price(params: Params, spec: SymbolSpec, *, wanted: bool) -> Decimal:
    """``price`` of a type that rests at one (required, on the tick), else refused when sent."""
    if not wanted:
        if "price" in params:
            raise rj.not_required_param("price")
        return Decimal(0)
    price = _decimal(params, "price", required=True)
    assert price is not None
    _check_price(price, spec)
    return price


def parse_new_order(params: Params, specs: dict[str, SymbolSpec], dual_side: bool) -> NewOrder:
    """``POST /fapi/v1/order``: MARKET or LIMIT; conditional types answer -4120 (docs/BINANCE.md §3.1)."""
    order_type = require(params, "type")
    spec, side, position_side = _common(params, specs, dual_side)
    if order_type in ALGO_TYPES:
        raise rj.stop_order_switch_algo()
    if order_type not in ("MARKET", "LIMIT"):
        raise rj.invalid_type()
    reduce_only = parse_bool(params, "reduceOnly")
    if reduce_only and dual_side:
        raise rj.not_required_param("reduceOnly")
    if parse_bool(params, "closePosition"):
        raise rj.not_required_param("closePosition")
    qty = _decimal(params, "quantity", required=True)
    assert qty is not None
    _check_qty(qty, spec)
    tif = "GTC"
    if order_type == "LIMIT":
        tif = require(params, "timeInForce")
        if tif not in ("GTC", "IOC", "FOK", "GTX"):
            raise rj.invalid_param("timeInForce")
    price = _price(params, spec, wanted=order_type == "LIMIT")
    resp_type = params.get("newOrderRespType", "ACK")
    if resp_type not in ("ACK", "RESULT"):
        raise rj.invalid_param("newOrderRespType")
    return NewOrder(spec.symbol, side, order_type, position_side, qty, price, tif, reduce_only,
                    _client_id(params, "newClientOrderId"), resp_type == "RESULT")


def parse_new_algo(params: Params, specs: dict[str, SymbolSpec], dual_side: bool) -> NewAlgo:
    """``POST /fapi/v1/algoOrder`` (docs/BINANCE.md §3.3)."""
    algo_type = require(params, "algoType")
    if algo_type != "CONDITIONAL":
        raise rj.invalid_param("algoType")
    order_type = require(params, "type")
    spec, side, position_side = _common(params, specs, dual_side)
    if order_type not in ALGO_TYPES:
        raise rj.invalid_type()
    trailing = order_type == "TRAILING_STOP_MARKET"
    close_position = parse_bool(params, "closePosition")
    reduce_only = parse_bool(params, "reduceOnly")
    if reduce_only and dual_side:
        raise rj.not_required_param("reduceOnly")
    qty = _decimal(params, "quantity", required=False)
    if close_position:
        if order_type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise rj.close_position_invalid(order_type)
        if qty is not None:
            raise rj.close_position_with_quantity()
        if reduce_only:
            raise rj.not_required_param("reduceOnly")
        # Hedge mode: a close-all must close — no BUY on LONG, no SELL on SHORT.
        if (position_side, side) in (("LONG", "BUY"), ("SHORT", "SELL")):
            raise rj.close_position_invalid(order_type)
        qty = Decimal(0)
    else:
        if qty is None:
            raise rj.mandatory_param("quantity")
        _check_qty(qty, spec)
    trigger: Decimal | None
    if trailing:
        trigger = Decimal(0)
    else:
        # Binance's text spells it in lowercase (ccxt PR#29688).
        trigger = _decimal(params, "triggerPrice", required=True, label="triggerprice")
        assert trigger is not None
        _check_price(trigger, spec)
    price = _price(params, spec, wanted=order_type in ("STOP", "TAKE_PROFIT"))
    activate = callback = None
    if trailing:
        callback = _decimal(params, "callbackRate", required=True)
        assert callback is not None
        if not Decimal("0.1") <= callback <= Decimal(20):
            raise rj.invalid_param("callbackRate")
        activate = _decimal(params, "activatePrice", required=False)
        if activate is not None:
            _check_price(activate, spec)
    tif = params.get("timeInForce", "GTC")
    if tif not in ("GTC", "IOC", "FOK", "GTX"):
        raise rj.invalid_param("timeInForce")
    working_type = params.get("workingType", "CONTRACT_PRICE")
    if working_type not in ("MARK_PRICE", "CONTRACT_PRICE"):
        raise rj.invalid_param("workingType")
    return NewAlgo(spec.symbol, side, order_type, position_side, qty, trigger, price, tif,
                   working_type, close_position, reduce_only, parse_bool(params, "priceProtect"),
                   activate, callback, _client_id(params, "clientAlgoId"))
