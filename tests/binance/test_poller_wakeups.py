"""The poller at idle: no wake-up that cannot lead to a read. Order timers that run out while the
order reads are held back by the budget, and a positions answer that changes nothing in the
schedule, leave it asleep; the positions poll and every real change still wake it."""

from __future__ import annotations

import copy
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.binance.poller import Poller, PollSchedule
from watchdog.binance.protocol.budget import WeightBudget
from watchdog.clock import ManualClock
from watchdog.core.events import PositionAmount, PositionSnapshot, SnapshotRequested, StreamConnected
from watchdog.core.model import PositionKey, PositionSide, Symbol


def snap(*symbols: str, request_id: int = 1) -> PositionSnapshot:
    return PositionSnapshot(request_id, 1, 2, tuple(
        PositionAmount(PositionKey(Symbol(s), PositionSide.BOTH), Decimal(1), Decimal(100), 1)
        for s in symbols), None)


class _Rest:
    """What the poller reads of BinanceRest's budget (our share, never held here)."""

    def __init__(self) -> None:
        self.budget = WeightBudget(360)

    def budget_wait_s(self, weight: int) -> float:
        return 0.0


def idle_poller(symbols: list[str]) -> tuple[Poller, PollSchedule, ManualClock]:
    clock = ManualClock()
    schedule = PollSchedule(poll_interval_s=0.9, orders_poll_interval_s=5.0,
                            fast_poll_interval_s=0.25)
    schedule.positions_seen(snap(*symbols), 0.0)
    schedule.sweep_started(0.0)  # no sweep in the way
    poller = Poller(_Rest(), schedule, clock=clock)  # type: ignore[arg-type]
    return poller, schedule, clock


def test_order_timers_held_by_the_budget_do_not_wake_the_poller_one_by_one() -> None:
    # After a resync the stream read every symbol's orders a few ms apart: their timers end a
    # few ms apart too. With the orders share spent, none of them can be read before it frees.
    poller, schedule, clock = idle_poller(["AUSDT", "BUSDT", "CUSDT"])
    schedule.orders_read(Symbol("AUSDT"), 0.0)
    schedule.orders_read(Symbol("BUSDT"), 0.01)
    schedule.orders_read(Symbol("CUSDT"), 0.02)
    poller._orders_budget.record(12, 0.0)  # the orders share is spent until 60 s
    schedule.positions_started(4.7)  # next positions read due at 5.6
    clock.now_s = 5.005  # AUSDT due and held back; BUSDT's timer ends at 5.01
    plan = schedule.plan(clock.now_s)
    assert plan.order_symbols == (Symbol("AUSDT"),)
    assert plan.wake_in_s == pytest.approx(0.005)  # the schedule's own next item is unchanged
    assert poller._next_wake_s(()) == pytest.approx(0.595)  # the positions poll, not BUSDT


def test_order_timers_still_wake_the_poller_when_nothing_is_held_back() -> None:
    poller, schedule, clock = idle_poller(["AUSDT"])
    schedule.orders_read(Symbol("AUSDT"), 0.0)
    schedule.positions_started(4.7)
    clock.now_s = 4.8
    assert poller._next_wake_s(()) == pytest.approx(0.2)  # AUSDT's orders at 5.0


def test_the_positions_poll_is_not_delayed_by_held_order_reads() -> None:
    poller, schedule, clock = idle_poller(["AUSDT"])
    poller._orders_budget.record(12, 0.0)
    schedule.positions_started(5.2)
    clock.now_s = 5.5
    assert schedule.plan(5.5).order_symbols == (Symbol("AUSDT"),)
    assert poller._next_wake_s(()) == pytest.approx(0.6)


def test_positions_seen_says_whether_the_schedule_changed() -> None:
    schedule = PollSchedule(poll_interval_s=0.9, orders_poll_interval_s=5.0,
                            fast_poll_interval_s=0.25)
    assert schedule.positions_seen(snap(), 0.0)  # the first answer: the sweep may go now
    assert not schedule.positions_seen(snap(), 0.5)
    assert schedule.positions_seen(snap("AUSDT"), 1.0)  # opened
    assert not schedule.positions_seen(snap("AUSDT"), 1.5)
    assert schedule.positions_seen(snap(), 2.0)  # closed: watched for recent_window_s
    assert Symbol("AUSDT") in schedule.tracked(2.5, ())
    opened = snap("BUSDT")
    assert schedule.positions_seen(opened, 3.0)
    assert not schedule.positions_seen(opened, 3.1)  # the same answer, seen again by observe


async def test_an_unchanged_positions_answer_does_not_wake_the_poller() -> None:
    poller, _, _ = idle_poller(["AUSDT"])
    poller.observe(snap("AUSDT", request_id=5))
    assert not poller._wake.is_set()
    poller.observe(snap("AUSDT", "BUSDT", request_id=6))  # BUSDT opened: its orders are due
    assert poller._wake.is_set()


async def test_the_streams_resync_answer_wakes_the_poller_even_when_unchanged() -> None:
    clock = ManualClock()
    schedule = PollSchedule(poll_interval_s=0.9, orders_poll_interval_s=5.0,
                            fast_poll_interval_s=0.25)
    schedule.positions_seen(snap("AUSDT"), 0.0)
    schedule.orders_read(Symbol("AUSDT"), 0.0)
    poller = Poller(_Rest(), schedule, clock=clock,  # type: ignore[arg-type]
                    order_symbols=lambda: {Symbol("ZUSDT")})
    poller.observe(StreamConnected(1))
    poller.observe(SnapshotRequested(9, 1, None))
    poller._wake.clear()
    poller.observe(snap("AUSDT", request_id=9))
    assert poller._wake.is_set()  # ZUSDT's orders are read once more, first in line
    assert schedule.plan(0.0).order_symbols == (Symbol("ZUSDT"),)


def _reference_due(s: PollSchedule, now_s: float, leased: frozenset[str]) -> tuple[Symbol, ...]:
    """The plan's order list as specified (poller.py rule 2), written plainly."""
    due = []
    for symbol in sorted(s.tracked(now_s, leased)):
        interval_s = s.orders_interval_s(symbol, now_s, leased)
        if symbol in s._requested_symbols or s._orders_at.get(symbol, -1e18) + interval_s <= now_s:
            due.append(symbol)
    return tuple(sorted(due, key=lambda sym: (sym not in s._requested_symbols,
                                              s._orders_at.get(sym, -1e18), sym)))


_SYMBOLS = [f"S{i}USDT" for i in range(6)]


def _schedule(opened: set[str], reads: dict[str, float], active: dict[str, float],
              requested: set[str]) -> PollSchedule:
    """A schedule that saw these positions, order reads, activity and requested symbols."""
    s = PollSchedule(poll_interval_s=0.9, orders_poll_interval_s=5.0, fast_poll_interval_s=0.25)
    s.positions_seen(snap(*sorted(opened)), 0.0)
    for symbol, at in reads.items():
        s.orders_read(Symbol(symbol), at)
    for symbol, at in active.items():
        s.activity(Symbol(symbol), at)
    if requested:
        s.snapshot_requested("fill", {Symbol(x) for x in requested})
    return s


@settings(max_examples=200, deadline=None)
@given(opened=st.sets(st.sampled_from(_SYMBOLS)),
       reads=st.dictionaries(st.sampled_from(_SYMBOLS), st.floats(0, 20)),
       active=st.dictionaries(st.sampled_from(_SYMBOLS), st.floats(0, 20)),
       requested=st.sets(st.sampled_from(_SYMBOLS)),
       leased=st.frozensets(st.sampled_from(_SYMBOLS)),
       now_s=st.floats(0, 30))
def test_plan_lists_due_order_reads_in_the_specified_order(
        opened: set[str], reads: dict[str, float], active: dict[str, float], requested: set[str],
        leased: frozenset[str], now_s: float) -> None:
    s = _schedule(opened, reads, active, requested)
    plan = s.plan(now_s, leased)
    assert plan.order_symbols == _reference_due(s, now_s, leased)
    assert plan.orders_urgent == tuple(x for x in plan.order_symbols if x in s._requested_symbols)
    assert plan.positions_wake_in_s >= plan.wake_in_s


@settings(max_examples=200, deadline=None)
@given(opened=st.sets(st.sampled_from(_SYMBOLS)),
       reads=st.dictionaries(st.sampled_from(_SYMBOLS), st.floats(0, 20)),
       active=st.dictionaries(st.sampled_from(_SYMBOLS), st.floats(0, 20)),
       requested=st.sets(st.sampled_from(_SYMBOLS)),
       leased=st.frozensets(st.sampled_from(_SYMBOLS)),
       now_s=st.floats(0, 30), calm=st.booleans())
def test_an_unordered_plan_is_the_same_plan_but_for_the_order_of_its_reads(
        opened: set[str], reads: dict[str, float], active: dict[str, float], requested: set[str],
        leased: frozenset[str], now_s: float, calm: bool) -> None:
    """What the poller's wake-up planning uses (``ordered=False``, no sort) is the sorted plan's
    content: every field equal, the due order reads the same set."""
    s = _schedule(opened, reads, active, requested)
    ordered = s.plan(now_s, leased, calm)
    unordered = s.plan(now_s, leased, calm, ordered=False)
    assert sorted(unordered.order_symbols) == sorted(ordered.order_symbols)
    assert len(unordered.order_symbols) == len(ordered.order_symbols)
    assert sorted(unordered.orders_urgent) == sorted(ordered.orders_urgent)
    assert replace(unordered, order_symbols=(), orders_urgent=()) == replace(
        ordered, order_symbols=(), orders_urgent=())



def test_the_streams_own_facts_leave_the_poller_as_it_was() -> None:
    """observe() returns at once for the stream's facts (the hot case of a flood): no wake-up,
    nothing in the schedule moves; their reads come as ReadNow effects of the core."""
    from watchdog.core.events import AlgoUpdate, OrderUpdate, StreamPositions, TradeLite
    from watchdog.core.model import AlgoStatus, OrderId

    poller, schedule, _ = idle_poller(["BTCUSDT"])
    poller._wake.clear()
    before = (copy.deepcopy(vars(schedule)), poller._stream_orders_until)
    symbol, one = Symbol("BTCUSDT"), Decimal(1)
    key = PositionKey(symbol, PositionSide.BOTH)
    for event in (
            StreamPositions(1, 1, "ORDER", (PositionAmount(key, Decimal(2), one, 1),)),
            OrderUpdate(1, 1, symbol, PositionSide.BOTH, OrderId(7), "c", "BUY", "LIMIT", "LIMIT",
                        "TRADE", "FILLED", False, False, one, one, one, one, one),
            AlgoUpdate(1, 1, symbol, PositionSide.BOTH, OrderId(8), "a", "SELL", "STOP_MARKET",
                       AlgoStatus.NEW, None, True, False, one, one, 0, ""),
            TradeLite(1, 1, symbol, OrderId(7), "c", "BUY", one, one)):
        poller.observe(event)
    assert not poller._wake.is_set()
    assert (vars(schedule), poller._stream_orders_until) == before
