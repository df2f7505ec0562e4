"""The Binance shell's planning made cheaper without changing a decision (issue #13 item 2,
session 10): ``PollSchedule.plan`` orders its due order reads with three stable one-key sorts
instead of one sort of tuples, and ``WeightBudget.pace_s`` keeps its loop free of calls. The
code before is copied here as the reference; both are run over random histories and must
answer exactly alike (the same plan, the same pace to the last bit)."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.binance.protocol.budget import _WINDOW_S, Priority, WeightBudget
from watchdog.binance.protocol.schedule import PollPlan, PollSchedule
from watchdog.core.events import OrdersSnapshot, PositionAmount, PositionSnapshot
from watchdog.core.model import PositionKey, PositionSide, Symbol

NAMES = [Symbol(f"S{i}USDT") for i in range(12)]


# ---------------------------------------------------------------- references (f357c8c)

def reference_plan(self: PollSchedule, now_s: float, leased: Collection[str] = (),
                   calm: bool = False, *, ordered: bool = True,
                   paced_at: float = -math.inf) -> PollPlan:
    """``PollSchedule.plan`` as of f357c8c."""
    requested_at = self._last_positions_at + self.fast_poll_interval_s
    urgent = bool(self._requested or self._routine_requests)
    if urgent and now_s < self._gap_hold_until and self._gap_requests_only():
        requested_at = max(requested_at, self._gap_hold_until)
    due_at = self.positions_due_at(calm)
    read_positions = now_s >= due_at or (urgent and now_s >= requested_at)
    wake_at = min(due_at, requested_at) if urgent else max(due_at, paced_at)
    sweep_list = self.due_sweep(now_s)
    if self._positions_known and sweep_list is None:
        wake_at = min(wake_at, self.next_sweep_at)
    positions_wake_at = wake_at
    requested = self._requested_symbols
    orders_at = self._orders_at
    after_event = self._orders_after_event
    fast_s, slow_s = self.fast_poll_interval_s, self.orders_poll_interval_s
    keyed: list[tuple[bool, float, Symbol]] = []
    for symbol in self.tracked(now_s, leased):
        last_at = orders_at.get(symbol, -1e18)
        if symbol in requested:
            keyed.append((False, last_at, symbol))
            continue
        next_at = last_at + (fast_s if symbol in leased or symbol in after_event else slow_s)
        if next_at <= now_s:
            keyed.append((True, last_at, symbol))
        elif next_at < wake_at:
            wake_at = next_at
    if ordered:
        keyed.sort()
    due = tuple(k[2] for k in keyed)
    return PollPlan(read_positions, urgent,
                    ", ".join(self._requested + self._routine_requests) or "scheduled",
                    due, tuple(k[2] for k in keyed if not k[0]),
                    max(0.0, wake_at - now_s), sweep_list is not None,
                    max(0.0, positions_wake_at - now_s), bool(self._requested), sweep_list)


def reference_pace_s(self: WeightBudget, weight: int, now_s: float,
                     planned: Sequence[tuple[float, int]] = ()) -> float:
    """``WeightBudget.pace_s`` as of f357c8c."""
    room = self.limit(Priority.ROUTINE) - self._spent_sum - weight
    steps: list[tuple[float, int]] = [(at_s - now_s, -w) for at_s, w in planned
                                      if at_s - now_s < _WINDOW_S]
    steps += [(sent_at_s + _WINDOW_S - now_s, int(w)) for sent_at_s, w in self._spent]
    steps.append((_WINDOW_S, 0))
    steps.sort()
    pace = 0.0
    for ahead_s, freed in steps:
        if ahead_s > 0:
            if room < 0:
                return math.inf
            pace = max(pace, ahead_s / (room // max(1, weight) + 1) * (1 + 1e-9))
        room += freed
    return pace * self.sharers


# ---------------------------------------------------------------- random histories

def _snap(symbols: Collection[Symbol]) -> PositionSnapshot:
    return PositionSnapshot(1, 1, 2, tuple(
        PositionAmount(PositionKey(s, PositionSide.BOTH), Decimal(1), Decimal(100), 1)
        for s in sorted(symbols)), None)


symbols_st = st.frozensets(st.sampled_from(NAMES), max_size=len(NAMES))
# Steps of time from a small set: many symbols read at the very same time (ties on the
# last read, broken by name) as after a resync or a sweep.
step_st = st.sampled_from([0.0, 0.0, 0.1, 0.25, 1.0, 4.9, 5.0, 30.0, 400.0])
op_st = st.one_of(
    st.tuples(st.just("positions"), symbols_st),
    st.tuples(st.just("orders_read"), st.sampled_from(NAMES)),
    st.tuples(st.just("activity"), st.sampled_from(NAMES)),
    st.tuples(st.just("doubt_read"), symbols_st),      # the guard's orders-only request
    st.tuples(st.just("request"), symbols_st),         # a priority request with symbols
    st.tuples(st.just("fill"), symbols_st),            # a routine request ("fill on ...")
    st.tuples(st.just("reread"), symbols_st),
    st.tuples(st.just("read_by_other"), symbols_st),
    st.tuples(st.just("orders_seen"), symbols_st),
    st.tuples(st.just("started"), st.just(frozenset())),
)


def _apply(schedule: PollSchedule, op: str, arg: object, now_s: float) -> None:
    if op == "positions":
        schedule.positions_seen(_snap(arg), now_s)  # type: ignore[arg-type]
    elif op == "orders_read":
        schedule.orders_read(arg, now_s)  # type: ignore[arg-type]
    elif op == "activity":
        schedule.activity(arg, now_s)  # type: ignore[arg-type]
    elif op == "doubt_read":
        for s in arg:  # type: ignore[attr-defined]
            schedule.snapshot_requested(f"guard: orders of {s}", {s})
    elif op == "request":
        schedule.snapshot_requested("reaper: confirm", arg)  # type: ignore[arg-type]
    elif op == "fill":
        schedule.snapshot_requested("fill on X", arg)  # type: ignore[arg-type]
    elif op == "reread":
        schedule.reread_orders(arg)  # type: ignore[arg-type]
    elif op == "read_by_other":
        schedule.orders_read_by_other(arg, now_s)  # type: ignore[arg-type]
    elif op == "orders_seen":
        schedule.orders_seen(OrdersSnapshot(1, 1, (), (), frozenset(arg)))  # type: ignore[arg-type]
    else:
        schedule.positions_started(now_s)


@settings(max_examples=400, deadline=None)
@given(history=st.lists(st.tuples(step_st, op_st), max_size=40),
       asks=st.lists(st.tuples(step_st, symbols_st, st.booleans(), st.booleans()),
                     min_size=1, max_size=6))
def test_plan_is_the_reference_plan(history: list[tuple[float, tuple[str, object]]],
                                    asks: list[tuple[float, frozenset[Symbol], bool, bool]]
                                    ) -> None:
    schedule = PollSchedule(poll_interval_s=0.9, orders_poll_interval_s=5.0,
                            fast_poll_interval_s=0.25, recent_window_s=300.0)
    now_s = 1000.0
    for step_s, (op, arg) in history:
        now_s += step_s
        _apply(schedule, op, arg, now_s)
    for step_s, leased, calm, ordered in asks:
        now_s += step_s
        # ``tracked`` forgets closures past the recent window: ask the reference first, on the
        # same state, then the code under test (both forget alike, at the same now_s).
        expected = reference_plan(schedule, now_s, leased, calm, ordered=ordered)
        assert schedule.plan(now_s, leased, calm, ordered=ordered) == expected


budget_op_st = st.tuples(st.sampled_from([0.0, 0.0, 0.02, 0.3, 0.9, 5.0, 20.0, 61.0]),
                         st.sampled_from([1, 1, 2, 5, 5, 40]),
                         st.sampled_from([0.0, 0.0, 0.01, 0.4, 3.0]))


@settings(max_examples=400, deadline=None)
@given(history=st.lists(budget_op_st, max_size=120),
       budget=st.sampled_from([20, 60, 360]), sharers=st.sampled_from([1, 1, 2, 3]),
       wanted=st.sampled_from([0, 0, 5, 40]), weight=st.sampled_from([1, 5, 40]),
       ahead=st.sampled_from([0.0, 0.0, 0.5, 30.0]),
       planned=st.lists(st.tuples(st.floats(-5.0, 80.0, allow_nan=False),
                                  st.sampled_from([1, 1, 40])), max_size=40))
def test_pace_is_the_reference_pace(history: list[tuple[float, int, float]], budget: int,
                                    sharers: int, wanted: int, weight: int, ahead: float,
                                    planned: list[tuple[float, int]]) -> None:
    b = WeightBudget(budget)
    b.sharers = sharers
    now_s = 5000.0
    for step_s, w, latency_s in history:
        now_s += step_s
        b.answered(b.record(w, now_s), now_s + latency_s)  # answers may come out of order
    b.want(wanted)
    at_s = now_s + ahead  # asked ahead of time too (the poller's projection)
    plan = [(at_s + offset_s, w) for offset_s, w in planned]
    assert b.pace_s(weight, at_s, plan) == reference_pace_s(b, weight, at_s, plan)


def reference_positions_seen(self: PollSchedule, snapshot: PositionSnapshot, now_s: float) -> bool:
    """``PollSchedule.positions_seen`` as of f357c8c."""
    if snapshot is self._last_seen:
        return False
    self._last_seen = snapshot
    held = {p.key.symbol for p in snapshot.positions if p.amount != 0}
    if self._positions_known and held == self._open:
        return False
    if self._positions_known:
        self._doubt_at = now_s
    for symbol in self._open - held:
        self._closed_at[symbol] = now_s
        self._requested_symbols.add(symbol)
    self._open = held
    self._positions_known = True
    return True


def _rows(holders: frozenset[Symbol], flat: frozenset[Symbol]) -> tuple[PositionAmount, ...]:
    return tuple(PositionAmount(PositionKey(s, PositionSide.BOTH),
                                Decimal(0 if s in flat else 1), Decimal(100), 1)
                 for s in sorted(holders | flat))


@settings(max_examples=300, deadline=None)
@given(answers=st.lists(st.tuples(st.integers(0, 5), symbols_st, symbols_st,
                                  st.sampled_from(["new", "same rows", "same snapshot"])),
                        max_size=30))
def test_positions_seen_is_the_reference(
        answers: list[tuple[int, frozenset[Symbol], frozenset[Symbol], str]]) -> None:
    """An answer with the very rows of the last one (wire_rest's cached tuple) is known
    without a pass over its rows: the same return, the same state, as the f357c8c code."""
    kw = dict(poll_interval_s=0.9, orders_poll_interval_s=5.0, fast_poll_interval_s=0.25)
    new, old = PollSchedule(**kw), PollSchedule(**kw)  # type: ignore[arg-type]
    now_s = 1000.0
    last: PositionSnapshot | None = None
    for step, holders, flat, kind in answers:
        now_s += step
        if last is None or kind == "new":
            snapshot = PositionSnapshot(1, 1, 2, _rows(holders, flat - holders), None)
        elif kind == "same rows":
            snapshot = PositionSnapshot(2, 1, 2, last.positions, None)
        else:
            snapshot = last
        last = snapshot
        assert new.positions_seen(snapshot, now_s) == reference_positions_seen(old, snapshot,
                                                                               now_s)
        assert (new._open, new._closed_at, new._requested_symbols, new._doubt_at,
                new._positions_known) == (old._open, old._closed_at, old._requested_symbols,
                                          old._doubt_at, old._positions_known)
