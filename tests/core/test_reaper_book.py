"""decide() against the real PositionBook: the incident, gaps, failures and reopenings (pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.facts import amount, failed, requested, stream
from tests.core.reaper_support import KEY, LONG, SHORT, algo_update, listed_book
from tests.core.test_book import Harness
from watchdog.config import ReaperConfig
from watchdog.core.book import BookPolicy
from watchdog.core.effects import RequestSnapshot
from watchdog.core.events import Event, StreamConnected, StreamLost
from watchdog.core.model import AlgoStatus, Knowledge, PositionState
from watchdog.core.reaper import Why, decide

POLICY = ReaperConfig(grace_ms=2000).policy(max_rest_lag_ms=500)  # the book's lag bound below


class World:
    """The real book and order book, fed the same events, as the daemon's core loop does."""

    def __init__(self) -> None:
        self.h = Harness(BookPolicy(max_age_ms=60_000, max_rest_lag_ms=500))
        self.orders = listed_book()
        self.h.apply(StreamConnected(1), 0)
        self.h.poll(0, amount(KEY, 1216, 0))

    def apply(self, event: Event, now_ms: int) -> None:
        self.orders.apply(event)
        self.h.apply(event, now_ms)

    def poll(self, now_ms: int, *rows: object) -> None:
        self.h.poll(now_ms, *rows)

    def why(self, now_ms: int, algo_id: int = 9, leased: frozenset = frozenset()) -> Why:  # type: ignore[type-arg]
        decision = decide(self.h.book, self.orders, leased, 0, now_ms, POLICY)
        return {a.order.order_id: a.why for a in decision.assessments}[algo_id]  # type: ignore[index]


@pytest.fixture
def w() -> World:
    return World()


def test_incident_with_the_real_book(w: World) -> None:
    """BASUSDT: the stop fires at 1_000, REST confirms flat, the bot places a new stop at 3_000."""
    w.apply(stream(KEY, 0, 1_000), 1_000)
    w.poll(1_200)
    assert w.h.book.flat_since(KEY) == 1_200
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=3_000), 3_000)
    w.poll(4_000)
    assert w.why(4_999) is Why.NOT_FLAT_LONG_ENOUGH
    # REST proves flatness only as of its request time minus the lag bound (500 ms here).
    w.poll(5_499)
    assert w.why(6_000) is Why.NOT_FLAT_LONG_ENOUGH
    w.poll(5_500)
    assert w.why(5_500) is Why.ORPHAN


def test_flat_by_stream_only_asks_rest(w: World) -> None:
    w.apply(stream(KEY, 0, 1_000), 1_000)
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_100), 1_100)
    decision = decide(w.h.book, w.orders, frozenset(), 0, 9_000, POLICY)
    assert decision.assessments[0].why is Why.NO_REST_CONFIRMATION
    assert decision.snapshot_requests == (
        RequestSnapshot("reaper: confirm flat by REST", frozenset({KEY.symbol})),)


@pytest.mark.parametrize("breaker", [StreamLost(1, "1006"), StreamConnected(2)])
def test_a_stream_gap_stops_everything_until_rest_speaks_again(w: World, breaker: Event) -> None:
    w.apply(stream(KEY, 0, 1_000), 1_000)
    w.poll(1_200)
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_300), 1_300)
    w.apply(breaker, 2_000)
    assert w.why(9_000) is Why.KNOWLEDGE_SUSPECT
    w.poll(9_500)  # a snapshot requested after the gap: a new run starts
    assert w.why(11_500) is Why.NOT_FLAT_LONG_ENOUGH
    w.poll(12_000)  # proves flat as of 11_500: grace over
    assert w.why(12_000) is Why.ORPHAN


def test_a_failed_snapshot_resets_the_grace(w: World) -> None:
    w.apply(stream(KEY, 0, 1_000), 1_000)
    w.poll(1_200)
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_300), 1_300)
    assert w.why(3_000) is Why.NOT_FLAT_LONG_ENOUGH
    w.apply(requested(77, 3_100), 3_100)
    w.apply(failed(77), 3_200)
    assert w.why(3_300) is Why.KNOWLEDGE_SUSPECT
    w.poll(4_000)
    assert w.why(5_999) is Why.NOT_FLAT_LONG_ENOUGH
    w.poll(6_500)
    assert w.why(6_500) is Why.ORPHAN


def test_reopened_during_the_grace_keeps_the_stop(w: World) -> None:
    w.apply(stream(KEY, 0, 1_000), 1_000)
    w.poll(1_200)
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_300), 1_300)
    w.apply(stream(KEY, 5, 2_000), 2_000)
    assert w.why(10_000) is Why.POSITION_OPEN
    w.apply(stream(KEY, 0, 11_000), 11_000)
    assert w.why(20_000) is Why.NO_REST_CONFIRMATION  # a new run needs a new REST read


def test_rest_flat_within_lag_of_a_newer_open_is_not_trusted(w: World) -> None:
    """Rule 2 of the book: an untimed flat row within max_rest_lag_ms of an open is ambiguous."""
    w.apply(stream(KEY, 0, 1_000), 1_000)
    w.poll(1_200)
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_300), 1_300)
    w.apply(stream(KEY, 5, 5_000), 5_000)   # reopened...
    w.poll(5_100)                           # ...and a lagging REST read still shows flat
    assert w.why(20_000) in (Why.POSITION_OPEN, Why.KNOWLEDGE_SUSPECT)


def test_never_held_key_is_covered_by_the_all_symbols_run(w: World) -> None:
    other = LONG  # BTCUSDT:LONG: never held by the book
    w.apply(algo_update(10, AlgoStatus.NEW, at_ms=500, key=other, side="SELL",
                        reduce_only=False), 500)
    assert w.h.book.view(other) is None
    assert w.h.book.flat_since(other) == 0
    w.poll(1_000)
    assert w.why(2_500, algo_id=10) is Why.NOT_FLAT_LONG_ENOUGH
    w.poll(3_000)
    assert w.why(3_000, algo_id=10) is Why.ORPHAN


def test_hedge_mode_other_side_open_is_untouched(w: World) -> None:
    w.poll(500, amount(KEY, 1216, 0), amount(SHORT, -3, 400))
    w.apply(algo_update(11, AlgoStatus.NEW, at_ms=600, key=SHORT, side="BUY",
                        reduce_only=False), 600)
    w.apply(algo_update(12, AlgoStatus.NEW, at_ms=600, key=LONG, side="SELL",
                        reduce_only=False), 600)
    view = w.h.book.view(SHORT)
    assert view is not None
    assert view.state is PositionState.OPEN
    w.poll(3_100, amount(KEY, 1216, 0), amount(SHORT, -3, 400))
    assert w.why(10_000, algo_id=11) is Why.POSITION_OPEN
    assert w.why(10_000, algo_id=12) is Why.ORPHAN


# ---------------------------------------------------------------- property, real book

steps = st.lists(st.one_of(
    st.tuples(st.just("stream"), st.sampled_from([0, 0, 5, -2])),
    st.tuples(st.just("poll"), st.sampled_from([None, 0, 5])),
    st.tuples(st.just("fail"), st.just(0)),
    st.tuples(st.just("gap"), st.just(0)),
    st.tuples(st.just("order"), st.sampled_from(["NEW", "TRIGGERING", "entry"])),
), max_size=25)


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(0, 3_000), st.booleans())
def test_property_real_book_never_reaps_an_open_or_unsure_position(
        plan: list[tuple[str, object]], step_ms: int, leased: bool) -> None:
    w = World()
    t = 1_000
    rid = 1_000
    algo_id = 100
    for kind, arg in plan:
        t += step_ms + 1
        if kind == "stream":
            w.apply(stream(KEY, arg, t), t)  # type: ignore[arg-type]
        elif kind == "poll":
            rows = () if arg is None else (amount(KEY, arg, t - 1),)  # type: ignore[arg-type]
            w.poll(t, *rows)
        elif kind == "fail":
            rid += 1
            w.apply(requested(rid, t), t)
            w.apply(failed(rid), t)
        elif kind == "gap":
            w.apply(StreamLost(1, "1006"), t)
            w.apply(StreamConnected(2), t)
        else:
            algo_id += 1
            status = AlgoStatus.TRIGGERING if arg == "TRIGGERING" else AlgoStatus.NEW
            w.apply(algo_update(algo_id, status, at_ms=t, reduce_only=arg != "entry"), t)
        for now_ms in (t, t + 2_500):
            decision = decide(w.h.book, w.orders, frozenset({KEY}) if leased else frozenset(),
                              0, now_ms, POLICY)
            view = w.h.book.view(KEY)
            for cancel in decision.cancels:
                order = w.orders.get(cancel.order_id, is_algo=True)
                assert order is not None
                assert order.reduce_only
                assert not order.in_trigger
                assert not leased
                assert view is not None
                assert view.knowledge is Knowledge.CONFIRMED
                assert view.state is PositionState.CLOSED
                assert view.amount == Decimal(0)
                assert now_ms - order.create_time_ms >= POLICY.grace_ms
