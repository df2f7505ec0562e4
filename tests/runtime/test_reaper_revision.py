"""reaper_task.py rule 10 with the order book's revision (core/orders.py rule 8): an orders read
that changes nothing leaves the reaper's last decision standing (no Tick asked), and a read that
adds, removes or changes an order, or a positions read whose time completes a proof, still gives
the decision of a reaper stepped at every grid point, at the same instant.

The property runs two ``ReaperTask`` over the same books (a real ``OrderBook``, a stub positions
reader) and the same random history of orders reads (the same rows again, rows added, removed,
triggered; per symbol or swept; one list or both), stream facts, fills, positions (opened,
flat, proven by a later read), leases and time: the reference steps at every grid point, the
other only when ``wants_tick`` says so, as the ticker does. At every point both give the same
effects and hold the same verdicts.
"""

from __future__ import annotations

from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.core.reaper_support import (
    KEY,
    LONG,
    SHORT,
    StubPositions,
    algo_row,
    algo_update,
    order_row,
    order_update,
    view,
)
from watchdog.clock import ManualClock
from watchdog.config import ReaperConfig
from watchdog.core.effects import CancelOrder, Effect
from watchdog.core.events import Event, OrdersSnapshot, TradeLite
from watchdog.core.model import AlgoStatus, Knowledge, OrderId, PositionKey, Symbol
from watchdog.core.orders import OrderBook
from watchdog.core.reaper import ReaperDecision
from watchdog.runtime.reaper_task import ReaperTask

GRID_MS = 250
LAG_MS = 300
T0_MS = 1_764_000_000_000
KEYS = (KEY, LONG, SHORT)
IDS = range(1, 6)


class Exchange:
    """What ``step`` asks of the REST client: Binance's clock (here the test's)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def exchange_time_ms(self) -> int:
        return self.clock.wall_ms()


class Leases:
    """The lease set in Redis, as ``LeaseWatch`` reads it."""

    def __init__(self) -> None:
        self.held: set[PositionKey] = set()

    async def leased_symbols(self) -> frozenset[PositionKey]:
        return frozenset(self.held)


def run_now(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends (the lease read of a store answering at once)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise AssertionError("suspended")


async def _no_read(reason: str) -> None:
    raise AssertionError("no pre-cancel read in these tests")


def reaper(clock: ManualClock, leases: Leases, *, grace_ms: int = 1000) -> ReaperTask:
    async def emit(event: Event) -> None:
        raise AssertionError(f"no event expected: {event}")

    return ReaperTask(Exchange(clock), leases, emit, clock,  # type: ignore[arg-type]
                      ReaperConfig(grace_ms=grace_ms, max_cancels_per_min=3,
                                   stuck_triggering_s=2.0),
                      read_positions=_no_read, max_rest_lag_ms=LAG_MS)  # type: ignore[arg-type]


def verdicts(decision: ReaperDecision | None) -> tuple[object, ...] | None:
    """What a decision says of each order (its ``now_ms`` and the orders' ``seen_time_ms``
    aside: a decision kept stands for the same verdicts at a later instant)."""
    if decision is None:
        return None
    return tuple((a.order.is_algo, a.order.order_id, a.why, a.detail, a.remaining_ms,
                  a.read_due) for a in decision.assessments)


class World:
    """The exchange's open orders and positions; what reads and stream facts show of them."""

    def __init__(self) -> None:
        # (is_algo, id) -> (key, reduce-only, client id, exchange create time)
        self.rows: dict[tuple[bool, int], tuple[PositionKey, bool, str, int]] = {}
        self.status: dict[int, AlgoStatus] = {}
        self.rid = 0
        self.last: OrdersSnapshot | None = None

    def read(self, now: int, symbols: frozenset[Symbol] | None = None, *, algo: bool = True,
             regular: bool = True, late_ms: int = 0) -> OrdersSnapshot:
        self.rid += 1
        algos = tuple(algo_row(j, key=k, status=self.status.get(j, AlgoStatus.NEW),
                               reduce_only=ro, client_id=cid, created_ms=t)
                      for (a, j), (k, ro, cid, t) in sorted(self.rows.items())
                      if a and algo and (symbols is None or k.symbol in symbols))
        regs = tuple(order_row(j, key=k, reduce_only=ro, client_id=cid, created_ms=t)
                     for (a, j), (k, ro, cid, t) in sorted(self.rows.items())
                     if not a and regular and (symbols is None or k.symbol in symbols))
        return OrdersSnapshot(self.rid, now - late_ms, regs, algos, symbols,
                              covers_orders=regular, covers_algo=algo)


def trade(symbol: Symbol, at_ms: int) -> TradeLite:
    return TradeLite(event_time_ms=at_ms, transaction_time_ms=at_ms, symbol=symbol,
                     order_id=OrderId(99), client_order_id="x", side="BUY",
                     last_filled_quantity=Decimal(1), last_filled_price=Decimal(1))


ORDER_ACTIONS = ("read", "read", "read_same", "read_same", "read_same", "read_symbol",
                 "read_algo", "read_orders", "add", "drop", "trigger", "cancel", "new_stream",
                 "fill")
POSITION_ACTIONS = ("open", "flat", "flat", "prove", "suspect", "forget")
ACTIONS = (*ORDER_ACTIONS, *POSITION_ACTIONS, "lease", "wait")


def run(script: list[tuple[str, int, int]],
        log: list[tuple[int, Effect]] | None = None) -> tuple[int, int]:
    """Both reapers over one history; returns (reference steps, steps taken by rule 10).
    ``log``: the effects of the reaper ticked only when due, with their instants."""
    clock = ManualClock(now_s=1000.0, now_ms=T0_MS)
    leases = Leases()
    every, due = reaper(clock, leases), reaper(clock, leases)
    orders = OrderBook(max_rest_lag_ms=LAG_MS)
    positions = StubPositions()
    world = World()
    steps = [0, 0]
    script = [*script, ("wait", 0, 40)]  # time for every grace, stuck alert and proof
    for action, which, points in script:
        now = clock.wall_ms()
        i = IDS[which % len(IDS)]
        key = KEYS[which % len(KEYS)]
        is_algo = which % 3 != 0
        events: list[Event] = []
        views_moved = False
        match action:
            case "read":
                world.last = world.read(now, late_ms=which * 40)
                events.append(world.last)
            case "read_same":  # the last read's very rows, requested now (mostly: no change)
                if world.last is not None:
                    world.rid += 1
                    last = world.last
                    events.append(OrdersSnapshot(world.rid, now, last.orders, last.algo_orders,
                                                 last.symbols, last.covers_orders,
                                                 last.covers_algo))
            case "read_symbol":
                events.append(world.read(now, frozenset({key.symbol})))
            case "read_algo":
                events.append(world.read(now, regular=False))
            case "read_orders":
                events.append(world.read(now, algo=False))
            case "add":  # placed on the exchange; a read (or the stream) shows it
                world.rows[(is_algo, i)] = (key, which % 4 != 1, ("bot-1", "x-2")[which % 5 == 4],
                                            now - 20)
            case "drop":  # gone from the exchange, no stream fact: only a read shows it
                world.rows.pop((is_algo, i), None)
            case "trigger":
                if (True, i) in world.rows:
                    world.status[i] = AlgoStatus.TRIGGERING
                    k, ro, cid, _ = world.rows[(True, i)]
                    events.append(algo_update(i, AlgoStatus.TRIGGERING, at_ms=now, key=k,
                                              reduce_only=ro, client_id=cid))
            case "cancel":
                if (is_algo, i) in world.rows:
                    k = world.rows.pop((is_algo, i))[0]
                    events.append(algo_update(i, AlgoStatus.CANCELED, at_ms=now, key=k)
                                  if is_algo else order_update(i, "CANCELED", at_ms=now, key=k))
            case "new_stream":
                world.rows[(is_algo, i)] = (key, True, "bot-1", now)
                events.append(algo_update(i, AlgoStatus.NEW, at_ms=now, key=key, client_id="bot-1")
                              if is_algo else order_update(i, "NEW", at_ms=now, key=key,
                                                           client_id="bot-1"))
            case "fill":
                events.append(trade(key.symbol, now))
            case "open":
                positions.views[key] = view(key, amount=Decimal(1))
                positions.flat.pop(key, None)
                views_moved = True
            case "flat":
                if key not in positions.flat:
                    positions.set_flat(key, now - which * 100)
                    positions.proven[key] = now - which * 100
                    views_moved = True
            case "prove":  # a later positions read: its time, not a view, moves (no Tick asked)
                if key in positions.flat:
                    positions.proven[key] = now + which * 60
            case "suspect":
                positions.views[key] = view(key, knowledge=Knowledge.SUSPECT)
                positions.flat.pop(key, None)
                views_moved = True
            case "forget":
                positions.views.pop(key, None)
                positions.flat.pop(key, None)
                views_moved = True
            case "lease":
                leases.held ^= {key}
        for event in events:
            orders.apply(event)
        if views_moved:  # the core loop: a view replaced (its generation moved)
            every.books_changed()
            due.books_changed()
        for _ in range(points):
            clock.advance(GRID_MS / 1000)
            now = clock.wall_ms()
            got: list[list[Effect]] = []
            for task, always in ((every, True), (due, False)):
                if not (always or task.wants_tick()):
                    got.append([])
                    continue
                steps[not always] += 1
                if task._leases.needed():  # the run loop reads while needed (every 0.2 s)
                    run_now(task.refresh_leases())
                effects = task.step(positions, orders, now)
                for effect in effects:
                    if isinstance(effect, CancelOrder):
                        task.submit(effect)  # the effects runner's hand-over
                got.append(effects)
            assert got[1] == got[0], (now, action)
            if log is not None:
                log += [(now, e) for e in got[1]]
            if len(orders):  # none: every decision is empty, the last one kept or not
                assert verdicts(due.last_decision) == verdicts(every.last_decision), (now, action)
    return steps[0], steps[1]


# a stop on an open position, read again and again unchanged: no Tick after the first decision
@example(script=[("add", 1, 1), ("open", 1, 1), ("read", 0, 1), ("read_same", 0, 1),
                 ("read_same", 0, 4), ("read_same", 0, 4)])
# the same stop, its position closed: a read that removes nothing, then one that drops it
@example(script=[("add", 1, 1), ("open", 1, 1), ("read", 0, 2), ("flat", 1, 1),
                 ("read_same", 0, 3), ("prove", 1, 4), ("read_same", 0, 2), ("drop", 1, 0),
                 ("read", 0, 3)])
# a read that adds an entry next to a stop whose grace is running
@example(script=[("add", 1, 1), ("flat", 1, 0), ("read", 0, 2), ("add", 4, 0), ("read", 0, 1),
                 ("drop", 4, 0), ("read", 0, 8)])
@settings(max_examples=250, deadline=None)
@given(script=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 5),
                                 st.integers(0, 6)), max_size=40))
def test_property_a_reaper_ticked_only_when_due_decides_as_one_ticked_at_every_point(
        script: list[tuple[str, int, int]]) -> None:
    every, due = run(script)
    assert due <= every


def test_reads_that_change_nothing_ask_no_tick_a_read_that_drops_an_order_does() -> None:
    """The revision, not the read, moves rule 10: 20 unchanged reads of a stop on an open
    position, one decision; the read that finds it gone, one more."""
    clock = ManualClock(now_s=1000.0, now_ms=T0_MS)
    task = reaper(clock, Leases())
    orders = OrderBook(max_rest_lag_ms=LAG_MS)
    positions = StubPositions(views={LONG: view(LONG, amount=Decimal(1))})
    world = World()
    world.rows[(True, 1)] = (LONG, True, "bot-1", T0_MS - 9_000)
    world.rows[(True, 2)] = (KEY, True, "bot-1", T0_MS - 8_000)  # a position never seen
    orders.apply(world.read(clock.wall_ms()))
    run_now(task.refresh_leases())
    assert task.wants_tick()
    task.step(positions, orders, clock.wall_ms())
    assert not task.wants_tick()
    for _ in range(20):
        clock.advance(0.2)
        orders.apply(world.read(clock.wall_ms()))
        assert not task.wants_tick()
    world.rows.pop((True, 2))
    clock.advance(0.5)  # past the lag bound after the last read that listed it (orders rule 2)
    orders.apply(world.read(clock.wall_ms()))
    assert task.wants_tick()
    task.step(positions, orders, clock.wall_ms())
    assert [a.order.order_id for a in task.last_decision.assessments] == [1]  # type: ignore[union-attr]
    assert not task.wants_tick()


def test_a_positions_read_whose_time_completes_the_proof_cancels_at_the_same_point() -> None:
    """Red team: a stop on a flat position, unchanged orders reads all along, the grace proven
    only by a later positions read (no view replaced, no order moved): the orphan is selected
    at the very grid point a reaper ticked at every point selects it, and a read that drops
    a second order is decided at once."""
    script = [("add", 1, 0), ("add", 4, 0), ("flat", 1, 0), ("read", 0, 2),
              ("read_same", 0, 2), ("read_same", 0, 2), ("prove", 1, 1), ("read_same", 0, 1),
              ("drop", 4, 0), ("read", 0, 6)]
    log: list[tuple[int, Effect]] = []
    every, due = run(script, log)
    cancels = [(t, e.order_id) for t, e in log if isinstance(e, CancelOrder)]
    assert {order_id for _, order_id in cancels} == {OrderId(2), OrderId(5)}, log
    assert due == every  # a grace running is a timed verdict: every point is ticked (rule 10)
