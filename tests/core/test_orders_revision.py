"""core/orders.py rule 8: the order book's ``revision`` moves whenever what a decision reads of
it may have changed, and stays when a read shows every order as it was.

The property drives the book with random histories of orders reads (the same rows again, rows
added, removed or changed, per symbol or swept, one list or both, late or lagging), stream facts
and fills, and demands after every event: an unchanged revision means an unchanged content (every
field of every open order but ``seen_time_ms``, the tombstones, the lists read, the opening fills,
and so the watched trigger levels and the firing stops the shell keeps while it stays).
"""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.core.reaper_support import (
    BTC,
    KEY,
    LONG,
    algo_row,
    algo_update,
    order_row,
    order_update,
    snapshot,
)
from watchdog.core.events import Event, OrdersSnapshot, TradeLite
from watchdog.core.firing import firing_stops
from watchdog.core.model import AlgoStatus, OrderId, PositionKey, Symbol
from watchdog.core.orders import OrderBook, TrackedOrder
from watchdog.core.triggers import levels_of

KEYS = (KEY, LONG)
IDS = range(1, 6)


def content(book: OrderBook) -> tuple[object, ...]:
    """Everything a decision can read of ``book`` (rule 8), ``seen_time_ms`` left out."""
    names = [f.name for f in fields(TrackedOrder) if f.name != "seen_time_ms"]
    orders = tuple(tuple(getattr(o, n) for n in names) for o in book.orders())
    symbols = sorted({k.symbol for k in KEYS})
    gone = tuple(book.is_gone(OrderId(i), is_algo=a) for i in IDS for a in (False, True))
    return (orders, gone, tuple(book.lists_read(s) for s in symbols),
            tuple(book.last_opening_fill_ms(s) for s in symbols),
            # what the shell recomputes only when the revision moved (trigger_task.py, loops.py)
            levels_of(book), firing_stops(book))


def trade(symbol: Symbol, at_ms: int) -> TradeLite:
    return TradeLite(event_time_ms=at_ms, transaction_time_ms=at_ms, symbol=symbol,
                     order_id=OrderId(99), client_order_id="x", side="BUY",
                     last_filled_quantity=Decimal(1), last_filled_price=Decimal(1))


ACTIONS = ("read", "read", "read_same", "read_same", "read_symbol", "read_algo", "read_orders",
           "add", "drop", "trigger", "cancel", "new_stream", "fill")


def history(script: list[tuple[str, int, int]]) -> list[Event]:
    """Events as the shell hands them over: the exchange's rows change, reads show them."""
    rows: dict[tuple[bool, int], PositionKey] = {}
    status: dict[int, AlgoStatus] = {}
    now, rid = 1_000, 0
    out: list[Event] = []
    last_read: OrdersSnapshot | None = None
    for action, which, dt in script:
        now += dt
        i = IDS[which % len(IDS)]
        key = KEYS[which % 2]
        is_algo = which % 3 != 0

        def read(symbols: frozenset[Symbol] | None = None, algo: bool = True,
                 regular: bool = True, now: int = now, which: int = which) -> OrdersSnapshot:
            nonlocal rid
            rid += 1
            algos = tuple(algo_row(j, key=k, status=status.get(j, AlgoStatus.NEW),
                                   created_ms=500 + j) for (a, j), k in sorted(rows.items())
                          if a and algo and (symbols is None or k.symbol in symbols))
            regs = tuple(order_row(j, key=k, created_ms=500 + j) for (a, j), k
                         in sorted(rows.items())
                         if not a and regular and (symbols is None or k.symbol in symbols))
            s = snapshot(algos=algos, orders=regs, at_ms=now - which * 50, symbols=symbols,
                         request_id=rid)
            return OrdersSnapshot(s.request_id, s.requested_time_ms, s.orders, s.algo_orders,
                                  s.symbols, covers_orders=regular, covers_algo=algo)

        match action:
            case "read":
                last_read = read()
                out.append(last_read)
            case "read_same":  # the very rows of the last read, requested later
                if last_read is not None:
                    rid += 1
                    out.append(OrdersSnapshot(rid, now, last_read.orders, last_read.algo_orders,
                                              last_read.symbols, last_read.covers_orders,
                                              last_read.covers_algo))
            case "read_symbol":
                out.append(read(frozenset({key.symbol})))
            case "read_algo":
                out.append(read(regular=False))
            case "read_orders":
                out.append(read(algo=False))
            case "add":
                rows[(is_algo, i)] = key
            case "drop":
                rows.pop((is_algo, i), None)
            case "trigger":
                if (True, i) in rows:
                    status[i] = AlgoStatus.TRIGGERING
                    out.append(algo_update(i, AlgoStatus.TRIGGERING, at_ms=now, key=rows[(True, i)]))
            case "cancel":
                k = rows.pop((is_algo, i), key)
                out.append(algo_update(i, AlgoStatus.CANCELED, at_ms=now, key=k) if is_algo
                           else order_update(i, "CANCELED", at_ms=now, key=k))
            case "new_stream":
                rows[(is_algo, i)] = key
                out.append(algo_update(i, AlgoStatus.NEW, at_ms=now, key=key) if is_algo
                           else order_update(i, "NEW", at_ms=now, key=key))
            case "fill":
                out.append(trade(key.symbol, now - which))
    return out


@example(script=[("add", 1, 0), ("read", 0, 10), ("read_same", 0, 500), ("drop", 1, 10),
                 ("read", 0, 3000)], lag_ms=300)
@settings(max_examples=300, deadline=None)
@given(script=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 5),
                                 st.integers(0, 3000)), max_size=40),
       lag_ms=st.sampled_from((0, 300, 2000)))
def test_property_an_unchanged_revision_means_an_unchanged_content(
        script: list[tuple[str, int, int]], lag_ms: int) -> None:
    book = OrderBook(max_rest_lag_ms=lag_ms)
    before_rev, before = book.revision, content(book)
    for event in history(script):
        book.apply(event)
        now_rev, now = book.revision, content(book)
        assert now_rev >= before_rev
        if now_rev == before_rev:
            assert now == before, event
        before_rev, before = now_rev, now


def test_a_read_showing_every_order_as_it_was_moves_no_revision() -> None:
    book = OrderBook(max_rest_lag_ms=300)
    rows = dict(algos=(algo_row(1), algo_row(2, key=LONG)), orders=(order_row(3),))
    book.apply(snapshot(**rows, at_ms=1_500))
    revision = book.revision
    book.apply(snapshot(**rows, at_ms=2_500, request_id=2))  # later, the same rows
    book.apply(snapshot(algos=(algo_row(1),), orders=(order_row(3),), at_ms=2_600,
                        symbols=frozenset({KEY.symbol}), request_id=3))
    assert book.revision == revision
    assert book.get(OrderId(1), is_algo=True).seen_time_ms == 2_600  # type: ignore[union-attr]


def test_a_read_that_removes_adds_or_changes_an_order_moves_the_revision() -> None:
    book = OrderBook(max_rest_lag_ms=300)
    book.apply(snapshot(algos=(algo_row(1), algo_row(2, key=LONG)), at_ms=1_500))
    seen = book.revision
    book.apply(snapshot(algos=(algo_row(1),), at_ms=2_500, request_id=2))  # 2 gone
    assert book.get(OrderId(2), is_algo=True) is None
    assert book.revision > seen
    seen = book.revision
    book.apply(snapshot(algos=(algo_row(1), algo_row(4)), at_ms=3_500, request_id=3))  # 4 new
    assert book.revision > seen
    seen = book.revision
    book.apply(snapshot(algos=(algo_row(1, status=AlgoStatus.TRIGGERING, updated_ms=3_900),
                               algo_row(4)), at_ms=4_000, request_id=4))
    assert book.revision > seen


def test_a_first_read_of_a_list_a_tombstone_retired_and_a_fill_move_the_revision() -> None:
    book = OrderBook()
    book.apply(snapshot(algos=(algo_row(1),), at_ms=1_500, symbols=frozenset({KEY.symbol})))
    seen = book.revision
    book.apply(snapshot(at_ms=1_600, symbols=frozenset({BTC}), request_id=2))  # lists of BTC
    assert book.revision > seen
    seen = book.revision
    book.apply(algo_update(1, AlgoStatus.CANCELED, at_ms=1_700))
    assert book.revision > seen
    assert book.is_gone(OrderId(1), is_algo=True)
    seen = book.revision
    book.apply(snapshot(at_ms=1_800, symbols=frozenset({KEY.symbol}), request_id=3))
    assert book.revision > seen
    assert not book.is_gone(OrderId(1), is_algo=True)
    seen = book.revision
    book.apply(trade(KEY.symbol, 1_900))
    assert book.revision > seen
    seen = book.revision
    book.apply(trade(KEY.symbol, 1_850))  # older than the one known: nothing read moves
    assert book.revision == seen
