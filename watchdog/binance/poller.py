"""REST polling: the authority that proves the stream right, or blind.

Lives in ``binance/`` rather than ``runtime/`` because every decision in it is about Binance's
costs (positionRisk weight 5 for all symbols, order reads weight 1 per symbol) and it talks only
to ``BinanceRest`` and the core's events; leases come in through an injected callable, so it
imports nothing from ``store``.
Its rules are stated here once (``schedule.py`` holds their pure half).

Rules of this module:
1. ``PollSchedule`` (``schedule.py``) is pure (``now_s`` passed in): what to read now, and
   when to wake next.
2. Positions (all symbols, one call) every ``poll_interval_s``, and when the core asks
   (``RequestSnapshot``, coalesced) at once but at most every ``fast_poll_interval_s``.
   Open regular + algo orders for symbols that hold a position, closed one within
   ``recent_window_s``, or are leased by a bot: every ``orders_poll_interval_s``; once more
   ``fast_poll_interval_s`` after an event on the symbol; every ``fast_poll_interval_s`` while
   it is leased; once more, first in line, after the stream's post-connect resync for symbols
   the core's OrderBook holds orders on (an order placed during the gap has no event). An
   all-symbols read requested by someone else (the stream's resync) serves pending requests
   and resets the positions timer; a symbol's order read by someone else (the stream's
   post-connect resync) restarts that symbol's orders timer.
   The sweep: open algo orders, then open regular orders, of *all* symbols (no ``symbol``,
   weight 40 each), each list on its own (rule 4): the algo list right after the first
   positions snapshot, the regular list half an ``orders_sweep_interval_s`` later (at least
   once the algo read has left the window), then each every ``orders_sweep_interval_s``. It
   finds orders on symbols nothing above points at (an orphan placed while the watchdog was
   down); a symbol seen holding orders is then read per symbol (both lists) like the others
   while it has some.
3. Weight (``budget.py``): one hard cap for everything, and an order of priority. First what
   a safety decision waits on (``REQUESTED``): a read the core or the reaper asked for (but
   the refresh after a fill the stream reported: routine, ``request_priority``), the
   orders of a symbol whose position REST just showed closed (with the stream blind, the
   only way to see a stop the bot placed after the close). The guard's doubt read asks for
   its symbol's orders only (``request_wants_positions``): no positions read is made for it
   (one was, 5 weight a time, until issue 13). The read the core asks for after a stream
   loss waits up to ``fast_poll_interval_s`` for the reconnect's own post-connect read, which
   serves it (a blind reconnect is immediate: both were read, 13 ms apart), also when the
   request comes after that read started (the core's effects run after its batch). Routine polls
   come last: the
   positions poll (its rate fixed by ``poll_interval_s``: 0.9 s → 334/min of the default
   360), the sweep and the periodic per-symbol order reads leave ``PRIORITY_RESERVE`` free
   and yield (are deferred) while a priority call waits for room. Periodic order reads get
   what the positions poll, the sweep and the reserve leave (at least one read a minute) in
   their own 60 s window. Nothing is sent while ``Retry-After`` runs.
4. The sweep's rate is fixed by ``orders_sweep_interval_s`` (600 s → each list's 40 every
   10 min). The two lists are read apart, offset by half an interval and never less than
   ``SWEEP_APART_S`` after the other's answer (never in one 60 s window): both at once put 80
   into every window holding them, and there the poll could read only every ~1.2 s instead
   of 0.9 s, at each start and every 10 minutes (docs/BENCHMARKS.md, session 6); apart, a
   window holds 40 at most, and the minutes holding one are spread evenly (at a start the
   regular list's 40 came 61 s after the algo list's first: the second minute held it too,
   where detection_steady's trials run). Each list's read is
   authoritative for that list only (core/orders.py rule 6); the algo list goes first
   (conditional stops are algo orders: the incident's orphan kind). The positions poll is paced
   (``WeightBudget.pace_s``) to leave it that room by its due time and to let such a spike
   (the startup sweep too) leave the window without a stop, and to leave room for what the
   others spend (budget rule 7: the window's weight that was not this poller's positions
   reads and sweeps, expected again over the next minute), each list's sweep planned at its
   own due time. The
   sweep yields to the positions poll, never the reverse: it goes only when no positions read
   is due or held back, and only while our share and the IP (under its 90% line) have room
   for it; otherwise it waits (``SWEEP_RETRY_S``) and the positions poll goes on unchanged.
   After a connect on an account whose open symbols cost more in per-symbol reads than a
   sweep, the sweep waits up to ``RESYNC_ORDERS_WAIT_S`` for the stream's post-connect read
   of every symbol's orders (both lists), which is then the sweep of both (at a start both
   were read at once).
5. Calm (issue 13 item 2): the routine positions poll slows from ``poll_interval_s`` to
   ``idle_poll_interval_s`` while nothing makes a closure likely or hides one: the user stream
   is live and proven (``stream_trusted``: a stream found blind stays unproven until REST
   corroborates an event it delivered, core/proof.py), no watched stop is near its trigger or
   of unknown distance (``stops_far``, market_stream.py rule 5: a lost market connection
   counts as near), no read is pending, and for ``CALM_AFTER_S`` no sign of doubt (a stream
   gap, a failed read, a crossed trigger, a priority request, a position opened or closed) and
   no trading event. Either probe missing: never calm. Any such sign pulls the next read back
   to ``poll_interval_s`` after the last one. A closure a live stream reports, or a stop that
   fires (trigger watching), never waits for the routine poll; what calm costs is the first
   closure a stream that went mute without a gap hides: seen within ``idle_poll_interval_s``
   instead of ``poll_interval_s`` (that read finds the stream blind; it is then unproven and
   the poll fast again). Per-symbol order reads are not changed by calm.
6. A periodic sweep never slows the positions poll while that poll is the only detector:
   with the probe wired, a due sweep waits until the user stream is trusted and has had no
   gap for ``CALM_AFTER_S``, for at most ``orders_sweep_interval_s``; then it goes (and is
   planned for in the pacing) as before. While it waits, the pacing does not make room for
   it. The first sweep after a start or a take-over is not held: it finds what was left while
   no watchdog ran (the chaos suite's restart bound).
7. Several accounts on one IP (``sweep_plan``, runtime/share.py ``SweepSlots``): a due sweep
   (of one list) first claims a slot of its weight and waits for it (deferred), so the
   accounts' sweeps are spread
   instead of all going in the first second; and every account's positions poll paces
   leaving room for every slot claimed on the IP (rule 4 with all of them planned, not only
   its own: planning only its own made an account waiting for a late slot pay alone for
   the room its sweep needed, 11 s between its polls). Without ``sweep_plan`` (one account)
   nothing changes.
8. One round per read (issue 13 item 2): the routine positions read is woken for at the time
   its pace allows (``_paced_at``), not at its due time. At the due time the round only
   deferred it there (5-20 ms at the steady pace of ~0.91 s) and a second round read it:
   two lease reads, two plans, one wake-up more per read. The time is the one that round
   would have computed, projected when the previous round plans (the budget asked about a
   later time changes nothing: budget rule 8), so the read goes when it went, never later:
   whatever could make that round answer otherwise wakes us at the due time as before (a
   429's wait or the IP's line, several pollers on one IP, a stream probe that decides a
   sweep's room), and every change of the budget while we sleep past a due read wakes us
   to plan again (``_budget_changed``); a round woken that way after the due time defers
   the read to the projected time, as that round would have (``_round_begins``). Requests
   (rule 3), a crossed trigger and every event that wakes the poller are not touched: the
   projection moves the routine read's wake-up only.
9. A paced wait ended by its timer (not by a wake-up) tells ``woke`` the loop time it asked
   for: the event-loop stall watch (runtime/stalls.py rule 1) rides on this wake-up instead
   of adding one.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

from loguru import logger

from watchdog.binance.protocol.budget import Priority, WeightBudget, spread_over_window
from watchdog.binance.protocol.schedule import (
    SWEEP_LISTS,
    SWEEP_RETRY_S,
    PollPlan,
    PollSchedule,
    SweepList,
    orders_share_per_min,
    sweep_hold_s,
)
from watchdog.binance.protocol.weights import ORDERS_WEIGHT as _ORDERS_WEIGHT
from watchdog.binance.protocol.weights import POSITIONS_WEIGHT as _POSITIONS_WEIGHT
from watchdog.binance.protocol.weights import SWEEP_LIST_WEIGHT, SWEEP_WEIGHT
from watchdog.binance.rest import PRIORITY_WAIT_MAX_S, BinanceRest
from watchdog.binance.snapshots import Emit, read_orders, read_positions, sweep_list
from watchdog.cancel import raise_if_cancelling
from watchdog.clock import Clock
from watchdog.core.effects import ReadNow, RequestSnapshot
from watchdog.core.events import (
    AlgoUpdate,
    Event,
    ListenKeyExpired,
    OrdersSnapshot,
    OrderUpdate,
    PositionSnapshot,
    SnapshotFailed,
    SnapshotRequested,
    StopCrossed,
    StreamConnected,
    StreamLost,
    StreamPositions,
    TradeLite,
)
from watchdog.core.model import Symbol

__all__ = ["SWEEP_RETRY_S", "LeasedSymbols", "PollPlan", "PollSchedule", "Poller",
           "orders_share_per_min", "sweep_hold_s"]

LeasedSymbols = Callable[[], Awaitable[Collection[str]] | Collection[str]]
OrderSymbols = Callable[[], Collection[Symbol]]
Standby = Callable[[], bool]
Probe = Callable[[], bool]


class SweepPlan(Protocol):
    """The orders sweeps of the accounts on one IP (runtime/share.py ``SweepSlots``)."""

    def claim(self, now_s: float, weight: int = SWEEP_WEIGHT) -> float: ...

    def planned(self, now_s: float) -> list[tuple[float, int]]: ...


# A hot standby (docs/HA.md) reads positions once per this, and no orders: 5 weight / 10 s =
# 30 weight/min, 1.25 % of the IP's 2400/min; its user stream keeps the rest of its state hot.
STANDBY_POSITIONS_S = 10.0
# Rule 4: after a connect, how long the sweep waits for the stream's post-connect orders read,
# which reads every symbol at once on a big account (stream.py rule 7) and then is the sweep.
RESYNC_ORDERS_WAIT_S = 5.0
# The stream's own facts: ``Poller.observe`` has nothing to count for them (they ask their reads
# as ``ReadNow`` effects of the core), so it returns before reading the clock.
_STREAM_FACTS = frozenset({StreamPositions, OrderUpdate, AlgoUpdate, TradeLite})


class Poller:
    """Runs the schedule against ``BinanceRest`` and emits bracketed snapshots to the core."""

    def __init__(self, rest: BinanceRest, schedule: PollSchedule, *, clock: Clock,
                 leased_symbols: LeasedSymbols | None = None,
                 order_symbols: OrderSymbols | None = None, standby: Standby | None = None,
                 stream_trusted: Probe | None = None, stops_far: Probe | None = None,
                 sweep_plan: SweepPlan | None = None,
                 woke: Callable[[str, float], None] | None = None) -> None:
        self._rest = rest
        self._woke = woke  # rule 9: told when the paced wait's timer woke us
        # Rule 7: several accounts on one IP: the sweep's slot, claimed when it is first due.
        self._sweep_plan = sweep_plan
        self._slot_at: dict[SweepList, float] = {}
        self._stream_trusted = stream_trusted  # rule 5: the user stream is live and proven
        self._stops_far = stops_far  # rule 5: no watched stop near its trigger
        self._standby = standby  # True while another instance leads the account
        self._standby_read_at = float("-inf")
        self.schedule = schedule
        self._clock = clock
        self._leased_symbols = leased_symbols
        self._order_symbols = order_symbols  # symbols the core's OrderBook holds orders on
        self._connected = False  # a StreamConnected whose resync read has not been seen yet
        self._resync_id: int | None = None  # the stream's post-connect positions read
        self._stream_orders_until = -math.inf  # its orders read may come until then (rule 4)
        self._wake = asyncio.Event()
        self._own_requests: set[int] = set()  # our SnapshotRequested ids, not someone else's
        self._own_orders: set[int] = set()  # our OrdersSnapshot ids, likewise
        # Order reads get what the positions poll and the sweep leave of our share (at least
        # one read a minute), so they can never starve the positions poll (rules 3 and 4).
        self._orders_budget = WeightBudget(orders_share_per_min(
            rest.budget.budget_per_min, schedule.poll_interval_s,
            schedule.orders_sweep_interval_s), reserve=0)
        # Our own paced spending (positions reads, sweeps) of the last 60 s: the rest of the
        # window is what others spend, which the pace plans for (budget rule 7).
        self._paced: deque[tuple[float, int]] = deque()
        self.reads = 0
        self.failures = 0
        self.sweeps = 0
        self.sweep_failures = 0
        self._sweep_streak = dict.fromkeys(SWEEP_LISTS, 0)  # failed in a row: the retry backs off
        # Rule 8: the sleep planned past the routine read's due time (due, paced) from the
        # budget as it was: any change of it (someone else's call, an answer, a priority call
        # waiting) wakes us to plan again.
        self._projection: tuple[float, float] | None = None
        rest.budget.watch(self._budget_changed)

    def request_snapshot(self, effect: RequestSnapshot) -> None:
        """Run a ``RequestSnapshot`` effect of the core: read as soon as the budget allows."""
        self.schedule.snapshot_requested(effect.reason, effect.symbols)
        self._wake.set()

    def read_now(self, effect: ReadNow) -> None:
        """Run a ``ReadNow`` effect of the core: an event on the symbol arrived, so its orders
        are read once more soon and it is polled fast for a while."""
        self.schedule.activity(effect.symbol, self._clock.monotonic())
        self._wake.set()

    def observe(self, event: Event) -> None:
        """Feed every event the core gets: the REST reads others made (the stream's resync)
        count in the schedule and the budget; symbols to read now come as ``ReadNow``."""
        if type(event) in _STREAM_FACTS:
            return  # the hot case (every stream event): none of the cases below
        now_s = self._clock.monotonic()
        match event:
            case PositionSnapshot() if event.symbols is None:
                # Usually our own read, already seen by ``_read_positions``: an answer that
                # changes nothing in the schedule needs no new plan (no wake-up).
                changed = self.schedule.positions_seen(event, now_s)
                if not (self._after_resync(event.request_id) or changed):
                    return
            case SnapshotFailed():
                self.schedule.doubt(now_s)
                self._after_resync(event.request_id)
            case StreamLost() | ListenKeyExpired():
                self._stream_orders_until = -math.inf
                self.schedule.doubt(now_s, gap=True)  # rules 5 and 6
                self.schedule.stream_lost(now_s)  # rule 3: the reconnect's read serves the gap's
            case StopCrossed():
                self.schedule.doubt(now_s)  # rule 5: the next read no later than usual
            case OrdersSnapshot():
                self.schedule.orders_seen(event)
                if event.request_id in self._own_orders:
                    self._own_orders.discard(event.request_id)
                elif event.symbols is not None:  # the stream's resync: paid from our share
                    self._stream_orders_until = -math.inf  # per symbol: no sweep coming
                    self.schedule.orders_read_by_other(event.symbols, now_s)
                    self._orders_budget.record(_ORDERS_WEIGHT * len(event.symbols), now_s)
                else:  # the stream's resync read every symbol's orders: that was a sweep
                    self._stream_orders_until = -math.inf
                    self.schedule.sweep_started(now_s)  # of both lists, answered (rule 4)
                    self.schedule.sweep_read(now_s, now_s)
                    self._paced.append((now_s, SWEEP_WEIGHT))  # a one-off: not forecast (rule 7)
            case StreamConnected():
                self.schedule.doubt(now_s, gap=True)
                self._connected = True
                self._stream_orders_until = now_s + RESYNC_ORDERS_WAIT_S
                return
            case SnapshotRequested() if event.symbols is None:
                if event.request_id in self._own_requests:
                    self._own_requests.discard(event.request_id)
                    return
                if self._connected:
                    self._connected, self._resync_id = False, event.request_id
                self.schedule.positions_read_by_other(now_s)
            case _:
                return
        self._wake.set()

    def _after_resync(self, request_id: int) -> bool:
        """The stream's post-connect positions read is in (the frames it buffered follow at
        once): the orders of symbols the OrderBook holds orders on are read once more, so an
        order placed during the gap on a symbol without a position shows within the order
        reads' share instead of at the next sweep. Symbols with a position are read by the
        stream itself (stream.py rule 2). Returns True when it was that read."""
        if request_id != self._resync_id:
            return False
        self._resync_id = None
        if self._order_symbols is not None:
            self.schedule.reread_orders(set(self._order_symbols()) - self.schedule.open_symbols)
        return True

    async def run(self, emit: Emit) -> None:
        """Poll forever (never returns); failures become ``SnapshotFailed``, never flat."""
        while True:
            self._wake.clear()  # before planning: a wake-up during the reads is not lost
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
                continue  # it read every symbol's orders: plan the per-symbol reads afresh
            await self._read_due_orders(plan, emit)
            await self._sleep_unless_woken(self._next_wake_s(leased))

    def _round_begins(self, now_s: float) -> None:
        """Rule 8: a round woken before the paced time of a read already due does what the
        round at its due time would have done: defer it to that time (not to a later one
        the pace says now: that round saw the budget before the change that woke us). Our own
        calls from here on wake nothing."""
        if self._projection is not None:
            due_s, paced_s = self._projection
            self._projection = None
            if due_s <= now_s < paced_s:
                self.schedule.defer_positions(paced_s)

    async def _read_due_orders(self, plan: PollPlan, emit: Emit) -> None:
        """Rule 3: the order reads the plan lists, requested ones first; routine ones stop
        where the budget or the orders share does."""
        for symbol in plan.order_symbols:
            requested = symbol in plan.orders_urgent
            now_s = self._clock.monotonic()
            if not requested and (
                    self._rest.budget_wait_s(_ORDERS_WEIGHT) > 0
                    or self._orders_budget.wait_for_s(_ORDERS_WEIGHT, now_s=now_s) > 0):
                logger.debug("orders poll deferred symbol={} (weight budget)", symbol)
                break
            # Paid from the orders share either way (rule 3): a requested read is never
            # held by it, but it is that symbol's read too, so routine ones make room.
            self._orders_budget.record(_ORDERS_WEIGHT, now_s)
            logger.debug("orders read symbol={} reason={}", symbol,
                         "requested" if requested else "poll")
            await read_orders(self._rest, self._own(emit), [symbol],
                              reason="requested" if requested else "poll",
                              priority=Priority.REQUESTED if requested else Priority.ROUTINE)
            self.schedule.orders_read(symbol, self._clock.monotonic())

    async def _standby_round(self, emit: Emit, now_s: float) -> None:
        """A standby: one positions read per STANDBY_POSITIONS_S, nothing else; woken at once
        when it takes over (``take_over``)."""
        if now_s - self._standby_read_at >= STANDBY_POSITIONS_S:
            self._standby_read_at = now_s
            self.reads += 1
            if await read_positions(self._rest, self._own(emit), reason="standby",
                                    priority=Priority.ROUTINE) is None:
                self.failures += 1
        await self._sleep_unless_woken(
            max(0.05, self._standby_read_at + STANDBY_POSITIONS_S - self._clock.monotonic()))

    def take_over(self) -> None:
        """This instance leads now: read positions at once and sweep the orders soon (a
        standby read none), then the normal schedule."""
        self.schedule.snapshot_requested("took the lead", None)
        self.schedule.sweep_soon(self._clock.monotonic())
        self._wake.set()

    def _trusted(self) -> bool | None:
        """Rule 6: the user stream is live and proven (None: no probe wired)."""
        return None if self._stream_trusted is None else self._stream_trusted()

    def _calm(self, now_s: float) -> bool:
        """Rule 5, with the runtime's probes (no probe: never calm)."""
        if self._stream_trusted is None or self._stops_far is None:
            return False
        return self.schedule.calm(now_s, stream_trusted=self._stream_trusted(),
                                  stops_far=self._stops_far())

    def _next_wake_s(self, leased: Collection[str]) -> float:
        """When to look again: the schedule's next item, or when the budget frees what is due."""
        now_s = self._clock.monotonic()
        calm = self._calm(now_s)
        schedule = self.schedule
        paced_at = -math.inf
        due_s = schedule.positions_due_at(calm)
        if now_s < due_s and not schedule.requests_pending:
            paced_at = self._paced_at(due_s, now_s)  # rule 8: one round per read
            self._projection = (due_s, paced_at) if paced_at > due_s else None
        # Unordered: only whether order reads are due matters here, not their order.
        plan = schedule.plan(now_s, leased, calm, ordered=False, paced_at=paced_at)
        held_s: list[float] = []
        if plan.read_positions:
            held_s.append(self._positions_wait_s(plan, now_s))
        if plan.orders_urgent:
            held_s.append(0.0)  # requested reads wait for room inside the REST client
        elif plan.order_symbols:
            held_s.append(max(self._rest.budget_wait_s(_ORDERS_WEIGHT),
                              self._orders_budget.wait_for_s(_ORDERS_WEIGHT, now_s=now_s)))
        if not held_s:
            return plan.wake_in_s
        wake_s = min(max(0.05, min(held_s)), self.schedule.poll_interval_s)
        if not plan.read_positions:  # an order read held back must not delay the positions poll
            # ... nor wake us each time another symbol's orders timer runs out: that read is
            # held back by the same budget (after a resync, 300 timers end one by one).
            wake_s = min(wake_s, plan.positions_wake_in_s)
        return wake_s

    def _own(self, emit: Emit) -> Emit:
        """``emit`` that remembers the ids of the reads this poller brackets, and which
        symbols its order reads found orders on (whether or not ``observe`` is wired)."""
        async def emit_own(event: Event) -> None:
            if isinstance(event, SnapshotRequested):
                self._own_requests.add(event.request_id)
            elif isinstance(event, OrdersSnapshot):
                self._own_orders.add(event.request_id)
                self.schedule.orders_seen(event)
            await emit(event)
        return emit_own

    async def _sweep(self, emit: Emit) -> bool:
        """Rule 4: read every symbol's orders of the list due (one list at a time) unless the
        positions poll needs the room first. Returns True when the sweep was read (and
        emitted)."""
        now_s = self._clock.monotonic()
        plan = self.schedule.plan(now_s, calm=self._calm(now_s))
        which = plan.sweep_list
        if which is None:
            return False
        if plan.read_positions or plan.positions_urgent:
            return False  # positions first; the sweep stays due and goes after them
        if not self.schedule.sweep_may_go(now_s, self._trusted(), which):
            return False  # rule 6: the stream is not trusted yet; the sweep stays due
        if (now_s < self._stream_orders_until
                and len(self.schedule.open_symbols) * _ORDERS_WEIGHT > SWEEP_WEIGHT):
            # Rule 4: the stream's post-connect read of every symbol's orders is on its way
            # and will be this sweep (both went within 10 ms at a start: 160 weight, not 80).
            self.schedule.defer_sweep(min(self._stream_orders_until, now_s + 0.25), which)
            return False
        if self._sweep_plan is not None:  # rule 7
            slot_at = self._slot_at.get(which)
            if slot_at is None:
                slot_at = self._slot_at[which] = self._sweep_plan.claim(now_s, SWEEP_LIST_WEIGHT)
            if now_s < slot_at:
                self.schedule.defer_sweep(slot_at, which)
                return False
        hold_s = sweep_hold_s(self._rest.budget, now_s)
        if hold_s > 0:
            self.schedule.defer_sweep(now_s + max(hold_s, SWEEP_RETRY_S), which)
            logger.info("orders sweep ({} list) held back {:.0f}s: no room in our weight share "
                        "or the IP's, or Binance asked us to wait; the positions poll goes "
                        "first", which, max(hold_s, SWEEP_RETRY_S))
            return False
        before = self.schedule.tracked(now_s, ())
        self.schedule.sweep_started(now_s, which)
        self._slot_at.pop(which, None)
        self.sweeps += 1
        self._paced.append((now_s, SWEEP_LIST_WEIGHT))
        try:
            snapshot = await sweep_list(self._rest, self._own(emit), algo=which.is_algo,
                                        reason="sweep")
        finally:  # answered or failed: it counts in our window from now (rule 4)
            self.schedule.sweep_answered(self._clock.monotonic(), which)
        if snapshot is None:
            self.sweep_failures += 1
            self._sweep_streak[which] += 1
            streak = self._sweep_streak[which]
            retry_s = min(self.schedule.orders_sweep_interval_s,
                          SWEEP_RETRY_S * 2 ** min(streak - 1, 10))
            self.schedule.defer_sweep(now_s + retry_s, which)
            logger.warning("orders sweep ({} list) failed ({} in a row): next try in {:.0f}s",
                           which, streak, retry_s)
            return False
        self._sweep_streak[which] = 0
        found = sorted(({Symbol(o.symbol) for o in snapshot.orders}
                        | {Symbol(a.symbol) for a in snapshot.algo_orders}) - before)
        if found:
            logger.info("orders sweep ({} list) found open orders on symbols not watched so "
                        "far: {}; they are now read per symbol while they have orders", which,
                        ", ".join(found))
        return True

    async def _sleep_unless_woken(self, wait_s: float) -> bool:
        """Sleep ``wait_s``, or less when an event or a snapshot request wakes us."""
        timeout = asyncio.timeout(wait_s)
        try:
            async with timeout:
                await self._wake.wait()
        except TimeoutError as exc:
            raise_if_cancelling(exc)  # a stop lost earlier must not be slept through (cancel.py)
            when_s = timeout.when()
            if self._woke is not None and when_s is not None:
                self._woke("poller", when_s)  # rule 9
            return False
        return True

    def _positions_wait_s(self, plan: PollPlan, now_s: float) -> float:
        """Rule 3: a requested read is a priority call (it may wait inside the REST client up
        to ``PRIORITY_WAIT_MAX_S``: 0 here); a scheduled one is routine and leaves room for
        the coming sweep (rule 4)."""
        if plan.positions_priority:
            wait_s = self._rest.budget.wait_for_s(_POSITIONS_WEIGHT, priority=Priority.REQUESTED,
                                                  now_s=now_s)
            return 0.0 if wait_s <= PRIORITY_WAIT_MAX_S else wait_s
        budget = self._rest.budget
        wait_s = budget.wait_for_s(_POSITIONS_WEIGHT, priority=Priority.ROUTINE, now_s=now_s)
        if wait_s > 0:
            return wait_s
        # A routine request (a refresh after a fill the stream reported) goes early, but at
        # the pace like a scheduled read: it takes that read's place, not extra weight.
        return max(0.0, self.schedule.last_positions_at + self._pace_s(now_s) - now_s)

    def _paced_at(self, due_s: float, now_s: float) -> float:
        """Rule 8: when the routine positions read due at ``due_s`` may go, asked at ``now_s``:
        where the round at ``due_s`` would defer it to by the pace, if nothing changes until
        then. ``due_s`` itself (wake then, as before) whenever that round could find another
        answer: no room now or a 429's wait at ``due_s`` (the IP at its line), several
        pollers on one IP (their count changes unseen), a stream probe that decides whether a
        coming sweep is planned for or a due one marked held. A window full at ``due_s`` has
        no pace (``_pace_from``: 0): ``due_s`` too. Whatever changes the budget after this
        (a priority call waiting, served, sent or answered, a new IP usage) wakes us
        (``_budget_changed``)."""
        budget = self._rest.budget
        if (self._sweep_plan is not None or budget.sharers != 1
                or budget.wait_for_s(_POSITIONS_WEIGHT, now_s=now_s) > 0
                or budget.blocked_for_s(due_s) > 0):
            return due_s  # (a window full at due_s: no pace, due_s below)
        trusted = self._trusted()
        schedule = self.schedule
        for which in SWEEP_LISTS:
            if (schedule.sweep_at(which) <= due_s and schedule.sweep_forced_at(which) is None
                    and not schedule.sweep_goes(due_s, trusted, which)):
                return due_s  # that round marks the held sweep's wait from its own time (rule 6)
        sweep = self._sweeps_planned(due_s, trusted, project=True)
        if trusted is not None:
            flipped = self._sweeps_planned(due_s, not trusted, project=True)
            if ([s for s in sweep if s[0] < due_s + 60.0]  # what the pace's minute holds
                    != [s for s in flipped if s[0] < due_s + 60.0]):
                return due_s  # a probe flip between now and then changes that round's pace
        pace_s = self._pace_from(due_s, sweep, self._others_1m(due_s, project=True))
        return max(due_s, self.schedule.last_positions_at + pace_s)

    def _pace_s(self, now_s: float) -> float:
        """Rule 4: the positions poll's spacing that leaves room for the coming sweep and lets
        a spike leave the window without a stop; the sweep is dropped from the plan when even
        that cannot make room (the positions poll goes first, the sweep is held back)."""
        return self._pace_from(now_s, self._sweeps_planned(now_s, self._trusted()),
                               self._others_1m(now_s))

    def _sweeps_planned(self, now_s: float, trusted: bool | None, *,
                        project: bool = False) -> list[tuple[float, int]]:
        """The sweeps the pace leaves room for (rules 4, 6 and 7). ``project``: asked ahead of
        ``now_s`` (rule 8), recording nothing (a due sweep is not marked held from then)."""
        sweep: list[tuple[float, int]] = []
        for which in SWEEP_LISTS:  # rule 4: each list's 40 at its own due time
            if self._sweep_plan is not None and self._slot_at.get(which, -math.inf) > now_s:
                continue  # rule 7: its claimed slot is among the shared ones below
            sweep_at = self.schedule.sweep_at(which)
            if sweep_at == math.inf:
                continue  # waits for the other list's read under way: not this minute
            at_s = max(now_s, sweep_at)
            if project:
                goes = self.schedule.sweep_goes(at_s, trusted, which)
            else:
                goes = self.schedule.sweep_may_go(at_s, trusted, which)
            if not goes:
                forced_at = self.schedule.sweep_forced_at(which)  # rule 6: only a forced one
                if forced_at is None and project:  # held from at_s by that round
                    forced_at = at_s + self.schedule.orders_sweep_interval_s
                sweep_at = now_s if forced_at is None else forced_at
            if sweep_at > now_s:
                sweep.append((sweep_at, SWEEP_LIST_WEIGHT))
        if self._sweep_plan is not None:  # rule 7: room for every account's sweep on the IP
            sweep += self._sweep_plan.planned(now_s)  # our own claimed slots among them
        return sweep

    def _pace_from(self, now_s: float, sweep: list[tuple[float, int]], others_1m: int) -> float:
        """``_pace_s`` from the sweeps planned for and the others' spending of the window."""
        budget = self._rest.budget
        others = spread_over_window(others_1m, now_s)  # budget rule 7
        pace_s = budget.pace_s(_POSITIONS_WEIGHT, now_s, sweep + others)
        if sweep and pace_s == math.inf:
            pace_s = budget.pace_s(_POSITIONS_WEIGHT, now_s, others)
        if pace_s == math.inf:  # even the forecast cannot be met: plan from the window alone
            pace_s = budget.pace_s(_POSITIONS_WEIGHT, now_s)
        return 0.0 if pace_s == math.inf else pace_s

    def _others_1m(self, now_s: float, *, project: bool = False) -> int:
        """Budget rule 7: the weight of our window that was not this poller's paced spending
        (priority reads, order reads, listen keys). Several pollers on one budget pace each
        other already (``sharers``): none then. ``project``: asked ahead of ``now_s`` (rule
        8): nothing is forgotten."""
        budget = self._rest.budget
        if budget.sharers != 1:
            return 0
        if project:
            paced = sum(w for at_s, w in self._paced if at_s > now_s - 60.0)
            return max(0, budget.used_at_s(now_s) - paced)
        while self._paced and self._paced[0][0] <= now_s - 60.0:
            self._paced.popleft()
        return max(0, budget.own_used_1m(now_s) - sum(w for _, w in self._paced))

    def _budget_changed(self) -> None:
        """Rule 8: the budget changed while we sleep past a due read on its earlier answer."""
        if self._projection is not None:
            self._wake.set()

    async def _read_positions(self, plan: PollPlan, now_s: float, emit: Emit) -> None:
        """Rule 3: requested reads first, scheduled ones within what routine polls may use."""
        wait_s = self._positions_wait_s(plan, now_s)
        if wait_s > 0:
            if plan.positions_urgent:
                # No room now (a routine request), or Binance asked us to wait / the IP is at
                # its limit: served by the next read that can go (the request stays pending).
                wait_s = min(wait_s, max(0.05, self.schedule.next_positions_at - now_s))
            self.schedule.defer_positions(now_s + wait_s)
            logger.debug("positions poll deferred wait_s={:.2f} (weight budget)", wait_s)
            return
        reason = self.schedule.positions_started(now_s)
        self._paced.append((now_s, _POSITIONS_WEIGHT))
        self.reads += 1
        priority = Priority.REQUESTED if plan.positions_priority else Priority.ROUTINE
        snapshot = await read_positions(self._rest, self._own(emit), reason=reason,
                                        priority=priority)
        if snapshot is None:
            self.failures += 1
        else:
            self.schedule.positions_seen(snapshot, self._clock.monotonic())

    async def _leases(self) -> Collection[str]:
        if self._leased_symbols is None:
            return ()
        result = self._leased_symbols()
        if inspect.isawaitable(result):
            return await result
        return result
