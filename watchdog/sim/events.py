"""User-data-stream payloads in Binance's exact shapes (docs/BINANCE.md §2). Pure builders.

Decimals are strings, times are integer ms, booleans are JSON booleans — except
``listenKeyExpired``'s ``E``, which Binance sends as a *string* (go-binance#510; the docs'
example for options/portfolio margin shows the same).
"""

from __future__ import annotations

from decimal import Decimal

from watchdog.sim.market import SymbolSpec
from watchdog.sim.orders import ZERO, AlgoOrder, Order

__all__ = [
    "Fill",
    "account_update",
    "algo_update",
    "listen_key_expired",
    "order_trade_update",
    "position_row",
    "trade_lite",
]

Event = dict[str, object]


class Fill:
    """One execution of an order: what ORDER_TRADE_UPDATE x=TRADE and TRADE_LITE report."""

    __slots__ = ("commission", "maker", "price", "qty", "realized_pnl", "trade_id")

    def __init__(self, trade_id: int, qty: Decimal, price: Decimal, *, maker: bool,
                 commission: Decimal, realized_pnl: Decimal) -> None:
        self.trade_id = trade_id
        self.qty = qty
        self.price = price
        self.maker = maker
        self.commission = commission
        self.realized_pnl = realized_pnl


def order_trade_update(order: Order, spec: SymbolSpec, *, execution: str, now_ms: int,
                       fill: Fill | None = None, expiry_reason: int = 0) -> Event:
    """``ORDER_TRADE_UPDATE`` for ``order`` after ``execution`` (NEW, TRADE, CANCELED, EXPIRED)."""
    o: dict[str, object] = {
        "s": order.symbol, "c": order.client_id, "S": order.side, "o": order.type,
        "f": order.time_in_force, "q": spec.fmt_qty(order.qty), "p": spec.fmt_price(order.price),
        "ap": spec.fmt_price(order.avg_price), "sp": spec.fmt_price(order.stop_price),
        "x": execution, "X": order.status, "i": order.order_id,
        "l": spec.fmt_qty(fill.qty if fill else ZERO), "z": spec.fmt_qty(order.executed_qty),
        "L": spec.fmt_price(fill.price if fill else ZERO),
    }
    if fill is not None:
        # "Commission Asset, will not push if no commission" (Event-Order-Update).
        o["N"] = "USDT"
        o["n"] = f"{fill.commission:.8f}"
    o.update({
        "T": now_ms, "t": fill.trade_id if fill else 0, "b": "0", "a": "0",
        "m": fill.maker if fill else False, "R": order.reduce_only, "wt": order.working_type,
        "ot": order.orig_type or order.type, "ps": order.position_side, "cp": order.close_position,
        "pP": order.price_protect,
    })
    if order.orig_type == "TRAILING_STOP_MARKET":
        # "Activation Price, only pushed with TRAILING_STOP_MARKET order" (Event-Order-Update).
        o["AP"] = spec.fmt_price(order.activate_price or ZERO)
        o["cr"] = f"{order.callback_rate or ZERO:f}"
    o.update({
        "si": 0, "ss": 0,
        "rp": f"{fill.realized_pnl:.8f}" if fill else "0",
        "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0, "er": str(expiry_reason),
    })
    return {"e": "ORDER_TRADE_UPDATE", "E": now_ms, "T": now_ms, "o": o}


def trade_lite(order: Order, spec: SymbolSpec, fill: Fill, now_ms: int) -> Event:
    """``TRADE_LITE`` (only for TRADE executions)."""
    return {
        "e": "TRADE_LITE", "E": now_ms, "T": now_ms, "s": order.symbol,
        "q": spec.fmt_qty(order.qty), "p": spec.fmt_price(order.price), "m": fill.maker,
        "c": order.client_id, "S": order.side, "L": spec.fmt_price(fill.price),
        "l": spec.fmt_qty(fill.qty), "t": fill.trade_id, "i": order.order_id,
    }


def position_row(symbol: str, position_side: str, amount: Decimal, entry: Decimal,
                 realized: Decimal, unrealized: Decimal, spec: SymbolSpec) -> dict[str, object]:
    """One element of ``ACCOUNT_UPDATE.a.P`` (cross margin, so ``iw`` is 0)."""
    return {
        "s": symbol, "pa": spec.fmt_qty(amount), "ep": spec.fmt_price(entry),
        "bep": spec.fmt_price(entry), "cr": f"{realized:.8f}", "up": f"{unrealized:.8f}",
        "mt": "cross", "iw": "0", "ps": position_side,
    }


def account_update(reason: str, wallet: Decimal, balance_change: Decimal,
                   positions: list[dict[str, object]], now_ms: int) -> Event:
    """``ACCOUNT_UPDATE``; only the changed positions are in ``P`` (Binance's rule)."""
    return {
        "e": "ACCOUNT_UPDATE", "E": now_ms, "T": now_ms,
        "a": {"m": reason,
              "B": [{"a": "USDT", "wb": f"{wallet:.8f}", "cw": f"{wallet:.8f}",
                     "bc": f"{balance_change:.8f}"}],
              "P": positions},
    }


def algo_update(algo: AlgoOrder, spec: SymbolSpec, now_ms: int, *, avg_price: Decimal = ZERO,
                executed_qty: Decimal = ZERO) -> Event:
    """``ALGO_UPDATE`` for the algo's current status (docs/BINANCE.md §2.2)."""
    o: dict[str, object] = {
        "caid": algo.client_algo_id, "aid": algo.algo_id, "at": "CONDITIONAL",
        "o": algo.order_type, "s": algo.symbol, "S": algo.side, "ps": algo.position_side,
        "f": algo.time_in_force, "q": spec.fmt_qty(algo.qty), "X": algo.status,
        "ai": str(algo.actual_order_id) if algo.actual_order_id else "",
        "ap": spec.fmt_price(avg_price), "aq": spec.fmt_qty(executed_qty),
        "act": algo.actual_type or "0", "tp": spec.fmt_price(algo.trigger_price),
        "p": spec.fmt_price(algo.price), "V": "EXPIRE_MAKER", "wt": algo.working_type,
        "pm": "NONE", "cp": algo.close_position, "pP": algo.price_protect, "R": algo.reduce_only,
        "tt": algo.trigger_time_ms, "gtd": 0, "rm": algo.reject_reason,
    }
    if algo.order_type == "TRAILING_STOP_MARKET":
        o["ia"] = algo.activated
    return {"e": "ALGO_UPDATE", "T": now_ms, "E": now_ms, "o": o}


def listen_key_expired(listen_key: str, now_ms: int) -> Event:
    return {"e": "listenKeyExpired", "E": str(now_ms), "listenKey": listen_key}
