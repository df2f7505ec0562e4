"""The venue's order and position history, for checks made from outside (``GET /sim/v1/history``).

Why: a chaos run must prove from the exchange's side that no stop was cancelled while its
position was open, and when a position closed. ``GET /sim/v1/state`` shows only the present;
this journal keeps every position change and every order / algo order status change, in the
order the model committed them, with the position amount at that moment. Pure: the times come
from the caller (the model's clocks); bounded (oldest entries dropped first).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from watchdog.sim.account import Account
from watchdog.sim.market import SymbolSpec
from watchdog.sim.orders import AlgoOrder, Order

__all__ = ["Journal"]

_FINAL = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "FINISHED"})


@dataclass(slots=True)
class _Seen:
    max_order_id: int = 0
    max_algo_id: int = 0
    amounts: dict[tuple[str, str], str] = field(default_factory=dict)
    orders: dict[int, tuple[Order, str]] = field(default_factory=dict)  # not final yet
    algos: dict[int, tuple[AlgoOrder, str]] = field(default_factory=dict)


class Journal:
    """Entries ``{"seq", "t_ms", "wall_ms", "kind": "position"|"order"|"algo", …}``, seq from 1."""

    def __init__(self, maxlen: int = 50_000) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.seq = 0
        self._seen: dict[str, _Seen] = {}

    def observe(self, account: Account, specs: dict[str, SymbolSpec], masked_key: str,
                t_ms: int, wall_ms: int) -> None:
        """Record what changed in ``account`` since the last call (called on every commit)."""
        seen = self._seen.setdefault(account.api_key, _Seen())

        def add(doc: dict[str, Any]) -> None:
            self.seq += 1
            self.entries.append({"seq": self.seq, "t_ms": t_ms, "wall_ms": wall_ms,
                                 "account": masked_key, **doc})

        def amount(symbol: str, position_side: str) -> str:
            position = account.positions.get((symbol, position_side))
            return "0" if position is None or not position.amount else f"{position.amount:f}"

        for (symbol, side), position in account.positions.items():
            now = "0" if not position.amount else f"{position.amount:f}"
            if seen.amounts.get((symbol, side), "0") != now:
                seen.amounts[(symbol, side)] = now
                add({"kind": "position", "symbol": symbol, "position_side": side, "amount": now,
                     "entry_price": f"{position.entry:f}"})
        for key in [k for k in seen.amounts if k not in account.positions]:  # mode switch cleared
            del seen.amounts[key]
        for order in _newer(account.orders, seen.max_order_id):
            seen.orders[order.order_id] = (order, "")
            seen.max_order_id = max(seen.max_order_id, order.order_id)
        for algo in _newer(account.algos, seen.max_algo_id):
            seen.algos[algo.algo_id] = (algo, "")
            seen.max_algo_id = max(seen.max_algo_id, algo.algo_id)
        for order_id, (order, last) in list(seen.orders.items()):
            if order.status != last:
                spec = specs[order.symbol]
                add({"kind": "order", "id": order.order_id, "client_id": order.client_id,
                     "symbol": order.symbol, "position_side": order.position_side,
                     "side": order.side, "type": order.orig_type or order.type, "status": order.status,
                     "qty": spec.fmt_qty(order.qty), "reduce_only": order.reduce_only,
                     "close_position": order.close_position,
                     "trigger_price": spec.fmt_price(order.stop_price) if order.stop_price else "0",
                     "algo_id": order.algo_id,
                     "position_amount": amount(order.symbol, order.position_side)})
                seen.orders[order_id] = (order, order.status)
            if order.status in _FINAL:
                del seen.orders[order_id]
        for algo_id, (algo, last) in list(seen.algos.items()):
            if algo.status != last:
                spec = specs[algo.symbol]
                add({"kind": "algo", "id": algo.algo_id, "client_id": algo.client_algo_id,
                     "symbol": algo.symbol, "position_side": algo.position_side, "side": algo.side,
                     "type": algo.order_type, "status": algo.status, "qty": spec.fmt_qty(algo.qty),
                     "reduce_only": algo.reduce_only, "close_position": algo.close_position,
                     "trigger_price": spec.fmt_price(algo.trigger_price),
                     "position_amount": amount(algo.symbol, algo.position_side)})
                seen.algos[algo_id] = (algo, algo.status)
            if algo.status in _FINAL:
                del seen.algos[algo_id]

    def since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """Entries with ``seq`` greater than the given one, oldest first, at most ``limit``."""
        if not self.entries:
            return []
        start = max(0, seq - self.entries[0]["seq"] + 1)  # seqs are contiguous
        return list(itertools.islice(self.entries, start, start + limit))


def _newer(items: dict[int, Any], after: int) -> list[Any]:
    """Values with an id above ``after`` (ids only grow and dicts keep insertion order)."""
    found = []
    for item in reversed(items.values()):
        if (item.order_id if isinstance(item, Order) else item.algo_id) <= after:
            break
        found.append(item)
    return found[::-1]
