"""The pure orphan decision, rule by rule, plus a property test over random books (no sockets)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    view,
)
from watchdog.config import ReaperConfig
from watchdog.core.effects import CancelOrder, RequestSnapshot
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
from watchdog.core.reaper import LEASE_DEPENDENT, ReaperPolicy, Why, decide

POLICY = ReaperConfig(grace_ms=2_000, stuck_triggering_s=10.0).policy(
    max_rest_lag_ms=0)  # the stub proves "as of now"; REST lag: its own tests


def book_of(*rows: object) -> OrderBook:
    book = listed_book()
    algos = tuple(r for r in rows if hasattr(r, "algo_id"))
    orders = tuple(r for r in rows if not hasattr(r, "algo_id"))
    book.apply(snapshot(algos=algos, orders=orders, at_ms=1_100))  # type: ignore[arg-type]
    return book


def verdicts(decision: object) -> dict[int, Why]:
    return {a.order.order_id: a.why for a in decision.assessments}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the incident


def test_incident_stop_for_closed_position_is_reaped_after_grace() -> None:
    """BASUSDT: flat by REST at 1_000, the bot places a stop at 1_500 for the closed position."""
    positions = StubPositions().set_flat(KEY, 1_000)
    book = listed_book()
    book.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_500))
    early = decide(positions, book, frozenset(), 0, 3_000, POLICY)
    assert early.cancels == ()
    assert early.assessments[0].why is Why.NOT_FLAT_LONG_ENOUGH
    assert early.assessments[0].remaining_ms == 500  # grace counts from creation, not flat_since
    ripe = decide(positions, book, frozenset(), 0, 3_500, POLICY)
    assert ripe.cancels == (CancelOrder(key=KEY, order_id=OrderId(9), is_algo=True,
                                        client_id="bot-sl", reason=ripe.cancels[0].reason),)
    assert ripe.orphans[0].order.order_id == 9
    assert ripe.kept == ()


def test_grace_counts_from_flat_since_when_the_order_is_older() -> None:
    positions = StubPositions().set_flat(KEY, 5_000)
    book = book_of(algo_row(1, created_ms=1_000))
    assert verdicts(decide(positions, book, frozenset(), 0, 6_999, POLICY)) == {
        1: Why.NOT_FLAT_LONG_ENOUGH}
    assert verdicts(decide(positions, book, frozenset(), 0, 7_000, POLICY)) == {1: Why.ORPHAN}


def test_rest_proves_flatness_only_as_of_its_request_time_minus_the_lag_bound() -> None:
    """Issue 12: a stop at 1_000, REST 1.5 s behind (bound 2 s), the entry fills at 1_800 and
    the stream is muted. A read requested at 3_300 shows the state of 1_800 or earlier: it may
    not end a grace that runs until 3_000. Only a read requested at 5_000 or later can."""
    policy = ReaperConfig(grace_ms=2_000).policy(max_rest_lag_ms=2_000)
    positions = StubPositions().set_flat(KEY, 0)
    book = listed_book()
    book.apply(algo_update(9, AlgoStatus.NEW, at_ms=1_000))
    positions.proven[KEY] = 3_300
    early = decide(positions, book, frozenset(), 0, 9_000, policy)
    assert early.cancels == ()
    assert early.assessments[0].why is Why.NOT_FLAT_LONG_ENOUGH
    assert early.assessments[0].remaining_ms == 0  # a read requested now would prove it
    # a read requested now (9_000) would prove it: the reaper asks for one instead of waiting
    assert early.snapshot_requests == (
        RequestSnapshot("reaper: confirm flat by REST", frozenset({KEY.symbol})),)
    positions.proven[KEY] = 4_999
    assert verdicts(decide(positions, book, frozenset(), 0, 9_000, policy)) == {
        9: Why.NOT_FLAT_LONG_ENOUGH}
    positions.proven[KEY] = 5_000
    assert verdicts(decide(positions, book, frozenset(), 0, 9_000, policy)) == {9: Why.ORPHAN}
    # and never before now_ms allows it (a read can only be as new as now)
    too_early = decide(positions, book, frozenset(), 0, 2_999, policy)
    assert verdicts(too_early) == {9: Why.NOT_FLAT_LONG_ENOUGH}
    assert too_early.snapshot_requests == ()  # a read now could not prove it yet


# ---------------------------------------------------------------- never touched


def test_the_stream_canary_is_never_reaped() -> None:
    """Issue 12, Deliver 3: the canary (a reduce-only BUY stop on a flat symbol) looks exactly
    like an orphan; the reaper leaves it to the canary, which cancels it within its bound."""
    positions = StubPositions().set_flat(KEY, 1_000)
    book = book_of(algo_row(1, side="BUY", client_id="wd-canary-1796598253844"),
                   algo_row(2, side="BUY", client_id="bot-sl"))
    assert verdicts(decide(positions, book, frozenset(), 0, 60_000, POLICY)) == {
        1: Why.CANARY, 2: Why.ORPHAN}


@pytest.mark.parametrize("status", [AlgoStatus.TRIGGERING, AlgoStatus.TRIGGERED])
def test_algo_in_trigger_is_never_cancelled(status: AlgoStatus) -> None:
    positions = StubPositions().set_flat(KEY, 1_000)
    book = book_of(algo_row(1, status=status, created_ms=500, updated_ms=90_000))
    decision = decide(positions, book, frozenset(), 0, 95_000, POLICY)
    assert decision.cancels == ()
    assert verdicts(decision) == {1: Why.TRIGGERING}
    assert decision.alerts == ()  # 5 s in trigger: under the 10 s limit


def test_stuck_triggering_raises_an_alert_and_is_not_cancelled() -> None:
    positions = StubPositions().set_flat(KEY, 1_000)
    book = book_of(algo_row(1, status=AlgoStatus.TRIGGERING, created_ms=500, updated_ms=2_000))
    decision = decide(positions, book, frozenset(), 0, 12_001, POLICY)
    assert decision.cancels == ()
    assert [a.code for a in decision.alerts] == ["algo_stuck_triggering"]
    assert decision.alerts[0].key == KEY
    assert "10001 ms" in decision.alerts[0].message
    assert decision.effects[0] == decision.alerts[0]
    detail = dict(decision.alerts[0].detail)  # an event about an order names it (issue 12)
    assert (detail["order_id"], detail["symbol"], detail["side"], detail["algo"]) == (
        "1", KEY.symbol, "BOTH", "1")


def test_triggered_with_a_resting_child_is_not_stuck_but_the_child_can_be_orphaned() -> None:
    positions = StubPositions().set_flat(KEY, 1_000)
    book = listed_book()
    book.apply(algo_update(1, AlgoStatus.TRIGGERED, at_ms=2_000, child=77))
    book.apply(order_update(77, "NEW", at_ms=2_001, order_type="LIMIT"))  # STOP → resting limit
    decision = decide(positions, book, frozenset(), 0, 30_000, POLICY)
    assert decision.alerts == ()
    assert verdicts(decision) == {1: Why.TRIGGERING, 77: Why.ORPHAN}
    assert decision.cancels[0].is_algo is False
    assert decision.cancels[0].order_id == 77


def test_triggered_without_child_for_too_long_alerts() -> None:
    positions = StubPositions().set_flat(KEY, 1_000)
    book = listed_book()
    book.apply(algo_update(1, AlgoStatus.TRIGGERED, at_ms=2_000, child=77))
    decision = decide(positions, book, frozenset(), 0, 12_001, POLICY)
    assert [a.code for a in decision.alerts] == ["algo_stuck_triggering"]


def test_entries_are_never_touched() -> None:
    positions = StubPositions().set_flat(KEY, 1_000)
    book = book_of(algo_row(1, reduce_only=False), order_row(2, reduce_only=False),
                   order_row(3, reduce_only=True), order_row(4, reduce_only=False,
                                                             close_position=True))
    assert verdicts(decide(positions, book, frozenset(), 0, 10_000, POLICY)) == {
        1: Why.ENTRY_ORDER, 2: Why.ENTRY_ORDER, 3: Why.ENTRY_PENDING, 4: Why.ENTRY_PENDING}
    alone = book_of(order_row(3, reduce_only=True), order_row(4, reduce_only=False,
                                                              close_position=True))
    assert verdicts(decide(positions, alone, frozenset(), 0, 10_000, POLICY)) == {
        3: Why.ORPHAN, 4: Why.ORPHAN}


@pytest.mark.parametrize(("knowledge", "why"), [
    (Knowledge.SUSPECT, Why.KNOWLEDGE_SUSPECT),
    (Knowledge.UNKNOWN, Why.KNOWLEDGE_UNKNOWN),
    (Knowledge.EXPIRED, Why.KNOWLEDGE_EXPIRED),
])
def test_nothing_moves_unless_knowledge_is_confirmed(knowledge: Knowledge, why: Why) -> None:
    positions = StubPositions(views={KEY: view(knowledge=knowledge)}, flat={KEY: 1_000})
    book = book_of(algo_row(1))
    assert verdicts(decide(positions, book, frozenset(), 0, 10_000, POLICY)) == {1: why}


def test_no_view_at_all_is_unknown() -> None:
    assert verdicts(decide(StubPositions(), book_of(algo_row(1)), frozenset(), 0, 10_000,
                           POLICY)) == {1: Why.KNOWLEDGE_UNKNOWN}


def test_never_held_key_flat_by_the_all_symbols_run_is_reaped() -> None:
    """PositionBook: a key it never held has no view but is covered by the all-symbols run."""
    positions = StubPositions(flat={KEY: 1_000})
    assert verdicts(decide(positions, book_of(algo_row(1)), frozenset(), 0, 10_000, POLICY)) == {
        1: Why.ORPHAN}


def test_open_position_keeps_its_stop() -> None:
    positions = StubPositions(views={KEY: view(amount=Decimal(1216))})
    assert verdicts(decide(positions, book_of(algo_row(1)), frozenset(), 0, 10_000, POLICY)) == {
        1: Why.POSITION_OPEN}


def test_closed_state_with_an_amount_is_treated_as_open() -> None:
    positions = StubPositions(views={KEY: view(amount=Decimal(1), state=PositionState.CLOSED)},
                              flat={KEY: 1_000})
    assert verdicts(decide(positions, book_of(algo_row(1)), frozenset(), 0, 10_000, POLICY)) == {
        1: Why.POSITION_OPEN}


def test_hedge_mode_only_the_flat_side_is_reaped() -> None:
    positions = StubPositions().set_flat(LONG, 1_000)
    positions.views[SHORT] = view(SHORT, amount=Decimal(-3))
    book = book_of(algo_row(1, key=LONG, side="SELL", reduce_only=False),
                   algo_row(2, key=SHORT, side="BUY", reduce_only=False),
                   algo_row(3, key=SHORT, side="SELL", reduce_only=False))
    decision = decide(positions, book, frozenset(), 0, 10_000, POLICY)
    assert verdicts(decision) == {1: Why.ORPHAN, 2: Why.POSITION_OPEN, 3: Why.ENTRY_ORDER}
    assert [c.key for c in decision.cancels] == [LONG]


def test_a_held_lease_makes_it_wait() -> None:
    positions = StubPositions().set_flat(KEY, 1_000)
    book = book_of(algo_row(1))
    assert verdicts(decide(positions, book, frozenset({KEY}), 0, 10_000, POLICY)) == {
        1: Why.LEASE_HELD}
    assert verdicts(decide(positions, book, frozenset(), 0, 10_000, POLICY)) == {1: Why.ORPHAN}


def test_stream_only_flatness_asks_for_a_rest_snapshot() -> None:
    positions = StubPositions(views={KEY: view()})  # CONFIRMED closed, no REST run
    decision = decide(positions, book_of(algo_row(1)), frozenset(), 0, 10_000, POLICY)
    assert verdicts(decision) == {1: Why.NO_REST_CONFIRMATION}
    assert decision.snapshot_requests == (
        RequestSnapshot(reason="reaper: confirm flat by REST", symbols=frozenset({KEY.symbol})),)


def test_rest_failure_resets_the_grace() -> None:
    """flat_since is reset by the book on a failed snapshot: the grace starts over."""
    positions = StubPositions().set_flat(KEY, 1_000)
    book = book_of(algo_row(1, created_ms=500))
    assert verdicts(decide(positions, book, frozenset(), 0, 2_500, POLICY)) == {
        1: Why.NOT_FLAT_LONG_ENOUGH}
    positions.views[KEY] = view(knowledge=Knowledge.SUSPECT)  # SnapshotFailed
    del positions.flat[KEY]
    assert verdicts(decide(positions, book, frozenset(), 0, 3_100, POLICY)) == {
        1: Why.KNOWLEDGE_SUSPECT}
    positions.set_flat(KEY, 3_200)  # a new run starts with the next good snapshot
    assert verdicts(decide(positions, book, frozenset(), 0, 5_100, POLICY)) == {
        1: Why.NOT_FLAT_LONG_ENOUGH}
    assert verdicts(decide(positions, book, frozenset(), 0, 5_200, POLICY)) == {1: Why.ORPHAN}


def test_client_id_prefix_limits_to_the_bots_orders() -> None:
    positions = StubPositions().set_flat(KEY, 1_000)
    book = book_of(algo_row(1, client_id="bot-sl-1"), algo_row(2, client_id="manual"))
    policy = ReaperConfig(client_id_prefix="bot-").policy(max_rest_lag_ms=2_000)
    assert verdicts(decide(positions, book, frozenset(), 0, 10_000, policy)) == {
        1: Why.ORPHAN, 2: Why.PREFIX_MISMATCH}


def test_budget_caps_cancels_oldest_first() -> None:
    positions = StubPositions().set_flat(KEY, 1_000)
    book = book_of(*(algo_row(i, created_ms=100 + i) for i in range(1, 6)))
    policy = ReaperConfig(max_cancels_per_min=4).policy(max_rest_lag_ms=2_000)
    decision = decide(positions, book, frozenset(), 2, 10_000, policy)
    assert [c.order_id for c in decision.cancels] == [1, 2]
    assert [verdicts(decision)[i] for i in range(1, 6)] == [
        Why.ORPHAN, Why.ORPHAN, Why.BUDGET_EXHAUSTED, Why.BUDGET_EXHAUSTED, Why.BUDGET_EXHAUSTED]


def test_every_order_gets_exactly_one_verdict() -> None:
    positions = StubPositions().set_flat(KEY, 1_000)
    book = book_of(algo_row(1), order_row(2, reduce_only=False), algo_row(3, key=LONG))
    decision = decide(positions, book, frozenset(), 0, 10_000, POLICY)
    assert sorted(a.order.order_id for a in decision.assessments) == [1, 2, 3]


# ---------------------------------------------------------------- property


KEYS = [PositionKey(Symbol(s), side) for s in ("BASUSDT", "BTCUSDT")
        for side in (PositionSide.BOTH, PositionSide.LONG, PositionSide.SHORT)]

views_st = st.one_of(
    st.none(),
    st.builds(lambda k, a: (k, a),
              st.sampled_from(list(Knowledge)),
              st.sampled_from([Decimal(0), Decimal(1216), Decimal(-3), Decimal("0.001")])),
)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[StubPositions, OrderBook, frozenset[PositionKey], int, int,
                                      ReaperPolicy]:
    positions = StubPositions()
    for key in KEYS:
        drawn = draw(views_st)
        if drawn is not None:
            knowledge, amount = drawn
            state = draw(st.sampled_from([None, *PositionState]))
            positions.views[key] = view(key, knowledge=knowledge, amount=amount, state=state)
        if draw(st.booleans()):
            positions.flat[key] = draw(st.integers(0, 20_000))
            if draw(st.booleans()):  # else: proven "at now" (the stub's far-future read)
                positions.proven[key] = draw(st.integers(positions.flat[key], 45_000))
    algos = []
    orders = []
    for i in range(draw(st.integers(0, 12))):
        key = draw(st.sampled_from(KEYS))
        created = draw(st.integers(0, 20_000))
        side = draw(st.sampled_from(["BUY", "SELL"]))
        ro = draw(st.booleans())
        cp = draw(st.booleans())
        cid = draw(st.sampled_from(["bot-1", "x-2", ""]))
        if draw(st.booleans()):
            algos.append(algo_row(i, key=key, side=side, reduce_only=ro, close_position=cp,
                                  created_ms=created, client_id=cid,
                                  status=draw(st.sampled_from([AlgoStatus.NEW,
                                                               AlgoStatus.TRIGGERING,
                                                               AlgoStatus.TRIGGERED]))))
        else:
            orders.append(order_row(i, key=key, side=side, reduce_only=ro, close_position=cp,
                                    created_ms=created, client_id=cid))
    book = listed_book()
    book.apply(snapshot(algos=tuple(algos), orders=tuple(orders), at_ms=0))
    leased = frozenset(draw(st.lists(st.sampled_from(KEYS), max_size=3)))
    policy = ReaperConfig(grace_ms=draw(st.integers(0, 5_000)),
                          client_id_prefix=draw(st.sampled_from(["", "bot-"])),
                          max_cancels_per_min=draw(st.integers(0, 6))).policy(
        max_rest_lag_ms=draw(st.integers(0, 3_000)))
    return positions, book, leased, draw(st.integers(0, 10)), draw(st.integers(0, 40_000)), policy


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_property_never_selects_an_unsafe_order(world: tuple[StubPositions, OrderBook,
                                                             frozenset[PositionKey], int, int,
                                                             ReaperPolicy]) -> None:
    positions, book, leased, used, now_ms, policy = world
    decision = decide(positions, book, leased, used, now_ms, policy)
    assert len(decision.assessments) == len(book)
    assert len(decision.cancels) <= max(0, policy.max_cancels_per_min - used)
    assert len(decision.cancels) == len(decision.orphans)
    for cancel in decision.cancels:
        order = book.get(cancel.order_id, is_algo=cancel.is_algo)
        assert order is not None
        assert order.key == cancel.key
        v = positions.view(order.key)
        flat_since = positions.flat_since(order.key)
        assert flat_since is not None                                        # flat by REST
        if v is not None:  # None: never held, flat by the all-symbols REST run
            assert v.knowledge is Knowledge.CONFIRMED                        # not suspect/unknown
            assert v.state is PositionState.CLOSED
            assert v.amount == 0
        assert order.reduce_only or order.close_position or (                # not an entry
            (order.key.side is PositionSide.LONG and order.side == "SELL")
            or (order.key.side is PositionSide.SHORT and order.side == "BUY"))
        assert not (order.is_algo and order.status in ("TRIGGERING", "TRIGGERED"))
        assert order.key not in leased
        assert now_ms - flat_since >= policy.grace_ms                        # grace over
        assert now_ms - order.create_time_ms >= policy.grace_ms
        proven = positions.flat_proven_ms(order.key)                         # … by REST proof,
        assert proven is not None                                            # less its lag
        assert proven - policy.max_rest_lag_ms - flat_since >= policy.grace_ms
        assert proven - policy.max_rest_lag_ms - order.create_time_ms >= policy.grace_ms
        assert order.client_id.startswith(policy.client_id_prefix)


@settings(max_examples=400, deadline=None)
@given(worlds(), st.frozensets(st.sampled_from(KEYS)))
def test_property_only_lease_dependent_verdicts_change_with_the_leases(
        world: tuple[StubPositions, OrderBook, frozenset[PositionKey], int, int, ReaperPolicy],
        other_leases: frozenset[PositionKey]) -> None:
    # The shell reads leases only while some verdict is LEASE_DEPENDENT (reaper_task rule 1):
    # without one, the whole decision is the same whatever the lease set.
    positions, book, leased, used, now_ms, policy = world
    decision = decide(positions, book, leased, used, now_ms, policy)
    other = decide(positions, book, other_leases, used, now_ms, policy)
    if not any(a.why in LEASE_DEPENDENT for a in decision.assessments):
        assert other == decision
    for a, b in zip(decision.assessments, other.assessments, strict=True):
        assert (a.why in LEASE_DEPENDENT) == (b.why in LEASE_DEPENDENT)
