"""REST polling: the authority that proves the stream right, or blind.

Lives in ``binance/`` rather than ``runtime/`` because every decision in it is about Binance's
costs (positionRisk weight 5 for all symbols, order reads weight 1 per symbol) and it talks only
to ``BinanceRest`` and the core's events; leases come in through an injected callable, so it
imports nothing from ``store``.

Rules of this module:
1. ``PollSchedule`` is pure (``now_s`` passed in): what to read now, and when to wake next.
2. Positions (all symbols, one call) every ``poll_interval_s``, and when the core asks
   (``RequestSnapshot``, coalesced) at once but at most every ``fast_poll_interval_s``.
   Open regular + algo orders for symbols that hold a position, closed one within
   ``recent_window_s``, or are leased by a bot: every ``orders_poll_interval_s``; once more
   ``fast_poll_interval_s`` after an event on the symbol; every ``fast_poll_interval_s`` while
   it is leased. An all-symbols read requested by someone else (the stream's resync) serves
   pending requests and resets the positions timer; a symbol's order read by someone else (the
   stream's post-connect resync) restarts that symbol's orders timer.
   The sweep: open regular + algo orders of *all* symbols (no ``symbol``, weight 40 each)
   right after the first positions snapshot, then every ``orders_sweep_interval_s``. It finds
   orders on symbols nothing above points at (an orphan placed while the watchdog was down);
   a symbol seen holding orders is then read per symbol like the others while it has some.
3. Weight: the positions poll's rate is fixed by ``poll_interval_s`` (0.9 s → 333/min of the
   default 360): it is never held back by our own share, only by the bot's need (the IP above
   90% of 2400) — starving it would leave the core without truth. Order reads get the rest of
   our share (at least one read a minute) in their own 60 s window. A snapshot the core asked for goes
   at once while our last 60 s leave room for it, else with the next scheduled read (either
   way it postpones the next scheduled read). Nothing is sent while ``Retry-After`` runs.
4. The sweep's rate is fixed by ``orders_sweep_interval_s`` (600 s → 80 weight every 10 min
   = 8/min), and a stream found blind is replaced at most once a minute (stream rule 6: a
   listen key and one positions read more, 6/min); both are taken out of the order reads'
   share, which also pays the stream's post-connect order reads, so positions (334) + sweep
   (8) + blind reconnects (6) + per-symbol orders (≤ 12) stay within 360. The sweep yields to the positions
   poll, never the reverse: it goes only when no positions read is due or held back, and
   only while the IP keeps room under its 90% line for the sweep *and* the next positions
   read; otherwise it waits (``SWEEP_RETRY_S``) and the positions poll goes on unchanged.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from loguru import logger

from watchdog.binance.budget import WeightBudget
from watchdog.binance.reconnect import BLIND_RECONNECT_INTERVAL_S
from watchdog.binance.rest import ALL_SYMBOLS_WEIGHTS, WEIGHTS, BinanceRest
from watchdog.binance.snapshots import Emit, read_all_orders, read_orders, read_positions
from watchdog.config import BinanceConfig
from watchdog.core.effects import RequestSnapshot
from watchdog.core.events import (
    AlgoUpdate,
    Event,
    OrdersSnapshot,
    OrderUpdate,
    PositionSnapshot,
    SnapshotRequested,
    StreamPositions,
    TradeLite,
)
from watchdog.core.model import ZERO, Symbol
from watchdog.runtime.clock import Clock

__all__ = ["BLIND_RECONNECT_WEIGHT", "SWEEP_RETRY_S", "SWEEP_WEIGHT", "LeasedSymbols", "PollPlan",
           "PollSchedule", "Poller", "orders_share_per_min", "sweep_hold_s"]

_POSITIONS_WEIGHT = WEIGHTS["GET /fapi/v3/positionRisk"]
_ORDERS_WEIGHT = WEIGHTS["GET /fapi/v1/openOrders"] + WEIGHTS["GET /fapi/v1/openAlgoOrders"]
SWEEP_WEIGHT = (ALL_SYMBOLS_WEIGHTS["GET /fapi/v1/openOrders"]
                + ALL_SYMBOLS_WEIGHTS["GET /fapi/v1/openAlgoOrders"])
# What replacing a blind stream adds (stream rule 6): a listen key and one positions read; its
# order reads are paid from the orders share like the poller's own.
BLIND_RECONNECT_WEIGHT = WEIGHTS["POST /fapi/v1/listenKey"] + _POSITIONS_WEIGHT
# A sweep held back (IP near its limit) or failed is tried again this much later, not at once.
SWEEP_RETRY_S = 30.0

LeasedSymbols = Callable[[], Awaitable[Collection[str]] | Collection[str]]


@dataclass(frozen=True, slots=True)
class PollPlan:
    """What to read now; ``wake_in_s`` is when the schedule next has something to do."""

    read_positions: bool
    positions_urgent: bool
    positions_reason: str
    order_symbols: tuple[Symbol, ...]
    orders_urgent: tuple[Symbol, ...]
    wake_in_s: float
    sweep: bool = False


def orders_share_per_min(budget_per_min: int, poll_interval_s: float,
                         orders_sweep_interval_s: float) -> int:
    """What our share leaves per-symbol order reads once the positions poll, the sweep (both
    fixed by configuration) and blind reconnects are paid: at least one read a minute (rule 4)."""
    positions_per_min = math.ceil(_POSITIONS_WEIGHT * 60 / poll_interval_s)
    sweep_per_min = math.ceil(SWEEP_WEIGHT * 60 / orders_sweep_interval_s)
    blind_per_min = math.ceil(BLIND_RECONNECT_WEIGHT * 60 / BLIND_RECONNECT_INTERVAL_S)
    return max(_ORDERS_WEIGHT, budget_per_min - positions_per_min - sweep_per_min - blind_per_min)


def sweep_hold_s(budget: WeightBudget, now_s: float) -> float:
    """How long the sweep must wait (0: go): never during ``Retry-After``, and only while the
    IP leaves room under its 90% line for the sweep plus the next positions read (rule 4)."""
    return budget.wait_for_s(SWEEP_WEIGHT + _POSITIONS_WEIGHT, urgent=False, now_s=now_s,
                             count_own=False)


class PollSchedule:
    """Pure timing of REST reads (rule 1 and 2)."""

    def __init__(self, *, poll_interval_s: float, orders_poll_interval_s: float,
                 fast_poll_interval_s: float, recent_window_s: float = 300.0,
                 orders_sweep_interval_s: float = 600.0) -> None:
        self.poll_interval_s = poll_interval_s
        self.orders_sweep_interval_s = orders_sweep_interval_s
        self.orders_poll_interval_s = orders_poll_interval_s
        self.fast_poll_interval_s = fast_poll_interval_s
        self.recent_window_s = recent_window_s
        self._next_positions_at = 0.0
        self._last_positions_at = -1e18
        self._requested: list[str] = []
        self._requested_symbols: set[Symbol] = set()
        self._open: set[Symbol] = set()
        self._closed_at: dict[Symbol, float] = {}
        self._active_at: dict[Symbol, float] = {}
        self._orders_at: dict[Symbol, float] = {}
        self._orders_after_event: set[Symbol] = set()
        self._with_orders: set[Symbol] = set()  # symbols the last read of them listed orders in
        self._positions_known = False  # the first sweep waits for the first positions answer
        self._next_sweep_at = 0.0

    @classmethod
    def from_config(cls, cfg: BinanceConfig) -> PollSchedule:
        return cls(poll_interval_s=cfg.poll_interval_s,
                   orders_poll_interval_s=cfg.orders_poll_interval_s,
                   fast_poll_interval_s=cfg.fast_poll_interval_s,
                   orders_sweep_interval_s=cfg.orders_sweep_interval_s)

    # -------------------------------------------------------------- facts

    def snapshot_requested(self, reason: str, symbols: Collection[Symbol] | None) -> None:
        """The core asked for a snapshot: read positions (and those symbols' orders) now."""
        self._requested.append(reason)
        self._requested_symbols.update(symbols or ())

    def positions_started(self, now_s: float) -> str:
        """A positions read starts now; returns the reason(s) it serves."""
        self._next_positions_at = now_s + self.poll_interval_s
        self._last_positions_at = now_s
        reason = ", ".join(dict.fromkeys(self._requested)) or "scheduled"
        self._requested.clear()
        return reason

    def positions_seen(self, snapshot: PositionSnapshot, now_s: float) -> None:
        """A complete positions answer: which symbols hold a position, which just closed."""
        held = {Symbol(p.key.symbol) for p in snapshot.positions if p.amount != ZERO}
        for symbol in self._open - held:
            self._closed_at[symbol] = now_s
        self._open = held
        self._positions_known = True

    def activity(self, symbol: Symbol, now_s: float) -> None:
        """An event on ``symbol`` arrived: read its orders once more, soon (a burst of events
        on one fill costs one read), then watch it for ``recent_window_s``."""
        self._active_at[symbol] = now_s
        self._orders_after_event.add(symbol)

    def orders_read(self, symbol: Symbol, now_s: float) -> None:
        self._orders_at[symbol] = now_s
        self._orders_after_event.discard(symbol)
        self._requested_symbols.discard(symbol)

    def orders_read_by_other(self, symbols: Collection[Symbol], now_s: float) -> None:
        """Someone else (the stream's resync) just read these symbols' orders: the periodic read
        can wait its interval. Requests and after-event reads stay: they may postdate it."""
        for symbol in symbols:
            self._orders_at[symbol] = max(self._orders_at.get(symbol, -1e18), now_s)

    def orders_seen(self, snapshot: OrdersSnapshot) -> None:
        """An orders answer: the symbols it covers that hold orders stay watched (rule 2)."""
        listed = ({Symbol(o.symbol) for o in snapshot.orders}
                  | {Symbol(a.symbol) for a in snapshot.algo_orders})
        if snapshot.symbols is None:
            self._with_orders = listed
        else:
            self._with_orders = (self._with_orders - snapshot.symbols) | listed

    def sweep_started(self, now_s: float) -> None:
        """A sweep starts now: the next one is a full interval away."""
        self._next_sweep_at = now_s + self.orders_sweep_interval_s

    def sweep_read(self, started_s: float, now_s: float) -> None:
        """A sweep that started at ``started_s`` succeeded: it was every watched symbol's order
        read too (events after its start still get their own read)."""
        for symbol in self.tracked(now_s, ()):
            if self._active_at.get(symbol, -1e18) <= started_s:
                self._orders_at[symbol] = max(self._orders_at.get(symbol, -1e18), started_s)
                self._orders_after_event.discard(symbol)

    def defer_sweep(self, until_s: float) -> None:
        """The sweep could not go (budget, or a failed read): try again at ``until_s``."""
        self._next_sweep_at = until_s

    @property
    def next_sweep_at(self) -> float:
        return self._next_sweep_at

    def positions_read_by_other(self, now_s: float) -> None:
        """Someone (the stream's post-connect resync) just asked for all positions: that
        serves every pending request and the next scheduled read can wait a full interval."""
        self.positions_started(now_s)

    @property
    def next_positions_at(self) -> float:
        """When the next scheduled positions read is due (monotonic seconds)."""
        return self._next_positions_at

    def defer_positions(self, until_s: float) -> None:
        """Our budget cannot pay for the scheduled read yet."""
        self._next_positions_at = max(self._next_positions_at, until_s)

    # -------------------------------------------------------------- decision

    def orders_interval_s(self, symbol: Symbol, now_s: float, leased: Collection[str]) -> float:
        fast = symbol in leased or symbol in self._orders_after_event
        return self.fast_poll_interval_s if fast else self.orders_poll_interval_s

    def tracked(self, now_s: float, leased: Collection[str]) -> set[Symbol]:
        """Symbols whose orders we watch: open, recently closed, leased, recently active, or
        holding orders when last read."""
        for symbol, closed_at in list(self._closed_at.items()):
            if now_s - closed_at > self.recent_window_s:
                del self._closed_at[symbol]
        recent = {s for s, t in self._active_at.items() if now_s - t < self.recent_window_s}
        return (self._open | set(self._closed_at) | {Symbol(s) for s in leased} | recent
                | self._requested_symbols | self._with_orders)

    def plan(self, now_s: float, leased: Collection[str] = ()) -> PollPlan:
        # A requested read goes at once, but never closer than fast_poll_interval_s to the
        # previous read: the core asks again after every fill and every ambiguous answer.
        requested_at = self._last_positions_at + self.fast_poll_interval_s
        urgent = bool(self._requested)
        read_positions = now_s >= self._next_positions_at or (urgent and now_s >= requested_at)
        wake_at = min(self._next_positions_at, requested_at) if urgent else self._next_positions_at
        sweep = self._positions_known and now_s >= self._next_sweep_at
        if self._positions_known and not sweep:
            wake_at = min(wake_at, self._next_sweep_at)
        due: list[Symbol] = []
        for symbol in sorted(self.tracked(now_s, leased)):
            if symbol in self._requested_symbols:
                due.append(symbol)
                continue
            next_at = self._orders_at.get(symbol, -1e18) + self.orders_interval_s(symbol, now_s,
                                                                                   leased)
            if next_at <= now_s:
                due.append(symbol)
            else:
                wake_at = min(wake_at, next_at)
        # Requested first, then the longest unread: when the budget cuts the list short, every
        # symbol still gets its turn (the sweep can add many symbols that hold orders).
        due.sort(key=lambda sym: (sym not in self._requested_symbols,
                                  self._orders_at.get(sym, -1e18), sym))
        return PollPlan(read_positions, urgent, ", ".join(self._requested) or "scheduled",
                        tuple(due), tuple(s for s in due if s in self._requested_symbols),
                        max(0.0, wake_at - now_s), sweep)


class Poller:
    """Runs the schedule against ``BinanceRest`` and emits bracketed snapshots to the core."""

    def __init__(self, rest: BinanceRest, schedule: PollSchedule, *, clock: Clock,
                 leased_symbols: LeasedSymbols | None = None) -> None:
        self._rest = rest
        self.schedule = schedule
        self._clock = clock
        self._leased_symbols = leased_symbols
        self._wake = asyncio.Event()
        self._own_requests: set[int] = set()  # our SnapshotRequested ids, not someone else's
        self._own_orders: set[int] = set()  # our OrdersSnapshot ids, likewise
        # Order reads get what the positions poll and the sweep leave of our share (at least
        # one read a minute), so they can never starve the positions poll (rules 3 and 4).
        self._orders_budget = WeightBudget(orders_share_per_min(
            rest.budget.budget_per_min, schedule.poll_interval_s,
            schedule.orders_sweep_interval_s))
        self.reads = 0
        self.failures = 0
        self.sweeps = 0
        self.sweep_failures = 0
        self._sweep_streak = 0  # failed sweeps in a row: the retry backs off

    def request_snapshot(self, effect: RequestSnapshot) -> None:
        """Run a ``RequestSnapshot`` effect of the core: read as soon as the budget allows."""
        self.schedule.snapshot_requested(effect.reason, effect.symbols)
        self._wake.set()

    def observe(self, event: Event) -> None:
        """Feed every event the core gets: symbols with activity are polled fast."""
        now_s = self._clock.monotonic()
        match event:
            case StreamPositions(positions=rows):
                for row in rows:
                    self.schedule.activity(Symbol(row.key.symbol), now_s)
            case OrderUpdate(symbol=symbol) | AlgoUpdate(symbol=symbol) | TradeLite(symbol=symbol):
                self.schedule.activity(symbol, now_s)
            case PositionSnapshot() if event.symbols is None:
                self.schedule.positions_seen(event, now_s)
            case OrdersSnapshot():
                self.schedule.orders_seen(event)
                if event.request_id in self._own_orders:
                    self._own_orders.discard(event.request_id)
                elif event.symbols is not None:  # the stream's resync: paid from our share
                    self.schedule.orders_read_by_other(event.symbols, now_s)
                    self._orders_budget.record(_ORDERS_WEIGHT * len(event.symbols), now_s)
            case SnapshotRequested() if event.symbols is None:
                if event.request_id in self._own_requests:
                    self._own_requests.discard(event.request_id)
                    return
                self.schedule.positions_read_by_other(now_s)
            case _:
                return
        self._wake.set()

    async def run(self, emit: Emit) -> None:
        """Poll forever (never returns); failures become ``SnapshotFailed``, never flat."""
        while True:
            self._wake.clear()  # before planning: a wake-up during the reads is not lost
            now_s = self._clock.monotonic()
            leased = await self._leases()
            plan = self.schedule.plan(now_s, leased)
            if plan.read_positions:
                await self._read_positions(plan, now_s, emit)
            if plan.sweep and await self._sweep(emit):
                continue  # it read every symbol's orders: plan the per-symbol reads afresh
            for symbol in plan.order_symbols:
                urgent = symbol in plan.orders_urgent
                now_s = self._clock.monotonic()
                if not urgent and (
                        self._rest.budget_wait_s(_ORDERS_WEIGHT) > 0
                        or self._orders_budget.wait_for_s(_ORDERS_WEIGHT, urgent=False,
                                                          now_s=now_s) > 0):
                    logger.debug("orders poll deferred symbol={} (weight budget)", symbol)
                    break
                self._orders_budget.record(_ORDERS_WEIGHT, now_s)
                await read_orders(self._rest, self._own(emit), [symbol], reason="poll",
                                  urgent=True)
                self.schedule.orders_read(symbol, self._clock.monotonic())
            await self._sleep_unless_woken(self._next_wake_s(leased))

    def _next_wake_s(self, leased: Collection[str]) -> float:
        """When to look again: the schedule's next item, or when the budget frees what is due."""
        now_s = self._clock.monotonic()
        plan = self.schedule.plan(now_s, leased)
        held_s: list[float] = []
        if plan.read_positions:
            held_s.append(self._rest.budget.wait_for_s(_POSITIONS_WEIGHT, urgent=False,
                                                       now_s=now_s))
        if plan.order_symbols:
            held_s.append(max(self._rest.budget_wait_s(_ORDERS_WEIGHT),
                              self._orders_budget.wait_for_s(_ORDERS_WEIGHT, urgent=False,
                                                             now_s=now_s)))
        if not held_s:
            return plan.wake_in_s
        wake_s = min(max(0.05, min(held_s)), self.schedule.poll_interval_s)
        if not plan.read_positions:  # an order read held back must not delay the positions poll
            wake_s = min(wake_s, plan.wake_in_s)
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
        """Rule 4: read every symbol's orders unless the positions poll needs the room first.
        Returns True when the sweep was read (and emitted)."""
        now_s = self._clock.monotonic()
        plan = self.schedule.plan(now_s)
        if plan.read_positions or plan.positions_urgent:
            return False  # positions first; the sweep stays due and goes after them
        hold_s = sweep_hold_s(self._rest.budget, now_s)
        if hold_s > 0:
            self.schedule.defer_sweep(now_s + max(hold_s, SWEEP_RETRY_S))
            logger.info("orders sweep held back {:.0f}s: the IP weight is near its limit or "
                        "Binance asked us to wait; the positions poll goes first",
                        max(hold_s, SWEEP_RETRY_S))
            return False
        before = self.schedule.tracked(now_s, ())
        self.schedule.sweep_started(now_s)
        self.sweeps += 1
        snapshot = await read_all_orders(self._rest, self._own(emit), reason="sweep")
        if snapshot is None:
            self.sweep_failures += 1
            self._sweep_streak += 1
            retry_s = min(self.schedule.orders_sweep_interval_s,
                          SWEEP_RETRY_S * 2 ** min(self._sweep_streak - 1, 10))
            self.schedule.defer_sweep(now_s + retry_s)
            logger.warning("orders sweep failed ({} in a row): next try in {:.0f}s",
                           self._sweep_streak, retry_s)
            return False
        self._sweep_streak = 0
        self.schedule.sweep_read(now_s, self._clock.monotonic())
        found = sorted(({Symbol(o.symbol) for o in snapshot.orders}
                        | {Symbol(a.symbol) for a in snapshot.algo_orders}) - before)
        if found:
            logger.info("orders sweep found open orders on symbols not watched so far: {}; "
                        "they are now read per symbol while they have orders", ", ".join(found))
        return True

    async def _sleep_unless_woken(self, wait_s: float) -> bool:
        """Sleep ``wait_s``, or less when an event or a snapshot request wakes us."""
        try:
            async with asyncio.timeout(wait_s):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    async def _read_positions(self, plan: PollPlan, now_s: float, emit: Emit) -> None:
        """Rule 3: scheduled reads are bounded by poll_interval_s, requested ones by our share."""
        requested = plan.positions_urgent and now_s < self.schedule.next_positions_at
        wait_s = self._rest.budget.wait_for_s(_POSITIONS_WEIGHT, urgent=False, now_s=now_s,
                                              count_own=requested)
        if wait_s > 0 and requested:
            # No room for an extra read: the request is served by the next scheduled one.
            wait_s = min(wait_s, self.schedule.next_positions_at - now_s)
        if wait_s > 0:
            self.schedule.defer_positions(now_s + wait_s)
            logger.debug("positions poll deferred wait_s={:.2f} (weight budget)", wait_s)
            return
        reason = self.schedule.positions_started(now_s)
        self.reads += 1
        snapshot = await read_positions(self._rest, self._own(emit), reason=reason, urgent=True)
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
