"""The reaper's shell: run ``decide()`` on each tick and remove the orphans it selects, carefully.

Rules of this module (the decision itself is ``core/reaper.py``; nothing here decides alone):
1. Before every cancel, in this order: mark the position as *reaping* in Redis (the bot's
   ``begin`` now vetoes with ``reaping``), check again that no lease was taken before the mark,
   read the order itself (its status, and the recipe to restore it: rule 7; unreadable means
   no cancel), then re-read positions from REST. Only if that fresh read shows the position
   flat, and was requested at least ``grace_ms + max_rest_lag_ms`` after the order appeared
   (REST proves flatness only as of its request time minus the lag bound), is the cancel sent:
   a position may reopen between the decision and the cancel. Last, the pure
   decision runs again on the book as it is now: a failed read, a gap or an open fact that
   arrived during those awaits aborts the cancel (REST retries can hide a failure for seconds).
   Leases are read (every ``lease_refresh_s``) only while some order reaches the lease check
   (``core.reaper.LEASE_DEPENDENT``): a decision with such an order is taken only on leases
   read since that need began, or within the last ``lease_refresh_s``; until then ``step``
   returns nothing, as while leases are unknown. Other verdicts do not depend on leases.
   While no verdict and no guard judgment needs them, ``run`` waits without a timer; the core
   loop's ``poke`` after each batch (and the takeover's) wakes it at once when a need began.
2. The cancel itself (endpoint, re-query, what counts as gone) is ``orphan_cancel.py``.
   Where the other rules live: this module decides (``step``, rule 8's queue, the run loop);
   ``reaper_leases.py`` reads the leases (rule 1); ``reaper_cancel.py`` runs the pre-cancel
   checks and the cancels (rules 1, 3, 4, 9); ``reaper_after_cancel.py`` looks for an open
   after them (rule 7); ``reaper_restore.py`` puts an order back (rule 7);
   ``reaper_report.py`` writes the results and events (rules 5, 6).
3. At most ``max_cancels_per_min`` cancel requests in any 60 s (monotonic clock).
4. ``dry_run``: everything up to and including the re-read, then a log line and an
   ``orphan_candidate`` event; no cancel, and never ``trailing_stop_orphaned`` (the bot must not
   drop a trailing stop that is still there).
5. After each removal, once rule 7 found the position still flat: publish ``orphan_removed`` and
   ``trailing_stop_orphaned`` (so the bot drops that one in-memory trailing stop, named by its
   order id), then clear the reaping mark; the mark is cleared in ``finally`` and has a TTL,
   so a crash cannot leave the bot vetoed for long. Events about an order name the position
   (``position``, ``symbol``, ``side``/``position_side``) and the order (``order_id``,
   ``client_id``, ``algo``, ``order_side``, ``order_type``).
6. Every step is logged with the position, the order id and the outcome; never a secret.
7. The race: the position may open between the pre-cancel read and the cancel (the bot's entry
   fills), and the stop cancelled was then its protection. After every cancel the reaper looks
   for an open on that position: at once in the book (stream facts), and in a REST read
   requested ``max_rest_lag_ms`` after the cancel was acknowledged (so it cannot predate it);
   while that is waited out, a REST read every ``POST_CANCEL_EARLY_READ_S`` can prove open
   (never flat): a real lag shorter than the bound shows the open sooner.
   Everything learned after the pre-cancel read counts, not only the REST read: a fill the
   stream reported that is dated after the instant the re-read proved flat (a stream without
   ACCOUNT_UPDATE, or a REST answer lagging beyond the bound that put the book back to flat).
   If the position is open and the order could reduce it (or the read failed: unproven flat),
   an equivalent order (``runtime/restore.py``) is placed at once and ``protection_restored``
   names the old and the new order; never ``trailing_stop_orphaned`` for a reopened position.
   Bound: the position is without that order from the cancel to the restore's answer, at most
   ``max_rest_lag_ms`` + three REST round trips (cancel, read, place) when only REST can see
   the open, about one round trip when the book already knows (docs/REAPER.md "The race",
   measured by ``bench/reaper_race.py``); a failing read adds its retries, then the order is
   restored anyway. A failed restore raises the ``protection_not_restored`` alert.
8. The proving read is the pre-cancel read. An order kept only because no REST read was
   requested late enough yet (``NOT_FLAT_LONG_ENOUGH`` whose ``remaining_ms`` is at most
   ``PROOF_LOOKAHEAD_MS``) is queued with the exchange ms at which a read proves its grace
   over; ``run`` waits until then, and the pre-cancel re-read, requested then, is that read:
   no request to the poller, no wait for its next poll, no second read. The pure decision
   still judges it (``_still_orphan``): the same rule as ``core.reaper`` rule 2 with that read
   as the run's newest; a read requested earlier proves nothing and the cancel is aborted.
9. Orphans of one position are removed together: one reaping mark, one lease check, each
   order's own read, one pre-cancel re-read, the cancels back to back, then one post-cancel
   read (rule 7, requested ``max_rest_lag_ms`` after the last cancel was answered) for all of
   them. Each order still gets its own result, events and, if need be, its own restore.
10. Ticks only when due (runtime/ticker.py): ``step`` runs on a Tick, and a Tick is needed
   (``wants_tick``) only while its decision could differ from the last one: leases are read
   or unknown; or the book holds an order (none: every decision is empty) and either the
   books changed since (``books_changed``: the core loop saw a view replaced or the run of
   never-held keys move; the order book's ``revision`` moved since the decision,
   core/orders.py rule 8) or the last decision held a verdict past the lease check
   (``LEASE_DEPENDENT``: grace, leases, budget, the snapshot asks) or a triggering algo (its
   stuck alert, in exchange time). Every other verdict of ``core.reaper`` reads only the
   books, so it is the same at every later Tick; a standby decides nothing, and a takeover
   pokes the ticker. An orders read that shows every order as it was (at the defaults ~5 a
   second, one per symbol with orders) moves no revision, so it asks no Tick: what a read's
   *time* proves is read from the positions book (``flat_proven_ms``, rule 8's proofs), and
   only past the lease check, whose verdicts are timed and ticked at every point anyway.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn

from loguru import logger

from watchdog.binance.protocol.budget import Priority
from watchdog.binance.rest import BinanceRest
from watchdog.binance.snapshots import read_positions
from watchdog.cancel import raise_if_cancelling
from watchdog.config import ReaperConfig
from watchdog.core.effects import CancelOrder, Effect, RaiseAlert
from watchdog.core.events import Event, PositionSnapshot
from watchdog.core.model import OrderId, PositionKey, Symbol
from watchdog.core.orders import OrderBook
from watchdog.core.reaper import (
    LEASE_DEPENDENT,
    PositionsReader,
    ReaperDecision,
    ReaperPolicy,
    Why,
    decide,
)
from watchdog.errors import AuthenticationFailed
from watchdog.runtime.orphan_cancel import Outcome
from watchdog.runtime.reaper_after_cancel import POST_CANCEL_POLL_S, ReadPositions
from watchdog.runtime.reaper_cancel import LeadCheck, ReaperStore, Reaping
from watchdog.runtime.reaper_leases import LeaseWatch, ReadLeaseEnds
from watchdog.runtime.reaper_report import CancelResult

if TYPE_CHECKING:
    from watchdog.clock import Clock

__all__ = [
    "TIMED_VERDICTS",
    "CancelResult",
    "Emit",
    "Outcome",
    "ReaperTask",
    "bracketed_reader",
]

ALERT_REPEAT_S = 60.0         # repeat an unchanged alert at most this often
LEASE_REFRESH_S = 0.2         # how stale the lease set used by ``step`` may be (rule 1)
SNAPSHOT_ASK_S = 1.0          # ask the poller to confirm a stream-only flat at most this often
PROOF_LOOKAHEAD_MS = 300      # queue an order whose grace a read this soon proves (rule 8)
# Rule 10: verdicts a later Tick may change without any event: past the lease check (grace,
# leases, budget, the snapshot asks), and a triggering algo (its stuck alert).
TIMED_VERDICTS = LEASE_DEPENDENT | {Why.TRIGGERING}

_Ident = tuple[bool, OrderId]
Emit = Callable[[Event], Awaitable[None]]


class ReaperTask:
    """The reaper shell: ``step`` decides (in the core loop), ``run`` carries out the cancels.

    ``step`` is synchronous and called by the single writer on every Tick; it never waits on
    Binance or Redis. Selected orphans reach ``submit`` through the effects runner and are
    removed one at a time by ``run`` (``reaper_cancel.Reaping``), which also keeps the set of
    leased positions fresh (``reaper_leases.LeaseWatch``).
    """

    def __init__(self, exchange: BinanceRest, store: ReaperStore, emit: Emit, clock: Clock,
                 config: ReaperConfig, *, read_positions: ReadPositions | None = None,
                 lease_refresh_s: float = LEASE_REFRESH_S, max_rest_lag_ms: int = 2000,
                 lead: LeadCheck | None = None,
                 read_lease_ends: ReadLeaseEnds | None = None,
                 also_needs_leases: Callable[[], bool] = lambda: False) -> None:
        self._exchange = exchange
        self._lead = lead  # None: a single writer by construction (tests, the orphans CLI)
        self._clock = clock
        self._enabled = config.enabled
        self._policy = config.policy(max_rest_lag_ms)
        self._leases = LeaseWatch(store, clock, refresh_s=lease_refresh_s,
                                  read_lease_ends=read_lease_ends,
                                  also_needs_leases=also_needs_leases)
        self._reaping = Reaping(exchange, store, clock, self._policy,
                                read_positions or bracketed_reader(exchange, emit), lead=lead)
        # ``None`` is the wake-up ``poke`` sends an idle run loop (no timer while idle).
        self._queue: asyncio.Queue[CancelOrder | None] = asyncio.Queue()
        self._idle = False  # ``run`` waits for an orphan or a poke, without a timer
        self._pending: set[_Ident] = set()
        self._due_ms: dict[_Ident, int] = {}  # rule 8: exchange ms its proving read may go
        self._alerted: dict[tuple[str, PositionKey | None], float] = {}
        self._asked: dict[frozenset[Symbol] | None, float] = {}
        self.last_decision: ReaperDecision | None = None
        self._current = False   # rule 10: the last decision was taken on the books as they are
        self._timeless = False  # rule 10: and no verdict of it can move with time alone
        self._orders: OrderBook | None = None  # the order book it was taken on
        self._revision = -1  # rule 10: that book's revision then (core/orders.py rule 8)
        self.results: deque[CancelResult] = deque(maxlen=100)

    @property
    def policy(self) -> ReaperPolicy:
        return self._policy

    @property
    def removed_total(self) -> int:
        return self._reaping.removed_total

    @property
    def lease_ends(self) -> dict[PositionKey, int] | None:
        """Wall ms each lease ends, as last read (None: unknown); for the guard."""
        return self._leases.lease_ends

    @property
    def leases_read_ms(self) -> int:
        return self._leases.leases_read_ms

    def budget_used(self) -> int:
        """Cancel requests sent in the last 60 s, plus those queued."""
        return self._reaping.sent_last_minute() + len(self._pending)

    # ------------------------------------------------------------ in the core loop

    def step(self, positions: PositionsReader, orders: OrderBook, now_ms: int) -> list[Effect]:
        """Decide at this Tick; ``now_ms`` (our wall clock) is replaced by Binance's clock."""
        if not self._enabled:
            return []
        if self._lead is not None and not self._lead.leading:
            return []  # a standby decides nothing: the leader reaps (docs/HA.md)
        leased = self._leases.leased
        if leased is None:
            return []  # leases unknown: a cancel could race the bot; the log says why (run)
        self._reaping.positions, self._reaping.orders = positions, orders
        decision = decide(positions, orders, leased, self.budget_used(),
                          self._exchange.exchange_time_ms(), self._policy)
        now_s = self._clock.monotonic()
        depends = any(a.why in LEASE_DEPENDENT for a in decision.assessments)
        fresh = self._leases.fresh_for(depends, now_s)
        self.poke()  # a need for leases that began here wakes an idle run loop
        if not fresh:
            return []  # rule 1: not decided on a lease set older than the need for it
        self.last_decision = decision
        # Rule 10: a decision without a verdict that time, leases or the budget can move is
        # the decision of every later Tick, until the books change.
        self._current, self._orders, self._revision = True, orders, orders.revision
        self._timeless = not any(a.why in TIMED_VERDICTS for a in decision.assessments)
        effects: list[Effect] = [*self._fresh_alerts(decision.alerts)]
        proofs = self._proof_candidates(decision, now_ms=decision.now_ms)
        proved = {c.key.symbol for c in proofs}
        unconfirmed = {a.order.key.symbol for a in decision.assessments
                       if a.why is Why.NO_REST_CONFIRMATION}
        for request in decision.snapshot_requests:  # at most one a second per symbol set
            if request.symbols is not None and request.symbols <= proved - unconfirmed:
                continue  # rule 8: the reaper's own pre-cancel read is that read
            if now_s - self._asked.get(request.symbols, float("-inf")) >= SNAPSHOT_ASK_S:
                self._asked[request.symbols] = now_s
                effects.append(request)
        for cancel in (*decision.cancels, *proofs):
            if self._wanted(cancel):
                order = orders.get(cancel.order_id, is_algo=cancel.is_algo)
                if order is not None:
                    self._reaping.selected(cancel, order.create_time_ms)
                effects.append(cancel)
        return effects

    def books_changed(self) -> None:
        """The core loop applied events that changed what a verdict reads beside time and the
        order book (a view, the run of never-held keys): the last decision may be stale. The
        order book says so itself (its ``revision``, rule 10)."""
        self._current = False

    def wants_tick(self) -> bool:
        """Rule 10: may ``step`` on a Tick now decide anything else than the last decision
        did? False lets the ticker skip its grid points for the reaper (runtime/ticker.py)."""
        if not self._enabled or (self._lead is not None and not self._lead.leading):
            return False  # nothing decided (a takeover pokes the ticker)
        if self._leases.needed():
            return True  # leases are read (or unknown): a decision may wait for them
        if self._orders is None:
            return True
        if not len(self._orders):
            return False  # no order: every decision is empty (an order fact comes as an event)
        return not (self._current and self._timeless
                    and self._orders.revision == self._revision)

    def _proof_candidates(self, decision: ReaperDecision, *, now_ms: int) -> list[CancelOrder]:
        """Rule 8: orders kept only because no REST read requested late enough exists yet, and
        whose grace a read requested within ``PROOF_LOOKAHEAD_MS`` proves over. Queued with
        that due time: the pre-cancel re-read, requested then, is the proving read."""
        left = (self._policy.max_cancels_per_min - self.budget_used()
                - len(decision.cancels))
        found: list[CancelOrder] = []
        for a in decision.assessments:
            if left <= 0:
                break
            if (a.why is not Why.NOT_FLAT_LONG_ENOUGH or a.remaining_ms is None
                    or a.remaining_ms > PROOF_LOOKAHEAD_MS):
                continue
            order = a.order
            cancel = CancelOrder(key=order.key, order_id=order.order_id, is_algo=order.is_algo,
                                 client_id=order.client_id,
                                 reason=f"grace over as of a read requested at "
                                        f"{now_ms + a.remaining_ms}: {a.detail}")
            if self._wanted(cancel):
                self._due_ms[(order.is_algo, order.order_id)] = now_ms + a.remaining_ms
                found.append(cancel)
                left -= 1
        return found

    def submit(self, cancel: CancelOrder) -> None:
        """Queue one selected orphan (from the effects runner); never blocks."""
        ident = (cancel.is_algo, cancel.order_id)
        if ident in self._pending:
            return
        self._pending.add(ident)
        self._queue.put_nowait(cancel)

    # ------------------------------------------------------------ its own task

    def poke(self) -> None:
        """Called after every core batch (and a takeover): a need for leases that began there
        (``step``'s verdicts, the guard's ``needs_leases``) wakes an idle ``run`` at once.
        Those are the only places a need begins outside ``run`` itself, so an idle reaper
        waits without a timer (it woke every ``lease_refresh_s``, 5 times a second, to look:
        docs/BENCHMARKS.md, "the CPU floor") and reads no later than it did."""
        if self._idle and self._leases.needed():
            self._idle = False
            self._queue.put_nowait(None)

    async def run(self) -> NoReturn:
        """Refresh leases while ``step`` needs them (or they are unknown) and remove queued
        orphans, one at a time, forever. Idle (no need for leases): waits for an orphan or a
        ``poke``, without a timer."""
        while True:
            needed = self._leases.needed()
            if needed:
                await self.refresh_leases()
                needed = self._leases.needed()  # the read may end the need (no await below)
            try:
                if needed:
                    async with asyncio.timeout(self._leases.refresh_s):
                        cancel = await self._queue.get()
                else:
                    self._idle = True
                    try:
                        cancel = await self._queue.get()
                    finally:
                        self._idle = False
            except TimeoutError as exc:
                raise_if_cancelling(exc)  # a stop lost earlier must not be waited through
                continue
            if cancel is None:
                continue  # poked: a need for leases began
            batch = [cancel, *self._same_position(cancel.key)]
            try:
                await self._until_due(batch)
                self.results.extend(await self.reap_batch(batch))
            except AuthenticationFailed as exc:
                # Nothing was cancelled; the daemon's health says why (Vitals.problems) and the
                # order is selected again once Binance accepts the key.
                logger.warning("orphan not removed: Binance rejects the credentials: {} "
                               "position={} order_id={}", exc, cancel.key,
                               [c.order_id for c in batch])
            finally:
                for c in batch:
                    self._pending.discard((c.is_algo, c.order_id))
                    self._due_ms.pop((c.is_algo, c.order_id), None)

    def _same_position(self, key: PositionKey) -> list[CancelOrder]:
        """Rule 9: the other queued orphans of ``key``, taken out of the queue (the rest stay
        in their order)."""
        same: list[CancelOrder] = []
        others: list[CancelOrder] = []
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if queued is None:
                continue  # a poke: the loop looks at the need for leases on its next turn anyway
            (same if queued.key == key else others).append(queued)
        for queued in others:
            self._queue.put_nowait(queued)
        return same

    async def _until_due(self, batch: list[CancelOrder]) -> None:
        """Rule 8: wait (at most ``PROOF_LOOKAHEAD_MS``) until a read requested now proves the
        grace over for every order of the batch."""
        due_ms = max((self._due_ms.get((c.is_algo, c.order_id), 0) for c in batch), default=0)
        deadline_s = self._clock.monotonic() + PROOF_LOOKAHEAD_MS / 1000
        while (left_ms := due_ms - self._exchange.exchange_time_ms()) > 0:
            if self._clock.monotonic() >= deadline_s:
                return  # the pre-cancel check says whether the read is late enough
            await asyncio.sleep(min(left_ms / 1000, POST_CANCEL_POLL_S))

    async def refresh_leases(self) -> None:
        """Read the leased positions from Redis (at most every ``lease_refresh_s``)."""
        await self._leases.refresh(self._policy)

    def _wanted(self, cancel: CancelOrder) -> bool:
        ident = (cancel.is_algo, cancel.order_id)
        return ident not in self._pending and not self._reaping.held(ident)

    def _fresh_alerts(self, alerts: tuple[RaiseAlert, ...]) -> list[RaiseAlert]:
        """Alerts not raised in the last ALERT_REPEAT_S (decide repeats them every tick)."""
        now_s = self._clock.monotonic()
        fresh = []
        for alert in alerts:
            ident = (alert.code, alert.key)
            last = self._alerted.get(ident)
            if last is None or now_s - last >= ALERT_REPEAT_S:
                self._alerted[ident] = now_s
                fresh.append(alert)
        return fresh

    # ------------------------------------------------------------ one position's orphans

    async def reap(self, cancel: CancelOrder) -> CancelResult:
        """Remove one selected orphan, with every pre-cancel check (module rules 1-5)."""
        return (await self.reap_batch([cancel]))[0]

    async def reap_batch(self, cancels: list[CancelOrder]) -> list[CancelResult]:
        """Remove the selected orphans of one position (rule 9), with every pre-cancel check
        (module rules 1-5); one result per order, in order."""
        return await self._reaping.reap_batch(cancels)


def bracketed_reader(rest: BinanceRest, emit: Emit) -> ReadPositions:
    """``binance.snapshots.read_positions`` bound to the client and the core's inbox: the
    re-check is bracketed like every read, so the book learns from it (a failure included)."""

    async def read(reason: str) -> PositionSnapshot | None:
        return await read_positions(rest, emit, reason=reason, priority=Priority.SAFETY)

    return read
