"""The canary order on the wire (PURE): what is placed, read from ``exchangeInfo`` once.

The canary (core/canary.py) is a reduce-only BUY STOP_MARKET of the symbol's smallest quantity
with its trigger at the symbol's ``maxPrice`` (PRICE_FILTER): as far from the market as Binance
allows, so it cannot trigger in practice; were it ever to, reduce-only BUY of the minimum
quantity could only shrink a short position by that much. Not ``closePosition``: Binance allows
one close-all stop per direction (-4130), and the canary must never stand in a bot's way.
Hedge mode is not supported (``reduceOnly`` is refused there, docs/BINANCE.md §3.3): the placement is then
rejected and reported (``canary_failed``), never taken for blindness.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from watchdog.errors import WireFormatError

__all__ = ["CanarySpec", "canary_params", "parse_canary_spec"]

_EVENT = "exchangeInfo"


@dataclass(frozen=True, slots=True)
class CanarySpec:
    """What the canary order of ``symbol`` carries: trigger (maxPrice) and quantity (minQty)."""

    symbol: str
    trigger_price: Decimal
    quantity: Decimal


def _decimal(value: object, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise WireFormatError(_EVENT, field, "not a decimal", repr(value)) from None
    if not number.is_finite() or number <= 0:
        raise WireFormatError(_EVENT, field, "not a positive number", repr(value))
    return number


def parse_canary_spec(data: Any, symbol: str) -> CanarySpec:
    """The canary's trigger and quantity for ``symbol`` from a ``GET /fapi/v1/exchangeInfo``
    body. Raises ``WireFormatError`` when the symbol or its filters are missing or odd."""
    rows = data.get("symbols") if isinstance(data, Mapping) else None
    if not isinstance(rows, list):
        raise WireFormatError(_EVENT, "symbols", "missing or not a list", repr(data)[:200])
    for row in rows:
        if isinstance(row, Mapping) and row.get("symbol") == symbol:
            filters = {f.get("filterType"): f for f in row.get("filters") or []
                       if isinstance(f, Mapping)}
            price_filter = filters.get("PRICE_FILTER")
            lot = filters.get("MARKET_LOT_SIZE") or filters.get("LOT_SIZE")
            if price_filter is None or lot is None:
                raise WireFormatError(_EVENT, "filters", f"{symbol}: no PRICE_FILTER/LOT_SIZE",
                                      repr(row.get("filters"))[:200])
            max_price = _decimal(price_filter.get("maxPrice"), "maxPrice")
            tick = _decimal(price_filter.get("tickSize"), "tickSize")
            step = _decimal(lot.get("stepSize"), "stepSize")
            quantity = max(_decimal(lot.get("minQty"), "minQty"), step)
            trigger = (max_price // tick) * tick  # on the tick grid, never above maxPrice
            return CanarySpec(symbol, trigger.normalize(), quantity.normalize())
    raise WireFormatError(_EVENT, "symbols", f"symbol {symbol} not listed", "")


def canary_params(spec: CanarySpec, client_id: str) -> dict[str, str]:
    """The ``POST /fapi/v1/algoOrder`` parameters of one canary (docs/BINANCE.md §3.3)."""
    return {"algoType": "CONDITIONAL", "symbol": spec.symbol, "side": "BUY",
            "type": "STOP_MARKET", "triggerPrice": format(spec.trigger_price, "f"),
            "quantity": format(spec.quantity, "f"), "reduceOnly": "true",
            "workingType": "MARK_PRICE", "clientAlgoId": client_id}
