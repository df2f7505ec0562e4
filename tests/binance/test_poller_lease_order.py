"""Poller rule 9: a round that reads positions reads the leases after that answer, so the lease
read leaves with the core's write of the same answer (one Redis wake-up a read instead of two).
What may not change: whether and how positions are read, the sweep, and, when nothing moves
during the round's awaits, the very order reads and the sleep of the round before (d069f7b's
``run``, copied below and driven side by side, with an injected clock). What does change, on
purpose: the leases the order reads are planned with are read after the positions answer, so a
lease a bot takes while that read is under way is seen in the same round (the real loop against
the simulator: tests/binance/test_poller.py
``test_a_lease_taken_while_positions_are_read_is_seen_in_that_round``)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from watchdog.binance.poller import Poller, PollSchedule
from watchdog.binance.protocol.budget import Priority, WeightBudget
from watchdog.clock import ManualClock
from watchdog.core.effects import RequestSnapshot
from watchdog.core.events import (
    Event,
    PositionAmount,
    PositionSnapshot,
)
from watchdog.core.model import PositionKey, PositionSide, Symbol

SYMBOLS = [f"S{i}USDT" for i in range(6)]


class _Stop(Exception):
    """Ends the driven round at its sleep."""


class _Rest:
    """BinanceRest as the poller uses it, answering at once; every call logged in order."""

    def __init__(self, clock: ManualClock, open_symbols: list[str], log: list[Any]) -> None:
        self.budget = WeightBudget(360)
        self._clock = clock
        self._open = open_symbols
        self._log = log
        self._ids = 0

    def next_request_id(self) -> int:
        self._ids += 1
        return self._ids

    def exchange_time_ms(self) -> int:
        return self._clock.wall_ms()

    def budget_wait_s(self, weight: int, *, priority: Priority = Priority.ROUTINE) -> float:
        return self.budget.wait_for_s(weight, priority=priority, now_s=self._clock.monotonic())

    async def fetch_position_snapshot(self, *, request_id: int, requested_time_ms: int,
                                      priority: Priority) -> PositionSnapshot:
        self._log.append(("positions", priority))
        self.budget.record(5, self._clock.monotonic())
        return snap(self._open, request_id)

    async def fetch_open_algo_orders(self, symbol: str | None, *, priority: Priority,
                                     retry: bool = True) -> tuple[()]:
        self._log.append(("algo", symbol, priority))
        return ()

    async def fetch_open_orders(self, symbol: str | None, *, priority: Priority,
                                retry: bool = True) -> tuple[()]:
        self._log.append(("orders", symbol, priority))
        return ()


def snap(symbols: list[str], request_id: int = 1) -> PositionSnapshot:
    return PositionSnapshot(request_id, 1, 2, tuple(
        PositionAmount(PositionKey(Symbol(s), PositionSide.BOTH), Decimal(1), Decimal(100), 1)
        for s in symbols), None)


async def _old_round(poller: Poller, emit: Any) -> None:
    """d069f7b's ``Poller.run``, verbatim but for ``self``: the leases read first."""
    self = poller
    while True:
        self._wake.clear()
        now_s = self._clock.monotonic()
        self._round_begins(now_s)
        if self._standby is not None and self._standby():
            await self._standby_round(emit, now_s)
            continue
        leased = await self._leases()
        plan = self.schedule.plan(now_s, leased, self._calm(now_s))
        if plan.read_positions:
            await self._read_positions(plan, now_s, emit)
        if plan.sweep and await self._sweep(emit):
            continue
        await self._read_due_orders(plan, emit)
        await self._sleep_unless_woken(self._next_wake_s(leased))


@st.composite
def setups(draw: st.DrawFn) -> dict[str, Any]:
    """A poller 100 s into a run: open positions, random order-read times, leases, a request
    pending or not, its orders share partly spent, the sweep due or not, at a random instant
    around its positions read's due time (drawn once, built twice)."""
    last_s = draw(st.floats(98.5, 99.5))
    return {
        "open": draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=4, unique=True)),
        "leased": draw(st.sets(st.sampled_from(SYMBOLS), max_size=3)),
        "last_s": last_s,
        "swept": draw(st.booleans()),
        "orders_at": {s: draw(st.floats(90.0, 99.9)) for s in SYMBOLS if draw(st.booleans())},
        "orders_spent": (draw(st.integers(0, 12)), draw(st.floats(50.0, 99.0))),
        "reads": draw(st.integers(0, 60)),
        "request": draw(st.sampled_from(["none", "priority", "routine", "orders only"])),
        "now_s": draw(st.floats(last_s + 0.1, last_s + 2.0)),
    }


def _build(p: dict[str, Any]) -> tuple[Poller, list[Any]]:
    clock = ManualClock()
    clock.now_s = 100.0
    log: list[Any] = []
    rest = _Rest(clock, p["open"], log)
    schedule = PollSchedule(poll_interval_s=0.9, orders_poll_interval_s=5.0,
                            fast_poll_interval_s=0.25, orders_sweep_interval_s=600.0)
    last_s = p["last_s"]
    schedule.positions_seen(snap(p["open"]), last_s - 0.01)
    schedule.positions_started(last_s)
    schedule.positions_seen(snap(p["open"]), last_s + 0.01)
    if p["swept"]:
        schedule.sweep_started(last_s - 30.0)  # swept: the next ones far off
    for symbol, at_s in p["orders_at"].items():
        schedule.orders_read(Symbol(symbol), at_s)
    poller = Poller(rest, schedule, clock=clock)  # type: ignore[arg-type]
    poller._orders_budget.record(*p["orders_spent"])
    for i in range(p["reads"]):
        rest.budget.answered(rest.budget.record(5, 99.9 - i), 99.91 - i)
    match p["request"]:
        case "priority":
            poller.request_snapshot(RequestSnapshot("gap on the user stream", None))
        case "routine":
            poller.request_snapshot(RequestSnapshot("fill on S0USDT", None))
        case "orders only":
            poller.request_snapshot(RequestSnapshot("guard: orders of S1USDT",
                                                    frozenset({Symbol("S1USDT")})))
    clock.now_s = p["now_s"]
    leased = set(p["leased"])

    async def leases() -> set[str]:
        log.append(("leases",))
        return leased

    poller._leased_symbols = leases

    async def sleep(wait_s: float) -> bool:
        log.append(("sleep", wait_s))
        raise _Stop

    poller._sleep_unless_woken = sleep  # type: ignore[method-assign]
    return poller, log


async def _drive(poller: Poller, round_: Any) -> list[Event]:
    events: list[Event] = []

    async def emit(event: Event) -> None:
        events.append(event)

    with pytest.raises(_Stop):
        await round_(poller, emit)
    return events


def _kinds(events: list[Event]) -> list[tuple[str, Any]]:
    return [(type(e).__name__, getattr(e, "symbols", None)) for e in events]


@settings(max_examples=400, deadline=None)
@given(p=setups())
def test_a_round_reads_and_sleeps_as_before_when_nothing_moves_meanwhile(
        p: dict[str, Any]) -> None:
    # Nothing changes during the awaits (the leases, the open positions the answer shows):
    # the same calls to Binance in the same order, the same events, the same sleep; only the
    # lease read moves, after the positions answer when a positions read went.
    old, old_log = _build(p)
    new, new_log = _build(p)
    old_events = asyncio.run(_drive(old, _old_round))
    new_events = asyncio.run(_drive(new, Poller.run))
    assert _kinds(new_events) == _kinds(old_events)
    assert [c for c in new_log if c[0] != "leases"] == [c for c in old_log if c[0] != "leases"]
    lease = ("leases",)
    event(f"positions read: {any(c[0] == 'positions' for c in new_log)}")
    event(f"order reads: {sum(1 for c in new_log if c[0] == 'orders' and c[1])}")
    assert new_log.count(lease) <= old_log.count(lease)  # one fewer when a sweep followed
    assert new_log[-1] == old_log[-1]  # the sleep, to the float
    for i, call in enumerate(new_log):
        if call[0] == "positions":  # rule 9: the leases after the answer, before the orders
            after = [c for c in new_log[i + 1:]
                     if c == lease or c[0] == "sleep" or (c[0] != "positions" and c[1])]
            assert after[0] == lease


@settings(max_examples=300, deadline=None)
@given(p=setups(), calm=st.booleans())
def test_the_positions_part_of_a_plan_does_not_depend_on_the_leases(
        p: dict[str, Any], calm: bool) -> None:
    # ``plan(..., orders=False)``, which the round decides on before it reads the leases, is
    # the whole plan's positions read and sweep, whatever the leases.
    poller, _ = _build(p)
    now_s = poller._clock.monotonic()
    part = poller.schedule.plan(now_s, (), calm, orders=False)
    whole = poller.schedule.plan(now_s, p["leased"], calm)
    assert (part.read_positions, part.positions_urgent, part.positions_reason, part.sweep,
            part.sweep_list, part.positions_priority, part.positions_wake_in_s) == (
        whole.read_positions, whole.positions_urgent, whole.positions_reason, whole.sweep,
        whole.sweep_list, whole.positions_priority, whole.positions_wake_in_s)
    assert part.order_symbols == part.orders_urgent == ()
