"""docs/RULES.md rule 1: attempts to make the pure reaper cancel a stop that protects (or is about to
protect) an open position. Pure: real PositionBook/OrderBook, injected times, no sockets."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.facts import amount, stream, trade_lite
from tests.core.reaper_support import (
    KEY,
    LONG,
    SHORT,
    StubPositions,
    algo_row,
    algo_update,
    listed_book,
    order_row,
    order_update,
    snapshot,
)
from tests.core.test_book import Harness
from watchdog.config import ReaperConfig
from watchdog.core.book import BookPolicy
from watchdog.core.events import SnapshotFailed, SnapshotRequested, StreamConnected, StreamLost
from watchdog.core.model import AlgoStatus, PositionKey
from watchdog.core.orders import OrderBook
from watchdog.core.reaper import Why, decide

POLICY = ReaperConfig(grace_ms=2_000).policy(max_rest_lag_ms=500)  # the books' lag bound below


def orders_of(*rows: object, at_ms: int = 1_100) -> OrderBook:
    book = listed_book()
    algos = tuple(r for r in rows if hasattr(r, "algo_id"))
    plain = tuple(r for r in rows if not hasattr(r, "algo_id"))
    book.apply(snapshot(algos=algos, orders=plain, at_ms=at_ms))  # type: ignore[arg-type]
    return book


def why_of(positions: object, orders: OrderBook, now_ms: int) -> dict[int, Why]:
    decision = decide(positions, orders, frozenset(), 0, now_ms, POLICY)  # type: ignore[arg-type]
    return {a.order.order_id: a.why for a in decision.assessments}


# ------------------------------------------------- a stop placed before its entry has filled


def test_stop_preplaced_with_a_resting_entry_is_not_an_orphan() -> None:
    """A limit entry and its closePosition stop placed together: the position is still flat,
    but the stop is the protection of the position the entry opens. Cancelling it leaves the
    position unprotected the moment the entry fills."""
    positions = StubPositions().set_flat(KEY, 500)
    orders = orders_of(
        order_row(1, side="BUY", reduce_only=False, client_id="bot-entry", created_ms=1_000),
        algo_row(9, side="SELL", reduce_only=False, close_position=True, created_ms=1_000))
    verdict = why_of(positions, orders, 60_000)
    assert verdict[1] is Why.ENTRY_ORDER
    assert verdict[9] is Why.ENTRY_PENDING


def test_hedge_entry_on_long_keeps_the_long_stop_only() -> None:
    positions = StubPositions().set_flat(LONG, 500).set_flat(SHORT, 500)
    orders = orders_of(
        order_row(1, key=LONG, side="BUY", reduce_only=False, created_ms=1_000),
        algo_row(9, key=LONG, side="SELL", reduce_only=False, created_ms=1_000),
        algo_row(10, key=SHORT, side="BUY", reduce_only=False, created_ms=1_000))
    verdict = why_of(positions, orders, 60_000)
    assert verdict[9] is Why.ENTRY_PENDING
    assert verdict[10] is Why.ORPHAN  # a SHORT-side stop without an entry on SHORT


def test_the_entry_gone_the_stop_is_an_orphan_again() -> None:
    positions = StubPositions().set_flat(KEY, 500)
    orders = orders_of(algo_row(9, created_ms=1_000))
    assert why_of(positions, orders, 60_000)[9] is Why.ORPHAN


@settings(max_examples=200, deadline=None)
@given(entry_side=st.sampled_from(["BUY", "SELL"]),
       stop_side=st.sampled_from(["BUY", "SELL"]),
       stop_is_algo=st.booleans(),
       created_ms=st.integers(0, 50_000),
       now_ms=st.integers(0, 200_000))
def test_property_no_reducing_order_is_selected_while_an_entry_rests_on_its_key(
        entry_side: str, stop_side: str, stop_is_algo: bool, created_ms: int,
        now_ms: int) -> None:
    positions = StubPositions().set_flat(KEY, 0)
    stop = (algo_row(9, side=stop_side, created_ms=created_ms) if stop_is_algo
            else order_row(9, side=stop_side, created_ms=created_ms, order_type="STOP_MARKET"))
    orders = orders_of(order_row(1, side=entry_side, reduce_only=False, created_ms=0), stop)
    decision = decide(positions, orders, frozenset(), 0, now_ms, POLICY)
    assert decision.cancels == ()


# ------------------------------------------------- a fill the stream did not report as a position


class World:
    """Real book and order book, fed the same events as the daemon's core loop does."""

    def __init__(self) -> None:
        self.h = Harness(BookPolicy(max_age_ms=600_000, max_rest_lag_ms=500))
        self.orders = listed_book()
        self.h.apply(StreamConnected(1), 0)
        self.h.poll(0, amount(KEY, 1216, 0))

    def apply(self, event: object, now_ms: int) -> None:
        self.orders.apply(event)  # type: ignore[arg-type]
        self.h.apply(event, now_ms)

    def why(self, now_ms: int, order_id: int = 9) -> Why:
        return why_of(self.h.book, self.orders, now_ms)[order_id]


def test_a_fill_on_a_flat_position_restarts_the_grace() -> None:
    """The book's flat run survives a fill (core/book.py rule 9 lists no fill), so without this
    an old reduce-only stop on a position the fill just reopened is an orphan at once, and the
    pre-cancel REST re-read, made right after the fill, is the only guard: REST lag hides the
    open. The reaper counts its grace from the fill instead."""
    w = World()
    w.apply(stream(KEY, 0, 1_000), 1_000)             # the stop fired: flat
    w.h.poll(1_200)
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_300), 1_300)   # an orphaned stop
    w.h.poll(3_800)  # proves flat as of 3_300 (500 ms of REST lag): the grace is over
    assert w.why(3_800) is Why.ORPHAN
    # A new entry fills at 10_000: the stream sends the fill but (the incident) no
    # ACCOUNT_UPDATE. The old reduce-only stop now protects the new position.
    w.apply(trade_lite(str(KEY.symbol), 10_000, qty="1216"), 10_000)
    assert w.why(10_050) is Why.NOT_FLAT_LONG_ENOUGH
    assert w.why(11_999) is Why.NOT_FLAT_LONG_ENOUGH
    assert w.why(12_000) is Why.NOT_FLAT_LONG_ENOUGH  # no read proves 12_000 yet
    w.h.poll(12_500)
    assert w.why(12_500) is Why.ORPHAN  # REST has had the grace to show the open


def test_a_blind_reconnect_restarts_the_flat_run_an_entry_missed_before_it_keeps_its_stop() -> None:
    """Why a gap restarts the flat run even when every REST read before it was flat (book rule
    9; issue 12's first blind incident pays for it, docs/RELIABILITY.md): a blind stream misses
    an entry's fill before the reconnect, and REST, lagging within the bound, still shows flat.
    Were the run kept from its first flat read (before the reconnect), the post-connect read
    would prove the grace over and the old stop, now the new position's protection, would be
    cancelled; restarted at the post-connect read, the proving read comes grace + lag later and
    shows the open. (Here the reconnect comes late, as a second blind verdict within the
    minute does: blind reconnects are rate-limited.)"""
    w = World()
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_300), 1_300)  # the position's stop
    # The stream goes mute; the position closes at 5_000 and REST shows it (absent row).
    w.h.poll(5_100)
    assert w.why(5_100) is Why.NOT_FLAT_LONG_ENOUGH
    w.h.poll(6_100)
    w.h.poll(7_100)
    # 7_400: the bot's entry fills again; the mute stream says nothing. The blind reconnect.
    w.apply(StreamLost(1, "blind"), 7_700)
    w.apply(StreamConnected(2), 7_700)
    w.h.poll(7_710)  # lawful: requested 310 ms after the fill, REST 500 ms behind shows flat
    # Kept from 5_100, this read would prove 7_210 - 5_100 >= grace: the stop would go.
    assert w.why(7_710) is not Why.ORPHAN
    w.h.poll(8_000, amount(KEY, 1216, 7_400))  # REST catches up
    assert w.why(60_000) is Why.POSITION_OPEN


def test_bracket_entry_filled_without_a_position_event_keeps_its_stop_for_the_grace() -> None:
    """Entry LIMIT + closePosition stop; the entry fills, ACCOUNT_UPDATE is missing: the entry
    is gone (no ENTRY_PENDING any more) but the fill restarts the grace."""
    w = World()
    w.apply(stream(KEY, 0, 1_000), 1_000)
    w.h.poll(1_200)
    entry = order_update(1, "NEW", at_ms=1_300, side="BUY", reduce_only=False,
                         client_id="bot-entry")
    w.apply(entry, 1_300)
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_300, close_position=True,
                        reduce_only=False), 1_300)
    assert w.why(60_000) is Why.ENTRY_PENDING
    filled = replace(order_update(1, "FILLED", at_ms=60_000, side="BUY", reduce_only=False,
                                  client_id="bot-entry"),
                     filled_quantity=Decimal(1216), last_filled_quantity=Decimal(1216))
    w.apply(filled, 60_000)
    assert w.why(60_010) is Why.NOT_FLAT_LONG_ENOUGH


def test_a_reduce_only_fill_does_not_delay_the_reaper() -> None:
    w = World()
    w.apply(stream(KEY, 0, 1_000), 1_000)
    w.h.poll(1_200)
    w.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_300), 1_300)
    closing = replace(order_update(5, "FILLED", at_ms=5_000, side="SELL", reduce_only=True),
                      filled_quantity=Decimal(1), last_filled_quantity=Decimal(1))
    w.h.poll(3_800)
    w.apply(closing, 5_000)
    assert w.why(5_010) is Why.ORPHAN


@pytest.mark.parametrize("amt", ["0E-8", "-0", "0.000", "-0.000", "0e+3"])
def test_odd_zero_spellings_of_a_rest_row_count_as_flat_not_open(amt: str) -> None:
    """Sanity: every spelling of zero is flat for the book (the reaper may act), and the
    smallest non-zero is open (it may not)."""
    h = Harness(BookPolicy(max_age_ms=600_000, max_rest_lag_ms=500))
    h.apply(StreamConnected(1), 0)
    h.poll(100, amount(KEY, amt, 90))
    assert h.book.flat_since(KEY) == 100
    h.poll(200, amount(KEY, "1E-8", 190))
    assert h.book.flat_since(KEY) is None
    orders = orders_of(algo_row(9, created_ms=50))
    assert why_of(h.book, orders, 99_999)[9] is Why.POSITION_OPEN


def test_ids_beyond_2_53_route_the_cancel_to_the_exact_order() -> None:
    big = 2**63 - 7
    positions = StubPositions().set_flat(KEY, 0)
    orders = orders_of(algo_row(big, created_ms=0), algo_row(big - 1, created_ms=0))
    decision = decide(positions, orders, frozenset(), 0, 60_000, POLICY)
    assert sorted(c.order_id for c in decision.cancels) == [big - 1, big]


def test_a_key_never_held_with_an_order_on_the_other_hedge_side_is_its_own_key() -> None:
    """An open LONG must never make the LONG stop an orphan because SHORT is flat."""
    h = Harness(BookPolicy(max_age_ms=600_000, max_rest_lag_ms=500))
    h.apply(StreamConnected(1), 0)
    h.poll(100, amount(LONG, "20", 90), amount(SHORT, "0", 90))
    orders = orders_of(algo_row(9, key=LONG, side="SELL", reduce_only=False, created_ms=50),
                       algo_row(10, key=SHORT, side="BUY", reduce_only=False, created_ms=50))
    h.poll(2_600, amount(LONG, "20", 90), amount(SHORT, "0", 90))  # flat as of 2_100
    verdict = why_of(h.book, orders, 99_999)
    assert verdict[9] is Why.POSITION_OPEN
    assert verdict[10] is Why.ORPHAN
    assert h.book.view(PositionKey(LONG.symbol, LONG.side)).amount == Decimal(20)  # type: ignore[union-attr]


# ---------------------------------------------------------------- the model: any interleaving

MODEL_GRACE_MS = 1_000
MODEL_POLICY = ReaperConfig(grace_ms=MODEL_GRACE_MS).policy(max_rest_lag_ms=2000)

steps = st.lists(st.tuples(
    st.sampled_from(["stream_open", "stream_flat", "poll_open", "poll_flat", "poll_failed",
                     "gap", "connect", "fill", "tick"]),
    st.integers(0, 1_500)), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(steps=steps, start_open=st.booleans())
def test_property_a_cancel_always_has_a_flat_rest_run_of_grace_since_the_last_risk(
        steps: list[tuple[str, int]], start_open: bool) -> None:
    """docs/RULES.md rule 1 as a model-based property: random interleavings of stream facts,
    REST polls (flat or open, failed), stream gaps, fills and time, applied to the real
    PositionBook and OrderBook. Whenever ``decide`` selects the stop, the model demands: a REST
    poll showing the key flat, requested after the last open fact, gap and failed read, at least
    ``grace_ms`` ago, and the last fill at least ``grace_ms`` ago (the pre-cancel REST re-read
    then follows it)."""
    h = Harness(BookPolicy(max_age_ms=10_000, max_rest_lag_ms=300))
    orders = listed_book()
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
        decision = decide(h.book, orders, frozenset(), 0, now, MODEL_POLICY)
        if decision.cancels:
            assert flat_since is not None, (kind, now, h.book.view(KEY))
            assert now - flat_since >= MODEL_GRACE_MS, (now, flat_since)
            assert now - created >= MODEL_GRACE_MS
            assert now - last_fill >= MODEL_GRACE_MS
