"""Rule 7 for orders: REST sees an order appear or end that the live stream never reported.

Why: blindness judged by positions alone misses a stream that still sends ACCOUNT_UPDATE but
drops ALGO_UPDATE or ORDER_TRADE_UPDATE (issue 12); the reaper and the verdicts live on those.

Rules of this module:
1. Only a change provably made while this connection was up counts: the watch of
   ``blindness.py`` rule 1 (every time here is one exchange clock, ``requested_time_ms`` and
   the rows' own times). A gap forgets everything.
2. *Appeared*: an orders read lists an order created at or after the watch start that the
   stream never mentioned; dated by its creation time.
3. *Ended*: an order listed by an earlier read of this connection whose information was surely
   after the watch start (``requested_time_ms - max_rest_lag_ms``) is missing from a later read
   of its symbol, and the stream never reported it leaving the open statuses; dated by the
   later read's ``requested_time_ms`` (REST has no time for an absence).
4. A stream event about the order clears it (late, not blind). Otherwise, once a REST request
   (positions or orders) is ``blind_after_ms`` past its date, ``stream_blind`` is raised once,
   naming the order's position (``blindness.py`` rules 2 and 3: the positions' tolerance and
   verdict).
5. Pure: no clock, no I/O; bounded memory (the stream's statuses keep the newest ``MAX_TRACKED``).
6. Each order list of a symbol (regular, algo) is compared with the previous read *of that
   list*: the sweep reads the two lists apart (core/orders.py rule 6), and an order
   missing from a read that did not hold its list has not ended.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from watchdog.core.blindness import ConnectionWatch, blind_verdict, overdue
from watchdog.core.effects import Effect
from watchdog.core.events import (
    AccountConfigUpdate,
    AlgoUpdate,
    Event,
    ListenKeyExpired,
    MarginCall,
    OrdersSnapshot,
    OrderUpdate,
    PositionSnapshot,
    SnapshotFailed,
    SnapshotRequested,
    StreamConnected,
    StreamLost,
    StreamPositions,
    Tick,
    TradeLite,
)
from watchdog.core.model import OrderId, PositionKey, Symbol
from watchdog.core.orders import lists_of

__all__ = ["MAX_TRACKED", "OrderBlindness"]

MAX_TRACKED = 10_000
_OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})
_Ident = tuple[bool, OrderId]  # (is_algo, id)
_IGNORED: frozenset[type] = frozenset({StreamPositions, TradeLite, Tick, PositionSnapshot,
                                      SnapshotFailed, AccountConfigUpdate, MarginCall})


@dataclass(frozen=True, slots=True)
class _Listing:
    requested_ms: int
    orders: dict[_Ident, PositionKey]


@dataclass(frozen=True, slots=True)
class _Unreported:
    key: PositionKey
    since_ms: int
    ended: bool  # else appeared
    message: str


class OrderBlindness:
    """Compares what REST lists with what the stream reported (module rules)."""

    def __init__(self, *, blind_after_ms: int = 1000, max_rest_lag_ms: int = 2000) -> None:
        self._blind_after_ms = blind_after_ms
        self._max_rest_lag_ms = max_rest_lag_ms
        self._watch = ConnectionWatch()
        self._listings: dict[tuple[Symbol, bool], _Listing] = {}  # by (symbol, is_algo): rule 6
        # the stream's latest status per order, oldest first (O(1) eviction, unlike a dict's)
        self._reported: OrderedDict[_Ident, str] = OrderedDict()
        self._pending: dict[_Ident, _Unreported] = {}

    def apply(self, event: Event, now_ms: int) -> list[Effect]:
        """Fold one event; returns ``stream_blind`` alerts (``now_ms`` is unused: exchange time)."""
        if type(event) in _IGNORED:
            return []  # the hot path: position facts, fills, ticks
        match event:
            case StreamLost() | ListenKeyExpired():
                self._gap(connected=False)
            case StreamConnected():
                self._gap(connected=True)
            case OrderUpdate():
                self._report((False, event.order_id), event.status)
            case AlgoUpdate():
                self._report((True, event.algo_id), event.status.value)
            case SnapshotRequested() if self._watch.connected:
                self._watch.requested(event.requested_time_ms)
                return self._check(event.requested_time_ms)
            case OrdersSnapshot() if self._watch.from_ms is not None:
                self._compare(event)
                return self._check(event.requested_time_ms)
            case _:
                pass
        return []

    def _gap(self, *, connected: bool) -> None:
        self._watch.gap(connected=connected)
        self._listings.clear()
        self._reported.clear()
        self._pending.clear()

    def _report(self, ident: _Ident, status: str) -> None:
        self._reported[ident] = status
        self._reported.move_to_end(ident)  # newest last: the oldest go first when full
        if len(self._reported) > MAX_TRACKED:
            self._reported.popitem(last=False)
        pending = self._pending.get(ident)
        if pending is not None and (not pending.ended or status not in _OPEN):
            del self._pending[ident]  # the stream reported it after all: late, not blind

    def _compare(self, snap: OrdersSnapshot) -> None:
        watch_from_ms = self._watch.from_ms
        assert watch_from_ms is not None
        lists = lists_of(snap)  # rule 6
        now: dict[tuple[Symbol, bool], dict[_Ident, tuple[PositionKey, int]]] = {}
        for o in snap.orders:
            now.setdefault((o.symbol, False), {})[(False, o.order_id)] = (
                PositionKey(o.symbol, o.position_side), o.time_ms)
        for a in snap.algo_orders:
            now.setdefault((a.symbol, True), {})[(True, a.algo_id)] = (
                PositionKey(a.symbol, a.position_side), a.create_time_ms)
        if snap.symbols is not None:
            scope = {(symbol, kind) for symbol in snap.symbols for kind in lists}
        else:
            scope = {sk for sk in (*now, *self._listings) if sk[1] in lists}
        for list_key in scope:
            before = self._listings.get(list_key)
            if before is not None and before.requested_ms > snap.requested_time_ms:
                continue  # answered out of order: a newer read of the symbol was applied
            listed = now.get(list_key, {})
            for ident, (key, created_ms) in listed.items():
                if (created_ms >= watch_from_ms and ident not in self._reported
                        and (before is None or ident not in before.orders)):
                    kind = "algo order" if ident[0] else "order"
                    self._note(ident, _Unreported(
                        key, created_ms, False,
                        f"REST lists {kind} {ident[1]} the stream never reported"))
            if (before is not None
                    and before.requested_ms - self._max_rest_lag_ms >= watch_from_ms):
                for ident, key in before.orders.items():
                    if ident not in listed and self._reported.get(ident, "NEW") in _OPEN:
                        kind = "algo order" if ident[0] else "order"
                        self._note(ident, _Unreported(
                            key, snap.requested_time_ms, True,
                            f"REST no longer lists {kind} {ident[1]} but the stream never "
                            "reported it ending"))
            self._listings[list_key] = _Listing(snap.requested_time_ms,
                                                {i: k for i, (k, _) in listed.items()})

    def _note(self, ident: _Ident, unreported: _Unreported) -> None:
        if ident not in self._pending:
            self._pending[ident] = unreported

    def _check(self, requested_ms: int) -> list[Effect]:
        effects: list[Effect] = []
        for ident, pending in list(self._pending.items()):
            age = overdue(pending.since_ms, requested_ms, self._blind_after_ms)
            if age is None:
                continue
            del self._pending[ident]
            effects += blind_verdict(f"{pending.message} {age}", pending.key)
        return effects
