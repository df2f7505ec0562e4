"""Rule 7 for orders (``core/order_blindness.py``): a stream that keeps sending ACCOUNT_UPDATE
but drops ALGO_UPDATE or ORDER_TRADE_UPDATE is found blind by the orders REST lists.

Every scenario: connected at wall 0, first positions request at exchange time 1000 (the watch
starts there), ``blind_after_ms`` 1000, ``max_rest_lag_ms`` 2000.
"""

from __future__ import annotations

import pytest

from tests.core.reaper_support import KEY, algo_row, algo_update, order_row, order_update, snapshot
from watchdog.core.effects import Effect, RaiseAlert
from watchdog.core.events import SnapshotRequested, StreamConnected, StreamLost
from watchdog.core.model import AlgoStatus
from watchdog.core.order_blindness import MAX_TRACKED, OrderBlindness

SYMBOLS = frozenset({KEY.symbol})


def blind(effects: list[Effect]) -> list[str]:
    return [e.message for e in effects if isinstance(e, RaiseAlert) and e.code == "stream_blind"]


@pytest.fixture
def w() -> OrderBlindness:
    watch = OrderBlindness(blind_after_ms=1000, max_rest_lag_ms=2000)
    watch.apply(StreamConnected(1), 0)
    assert watch.apply(SnapshotRequested(1, 1000), 0) == []
    return watch


def test_an_algo_order_the_stream_never_reported_is_blind_once_old_enough(w: OrderBlindness) -> None:
    assert blind(w.apply(snapshot(algos=(algo_row(7, created_ms=1500),), at_ms=2000), 0)) == []
    messages = blind(w.apply(SnapshotRequested(2, 2500), 0))  # a positions poll: 1000 ms later
    assert len(messages) == 1
    assert "algo order 7 the stream never reported" in messages[0]
    assert blind(w.apply(SnapshotRequested(3, 5000), 0)) == []  # raised once


def test_an_order_the_stream_reported_is_not_blind(w: OrderBlindness) -> None:
    w.apply(algo_update(7, AlgoStatus.NEW, at_ms=1500), 0)
    w.apply(order_update(8, "NEW", at_ms=1600), 0)
    rows = {"algos": (algo_row(7, created_ms=1500),), "orders": (order_row(8, created_ms=1600),)}
    assert blind(w.apply(snapshot(**rows, at_ms=4000), 0)) == []
    assert blind(w.apply(SnapshotRequested(2, 9000), 0)) == []


def test_a_late_stream_event_clears_the_pending_change(w: OrderBlindness) -> None:
    w.apply(snapshot(orders=(order_row(8, created_ms=1800),), at_ms=2000), 0)
    w.apply(order_update(8, "NEW", at_ms=1800), 0)  # 200 ms behind REST: late, not blind
    assert blind(w.apply(SnapshotRequested(2, 5000), 0)) == []


def test_an_order_older_than_the_watch_is_not_blamed_on_the_connection(w: OrderBlindness) -> None:
    # placed while the stream was down (or before the watchdog ran): no event was owed
    assert blind(w.apply(snapshot(algos=(algo_row(7, created_ms=900),), at_ms=5000), 0)) == []
    assert blind(w.apply(SnapshotRequested(2, 9000), 0)) == []


def test_an_order_ending_unreported_is_blind(w: OrderBlindness) -> None:
    w.apply(algo_update(7, AlgoStatus.NEW, at_ms=1500), 0)
    w.apply(snapshot(algos=(algo_row(7, created_ms=1500),), at_ms=3500), 0)  # floor 1500 ≥ 1000
    assert blind(w.apply(snapshot(at_ms=4000, symbols=SYMBOLS), 0)) == []  # gone, dated 4000
    messages = blind(w.apply(SnapshotRequested(2, 5000), 0))
    assert len(messages) == 1
    assert "no longer lists algo order 7" in messages[0]


def test_an_ending_the_stream_reported_is_not_blind(w: OrderBlindness) -> None:
    w.apply(snapshot(orders=(order_row(8, created_ms=900),), at_ms=3500), 0)
    w.apply(order_update(8, "CANCELED", at_ms=3600), 0)
    w.apply(snapshot(at_ms=4000, symbols=SYMBOLS), 0)
    assert blind(w.apply(SnapshotRequested(2, 9000), 0)) == []


def test_a_triggered_algo_leaving_the_list_is_reported_by_its_trigger(w: OrderBlindness) -> None:
    w.apply(snapshot(algos=(algo_row(7, created_ms=900),), at_ms=3500), 0)
    w.apply(algo_update(7, AlgoStatus.TRIGGERING, at_ms=3600), 0)
    w.apply(snapshot(at_ms=4000, symbols=SYMBOLS), 0)
    assert blind(w.apply(SnapshotRequested(2, 9000), 0)) == []


def test_an_ending_after_a_lagging_first_read_is_not_judged(w: OrderBlindness) -> None:
    """The earlier read may show the state from before the connect (floor 1500 - 2000 < 1000)."""
    w.apply(snapshot(orders=(order_row(8, created_ms=900),), at_ms=1500), 0)
    w.apply(snapshot(at_ms=4000, symbols=SYMBOLS), 0)
    assert blind(w.apply(SnapshotRequested(2, 9000), 0)) == []


def test_an_all_symbols_read_speaks_for_symbols_listed_before(w: OrderBlindness) -> None:
    w.apply(snapshot(orders=(order_row(8, created_ms=900),), at_ms=3500), 0)
    w.apply(snapshot(at_ms=4000, symbols=None), 0)  # the sweep: no orders anywhere
    assert len(blind(w.apply(SnapshotRequested(2, 5000), 0))) == 1


def test_a_read_answered_out_of_order_is_ignored(w: OrderBlindness) -> None:
    w.apply(snapshot(orders=(order_row(8, created_ms=900),), at_ms=4000), 0)
    w.apply(snapshot(at_ms=3500, symbols=SYMBOLS), 0)  # requested before the read applied
    assert blind(w.apply(SnapshotRequested(2, 9000), 0)) == []


@pytest.mark.parametrize("gap", [StreamLost(1, "1006"), StreamConnected(2)])
def test_a_gap_forgets_pending_changes_and_restarts_the_watch(w: OrderBlindness,
                                                              gap: object) -> None:
    w.apply(snapshot(algos=(algo_row(7, created_ms=1500),), at_ms=2000), 0)
    w.apply(gap, 0)  # type: ignore[arg-type]
    assert blind(w.apply(SnapshotRequested(2, 9000), 0)) == []
    w.apply(StreamConnected(3), 0)
    w.apply(SnapshotRequested(3, 10_000), 0)  # the new watch starts here
    w.apply(snapshot(algos=(algo_row(7, created_ms=1500),), at_ms=10_500), 0)
    assert blind(w.apply(SnapshotRequested(4, 12_000), 0)) == []  # older than the new watch


def test_nothing_is_judged_before_the_first_request_after_a_connect() -> None:
    watch = OrderBlindness()
    watch.apply(StreamConnected(1), 0)
    watch.apply(snapshot(algos=(algo_row(7, created_ms=1500),), at_ms=2000), 0)
    assert blind(watch.apply(SnapshotRequested(1, 9000), 0)) == []


def test_memory_of_stream_statuses_is_bounded(w: OrderBlindness) -> None:
    for order_id in range(MAX_TRACKED + 5):
        w.apply(order_update(order_id, "NEW", at_ms=1500), 0)
    assert len(w._reported) == MAX_TRACKED
