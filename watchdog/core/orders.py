"""Open orders per position: the reaper's view of what could be orphaned.

Rules of this module:
1. Terminal is final. Once a stream fact says an order ended (CANCELED, FILLED, FINISHED, …) it
   is remembered as a tombstone and never resurrected by a lagging REST snapshot (REST can lag,
   docs/BINANCE.md §6; an order cannot come back from a terminal state).
2. An ``OrdersSnapshot`` is authoritative for the symbols it covers, but only for what happened
   before the state it shows: REST may answer with the state of up to ``max_rest_lag_ms`` ago,
   so an order seen on the stream at or after ``requested_time_ms - max_rest_lag_ms`` is kept
   even when the snapshot does not list it (a read 20 ms after a stop was placed, answered
   0.3 s behind, once dropped the stop until the next order read: the reaper never saw it),
   and a tombstone is retired only by a snapshot whose lag floor is past the end.
3. A triggered algo order becomes a regular child order with a new id (``actual_order_id``,
   docs/BINANCE.md §3.5). The child is tracked as a regular order linked to its parent; the parent keeps its
   TRIGGERING/TRIGGERED status and the exchange time that status was first seen, so a stuck
   trigger (a known Binance failure, docs/BINANCE.md §3.6) can be told from a healthy one. When the child
   ends, the parent has finished too (docs/BINANCE.md §2.2 FINISHED), whatever order the events arrive in.
   Whether ``openAlgoOrders`` lists an algo order once it is TRIGGERING/TRIGGERED is not
   documented (the simulator lists only NEW ones), so a snapshot that omits it does not remove
   it: only a terminal fact does (its own, or its child's). A stuck trigger stays visible.
4. All times are exchange epoch ms. No clock is read here. Stream event times and REST request
   times come from different clocks (ours is corrected by a measured offset), so an algo
   status never goes backwards (NEW → TRIGGERING → TRIGGERED) whatever the times say, and a
   terminal fact always applies.
5. Fills that may have opened a position (an OrderUpdate fill of an order that is not
   reduce-only/close-position/hedge-closing, or any TradeLite, which carries no such flag) are
   remembered per symbol: a stop that looked orphaned may protect the position such a fill just
   opened, even before any position fact says so (the reaper restarts its grace there).
6. A snapshot is authoritative only for the lists it read (``covers_orders``,
   ``covers_algo``): the sweep reads the algo list and the regular list apart (half an
   interval, never in one minute; 40 weight each, together in one minute they slowed the
   positions poll to ~1.2 s, docs/BENCHMARKS.md session 6), so an order of a list the
   snapshot did not read is never removed, nor its tombstone retired, by it. A regular list
   without an order says nothing about an algo order, and the reverse (a half sweep once
   looked like cancelled orders).
7. ``lists_read(symbol)``: both lists of the symbol have been read at least once (by a
   per-symbol read, or by a sweep of each list). Until then an order of the other kind may
   rest there unseen (an entry placed while no watchdog ran): the reaper keeps every order of
   such a symbol (core/reaper.py rule 1, ``LISTS_UNREAD``).
8. ``revision``: a count that moves whenever anything a decision reads of this book may have
   changed: an order added or removed, any field of an open order but ``seen_time_ms`` (status,
   its ``status_since_ms``, creation time, quantity, the child/parent link, …), a tombstone
   set or retired (``is_gone``), the lists read (rule 7), an opening fill (rule 5). A read
   that shows every order as it was moves only ``seen_time_ms`` (the time rule 2 measures a
   later read's lag floor against, read by nothing outside this book): the revision stays,
   and a consumer that decided at this revision may keep its decision (the reaper,
   runtime/reaper_task.py rule 10). Conservative: a change that restores what was there before
   moves it too. Not a freshness: when an orders read was requested is told by the read's own
   events (the guard's rule 1 counts them), never by this count.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Iterable
from dataclasses import dataclass, fields, replace
from decimal import Decimal

from watchdog.core.events import (
    AlgoUpdate,
    Event,
    OpenAlgoOrder,
    OpenOrder,
    OrdersSnapshot,
    OrderUpdate,
    TradeLite,
)
from watchdog.core.model import ZERO, AlgoStatus, OrderId, PositionKey, PositionSide, Symbol

__all__ = [
    "ALGO_TERMINAL",
    "ORDER_TERMINAL",
    "OrderBook",
    "TrackedOrder",
    "lists_of",
]

ALGO_TERMINAL = frozenset({AlgoStatus.CANCELED, AlgoStatus.FINISHED, AlgoStatus.REJECTED,
                           AlgoStatus.EXPIRED})
ALGO_IN_TRIGGER = frozenset({AlgoStatus.TRIGGERING, AlgoStatus.TRIGGERED})
ORDER_TERMINAL = frozenset({"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"})
MAX_TOMBSTONES = 10_000

_Ident = tuple[bool, OrderId]  # (is_algo, id): algo ids and order ids are separate spaces
_ALGO_RANK = {AlgoStatus.NEW.value: 0, AlgoStatus.TRIGGERING.value: 1, AlgoStatus.TRIGGERED.value: 2}


def _reduces_only(reduce_only: bool, close_position: bool, position_side: PositionSide,
                  side: str) -> bool:
    """The order can only shrink its position, never open or grow one.

    reduceOnly and closePosition say so explicitly. In hedge mode Binance forbids
    ``reduceOnly`` (docs/BINANCE.md §3.3), but a SELL on LONG or a BUY on SHORT can only close that side.
    """
    if reduce_only or close_position:
        return True
    if position_side is PositionSide.LONG:
        return side == "SELL"
    if position_side is PositionSide.SHORT:
        return side == "BUY"
    return False


def lists_of(snapshot: OrdersSnapshot) -> frozenset[bool]:
    """Rule 6: the lists an orders read holds, as ``is_algo`` values (events carry no
    behaviour, so this lives here)."""
    return frozenset(k for k, read in ((False, snapshot.covers_orders),
                                       (True, snapshot.covers_algo)) if read)


_BOTH_LISTS = frozenset({False, True})


def _same_content(a: TrackedOrder, b: TrackedOrder) -> bool:
    """Rule 8: ``a`` and ``b`` differ at most in ``seen_time_ms``."""
    return a is b or all(getattr(a, f) == getattr(b, f) for f in _CONTENT_FIELDS)


def _rank(status: str) -> int:
    """Position of an open algo status in its lifecycle: statuses never go backwards."""
    return _ALGO_RANK.get(status, 3)


@dataclass(frozen=True, slots=True)
class TrackedOrder:
    """One open order as the reaper sees it.

    ``create_time_ms`` is the exchange creation time (REST ``createTime``/``time``; for an order
    first seen on the stream, the time of that first fact: never earlier than the real one).
    ``status_since_ms`` is the exchange time the current ``status`` was first seen.
    ``seen_time_ms`` is the exchange time of the newest fact applied (older facts are ignored).
    """

    key: PositionKey
    order_id: OrderId
    is_algo: bool
    client_id: str
    side: str
    order_type: str
    status: str
    reduce_only: bool
    close_position: bool
    create_time_ms: int
    status_since_ms: int
    seen_time_ms: int
    child_order_id: OrderId | None = None   # algo: the regular order it became when triggered
    parent_algo_id: OrderId | None = None   # regular: the algo order it is the child of
    trigger_price: Decimal = ZERO           # algo ``tp``/``triggerPrice``, regular ``sp``/``stopPrice``
    working_type: str = "CONTRACT_PRICE"    # the price it triggers on (core/triggers.py)
    quantity: Decimal = ZERO                # as ordered (0 for closePosition): the guard's coverage

    @property
    def in_trigger(self) -> bool:
        """An algo order handed to the matching engine: it may be what is closing the position."""
        return self.is_algo and self.status in ALGO_IN_TRIGGER

    @property
    def reduces_only(self) -> bool:
        """True when the order can only shrink its position, never open or grow one."""
        return _reduces_only(self.reduce_only, self.close_position, self.key.side, self.side)

    def describe(self) -> str:
        """Short human label for logs and the CLI."""
        kind = "algo" if self.is_algo else "order"
        return f"{kind} {self.order_id} {self.order_type} {self.side} on {self.key} [{self.status}]"


# Rule 8: the fields of an order a decision may read; ``seen_time_ms`` (rule 2's bookkeeping)
# is the one left out, so a read that shows the order as it was moves no revision.
_CONTENT_FIELDS = tuple(f.name for f in fields(TrackedOrder) if f.name != "seen_time_ms")


class OrderBook:
    """Open regular and algo orders per position key, fused from REST and the stream."""

    def __init__(self, *, max_rest_lag_ms: int = 0) -> None:
        self._max_rest_lag_ms = max_rest_lag_ms  # [core] max_rest_lag_ms (rule 2)
        self._orders: dict[_Ident, TrackedOrder] = {}
        self._tombstones: dict[_Ident, tuple[Symbol, int]] = {}
        # (ended_ms, seq, ident) per ``_end``, so dropping the oldest tombstone at the cap is
        # O(log n) instead of a scan of all 10,000 on every terminal fact (a busy account
        # cancelling thousands of orders between two order reads). Entries whose tombstone was
        # retired or re-ended later are stale and skipped.
        self._tomb_heap: list[tuple[int, int, _Ident]] = []
        self._tomb_seq = itertools.count()
        self._opening_fills: dict[Symbol, int] = {}  # rule 5
        self._swept: frozenset[bool] = frozenset()  # rule 7: lists read for every symbol
        self._lists_read: dict[Symbol, frozenset[bool]] = {}  # rule 7: ... for one symbol
        self._revision = 0  # rule 8

    @property
    def revision(self) -> int:
        """Rule 8: moves whenever what a decision reads of this book may have changed."""
        return self._revision

    # ------------------------------------------------------------ reading

    def orders(self) -> tuple[TrackedOrder, ...]:
        """Every open order, oldest first (stable order for decisions and listings)."""
        return tuple(sorted(self._orders.values(),
                            key=lambda o: (o.create_time_ms, o.key, not o.is_algo, o.order_id)))

    def unsorted(self, symbols: Collection[Symbol] | None = None) -> list[TrackedOrder]:
        """Open orders (of ``symbols`` only, when given) in no particular order: a scan without
        the sort of ``orders()``, for the guard's look after every batch of events."""
        if symbols is None:
            return list(self._orders.values())
        return [o for o in self._orders.values() if o.key.symbol in symbols]

    def orders_for(self, key: PositionKey) -> tuple[TrackedOrder, ...]:
        """Open orders on one (symbol, position side)."""
        return tuple(o for o in self.orders() if o.key == key)

    def get(self, order_id: OrderId, *, is_algo: bool) -> TrackedOrder | None:
        """One open order, or None when it is not (or no longer) known open."""
        return self._orders.get((is_algo, order_id))

    def symbols(self) -> frozenset[Symbol]:
        """Symbols with at least one open order (what a per-symbol REST read must cover)."""
        return frozenset(o.key.symbol for o in self._orders.values())

    def last_opening_fill_ms(self, symbol: Symbol) -> int | None:
        """Exchange time of the last fill on ``symbol`` that may have opened or grown a
        position (rule 5), or None."""
        return self._opening_fills.get(symbol)

    def firing_candidates(self) -> Iterable[TrackedOrder]:
        """Algo orders in trigger and regular orders linked to a parent algo (core/firing.py),
        unsorted: scanned after every batch of order facts."""
        return (o for o in self._orders.values()
                if o.in_trigger or (not o.is_algo and o.parent_algo_id is not None))

    def lists_read(self, symbol: Symbol) -> bool:
        """Rule 7: both lists of ``symbol`` (regular and algo orders) were read at least once,
        so no order of either kind can rest there unseen since before the stream."""
        return (self._swept | self._lists_read.get(symbol, frozenset())) == _BOTH_LISTS

    def is_gone(self, order_id: OrderId, *, is_algo: bool) -> bool:
        """True when a terminal fact for this order has been seen."""
        return (is_algo, order_id) in self._tombstones

    def __len__(self) -> int:
        return len(self._orders)

    # ------------------------------------------------------------ applying facts

    def apply(self, event: Event) -> None:
        """Apply one input event; events that say nothing about orders are ignored."""
        match event:
            case AlgoUpdate():
                self._apply_algo_update(event)
            case OrderUpdate():
                if event.last_filled_quantity != 0 and not _reduces_only(
                        event.reduce_only, event.close_position, event.position_side, event.side):
                    self._note_opening_fill(event.symbol, event.transaction_time_ms)
                self._apply_order_update(event)
            case TradeLite():  # no reduce-only flag: any fill may have opened a position
                self._note_opening_fill(event.symbol, event.transaction_time_ms)
            case OrdersSnapshot():
                self._apply_snapshot(event)
            case _:
                return

    def _note_opening_fill(self, symbol: Symbol, time_ms: int) -> None:
        if time_ms > self._opening_fills.get(symbol, time_ms - 1):
            self._opening_fills[symbol] = time_ms
            self._revision += 1

    def _apply_algo_update(self, u: AlgoUpdate) -> None:
        ident: _Ident = (True, u.algo_id)
        # ALGO_UPDATE's E/T labels are swapped in Binance's example (docs/BINANCE.md §2.2): take the later.
        t = max(u.event_time_ms, u.transaction_time_ms)
        current = self._orders.get(ident)
        if u.status in ALGO_TERMINAL:
            self._end(ident, Symbol(u.symbol), t)  # terminal is final, whatever its time
            return
        if (current is not None and current.seen_time_ms > t
                and _rank(u.status.value) <= _rank(current.status)):
            return  # older, and not further along the lifecycle (REST and stream clocks differ)
        if ident in self._tombstones:
            return
        status = u.status.value
        if current is None:
            self._put(ident, TrackedOrder(
                key=PositionKey(u.symbol, u.position_side), order_id=u.algo_id, is_algo=True,
                client_id=u.client_algo_id, side=u.side, order_type=u.order_type, status=status,
                reduce_only=u.reduce_only, close_position=u.close_position, create_time_ms=t,
                status_since_ms=t, seen_time_ms=t, child_order_id=u.actual_order_id,
                trigger_price=u.trigger_price, working_type=u.working_type, quantity=u.quantity))
        else:
            self._put(ident, replace(
                current, status=status, seen_time_ms=t, quantity=u.quantity,
                status_since_ms=current.status_since_ms if current.status == status else t,
                child_order_id=u.actual_order_id or current.child_order_id))
        if u.actual_order_id is not None:
            self._link_child(u.algo_id, u.actual_order_id, u.client_algo_id)

    def _apply_order_update(self, u: OrderUpdate) -> None:
        ident: _Ident = (False, u.order_id)
        t = max(u.event_time_ms, u.transaction_time_ms)
        current = self._orders.get(ident)
        if current is not None and current.seen_time_ms > t and u.status not in ORDER_TERMINAL:
            return
        if u.status in ORDER_TERMINAL:
            parent = current.parent_algo_id if current else self._parent_of(u.order_id,
                                                                            u.client_order_id)
            self._end(ident, Symbol(u.symbol), t)
            if parent is not None:
                self._end((True, parent), Symbol(u.symbol), t)
            return
        if ident in self._tombstones:
            return
        if current is None:
            self._put(ident, TrackedOrder(
                key=PositionKey(u.symbol, u.position_side), order_id=u.order_id, is_algo=False,
                client_id=u.client_order_id, side=u.side, order_type=u.order_type,
                status=u.status, reduce_only=u.reduce_only, close_position=u.close_position,
                create_time_ms=t, status_since_ms=t, seen_time_ms=t,
                parent_algo_id=self._parent_of(u.order_id, u.client_order_id),
                trigger_price=u.stop_price, working_type=u.working_type, quantity=u.quantity))
        else:
            self._put(ident, replace(
                current, status=u.status, seen_time_ms=t, quantity=u.quantity,
                status_since_ms=current.status_since_ms if current.status == u.status else t))

    def _apply_snapshot(self, s: OrdersSnapshot) -> None:
        lists = lists_of(s)  # rule 6: authoritative for these lists only

        def covered(symbol: Symbol, is_algo: bool) -> bool:
            return is_algo in lists and (s.symbols is None or symbol in s.symbols)

        self._note_lists_read(s.symbols, lists)

        # REST may answer with the state of up to ``max_rest_lag_ms`` ago (rule 2).
        as_of_ms = s.requested_time_ms - self._max_rest_lag_ms
        listed: set[_Ident] = set()
        for algo in s.algo_orders:
            ident: _Ident = (True, algo.algo_id)
            listed.add(ident)
            if ident in self._tombstones or algo.status in ALGO_TERMINAL:
                continue
            self._put(ident, self._merge_algo_row(self._orders.get(ident), algo, s))
        for row in s.orders:
            ident = (False, row.order_id)
            listed.add(ident)
            if ident in self._tombstones or row.status in ORDER_TERMINAL:
                continue
            self._put(ident, self._merge_order_row(self._orders.get(ident), row, s))
        for ident, order in list(self._orders.items()):
            if (covered(order.key.symbol, ident[0]) and ident not in listed
                    and not order.in_trigger and order.seen_time_ms < as_of_ms):
                del self._orders[ident]
                self._revision += 1
        # A tombstone is needed only until a snapshot that shows the state after the end.
        for ident, (symbol, ended_ms) in list(self._tombstones.items()):
            if covered(symbol, ident[0]) and ident not in listed and ended_ms < as_of_ms:
                del self._tombstones[ident]
                self._revision += 1
        for algo in s.algo_orders:
            if algo.actual_order_id is not None and (True, algo.algo_id) in self._orders:
                self._link_child(algo.algo_id, algo.actual_order_id, algo.client_algo_id)

    def _merge_algo_row(self, current: TrackedOrder | None, row: OpenAlgoOrder,
                        s: OrdersSnapshot) -> TrackedOrder:
        status = row.status.value
        changed_ms = row.update_time_ms or s.requested_time_ms
        create_ms = row.create_time_ms or (current.create_time_ms if current else changed_ms)
        if current is None:
            return TrackedOrder(
                key=PositionKey(row.symbol, row.position_side), order_id=row.algo_id,
                is_algo=True, client_id=row.client_algo_id, side=row.side,
                order_type=row.order_type, status=status, reduce_only=row.reduce_only,
                close_position=row.close_position, create_time_ms=create_ms,
                status_since_ms=changed_ms, seen_time_ms=s.requested_time_ms,
                child_order_id=row.actual_order_id, trigger_price=row.trigger_price,
                working_type=row.working_type, quantity=row.quantity)
        if current.seen_time_ms > s.requested_time_ms or _rank(status) < _rank(current.status):
            # The stream told us something newer (or further along) than this read: keep it.
            return replace(current, create_time_ms=create_ms)
        return replace(
            current, status=status, create_time_ms=create_ms, seen_time_ms=s.requested_time_ms,
            status_since_ms=current.status_since_ms if current.status == status else changed_ms,
            child_order_id=row.actual_order_id or current.child_order_id, quantity=row.quantity)

    def _merge_order_row(self, current: TrackedOrder | None, row: OpenOrder,
                         s: OrdersSnapshot) -> TrackedOrder:
        create_ms = row.time_ms or (current.create_time_ms if current else s.requested_time_ms)
        if current is None:
            return TrackedOrder(
                key=PositionKey(row.symbol, row.position_side), order_id=row.order_id,
                is_algo=False, client_id=row.client_order_id, side=row.side,
                order_type=row.order_type, status=row.status, reduce_only=row.reduce_only,
                close_position=row.close_position, create_time_ms=create_ms,
                status_since_ms=row.update_time_ms or s.requested_time_ms,
                seen_time_ms=s.requested_time_ms,
                parent_algo_id=self._parent_of(row.order_id, row.client_order_id),
                trigger_price=row.stop_price, working_type=row.working_type, quantity=row.quantity)
        if current.seen_time_ms > s.requested_time_ms:
            return replace(current, create_time_ms=create_ms)
        return replace(current, status=row.status, create_time_ms=create_ms,
                       seen_time_ms=s.requested_time_ms, quantity=row.quantity)

    # ------------------------------------------------------------ helpers

    def _put(self, ident: _Ident, order: TrackedOrder) -> None:
        """Store ``order``; rule 8: the revision moves unless only ``seen_time_ms`` did."""
        current = self._orders.get(ident)
        if current is None or not _same_content(current, order):
            self._revision += 1
        self._orders[ident] = order

    def _note_lists_read(self, symbols: frozenset[Symbol] | None, lists: frozenset[bool]) -> None:
        """Rule 7: remember which lists were read, for every symbol or for these."""
        if self._swept == _BOTH_LISTS:
            return
        if symbols is None:
            if not lists <= self._swept:
                self._swept |= lists
                self._revision += 1
            if self._swept == _BOTH_LISTS:
                self._lists_read.clear()  # every symbol's lists are read: no need per symbol
            return
        for symbol in symbols:
            read = self._lists_read.get(symbol, frozenset())
            if not lists <= read:
                self._lists_read[symbol] = read | lists
                self._revision += 1

    def _end(self, ident: _Ident, symbol: Symbol, t: int) -> None:
        self._orders.pop(ident, None)
        self._tombstones[ident] = (symbol, t)
        self._revision += 1  # rule 8: an order or a tombstone changed (a re-end: conservative)
        heapq.heappush(self._tomb_heap, (t, next(self._tomb_seq), ident))
        if len(self._tombstones) > MAX_TOMBSTONES:
            self._drop_oldest_tombstone()
        if len(self._tomb_heap) > 2 * len(self._tombstones) + 1024:
            self._tomb_heap = [(ended_ms, next(self._tomb_seq), i)
                               for i, (_, ended_ms) in self._tombstones.items()]
            heapq.heapify(self._tomb_heap)

    def _drop_oldest_tombstone(self) -> None:
        """Forget the tombstone with the earliest end time (the first ended among equals)."""
        while self._tomb_heap:
            ended_ms, _, ident = heapq.heappop(self._tomb_heap)
            held = self._tombstones.get(ident)
            if held is not None and held[1] == ended_ms:
                del self._tombstones[ident]
                self._revision += 1
                return

    def _parent_of(self, order_id: OrderId, client_id: str) -> OrderId | None:
        """The algo order this regular order is the child of (by ``ai`` or by ``c == caid``)."""
        for algo in self._algos():
            if algo.child_order_id == order_id or (client_id and algo.client_id == client_id
                                                   and algo.in_trigger):
                return algo.order_id
        return None

    def _link_child(self, algo_id: OrderId, child_id: OrderId, client_id: str) -> None:
        child = self._orders.get((False, child_id))
        if child is not None and child.parent_algo_id is None:
            self._put((False, child_id), replace(child, parent_algo_id=algo_id))
        if (False, child_id) in self._tombstones and (True, algo_id) in self._orders:
            # The child already ended (fill seen before TRIGGERED/FINISHED): the algo is done.
            self._end((True, algo_id), self._orders[(True, algo_id)].key.symbol,
                      self._tombstones[(False, child_id)][1])

    def _algos(self) -> Iterable[TrackedOrder]:
        return (o for o in self._orders.values() if o.is_algo)
