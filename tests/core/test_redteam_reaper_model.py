"""Red-team rule 1 as a model-based property: random interleavings of stream facts, REST polls
(flat or open, failed), stream gaps, fills and time, applied to the real PositionBook and
OrderBook. Whenever ``decide`` selects the stop, the model demands: a REST poll showing the key
flat, requested after the last open fact, gap and failed read, at least ``grace_ms`` ago, and
the last fill at least ``grace_ms`` ago (the pre-cancel REST re-read then follows it).
Pure: injected times, no sockets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.facts import amount, stream, trade_lite
from tests.core.reaper_support import KEY, algo_update
from tests.core.test_book import Harness
from watchdog.config import ReaperConfig
from watchdog.core.book import BookPolicy
from watchdog.core.events import SnapshotFailed, SnapshotRequested, StreamConnected, StreamLost
from watchdog.core.model import AlgoStatus
from watchdog.core.orders import OrderBook
from watchdog.core.reaper import decide

GRACE_MS = 1_000
POLICY = ReaperConfig(grace_ms=GRACE_MS).policy(max_rest_lag_ms=2000)

steps = st.lists(st.tuples(
    st.sampled_from(["stream_open", "stream_flat", "poll_open", "poll_flat", "poll_failed",
                     "gap", "connect", "fill", "tick"]),
    st.integers(0, 1_500)), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(steps=steps, start_open=st.booleans())
def test_property_a_cancel_always_has_a_flat_rest_run_of_grace_since_the_last_risk(
        steps: list[tuple[str, int]], start_open: bool) -> None:
    h = Harness(BookPolicy(max_age_ms=10_000, max_rest_lag_ms=300))
    orders = OrderBook()
    now = 1_000
    h.apply(StreamConnected(1), now)
    h.poll(now, *([amount(KEY, 5, now)] if start_open else []))
    flat_since: int | None = None if start_open else now
    orders.apply(algo_update(9, AlgoStatus.NEW, at_ms=now))
    created = now
    failed_id = 10_000
    last_fill = 0
    for kind, dt in steps:
        now += dt
        risk = False
        if kind == "stream_open":
            h.apply(stream(KEY, 5, now), now)
            risk = True
        elif kind == "stream_flat":
            h.apply(stream(KEY, 0, now), now)
        elif kind == "poll_open":
            h.poll(now, amount(KEY, 5, now))
            risk = True
        elif kind == "poll_flat":
            h.poll(now)
            if flat_since is None:
                flat_since = now
        elif kind == "poll_failed":
            failed_id += 1
            h.apply(SnapshotRequested(failed_id, now, None), now)
            h.apply(SnapshotFailed(failed_id, "HTTP 502"), now)
            risk = True
        elif kind == "gap":
            h.apply(StreamLost(1, "1006"), now)
            risk = True
        elif kind == "connect":
            h.apply(StreamConnected(2), now)
            risk = True
        elif kind == "fill":
            event = trade_lite(str(KEY.symbol), now, qty="5")
            h.apply(event, now)
            orders.apply(event)
            last_fill = now  # the shell's re-read then comes at least grace_ms after it
        else:
            h.apply(trade_lite("ETHUSDT", now), now)  # activity elsewhere: time passes
        if risk:
            flat_since = None
        decision = decide(h.book, orders, frozenset(), 0, now, POLICY)
        if decision.cancels:
            assert flat_since is not None, (kind, now, h.book.view(KEY))
            assert now - flat_since >= GRACE_MS, (now, flat_since)
            assert now - created >= GRACE_MS
            assert now - last_fill >= GRACE_MS
