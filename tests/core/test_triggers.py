"""core/triggers.py: watched stops, the subscription plan, crossings and their follow-up (pure),
and book.py rule 10 (a crossing makes the position suspect until a read requested after it)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.core.book import PositionBook
from watchdog.core.effects import Notify, RaiseAlert, RequestSnapshot
from watchdog.core.events import (
    AlgoUpdate,
    OpenAlgoOrder,
    OrdersSnapshot,
    OrderUpdate,
    PositionAmount,
    PositionSnapshot,
    SnapshotRequested,
    StopCrossed,
    StreamConnected,
    StreamPositions,
)
from watchdog.core.model import (
    AlgoStatus,
    Knowledge,
    OrderId,
    PositionKey,
    PositionSide,
    PositionState,
    Symbol,
)
from watchdog.core.orders import OrderBook
from watchdog.core.triggers import (
    MAX_STREAMS,
    NEAR_TRIGGER_FRACTION,
    CrossingDetector,
    FramePacer,
    TriggerLevel,
    TriggerWatch,
    crosses,
    levels_of,
    plan_frames,
    stream_name,
    wanted_streams,
)

BAS = Symbol("BASUSDT")
KEY = PositionKey(BAS, PositionSide.BOTH)
LONG = PositionKey(Symbol("BTCUSDT"), PositionSide.LONG)


def algo(algo_id: int, *, key: PositionKey = KEY, side: str = "SELL", order_type: str = "STOP_MARKET",
         trigger: str = "0.0077", working_type: str = "CONTRACT_PRICE", reduce_only: bool = True,
         close_position: bool = False, status: AlgoStatus = AlgoStatus.NEW, at_ms: int = 1_000
         ) -> AlgoUpdate:
    return AlgoUpdate(event_time_ms=at_ms, transaction_time_ms=at_ms, symbol=key.symbol,
                      position_side=key.side, algo_id=OrderId(algo_id), client_algo_id=f"c{algo_id}",
                      side=side, order_type=order_type, status=status, actual_order_id=None,
                      reduce_only=reduce_only, close_position=close_position,
                      trigger_price=Decimal(trigger), quantity=Decimal(1216), trigger_time_ms=0,
                      reject_reason="", working_type=working_type)


def book_of(*updates: AlgoUpdate) -> OrderBook:
    orders = OrderBook()
    for update in updates:
        orders.apply(update)
    return orders


# ---------------------------------------------------------------- rule 1: watched stops

@pytest.mark.parametrize(("update", "watched"), [
    (algo(1), True),                                                  # reduce-only STOP_MARKET
    (algo(1, reduce_only=False, close_position=True), True),          # closePosition
    (algo(1, order_type="TAKE_PROFIT_MARKET", trigger="0.009"), True),
    (algo(1, order_type="STOP", trigger="0.0077"), True),
    (algo(1, reduce_only=False), False),                              # may open a position
    (algo(1, key=LONG, side="SELL", reduce_only=False), True),        # hedge: SELL on LONG closes
    (algo(1, order_type="TRAILING_STOP_MARKET"), False),              # its trigger moves
    (algo(1, trigger="0"), False),
    (algo(1, status=AlgoStatus.TRIGGERING), False),                   # already firing
])
def test_which_stops_are_watched(update: AlgoUpdate, watched: bool) -> None:
    assert bool(levels_of(book_of(update))) is watched


def test_regular_stop_orders_are_watched_but_not_an_algos_child() -> None:
    orders = OrderBook()
    stop = OrderUpdate(event_time_ms=1, transaction_time_ms=1, symbol=BAS, position_side=PositionSide.BOTH,
                       order_id=OrderId(7), client_order_id="legacy", side="SELL", order_type="STOP_MARKET",
                       original_type="STOP_MARKET", execution_type="NEW", status="NEW", reduce_only=True,
                       close_position=False, stop_price=Decimal("0.0077"), quantity=Decimal(5),
                       filled_quantity=Decimal(0), last_filled_quantity=Decimal(0),
                       realized_profit=Decimal(0), working_type="MARK_PRICE")
    orders.apply(stop)
    (level,) = levels_of(orders)[BAS]
    assert (level.order_id, level.is_algo, level.stream) == (7, False, "basusdt@markPrice@1s")


def test_a_rest_row_carries_trigger_and_working_type() -> None:
    row = OpenAlgoOrder(symbol=BAS, position_side=PositionSide.BOTH, algo_id=OrderId(3), client_algo_id="x",
                        side="SELL", order_type="STOP_MARKET", status=AlgoStatus.NEW, actual_order_id=None,
                        reduce_only=False, close_position=True, trigger_price=Decimal("0.0075"),
                        quantity=Decimal(0), create_time_ms=1, update_time_ms=1, working_type="MARK_PRICE")
    orders = OrderBook()
    orders.apply(OrdersSnapshot(request_id=1, requested_time_ms=10, orders=(), algo_orders=(row,)))
    (level,) = levels_of(orders)[BAS]
    assert (level.trigger_price, level.working_type) == (Decimal("0.0075"), "MARK_PRICE")


# ---------------------------------------------------------------- rule 2: streams

@pytest.mark.parametrize(("working_type", "name"), [
    ("MARK_PRICE", "basusdt@markPrice@1s"), ("CONTRACT_PRICE", "basusdt@aggTrade"), ("", "basusdt@aggTrade")])
def test_stream_names(working_type: str, name: str) -> None:
    assert stream_name("BASUSDT", working_type) == name


def test_wanted_streams_of_two_stops_on_one_symbol() -> None:
    orders = book_of(algo(1), algo(2, working_type="MARK_PRICE"), algo(3))
    assert wanted_streams(levels_of(orders)) == {"basusdt@aggTrade", "basusdt@markPrice@1s"}


# ---------------------------------------------------------------- rule 3: crossings

def level(side: str, order_type: str, trigger: str = "100") -> TriggerLevel:
    return TriggerLevel(KEY, OrderId(1), True, side, order_type, Decimal(trigger), "CONTRACT_PRICE")


@pytest.mark.parametrize(("side", "order_type", "price", "crossed"), [
    ("SELL", "STOP_MARKET", "100", True), ("SELL", "STOP_MARKET", "99", True),
    ("SELL", "STOP_MARKET", "101", False),
    ("BUY", "STOP_MARKET", "100", True), ("BUY", "STOP_MARKET", "101", True),
    ("BUY", "STOP_MARKET", "99", False),
    ("SELL", "TAKE_PROFIT_MARKET", "101", True), ("SELL", "TAKE_PROFIT_MARKET", "99", False),
    ("BUY", "TAKE_PROFIT", "99", True), ("BUY", "TAKE_PROFIT", "101", False),
    ("SELL", "STOP", "100", True),
])
def test_crossing_direction(side: str, order_type: str, price: str, crossed: bool) -> None:
    assert crosses(level(side, order_type), Decimal(price)) is crossed


def test_detector_reports_once_per_crossing_and_rearms() -> None:
    detector = CrossingDetector()
    mark_stop = replace(level("SELL", "STOP_MARKET"), order_id=OrderId(2), working_type="MARK_PRICE")
    detector.set_levels({BAS: (level("SELL", "STOP_MARKET"), mark_stop)})
    assert detector.observe(BAS, "aggTrade", Decimal("101")) == []
    assert [lv.order_id for lv in detector.observe(BAS, "aggTrade", Decimal("99"))] == [1]
    assert detector.observe(BAS, "aggTrade", Decimal("98")) == []          # still crossed
    assert detector.observe(BAS, "aggTrade", Decimal("101")) == []         # back: re-armed
    assert [lv.order_id for lv in detector.observe(BAS, "aggTrade", Decimal("100"))] == [1]
    assert [lv.order_id for lv in detector.observe(BAS, "markPrice@1s", Decimal("1"))] == [2]
    assert detector.observe(Symbol("BTCUSDT"), "aggTrade", Decimal("1")) == []


def test_near_a_stop_of_unknown_distance_or_within_half_a_percent() -> None:
    """Rule 6 (the poller's calm rule): near when no price is known yet, when the price is
    within NEAR_TRIGGER_FRACTION of the trigger, or after the connection's prices are forgotten;
    a price of the other kind (mark vs last) says nothing about a stop."""
    detector = CrossingDetector()
    assert not detector.near()  # no stop: nothing near
    mark_stop = replace(level("SELL", "STOP_MARKET"), order_id=OrderId(2), working_type="MARK_PRICE")
    detector.set_levels({BAS: (level("SELL", "STOP_MARKET"),)})
    assert detector.near()  # no price yet: distance unknown
    detector.observe(BAS, "markPrice@1s", Decimal("200"))
    assert detector.near()  # a mark price does not place a CONTRACT_PRICE stop
    detector.observe(BAS, "aggTrade", Decimal("100.5"))
    assert detector.near()  # 0.5 % away: near
    detector.observe(BAS, "aggTrade", Decimal("100.6"))
    assert not detector.near()
    assert Decimal("0.005") == NEAR_TRIGGER_FRACTION
    detector.set_levels({BAS: (level("SELL", "STOP_MARKET"), mark_stop)})
    assert not detector.near()  # the mark price 200 is far from 100 too
    detector.observe(BAS, "markPrice@1s", Decimal("100.2"))
    assert detector.near()
    detector.observe(BAS, "markPrice@1s", Decimal("300"))
    assert not detector.near()
    detector.forget_prices()
    assert detector.near()  # connection lost: distance unknown again


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 100_000), st.integers(1, 100_000))
def test_near_matches_the_distance_rule(trigger: int, price: int) -> None:
    detector = CrossingDetector()
    detector.set_levels({BAS: (level("BUY", "STOP_MARKET", str(trigger)),)})
    detector.observe(BAS, "aggTrade", Decimal(price))
    assert detector.near() is (abs(price - trigger) <= Decimal(price) * NEAR_TRIGGER_FRACTION)


_PRICES = st.lists(st.integers(90, 110), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(_PRICES, st.sampled_from(["BUY", "SELL"]), st.sampled_from(["STOP_MARKET", "TAKE_PROFIT_MARKET"]))
def test_detector_reports_exactly_the_entries_into_the_firing_zone(
        prices: list[int], side: str, order_type: str) -> None:
    """A report for each step from the safe side (or the start) into the firing zone, no other."""
    lv = level(side, order_type)
    detector = CrossingDetector()
    detector.set_levels({BAS: (lv,)})
    was = False
    for price in prices:
        now = crosses(lv, Decimal(price))
        assert bool(detector.observe(BAS, "aggTrade", Decimal(price))) is (now and not was)
        was = now


# ---------------------------------------------------------------- rule 4: frames and pacing

def test_plan_unsubscribes_first_and_batches() -> None:
    wanted = frozenset(f"s{i:03d}usdt@aggTrade" for i in range(250))
    plan = plan_frames(frozenset({"old@aggTrade"}), wanted, per_frame=100)
    assert plan.unsubscribe == (("old@aggTrade",),)
    assert [len(f) for f in plan.subscribe] == [100, 100, 50]
    assert plan.dropped == ()
    assert plan_frames(wanted, wanted) == plan_frames(frozenset(), frozenset())  # nothing to do


def test_plan_never_exceeds_the_stream_limit() -> None:
    wanted = frozenset(f"s{i:04d}usdt@aggTrade" for i in range(MAX_STREAMS + 10))
    plan = plan_frames(frozenset(), wanted)
    assert sum(len(f) for f in plan.subscribe) == MAX_STREAMS
    assert len(plan.dropped) == 10


@settings(max_examples=100, deadline=None)
@given(st.frozensets(st.integers(0, 60)), st.frozensets(st.integers(0, 60)), st.integers(1, 50),
       st.integers(1, 20))
def test_applying_a_plan_reaches_the_wanted_set(current: frozenset[int], wanted: frozenset[int],
                                                limit: int, per_frame: int) -> None:
    cur = frozenset(f"{i}@aggTrade" for i in current if i < limit)  # a connection within the limit
    want = frozenset(f"{i}@aggTrade" for i in wanted)
    plan = plan_frames(cur, want, max_streams=limit, per_frame=per_frame)
    after = set(cur)
    for frame in plan.unsubscribe:
        after -= set(frame)
    for frame in plan.subscribe:
        assert len(frame) <= per_frame
        after |= set(frame)
        assert len(after) <= limit  # never past the limit, even between frames
    assert after | set(plan.dropped) == want
    assert not after & set(plan.dropped)


def test_pacer_allows_five_frames_a_second() -> None:
    pacer = FramePacer(per_s=5)
    for i in range(5):
        assert pacer.wait_s(0.1 * i) == 0
        pacer.record(0.1 * i)
    assert pacer.wait_s(0.5) == pytest.approx(0.5)
    assert pacer.wait_s(1.01) == 0


# ---------------------------------------------------------------- rule 5: follow-up

def crossed(order_id: int = 1, key: PositionKey = KEY) -> StopCrossed:
    return StopCrossed(key, OrderId(order_id), True, Decimal("0.0077"), Decimal("0.0076"), 5_000)


def test_a_crossing_the_exchange_acts_on_raises_nothing() -> None:
    orders, watch = book_of(algo(1)), TriggerWatch(confirm_bound_ms=3_000)
    effects = watch.on_crossed(crossed(), orders, now_ms=10_000)
    assert [type(e) for e in effects] == [Notify]
    assert watch.on_crossed(crossed(), orders, now_ms=10_001) == []  # one per stop
    orders.apply(algo(1, status=AlgoStatus.TRIGGERING, at_ms=5_050))
    assert watch.on_tick(orders, now_ms=20_000) == []
    assert watch.pending() == ()


def test_a_crossing_with_no_algo_update_raises_the_alert_after_the_bound() -> None:
    orders, watch = book_of(algo(1)), TriggerWatch(confirm_bound_ms=3_000)
    watch.on_crossed(crossed(), orders, now_ms=10_000)
    assert watch.on_tick(orders, now_ms=12_999) == []
    (alert,) = watch.on_tick(orders, now_ms=13_000)
    assert isinstance(alert, RaiseAlert)
    assert (alert.code, alert.key) == ("trigger_not_acted", KEY)
    assert watch.on_tick(orders, now_ms=20_000) == []  # once


def test_a_stop_that_only_vanishes_from_the_rest_list_still_alerts() -> None:
    """Stuck TRIGGERING (docs/BINANCE.md §3.6): openAlgoOrders stops listing it, no event came."""
    orders, watch = book_of(algo(1)), TriggerWatch(confirm_bound_ms=3_000)
    watch.on_crossed(crossed(), orders, now_ms=10_000)
    orders.apply(OrdersSnapshot(request_id=1, requested_time_ms=9_000_000, orders=(), algo_orders=()))
    assert orders.get(OrderId(1), is_algo=True) is None
    alerts = watch.on_tick(orders, now_ms=13_000)
    assert [e.code for e in alerts if isinstance(e, RaiseAlert)] == ["trigger_not_acted"]
    assert len(alerts) == 1


def test_a_terminal_fact_settles_the_crossing() -> None:
    orders, watch = book_of(algo(1)), TriggerWatch(confirm_bound_ms=3_000)
    watch.on_crossed(crossed(), orders, now_ms=10_000)
    orders.apply(algo(1, status=AlgoStatus.REJECTED, at_ms=5_010))  # "Reduce Only reject"
    assert watch.on_tick(orders, now_ms=13_000) == []


def test_a_crossing_of_a_stop_no_longer_watched_is_dropped() -> None:
    orders, watch = book_of(algo(1, status=AlgoStatus.TRIGGERED)), TriggerWatch()
    assert watch.on_crossed(crossed(), orders, now_ms=1) == []
    assert watch.on_crossed(crossed(order_id=99), orders, now_ms=1) == []


# ---------------------------------------------------------------- book.py rule 10

def confirmed_open_book() -> PositionBook:
    book = PositionBook()
    book.apply(StreamConnected(1), 1_000)
    book.apply(SnapshotRequested(1, 1_000), 1_000)
    row = PositionAmount(KEY, Decimal(1216), Decimal("0.008"), 900)
    book.apply(PositionSnapshot(1, 1_000, 1_010, (row,)), 1_010)
    assert book.view(KEY).state is PositionState.OPEN  # type: ignore[union-attr]
    return book


def test_a_crossing_makes_the_position_suspect_and_asks_for_its_symbol() -> None:
    book = confirmed_open_book()
    effects = book.apply(crossed(), 1_100)
    view = book.view(KEY)
    assert view is not None
    assert (view.state, view.knowledge) == (PositionState.UNKNOWN, Knowledge.SUSPECT)
    assert "crossed the trigger" in view.reason
    assert RequestSnapshot(reason=f"stop trigger crossed on {KEY}") in effects


def test_a_lagging_read_after_the_crossing_that_still_shows_open_keeps_the_doubt() -> None:
    """REST may lag (max_rest_lag_ms, 2 s by default): "still open" right after the crossing is
    no proof; "still open" read more than the lag after it is (the stop did not fire)."""
    book = confirmed_open_book()
    book.apply(replace(crossed(), price_time_ms=1_100), 1_100)
    open_row = (PositionAmount(KEY, Decimal(1216), Decimal("0.008"), 900),)
    book.apply(SnapshotRequested(2, 1_150), 1_150)
    book.apply(PositionSnapshot(2, 1_150, 1_160, open_row), 1_160)
    assert book.view(KEY).knowledge is Knowledge.SUSPECT  # type: ignore[union-attr]
    book.apply(SnapshotRequested(3, 3_100), 3_100)  # 2 s after the crossing
    book.apply(PositionSnapshot(3, 3_100, 3_110, open_row), 3_110)
    view = book.view(KEY)
    assert view is not None
    assert view.state is PositionState.OPEN


def test_only_a_read_requested_after_the_crossing_lifts_the_doubt() -> None:
    book = confirmed_open_book()
    book.apply(SnapshotRequested(2, 1_090), 1_090)     # in flight when the price crossed
    book.apply(crossed(), 1_100)
    open_row = (PositionAmount(KEY, Decimal(1216), Decimal("0.008"), 900),)
    book.apply(PositionSnapshot(2, 1_090, 1_150, open_row), 1_150)
    assert book.view(KEY).knowledge is Knowledge.SUSPECT  # type: ignore[union-attr]
    book.apply(SnapshotRequested(3, 1_160, frozenset({BAS})), 1_160)
    flat_row = (PositionAmount(KEY, Decimal(0), Decimal(0), 1_120),)  # the stop closed it at 1_120
    book.apply(PositionSnapshot(3, 1_160, 1_200, flat_row, frozenset({BAS})), 1_200)
    view = book.view(KEY)
    assert view is not None
    assert view.state is PositionState.CLOSED


_STEPS = st.lists(st.sampled_from(["cross", "request", "answer_open", "answer_flat", "stream_flat"]),
                  max_size=20)


@settings(max_examples=200, deadline=None)
@given(_STEPS)
def test_a_crossing_never_makes_a_position_look_safer(steps: list[str]) -> None:
    """Whatever surrounds it, a StopCrossed never confirms anything, never changes the amount,
    and leaves a confirmed key unconfirmed."""
    book = confirmed_open_book()
    now, request_id = 1_100, 10
    pending: list[tuple[int, int]] = []
    for step in steps:
        now += 250
        before = book.view(KEY)
        if step == "cross":
            book.apply(replace(crossed(), price_time_ms=now), now)
            after = book.view(KEY)
            assert before is not None
            assert after is not None
            assert after.amount == before.amount
            assert after.knowledge is not Knowledge.CONFIRMED
        elif step == "request":
            request_id += 1
            book.apply(SnapshotRequested(request_id, now), now)
            pending.append((request_id, now))
        elif step.startswith("answer") and pending:
            rid, at = pending.pop(0)
            amount = Decimal(1216) if step == "answer_open" else Decimal(0)
            row = PositionAmount(KEY, amount, Decimal("0.008"), at)
            book.apply(PositionSnapshot(rid, at, now, (row,)), now)
        elif step == "stream_flat":
            flat = PositionAmount(KEY, Decimal(0), Decimal(0), now)
            book.apply(StreamPositions(now, now, "ORDER", (flat,)), now)


def test_a_pending_crossing_is_a_firing_mark_until_the_exchange_acts() -> None:
    from watchdog.core.effects import Firing, MarkFiring
    from watchdog.core.firing import FiringWatch

    orders, watch, marks = book_of(algo(1)), TriggerWatch(confirm_bound_ms=3_000), FiringWatch()
    watch.on_crossed(crossed(), orders, now_ms=10_000)
    assert watch.firing() == {KEY: Firing(OrderId(1), "CROSSED", 5_000)}
    assert marks.update(orders, watch.firing()) == [MarkFiring(KEY, Firing(OrderId(1), "CROSSED", 5_000))]
    orders.apply(algo(1, status=AlgoStatus.TRIGGERING, at_ms=5_050))  # the exchange's word wins
    assert marks.update(orders, watch.firing()) == [
        MarkFiring(KEY, Firing(OrderId(1), "TRIGGERING", 5_050))]
    watch.on_tick(orders, now_ms=10_100)
    assert watch.firing() == {}
    assert marks.update(orders, watch.firing()) == []  # still TRIGGERING: nothing to write
