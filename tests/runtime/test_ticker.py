"""Ticks only when due (runtime/ticker.py): the Ticks that act go at the very grid points a Tick
at every grid point found them due, never later; wall clock steps are still seen.

The property test runs the core's consumers of Tick (the real PositionBook, OrderBook, Guard
and TriggerWatch, stepped as ``CoreLoop.handle_many`` steps them) over random histories with an
injected clock, once with a Tick at every grid point (the old ticker) and once with a Tick only
at the point ``tick_point`` gives for the due time the consumers report, and demands the same
effects at the same instants.
"""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.core.facts import BTC, ETH, amount, requested, snapshot, stream
from tests.core.reaper_support import algo_update
from tests.core.test_reaper import worlds
from watchdog.clock import ManualClock
from watchdog.core.book import BookPolicy, PositionBook
from watchdog.core.effects import Effect
from watchdog.core.events import (
    Event,
    OrdersSnapshot,
    SnapshotFailed,
    StopCrossed,
    StreamConnected,
    StreamLost,
    Tick,
)
from watchdog.core.guard import Guard, GuardPolicy
from watchdog.core.model import AlgoStatus, OrderId, PositionKey
from watchdog.core.orders import OrderBook
from watchdog.core.reaper import decide
from watchdog.core.triggers import TriggerWatch
from watchdog.runtime.reaper_task import TIMED_VERDICTS
from watchdog.runtime.ticker import STEP_TOLERANCE_MS, Ticker, slack_s, tick_point

GRID_MS = 250
T0 = 1_764_000_000_000  # a multiple of the grid


@settings(max_examples=300, deadline=None)
@given(due=st.floats(-1e6, 1e6, allow_nan=False), after=st.floats(-1e6, 1e6, allow_nan=False),
       grid=st.sampled_from((0.25, 0.1, 0.05, 1.0)))
def test_tick_point_is_the_first_grid_point_at_or_after_due_and_after_the_last(
        due: float, after: float, grid: float) -> None:
    point = tick_point(due, after, grid)
    k = round(point / grid)
    assert point == k * grid  # the very float beat.py computes for that point (its rule 2)
    assert point >= due
    assert point > after
    assert (k - 1) * grid < due or (k - 1) * grid <= after  # no earlier point would do


class Core:
    """The consumers of Tick as the core loop steps them, and the ticker's due time."""

    def __init__(self) -> None:
        self.book = PositionBook(BookPolicy(max_age_ms=1500, max_rest_lag_ms=300))
        self.orders = OrderBook()
        self.guard = Guard(GuardPolicy(alert_ms=1000, doubt_ms=1200, doubt_reads_per_min=2))
        self.watch = TriggerWatch(confirm_bound_ms=700)
        self.log: list[tuple[int, Effect]] = []

    def batch(self, event: Event, now_ms: int) -> None:
        effects: list[Effect] = []
        self.guard.observe(event)
        self.orders.apply(event)
        effects += self.book.apply(event, now_ms)
        if isinstance(event, Tick):
            effects += self.watch.on_tick(self.orders, now_ms)
        elif isinstance(event, StopCrossed):
            effects += self.watch.on_crossed(event, self.orders, now_ms)
        effects += self.guard.step(self.book, self.orders, None, now_ms, (), acting=True)
        self.log += [(now_ms, e) for e in effects]

    def due_ms(self, now_ms: int) -> int | None:
        """What CoreLoop.next_tick_in asks of these consumers (wall ms; now: busy)."""
        if self.guard.needs_leases:
            return now_ms
        dues = [d for d in (self.book.next_due_ms(), self.guard.next_due_ms(),
                            self.watch.next_due_ms(now_ms)) if d is not None]
        return min(dues, default=None)


def _events(script: list[tuple[str, int, int]]) -> list[tuple[int, Event]]:
    """A random history: (exchange == wall ms, event)."""
    out: list[tuple[int, Event]] = []
    now, rid, conn = T0 + 1, 1000, 1
    for action, which, dt in script:
        now += dt
        key = (BTC, ETH)[which % 2]
        match action:
            case "connect":
                conn += 1
                out.append((now, StreamConnected(conn)))
            case "lost":
                out.append((now, StreamLost(conn, "test")))
            case "read" | "read_key":
                rid += 1
                scope = (key.symbol,) if action == "read_key" else ()
                rows = [amount(k, which % 3, now - 400) for k in (BTC, ETH)
                        if action == "read" or k == key]
                out.append((now, requested(rid, now, *scope)))
                out.append((now + 40, snapshot(rid, now, *rows, symbols=scope)))
            case "fail":
                rid += 1
                out.append((now, requested(rid, now)))
                out.append((now + 30, SnapshotFailed(rid, "HTTP 503")))
            case "stream":
                out.append((now, stream(key, which % 3, now)))
            case "orders":
                rid += 1
                out.append((now, OrdersSnapshot(rid, now, (), ())))
            case "stop":
                out.append((now, algo_update(50 + which % 2, AlgoStatus.NEW, at_ms=now, key=key)))
            case "cross":
                out.append((now, StopCrossed(key, OrderId(50 + which % 2), True, Decimal(90),
                                             Decimal(89), now)))
            case "fired":
                out.append((now, algo_update(50 + which % 2, AlgoStatus.TRIGGERED, at_ms=now,
                                             key=key)))
    return sorted(out, key=lambda te: te[0])


def _run(history: list[tuple[int, Event]], *, every_point: bool) -> tuple[list[tuple[int, Effect]], int]:
    core = Core()
    end = (history[-1][0] if history else T0) + 6000
    ticks, last_point, due = 0, -math.inf, -math.inf  # the first Tick goes at once
    events = list(history)
    point_ms = core_now = T0
    while True:
        if every_point:
            nxt: float | None = point_ms / 1000
        elif due is None:
            nxt = None
        elif due == -math.inf:
            nxt = T0 / 1000
        else:
            now_s = core_now / 1000
            delay = (due - core_now) / 1000
            nxt = tick_point(now_s + max(delay, 0) - slack_s(delay), last_point, GRID_MS / 1000)
        tick_ms = None if nxt is None else round(nxt * 1000)
        if events and (tick_ms is None or events[0][0] <= tick_ms):
            core_now, event = events.pop(0)
        elif tick_ms is not None and tick_ms <= end:
            # A point already passed (within the slack) ticks at once, as the ticker does.
            core_now, event = max(tick_ms, core_now), Tick()
            ticks += 1
            last_point = core_now / 1000
            point_ms = tick_ms + GRID_MS
        else:
            return core.log, ticks
        core.batch(event, core_now)
        due = core.due_ms(core_now)


ACTIONS = ("connect", "lost", "read", "read", "read_key", "fail", "stream", "orders", "orders",
           "stop", "cross", "fired")


# a key confirmed by a read, then left to age (book rule 5): unknown at the same grid point
@example(script=[("connect", 0, 0), ("read", 1, 10), ("read", 1, 700), ("read", 1, 4000)])
# a crossing the exchange does not act on: trigger_not_acted at the same point
@example(script=[("connect", 0, 0), ("read", 1, 10), ("stop", 0, 5), ("cross", 0, 100),
                 ("read", 1, 2000)])
# an open position without a stop, orders read: the guard's alert and its doubt reads
@example(script=[("connect", 0, 0), ("read", 1, 10), ("orders", 0, 60), ("read", 1, 900),
                 ("orders", 0, 300), ("read", 1, 3000)])
@settings(max_examples=200, deadline=None)
@given(script=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 5),
                                 st.integers(0, 3000)), max_size=40))
def test_property_ticks_only_when_due_give_the_effects_of_a_tick_at_every_point(
        script: list[tuple[str, int, int]]) -> None:
    history = _events(script)
    every, every_ticks = _run(history, every_point=True)
    due, due_ticks = _run(history, every_point=False)
    assert due == every  # the same effects, each at the same instant: never later
    assert due_ticks <= every_ticks


@settings(max_examples=300, deadline=None)
@given(worlds(), st.integers(0, 10_000_000), st.frozensets(st.sampled_from(
    [PositionKey(s, side) for s in (BTC.symbol,) for side in (BTC.side,)])), st.integers(0, 100))
def test_property_a_decision_without_a_timed_verdict_is_the_decision_of_every_later_tick(
        world: tuple, later_ms: int, other_leases: frozenset[PositionKey], other_used: int) -> None:
    """reaper_task.py rule 10: while no verdict is past the lease check or triggering, the same
    books give the same decision at any later time, with any leases and budget: no Tick needed."""
    positions, book, leased, used, now_ms, policy = world
    first = decide(positions, book, leased, used, now_ms, policy)
    if any(a.why in TIMED_VERDICTS for a in first.assessments):
        return
    later = decide(positions, book, leased | other_leases, other_used, now_ms + later_ms, policy)
    assert later.assessments == first.assessments
    assert later.effects == first.effects == ()


# ---------------------------------------------------------------- the ticker itself

async def _ticks_until(got: list[Tick], n: int) -> None:
    """Wait (with a deadline) until ``n`` Ticks were sent; the condition is polled."""
    async with asyncio.timeout(5):
        while len(got) < n:  # noqa: ASYNC110 - the emit callback is the ticker's, not ours
            await asyncio.sleep(0.005)


async def test_first_tick_at_once_then_only_when_due_or_poked() -> None:
    got: list[Tick] = []

    async def emit(event: Event) -> None:
        got.append(event)  # type: ignore[arg-type]

    ticker = Ticker(emit, ManualClock(), grid_s=0.01, clock_watch=False, fallback_cap_s=3600)
    task = asyncio.create_task(ticker.run())
    try:
        await _ticks_until(got, 1)
        ticker.due_in(None)  # nothing due: no Tick, however long we look
        await asyncio.sleep(0.05)
        assert len(got) == 1
        ticker.due_in(0.03)
        await _ticks_until(got, 2)
        ticker.due_in(None)
        ticker.poke()  # a guard outcome, a takeover: the next grid point
        await _ticks_until(got, 3)
        assert all(t.wall_stepped_back_ms == 0 for t in got)
    finally:
        task.cancel()


async def test_a_wall_clock_step_back_is_ticked_at_once_and_says_how_far() -> None:
    """Nothing due, no clock-set watch: the fallback look (here every 10 ms) sees the step;
    the Tick carries it, so the book expires what it holds (core/ageing.py rule 3)."""
    got: list[Tick] = []

    async def emit(event: Event) -> None:
        got.append(event)  # type: ignore[arg-type]

    clock = ManualClock()
    ticker = Ticker(emit, clock, grid_s=0.01, clock_watch=False, fallback_cap_s=0.01)
    task = asyncio.create_task(ticker.run())
    try:
        await _ticks_until(got, 1)
        ticker.due_in(None)
        clock.now_ms -= STEP_TOLERANCE_MS  # within the tolerance: no step
        await asyncio.sleep(0.05)
        assert len(got) == 1
        clock.now_ms -= 700
        await _ticks_until(got, 2)
        assert got[1].wall_stepped_back_ms == 700
        clock.now_ms += 5000  # ahead: a Tick too (deadlines passed), no step back
        await _ticks_until(got, 3)
        assert got[2].wall_stepped_back_ms == 0
    finally:
        task.cancel()


def test_a_step_back_the_book_cannot_see_in_now_ms_still_expires_its_knowledge() -> None:
    """Red team: the step back lies between two applies further apart than the step (the
    ticker no longer ticks every 0.25 s), so ``now_ms`` still grows; the Tick's
    ``wall_stepped_back_ms`` must expire every confirmed key, as a smaller ``now_ms`` did."""
    book = PositionBook(BookPolicy(max_age_ms=5000))
    book.apply(StreamConnected(1), T0)
    book.apply(requested(1, T0), T0)
    book.apply(snapshot(1, T0, amount(BTC, 1, T0 - 10)), T0 + 20)
    assert book.view(BTC).knowledge.value == "confirmed"  # type: ignore[union-attr]
    book.apply(Tick(wall_stepped_back_ms=300), T0 + 1000)  # 1.3 s passed, the clock went 0.3 back
    view = book.view(BTC)
    assert view is not None
    assert view.knowledge.value == "expired"
    assert "went back 300 ms" in view.reason
