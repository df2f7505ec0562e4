"""Re-create a stop the reaper cancelled when its position opened meanwhile (the reaper's race).

Rules of this module (pure; ``reaper_task.py`` does the I/O):
1. The recipe is the order object Binance returned for the order just before the cancel
   (``GET /fapi/v1/algoOrder`` or ``GET /fapi/v1/order``, docs/BINANCE.md §3.4): the new order has
   the same type, side, position side, trigger/stop price, limit price, working type, price
   protection, time in force, trailing parameters, and either ``closePosition`` or the same
   ``quantity`` with the same ``reduceOnly``. Only the client id differs: it starts with
   ``RESTORE_CLIENT_ID_PREFIX`` (ours, so the reaper may remove it again once it is orphaned).
2. A recipe that cannot be replayed exactly (an unknown type, a missing field, a regular order
   that is not a resting LIMIT) raises ``RestoreImpossible`` with the reason: never a guess.
3. ``reduces`` tells whether an order of that side can reduce a position of that signed amount:
   a stop that could never have protected the reopened position is not restored.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from watchdog.core.reaper import RESTORE_CLIENT_ID_PREFIX

__all__ = ["RESTORE_CLIENT_ID_PREFIX", "RestoreImpossible", "new_client_id", "reduces",
           "restore_params"]

_ALGO_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET")
_MAX_CLIENT_ID = 36  # Binance: ^[.A-Z:/a-z0-9_-]{1,36}$


class RestoreImpossible(ValueError):
    """The order object does not say enough to place an equivalent order."""


def new_client_id(old_order_id: int) -> str:
    """Ours, and unique: an order is cancelled (and so restored) at most once."""
    room = _MAX_CLIENT_ID - len(RESTORE_CLIENT_ID_PREFIX)
    return f"{RESTORE_CLIENT_ID_PREFIX}{str(old_order_id)[-room:]}"


def reduces(order_side: str, amount: Decimal) -> bool:
    """A SELL reduces a long (amount > 0), a BUY a short (amount < 0; hedge SHORT rows too)."""
    return (order_side == "SELL" and amount > 0) or (order_side == "BUY" and amount < 0)


def restore_params(raw: Mapping[str, object], *, is_algo: bool,
                   client_id: str) -> dict[str, str]:
    """The request parameters of an order equivalent to ``raw`` (rule 1)."""
    return _algo(raw, client_id) if is_algo else _regular(raw, client_id)


def _text(raw: Mapping[str, object], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value:
        raise RestoreImpossible(f"order object has no {name}: {value!r}")
    return value


def _flag(raw: Mapping[str, object], name: str) -> bool:
    value = raw.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise RestoreImpossible(f"order object has a bad {name}: {value!r}")


def _positive(raw: Mapping[str, object], name: str) -> str | None:
    """The decimal text of ``name`` when it is a positive number, else None (absent/0/"")."""
    value = raw.get(name)
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RestoreImpossible(f"order object has a bad {name}: {value!r}") from None
    return str(value) if number > 0 else None


def _common(raw: Mapping[str, object], order_type: str) -> dict[str, str]:
    params = {"symbol": _text(raw, "symbol"), "side": _text(raw, "side"), "type": order_type,
              "positionSide": _text(raw, "positionSide")}
    if raw.get("workingType"):
        params["workingType"] = _text(raw, "workingType")
    if raw.get("timeInForce"):
        params["timeInForce"] = _text(raw, "timeInForce")
    return params


def _size(params: dict[str, str], raw: Mapping[str, object], qty_field: str) -> None:
    if _flag(raw, "closePosition"):
        params["closePosition"] = "true"
        return
    qty = _positive(raw, qty_field)
    if qty is None:
        raise RestoreImpossible(f"order object has no {qty_field} and is not closePosition")
    params["quantity"] = qty
    if _flag(raw, "reduceOnly"):
        params["reduceOnly"] = "true"


def _algo(raw: Mapping[str, object], client_id: str) -> dict[str, str]:
    order_type = _text(raw, "orderType")
    if order_type not in _ALGO_TYPES:
        raise RestoreImpossible(f"algo type {order_type!r} is not a conditional order type")
    params = {"algoType": "CONDITIONAL", **_common(raw, order_type)}
    if order_type == "TRAILING_STOP_MARKET":
        rate = _positive(raw, "callbackRate")
        if rate is None:
            raise RestoreImpossible("trailing stop without callbackRate")
        params["callbackRate"] = rate
        activate = _positive(raw, "activatePrice")
        if activate is not None:
            params["activatePrice"] = activate
    else:
        trigger = _positive(raw, "triggerPrice")
        if trigger is None:
            raise RestoreImpossible("conditional order without triggerPrice")
        params["triggerPrice"] = trigger
    if order_type in ("STOP", "TAKE_PROFIT"):
        price = _positive(raw, "price")
        if price is None:
            raise RestoreImpossible(f"{order_type} without a limit price")
        params["price"] = price
    if _flag(raw, "priceProtect"):
        params["priceProtect"] = "TRUE"
    _size(params, raw, "quantity")
    params["clientAlgoId"] = client_id
    return params


def _regular(raw: Mapping[str, object], client_id: str) -> dict[str, str]:
    order_type = _text(raw, "type")
    if order_type != "LIMIT":
        # A MARKET child fills at once; conditional types live on the algo endpoint (docs/BINANCE.md §3.1).
        raise RestoreImpossible(f"regular order of type {order_type!r}: only a resting LIMIT "
                                f"can be re-created as it was")
    params = _common(raw, order_type)
    params.pop("workingType", None)
    price = _positive(raw, "price")
    if price is None:
        raise RestoreImpossible("LIMIT order without a price")
    params["price"] = price
    params.setdefault("timeInForce", "GTC")
    executed = Decimal(str(raw.get("executedQty") or 0))
    original = _positive(raw, "origQty")
    if original is None:
        raise RestoreImpossible("LIMIT order without origQty")
    remaining = Decimal(original) - executed
    if remaining <= 0:
        raise RestoreImpossible("LIMIT order already fully executed")
    params["quantity"] = f"{remaining.normalize():f}"
    if _flag(raw, "reduceOnly"):
        params["reduceOnly"] = "true"
    params["newClientOrderId"] = client_id
    return params
