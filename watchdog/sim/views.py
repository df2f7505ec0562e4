"""REST documents rendered from an :class:`AccountView`: positionRisk v2/v3, account v2/v3,
openOrders, openAlgoOrders, balance, userTrades. Pure; field lists from docs/BINANCE.md §4.1 and
the official SDK's models.
"""

from __future__ import annotations

from decimal import Decimal

from watchdog.sim.account import AccountView, Position, Trade
from watchdog.sim.market import SymbolSpec
from watchdog.sim.orders import ZERO, algo_rest, order_rest

__all__ = [
    "account_v2",
    "account_v3",
    "balance",
    "open_algo_orders",
    "open_orders",
    "position_risk_v2",
    "position_risk_v3",
    "user_trades",
]

Specs = dict[str, SymbolSpec]
_DEFAULT_LEVERAGE = 20


def _sides(view: AccountView) -> tuple[str, ...]:
    return ("LONG", "SHORT") if view.dual_side else ("BOTH",)


def _position(view: AccountView, symbol: str, side: str) -> Position:
    for position in view.positions:
        if position.symbol == symbol and position.position_side == side:
            return position
    return Position(symbol, side)


def _numbers(view: AccountView, position: Position, spec: SymbolSpec) -> dict[str, object]:
    mark = view.marks[position.symbol]
    notional = position.amount * mark
    leverage = view.leverage.get(position.symbol, _DEFAULT_LEVERAGE)
    initial = abs(notional) / leverage
    return {
        "positionAmt": spec.fmt_qty(position.amount), "entryPrice": spec.fmt_price(position.entry),
        "breakEvenPrice": spec.fmt_price(position.entry), "markPrice": f"{mark:f}",
        "unRealizedProfit": f"{position.unrealized(mark):.8f}", "liquidationPrice": "0",
        "notional": f"{notional:.8f}", "isolatedWallet": "0", "initialMargin": f"{initial:.8f}",
        "maintMargin": f"{abs(notional) * Decimal('0.005'):.8f}",
    }


def position_risk_v2(view: AccountView, specs: Specs, symbol: str | None) -> list[dict[str, object]]:
    """Every listed symbol, flat ones too (``positionAmt`` "0", ``updateTime`` 0)."""
    rows: list[dict[str, object]] = []
    for spec in specs.values():
        if symbol is not None and spec.symbol != symbol:
            continue
        for side in _sides(view):
            position = _position(view, spec.symbol, side)
            numbers = _numbers(view, position, spec)
            rows.append({
                "symbol": spec.symbol, "positionAmt": numbers["positionAmt"],
                "entryPrice": numbers["entryPrice"], "breakEvenPrice": numbers["breakEvenPrice"],
                "markPrice": numbers["markPrice"], "unRealizedProfit": numbers["unRealizedProfit"],
                "liquidationPrice": "0",
                "leverage": str(view.leverage.get(spec.symbol, _DEFAULT_LEVERAGE)),
                "maxNotionalValue": "500000", "marginType": "cross", "isolatedMargin": "0.00000000",
                "isAutoAddMargin": "false", "positionSide": side, "notional": numbers["notional"],
                "isolatedWallet": "0", "updateTime": position.update_time_ms,
            })
    return rows


def position_risk_v3(view: AccountView, specs: Specs, symbol: str | None) -> list[dict[str, object]]:
    """"Only symbol that has position or open orders will be returned" (docs/BINANCE.md §4.1). Open *algo*
    orders do not count here (UNCONFIRMED on Binance; the strict reading)."""
    rows: list[dict[str, object]] = []
    for spec in specs.values():
        if symbol is not None and spec.symbol != symbol:
            continue
        has_position = any(p.amount for p in view.positions if p.symbol == spec.symbol)
        has_orders = any(o.symbol == spec.symbol for o in view.open_orders)
        if not (has_position or has_orders):
            continue
        for side in _sides(view):
            position = _position(view, spec.symbol, side)
            numbers = _numbers(view, position, spec)
            rows.append({
                "symbol": spec.symbol, "positionSide": side, **{k: numbers[k] for k in (
                    "positionAmt", "entryPrice", "breakEvenPrice", "markPrice", "unRealizedProfit",
                    "liquidationPrice")},
                "isolatedMargin": "0", "notional": numbers["notional"], "marginAsset": "USDT",
                "isolatedWallet": "0", "initialMargin": numbers["initialMargin"],
                "maintMargin": numbers["maintMargin"],
                "positionInitialMargin": numbers["initialMargin"], "openOrderInitialMargin": "0",
                "adl": 0, "bidNotional": "0", "askNotional": "0", "updateTime": position.update_time_ms,
            })
    return rows


def _totals(view: AccountView) -> dict[str, Decimal]:
    unrealized = sum((p.unrealized(view.marks[p.symbol]) for p in view.positions), ZERO)
    initial = sum((abs(p.amount * view.marks[p.symbol]) / view.leverage.get(p.symbol, _DEFAULT_LEVERAGE)
                   for p in view.positions), ZERO)
    return {"wallet": view.wallet, "unrealized": unrealized, "initial": initial,
            "available": view.wallet + unrealized - initial}


def account_v3(view: AccountView, specs: Specs) -> dict[str, object]:
    t = _totals(view)
    asset = {
        "asset": "USDT", "walletBalance": f"{t['wallet']:.8f}", "unrealizedProfit": f"{t['unrealized']:.8f}",
        "marginBalance": f"{t['wallet'] + t['unrealized']:.8f}", "maintMargin": "0.00000000",
        "initialMargin": f"{t['initial']:.8f}", "positionInitialMargin": f"{t['initial']:.8f}",
        "openOrderInitialMargin": "0.00000000", "crossWalletBalance": f"{t['wallet']:.8f}",
        "crossUnPnl": f"{t['unrealized']:.8f}", "availableBalance": f"{t['available']:.8f}",
        "maxWithdrawAmount": f"{t['available']:.8f}", "updateTime": view.time_ms,
    }
    positions = []
    for p in view.positions:
        if not p.amount:
            continue
        numbers = _numbers(view, p, specs[p.symbol])
        positions.append({
            "symbol": p.symbol, "positionSide": p.position_side, "positionAmt": numbers["positionAmt"],
            "unrealizedProfit": numbers["unRealizedProfit"], "isolatedMargin": "0",
            "notional": numbers["notional"], "isolatedWallet": "0",
            "initialMargin": numbers["initialMargin"], "maintMargin": numbers["maintMargin"],
            "updateTime": p.update_time_ms,
        })
    return {
        "totalInitialMargin": asset["initialMargin"], "totalMaintMargin": "0.00000000",
        "totalWalletBalance": asset["walletBalance"], "totalUnrealizedProfit": asset["unrealizedProfit"],
        "totalMarginBalance": asset["marginBalance"], "totalPositionInitialMargin": asset["initialMargin"],
        "totalOpenOrderInitialMargin": "0.00000000", "totalCrossWalletBalance": asset["walletBalance"],
        "totalCrossUnPnl": asset["unrealizedProfit"], "availableBalance": asset["availableBalance"],
        "maxWithdrawAmount": asset["maxWithdrawAmount"], "assets": [asset], "positions": positions,
    }


def account_v2(view: AccountView, specs: Specs) -> dict[str, object]:
    """v2 adds account flags and lists every symbol's positions (with leverage, entry price)."""
    doc = account_v3(view, specs)
    rows = []
    for spec in specs.values():
        for side in _sides(view):
            p = _position(view, spec.symbol, side)
            numbers = _numbers(view, p, spec)
            rows.append({
                "symbol": spec.symbol, "initialMargin": numbers["initialMargin"],
                "maintMargin": numbers["maintMargin"], "unrealizedProfit": numbers["unRealizedProfit"],
                "positionInitialMargin": numbers["initialMargin"], "openOrderInitialMargin": "0",
                "leverage": str(view.leverage.get(spec.symbol, _DEFAULT_LEVERAGE)), "isolated": False,
                "entryPrice": numbers["entryPrice"], "breakEvenPrice": numbers["breakEvenPrice"],
                "maxNotional": "500000", "bidNotional": "0", "askNotional": "0", "positionSide": side,
                "positionAmt": numbers["positionAmt"], "updateTime": p.update_time_ms,
            })
    return {"feeTier": 0, "feeBurn": True, "canTrade": True, "canDeposit": True, "canWithdraw": True,
            "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1,
            **{k: v for k, v in doc.items() if k != "positions"}, "positions": rows}


def open_orders(view: AccountView, specs: Specs, symbol: str | None) -> list[dict[str, object]]:
    return [order_rest(o, specs[o.symbol], with_time=True)
            for o in sorted(view.open_orders, key=lambda o: o.order_id)
            if symbol is None or o.symbol == symbol]


def open_algo_orders(view: AccountView, specs: Specs, symbol: str | None) -> list[dict[str, object]]:
    return [algo_rest(a, specs[a.symbol])
            for a in sorted(view.open_algos, key=lambda a: a.algo_id)
            if symbol is None or a.symbol == symbol]


def balance(view: AccountView, account_alias: str) -> list[dict[str, object]]:
    """``GET /fapi/v2/balance`` and ``/fapi/v3/balance``: one row per asset (USDT only here)."""
    t = _totals(view)
    return [{
        "accountAlias": account_alias, "asset": "USDT", "balance": f"{t['wallet']:.8f}",
        "crossWalletBalance": f"{t['wallet']:.8f}", "crossUnPnl": f"{t['unrealized']:.8f}",
        "availableBalance": f"{t['available']:.8f}", "maxWithdrawAmount": f"{t['available']:.8f}",
        "marginAvailable": True, "updateTime": view.time_ms,
    }]


def user_trades(trades: list[Trade], spec: SymbolSpec, *, order_id: int | None, start_ms: int | None,
                end_ms: int | None, from_id: int | None, limit: int) -> list[dict[str, object]]:
    """``GET /fapi/v1/userTrades`` of one symbol, oldest first: from ``from_id`` on, or the
    newest ``limit`` in [start, end] (Binance's window rules beyond that are not modelled)."""
    rows = [t for t in trades if t.symbol == spec.symbol
            and (order_id is None or t.order_id == order_id)
            and (from_id is None or t.trade_id >= from_id)
            and (start_ms is None or t.time_ms >= start_ms)
            and (end_ms is None or t.time_ms <= end_ms)]
    rows = rows[:limit] if from_id is not None or start_ms is not None else rows[-limit:]
    return [{
        "buyer": t.side == "BUY", "commission": f"{t.commission:.8f}", "commissionAsset": "USDT",
        "id": t.trade_id, "maker": t.maker, "orderId": t.order_id, "price": spec.fmt_price(t.price),
        "qty": spec.fmt_qty(t.qty), "quoteQty": f"{t.qty * t.price:.8f}",
        "realizedPnl": f"{t.realized_pnl:.8f}", "side": t.side, "positionSide": t.position_side,
        "symbol": t.symbol, "time": t.time_ms,
    } for t in rows]
