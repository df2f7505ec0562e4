"""Regular and algo (conditional) orders: their state, REST shapes and trigger rules. Pure.

Trigger rules (docs/BINANCE.md §3.3): STOP/STOP_MARKET BUY fires when price ≥ trigger, SELL when
≤; TAKE_PROFIT(_MARKET) BUY when ≤, SELL when ≥. A trailing stop activates when the price
reaches ``activatePrice`` (SELL: ≥, BUY: ≤; immediately when absent), then tracks the best price
and fires after a ``callbackRate`` % retracement from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from watchdog.sim.market import SymbolSpec

__all__ = [
    "ALGO_TYPES",
    "AlgoOrder",
    "Order",
    "algo_rest",
    "order_rest",
    "trailing_step",
    "would_trigger",
]

ALGO_TYPES = frozenset({"STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT",
                        "TRAILING_STOP_MARKET"})
ZERO = Decimal(0)


@dataclass(slots=True)
class Order:
    """A regular order in the matching engine (MARKET, LIMIT, or an algo's child)."""

    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    price: Decimal
    position_side: str
    reduce_only: bool
    close_position: bool
    time_ms: int
    update_time_ms: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    orig_type: str = ""
    stop_price: Decimal = ZERO
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    algo_id: int | None = None  # set on a triggered algo's child
    activate_price: Decimal | None = None  # a trailing stop's child: "AP" / "cr" in events
    callback_rate: Decimal | None = None

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(slots=True)
class AlgoOrder:
    """A conditional order held by the Algo Service until it triggers."""

    algo_id: int
    client_algo_id: str
    order_type: str
    symbol: str
    side: str
    position_side: str
    time_in_force: str
    qty: Decimal
    trigger_price: Decimal
    price: Decimal
    working_type: str
    close_position: bool
    price_protect: bool
    reduce_only: bool
    create_time_ms: int
    update_time_ms: int
    activate_price: Decimal | None = None
    callback_rate: Decimal | None = None
    status: str = "NEW"
    actual_order_id: int | None = None
    actual_type: str = ""
    actual_price: Decimal = ZERO  # the child's average fill price, once it is done
    actual_qty: Decimal = ZERO
    trigger_time_ms: int = 0
    activated: bool = False
    extreme: Decimal | None = None  # best price since a trailing stop activated
    reject_reason: str = ""
    history: list[str] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """Counts against the 200 cap and is listed by openAlgoOrders."""
        return self.status == "NEW"

    @property
    def child_type(self) -> str:
        return "LIMIT" if self.order_type in ("STOP", "TAKE_PROFIT") else "MARKET"


def would_trigger(order_type: str, side: str, trigger: Decimal, price: Decimal) -> bool:
    """True when a STOP*/TAKE_PROFIT* order with ``trigger`` fires at ``price``."""
    stop = order_type in ("STOP", "STOP_MARKET")
    if side == "BUY":
        return price >= trigger if stop else price <= trigger
    return price <= trigger if stop else price >= trigger


def trailing_step(algo: AlgoOrder, price: Decimal) -> tuple[bool, bool]:
    """Advance a trailing stop with a new ``price``; returns (just_activated, fires).

    Mutates ``algo.activated``/``algo.extreme`` (the model owns the object).
    """
    just_activated = False
    if not algo.activated:
        reached = (algo.activate_price is None
                   or (price >= algo.activate_price if algo.side == "SELL" else price <= algo.activate_price))
        if not reached:
            return False, False
        algo.activated = True
        algo.extreme = price
        just_activated = True
    assert algo.extreme is not None
    rate = (algo.callback_rate or ZERO) / Decimal(100)
    if algo.side == "SELL":
        algo.extreme = max(algo.extreme, price)
        fires = price <= algo.extreme * (1 - rate)
    else:
        algo.extreme = min(algo.extreme, price)
        fires = price >= algo.extreme * (1 + rate)
    return just_activated, fires


def order_rest(order: Order, spec: SymbolSpec, *, with_time: bool) -> dict[str, object]:
    """The order object of ``POST/GET/DELETE /fapi/v1/order`` and ``openOrders``."""
    row: dict[str, object] = {
        "orderId": order.order_id, "symbol": order.symbol, "status": order.status,
        "clientOrderId": order.client_id, "price": spec.fmt_price(order.price),
        "avgPrice": spec.fmt_price(order.avg_price) if order.executed_qty else "0.00",
        "origQty": spec.fmt_qty(order.qty), "executedQty": spec.fmt_qty(order.executed_qty),
        "cumQty": spec.fmt_qty(order.executed_qty), "cumQuote": f"{order.cum_quote:f}",
        "timeInForce": order.time_in_force, "type": order.type, "reduceOnly": order.reduce_only,
        "closePosition": order.close_position, "side": order.side,
        "positionSide": order.position_side, "stopPrice": spec.fmt_price(order.stop_price),
        "workingType": order.working_type, "priceProtect": order.price_protect,
        "origType": order.orig_type or order.type, "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
        "updateTime": order.update_time_ms,
    }
    if with_time:
        row["time"] = order.time_ms
    return row


def algo_rest(algo: AlgoOrder, spec: SymbolSpec) -> dict[str, object]:
    """The algo order object (docs/BINANCE.md §3.4); note ``orderType``, not ``type``."""
    trailing = algo.order_type == "TRAILING_STOP_MARKET"
    row: dict[str, object] = {
        "algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "algoType": "CONDITIONAL",
        "orderType": algo.order_type, "symbol": algo.symbol, "side": algo.side,
        "positionSide": algo.position_side, "timeInForce": algo.time_in_force,
        "quantity": spec.fmt_qty(algo.qty), "algoStatus": algo.status,
        "actualOrderId": str(algo.actual_order_id) if algo.actual_order_id else "",
        "actualPrice": spec.fmt_price(algo.actual_price), "actualType": algo.actual_type,
        "actualQty": spec.fmt_qty(algo.actual_qty),
        "triggerPrice": spec.fmt_price(algo.trigger_price), "price": spec.fmt_price(algo.price),
        "icebergQuantity": None, "tpOrderType": "", "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": algo.working_type, "priceMatch": "NONE",
        "closePosition": algo.close_position, "priceProtect": algo.price_protect,
        "reduceOnly": algo.reduce_only, "createTime": algo.create_time_ms,
        "updateTime": algo.update_time_ms, "triggerTime": algo.trigger_time_ms, "goodTillDate": 0,
    }
    if trailing:
        row["activatePrice"] = spec.fmt_price(algo.activate_price) if algo.activate_price else ""
        row["callbackRate"] = f"{algo.callback_rate:f}" if algo.callback_rate is not None else ""
    return row
