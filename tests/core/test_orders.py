"""OrderBook: snapshots, stream transitions, triggered children, tombstones (pure, no sockets)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.reaper_support import (
    BAS,
    BTC,
    KEY,
    LONG,
    SHORT,
    algo_row,
    algo_update,
    order_row,
    order_update,
    snapshot,
)
from watchdog.core import orders as orders_module
from watchdog.core.events import StreamConnected
from watchdog.core.model import AlgoStatus, OrderId, PositionKey, PositionSide, Symbol
from watchdog.core.orders import OrderBook


def test_snapshot_lists_algo_and_regular_orders_with_create_times() -> None:
    book = OrderBook()
    book.apply(snapshot(algos=(algo_row(1, created_ms=900),), orders=(order_row(7, created_ms=950),)))
    algo = book.get(OrderId(1), is_algo=True)
    order = book.get(OrderId(7), is_algo=False)
    assert algo is not None
    assert algo.create_time_ms == 900
    assert algo.is_algo
    assert order is not None
    assert order.create_time_ms == 950
    assert not order.is_algo
    assert book.symbols() == frozenset({BAS})
    assert [o.order_id for o in book.orders_for(KEY)] == [1, 7]


def test_snapshot_is_authoritative_for_its_symbols_only() -> None:
    book = OrderBook()
    book.apply(snapshot(algos=(algo_row(1), algo_row(2, key=LONG)), at_ms=1_500))
    book.apply(snapshot(algos=(), at_ms=2_000, symbols=frozenset({BAS})))
    assert book.get(OrderId(1), is_algo=True) is None
    assert book.get(OrderId(2), is_algo=True) is not None  # BTCUSDT not covered
    book.apply(snapshot(algos=(), at_ms=2_500))            # all symbols
    assert len(book) == 0


def test_stream_order_newer_than_the_snapshot_request_survives_it() -> None:
    book = OrderBook()
    book.apply(algo_update(5, AlgoStatus.NEW, at_ms=2_100))
    book.apply(snapshot(algos=(), at_ms=2_000))  # requested before the order existed
    assert book.get(OrderId(5), is_algo=True) is not None
    book.apply(snapshot(algos=(), at_ms=2_200))  # requested after: it is gone
    assert book.get(OrderId(5), is_algo=True) is None


def test_a_snapshot_answered_within_the_lag_bound_keeps_an_order_the_stream_just_reported() -> None:
    """A per-symbol read requested 20 ms after a stop was placed, answered 300 ms behind, does
    not list it: on the pre-fix main the stop was dropped until the next order read (chaos
    ``reaper_race``: the reaper never saw the stop for 40 s)."""
    book = OrderBook(max_rest_lag_ms=2_000)
    book.apply(algo_update(5, AlgoStatus.NEW, at_ms=10_000))
    book.apply(snapshot(algos=(), at_ms=10_020))  # REST shows the state before the stop
    assert book.get(OrderId(5), is_algo=True) is not None
    book.apply(snapshot(algos=(), at_ms=12_001))  # its lag floor is past the order: gone
    assert book.get(OrderId(5), is_algo=True) is None


def test_a_tombstone_outlives_snapshots_within_the_lag_bound() -> None:
    book = OrderBook(max_rest_lag_ms=2_000)
    book.apply(algo_update(5, AlgoStatus.NEW, at_ms=1_000))
    book.apply(algo_update(5, AlgoStatus.CANCELED, at_ms=1_200))
    book.apply(snapshot(algos=(), at_ms=1_400))  # may show any state since -600
    assert book.is_gone(OrderId(5), is_algo=True)
    book.apply(snapshot(algos=(algo_row(5, created_ms=1_000),), at_ms=2_500))  # lagging
    assert book.get(OrderId(5), is_algo=True) is None
    book.apply(snapshot(algos=(), at_ms=3_201))
    assert not book.is_gone(OrderId(5), is_algo=True)


def test_terminal_is_final_a_lagging_snapshot_does_not_resurrect() -> None:
    book = OrderBook()
    book.apply(algo_update(5, AlgoStatus.NEW, at_ms=1_000))
    book.apply(algo_update(5, AlgoStatus.CANCELED, at_ms=1_200))
    book.apply(snapshot(algos=(algo_row(5, created_ms=1_000),), at_ms=1_300))  # REST lag
    assert book.get(OrderId(5), is_algo=True) is None
    assert book.is_gone(OrderId(5), is_algo=True)
    # A later snapshot that no longer lists it retires the tombstone.
    book.apply(snapshot(algos=(), at_ms=1_400))
    assert not book.is_gone(OrderId(5), is_algo=True)


def test_older_stream_fact_is_ignored() -> None:
    book = OrderBook()
    book.apply(algo_update(5, AlgoStatus.TRIGGERING, at_ms=2_000))
    book.apply(algo_update(5, AlgoStatus.NEW, at_ms=1_000))
    algo = book.get(OrderId(5), is_algo=True)
    assert algo is not None
    assert algo.status == "TRIGGERING"


def test_trigger_keeps_first_seen_time_and_links_child() -> None:
    book = OrderBook()
    book.apply(algo_update(5, AlgoStatus.NEW, at_ms=1_000))
    book.apply(algo_update(5, AlgoStatus.TRIGGERING, at_ms=2_000))
    book.apply(snapshot(algos=(algo_row(5, status=AlgoStatus.TRIGGERING, created_ms=1_000,
                                        updated_ms=2_000),), at_ms=5_000))
    algo = book.get(OrderId(5), is_algo=True)
    assert algo is not None
    assert algo.status_since_ms == 2_000
    assert algo.in_trigger
    book.apply(algo_update(5, AlgoStatus.TRIGGERED, at_ms=6_000, child=77))
    book.apply(order_update(77, "NEW", at_ms=6_001, client_id="bot-sl"))
    algo = book.get(OrderId(5), is_algo=True)
    child = book.get(OrderId(77), is_algo=False)
    assert algo is not None
    assert algo.status == "TRIGGERED"
    assert algo.status_since_ms == 6_000
    assert algo.child_order_id == 77
    assert child is not None
    assert child.parent_algo_id == 5
    assert child.create_time_ms == 6_001


def test_child_fill_before_finished_ends_both() -> None:
    book = OrderBook()
    book.apply(algo_update(5, AlgoStatus.TRIGGERED, at_ms=1_000, child=77))
    book.apply(order_update(77, "NEW", at_ms=1_001))
    book.apply(order_update(77, "FILLED", at_ms=1_002))
    assert len(book) == 0
    book.apply(algo_update(5, AlgoStatus.FINISHED, at_ms=1_003))
    assert len(book) == 0


def test_child_seen_before_triggered_is_linked_afterwards() -> None:
    book = OrderBook()
    book.apply(order_update(77, "NEW", at_ms=1_001))
    book.apply(algo_update(5, AlgoStatus.TRIGGERED, at_ms=1_000, child=77))
    child = book.get(OrderId(77), is_algo=False)
    assert child is not None
    assert child.parent_algo_id == 5


def test_child_filled_before_triggered_arrives_finishes_the_algo() -> None:
    book = OrderBook()
    book.apply(order_update(77, "FILLED", at_ms=1_002))
    book.apply(algo_update(5, AlgoStatus.TRIGGERED, at_ms=1_000, child=77))
    assert book.get(OrderId(5), is_algo=True) is None


def test_hedge_mode_sides_are_separate_keys_and_closing_sides_reduce() -> None:
    book = OrderBook()
    book.apply(snapshot(algos=(algo_row(1, key=LONG, side="SELL", reduce_only=False),
                               algo_row(2, key=SHORT, side="BUY", reduce_only=False),
                               algo_row(3, key=LONG, side="BUY", reduce_only=False))))
    by_id = {o.order_id: o for o in book.orders()}
    assert by_id[OrderId(1)].key == PositionKey(BTC, PositionSide.LONG)
    assert by_id[OrderId(1)].reduces_only
    assert by_id[OrderId(2)].reduces_only
    assert not by_id[OrderId(3)].reduces_only  # BUY on LONG opens: an entry


def test_one_way_entry_is_not_reducing() -> None:
    book = OrderBook()
    book.apply(snapshot(orders=(order_row(7, reduce_only=False),
                                order_row(8, reduce_only=False, close_position=True))))
    assert not book.get(OrderId(7), is_algo=False).reduces_only  # type: ignore[union-attr]
    assert book.get(OrderId(8), is_algo=False).reduces_only  # type: ignore[union-attr]


def test_unrelated_events_are_ignored() -> None:
    book = OrderBook()
    book.apply(StreamConnected(connection_id=1))
    assert len(book) == 0
    assert book.symbols() == frozenset()
    assert Symbol("X") not in book.symbols()


def test_an_algo_in_trigger_survives_a_snapshot_that_omits_it() -> None:
    """openAlgoOrders may list only NEW algos: a stuck TRIGGERING one must stay visible."""
    book = OrderBook()
    book.apply(algo_update(5, AlgoStatus.TRIGGERING, at_ms=1_000))
    book.apply(snapshot(algos=(), at_ms=5_000))
    algo = book.get(OrderId(5), is_algo=True)
    assert algo is not None
    assert algo.status == "TRIGGERING"
    assert algo.status_since_ms == 1_000
    book.apply(algo_update(5, AlgoStatus.FINISHED, at_ms=6_000))
    assert book.get(OrderId(5), is_algo=True) is None


def test_trigger_seen_after_a_snapshot_with_a_later_clock_still_applies() -> None:
    """REST's requested time (our clock + offset) may read later than the stream's trigger time."""
    book = OrderBook()
    book.apply(snapshot(algos=(algo_row(5, created_ms=1_000),), at_ms=2_010))
    book.apply(algo_update(5, AlgoStatus.NEW, at_ms=1_000))
    book.apply(algo_update(5, AlgoStatus.TRIGGERING, at_ms=2_005))
    algo = book.get(OrderId(5), is_algo=True)
    assert algo is not None
    assert algo.in_trigger
    book.apply(snapshot(algos=(algo_row(5, created_ms=1_000),), at_ms=2_008))  # lagging: NEW
    algo = book.get(OrderId(5), is_algo=True)
    assert algo is not None
    assert algo.status == "TRIGGERING"
    book.apply(snapshot(algos=(), at_ms=9_000))  # openAlgoOrders no longer lists it
    assert book.get(OrderId(5), is_algo=True) is not None


def test_a_terminal_fact_applies_even_if_its_time_reads_older() -> None:
    book = OrderBook()
    book.apply(snapshot(algos=(algo_row(5, created_ms=1_000),), orders=(order_row(7),), at_ms=3_000))
    book.apply(algo_update(5, AlgoStatus.CANCELED, at_ms=2_999))
    book.apply(order_update(7, "CANCELED", at_ms=2_999))
    assert len(book) == 0


class _ScanningBook(OrderBook):
    """The tombstone cap as first written (a scan for the earliest end): the reference."""

    def _end(self, ident: tuple[bool, OrderId], symbol: Symbol, t: int) -> None:
        self._orders.pop(ident, None)
        self._tombstones[ident] = (symbol, t)
        if len(self._tombstones) > orders_module.MAX_TOMBSTONES:
            oldest = min(self._tombstones, key=lambda i: self._tombstones[i][1])
            del self._tombstones[oldest]


_END_STEPS = st.lists(
    st.tuples(st.sampled_from(["end", "end", "end", "snapshot"]), st.integers(1, 12),
              st.integers(0, 400)), max_size=60)


@given(steps=_END_STEPS)
@settings(max_examples=200, deadline=None)
def test_the_tombstone_cap_drops_the_earliest_ended_like_a_full_scan(
        steps: list[tuple[str, int, int]]) -> None:
    # Distinct end times: among equal times the first ended goes (the scan took dict order).
    fast, reference = OrderBook(), _ScanningBook()
    saved, orders_module.MAX_TOMBSTONES = orders_module.MAX_TOMBSTONES, 4
    try:
        for i, (kind, order_id, at_ms) in enumerate(steps):
            at_ms = at_ms * 100 + i  # unique, not monotonic
            event = (order_update(order_id, "CANCELED", at_ms=at_ms) if kind == "end"
                     else snapshot(at_ms=at_ms, symbols=frozenset({BAS})))
            fast.apply(event)
            reference.apply(event)
            assert fast._tombstones == reference._tombstones
    finally:
        orders_module.MAX_TOMBSTONES = saved


def test_many_terminal_facts_keep_the_newest_tombstones() -> None:
    book = OrderBook()
    total = orders_module.MAX_TOMBSTONES + 500
    for order_id in range(1, total + 1):
        book.apply(order_update(order_id, "CANCELED", at_ms=order_id))
    assert not book.is_gone(OrderId(500), is_algo=False)
    assert book.is_gone(OrderId(501), is_algo=False)
    assert book.is_gone(OrderId(total), is_algo=False)
    assert len(book._tomb_heap) <= 2 * orders_module.MAX_TOMBSTONES + 1024
