"""core/firing.py: which positions have a stop firing, and the MarkFiring changes (pure)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.reaper_support import KEY, LONG, algo_row, algo_update, order_update, snapshot
from watchdog.core.effects import Firing, MarkFiring
from watchdog.core.firing import FiringWatch, firing_stops
from watchdog.core.model import AlgoStatus, OrderId
from watchdog.core.orders import OrderBook


def test_a_resting_stop_is_not_firing() -> None:
    book = OrderBook()
    book.apply(algo_update(5, AlgoStatus.NEW, at_ms=1_000))
    assert firing_stops(book) == {}


def test_triggering_then_triggered_with_a_working_child_then_finished() -> None:
    book, watch = OrderBook(), FiringWatch()
    book.apply(algo_update(5, AlgoStatus.NEW, at_ms=1_000))
    assert watch.update(book) == []
    book.apply(algo_update(5, AlgoStatus.TRIGGERING, at_ms=2_000))
    assert watch.update(book) == [MarkFiring(KEY, Firing(OrderId(5), "TRIGGERING", 2_000))]
    assert watch.update(book) == []  # nothing changed: nothing to write
    book.apply(algo_update(5, AlgoStatus.TRIGGERED, at_ms=2_100, child=77))
    assert watch.update(book) == [MarkFiring(KEY, Firing(OrderId(5), "TRIGGERED", 2_100))]
    book.apply(order_update(77, "NEW", at_ms=2_101))
    assert watch.update(book) == [MarkFiring(KEY, Firing(OrderId(5), "TRIGGERED", 2_100, OrderId(77)))]
    book.apply(order_update(77, "FILLED", at_ms=2_102))  # the child's end finishes the algo too
    assert watch.update(book) == [MarkFiring(KEY, None)]
    assert watch.update(book) == []


def test_a_child_whose_parent_is_gone_still_counts() -> None:
    book = OrderBook()
    book.apply(algo_update(5, AlgoStatus.TRIGGERED, at_ms=1_000, child=77))
    book.apply(order_update(77, "NEW", at_ms=1_001))
    # The parent ended (FINISHED seen before the child's fill): the child alone is still working.
    book.apply(algo_update(5, AlgoStatus.FINISHED, at_ms=1_002))
    assert firing_stops(book) == {KEY: Firing(OrderId(5), "CHILD_WORKING", 1_001, OrderId(77))}


def test_a_trigger_the_snapshot_omits_keeps_firing_until_a_terminal_fact() -> None:
    book = OrderBook()
    book.apply(algo_update(5, AlgoStatus.TRIGGERING, at_ms=1_000))
    book.apply(snapshot(algos=(), at_ms=5_000))  # openAlgoOrders does not list it (stuck)
    assert KEY in firing_stops(book)
    book.apply(algo_update(5, AlgoStatus.CANCELED, at_ms=6_000))
    assert firing_stops(book) == {}


def test_positions_are_separate_and_the_longest_firing_is_shown() -> None:
    book = OrderBook()
    book.apply(algo_update(6, AlgoStatus.TRIGGERING, at_ms=3_000))
    book.apply(algo_update(5, AlgoStatus.TRIGGERING, at_ms=2_000))
    book.apply(algo_update(8, AlgoStatus.NEW, at_ms=2_000, key=LONG))
    assert firing_stops(book) == {KEY: Firing(OrderId(5), "TRIGGERING", 2_000)}
    book.apply(snapshot(algos=(algo_row(8, key=LONG, status=AlgoStatus.TRIGGERING,
                                        updated_ms=4_000),), at_ms=4_500,
                        symbols=frozenset({LONG.symbol})))
    assert firing_stops(book)[LONG] == Firing(OrderId(8), "TRIGGERING", 4_000)


_STATUS = st.sampled_from(list(AlgoStatus))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), _STATUS, st.integers(0, 50)), max_size=25))
def test_the_watch_replays_to_the_current_set(steps: list[tuple[int, AlgoStatus, int]]) -> None:
    """Applying the watch's effects in order always leaves exactly the current firing set."""
    book, watch = OrderBook(), FiringWatch()
    shown: dict[object, Firing] = {}
    for t, (algo_id, status, dt) in enumerate(steps):
        book.apply(algo_update(algo_id, status, at_ms=1_000 + t * 100 + dt))
        for effect in watch.update(book):
            if effect.firing is None:
                shown.pop(effect.key)
            else:
                shown[effect.key] = effect.firing
        assert shown == firing_stops(book)
