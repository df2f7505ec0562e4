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
2. The cancel itself (endpoint, re-query, what counts as gone) is ``orphan_cancel.py``.
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
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from loguru import logger

from watchdog.binance.protocol.budget import Priority
from watchdog.binance.rest import BinanceRest
from watchdog.binance.snapshots import read_positions
from watchdog.core.effects import CancelOrder, Effect, RaiseAlert
from watchdog.core.events import Event, PositionSnapshot
from watchdog.core.model import ZERO, OrderId, PositionKey, Symbol
from watchdog.core.orders import OrderBook
from watchdog.core.reaper import (
    LEASE_DEPENDENT,
    PositionsReader,
    ReaperDecision,
    ReaperPolicy,
    Why,
    decide,
)
from watchdog.errors import AuthenticationFailed, ExchangeError, ExchangeRejected, StoreError
from watchdog.runtime.orphan_cancel import (
    CODE_CANCEL_REJECTED,
    CODE_NO_SUCH_ORDER,
    Outcome,
    cancel_and_prove,
)
from watchdog.runtime.restore import (
    RESTORE_CLIENT_ID_PREFIX,
    RestoreImpossible,
    new_client_id,
    reduces,
    restore_params,
)

if TYPE_CHECKING:
    from loguru import Logger

    from watchdog.clock import Clock

__all__ = [
    "RESTORE_CLIENT_ID_PREFIX",
    "CancelResult",
    "Emit",
    "LeadCheck",
    "Outcome",
    "ReadPositions",
    "ReaperSettings",
    "ReaperStore",
    "ReaperTask",
    "bracketed_reader",
    "policy_from_config",
]

REAPING_TTL_MS = 15_000       # covers mark → re-read → cancel → re-query, REST timeouts included
BUDGET_WINDOW_S = 60.0
GONE_MEMORY_S = 30.0          # skip a removed order until the book hears it is gone
RETRY_AFTER_FAILURE_S = 5.0   # do not hammer an order whose cancel just failed
RETRY_AFTER_ABORT_S = 1.0     # a pre-cancel check said no: the decision gates the next try
ALERT_REPEAT_S = 60.0         # repeat an unchanged alert at most this often
LEASE_REFRESH_S = 0.2         # how stale the lease set used by ``step`` may be (rule 1)
POST_CANCEL_POLL_S = 0.02     # how often the book is looked at while waiting out the REST lag
POST_CANCEL_READS = 2         # tries of the post-cancel positions read (each retried inside)
POST_CANCEL_EARLY_READ_S = 0.5  # REST reads while waiting out the lag bound (rule 7): a real lag
#                                 shorter than the bound shows an open sooner than the last read
SNAPSHOT_ASK_S = 1.0          # ask the poller to confirm a stream-only flat at most this often
PROOF_LOOKAHEAD_MS = 300      # queue an order whose grace a read this soon proves (rule 8)

_Ident = tuple[bool, OrderId]
Emit = Callable[[Event], Awaitable[None]]


class LeadCheck(Protocol):
    """Leadership as the reaper needs it (``RedisPublisher``): a belief for deciding, and a
    proof in Redis (which also extends the lease) right before each cancel."""

    @property
    def leading(self) -> bool: ...

    async def confirm_lead(self) -> bool: ...


class ReaperStore(Protocol):
    """The calls the reaper makes on ``store.publisher.RedisPublisher``."""

    async def leased_symbols(self) -> frozenset[PositionKey]: ...

    async def mark_reaping(self, key: PositionKey, ttl_ms: int, reason: str = ...) -> None: ...

    async def clear_reaping(self, key: PositionKey) -> None: ...

    async def emit(self, kind: str, fields: Mapping[str, object]) -> str: ...


ReadPositions = Callable[[str], Awaitable[PositionSnapshot | None]]
"""A bracketed REST read of every position (``binance.snapshots.read_positions`` bound to the
client and the core's inbox); None when the read failed."""


@dataclass(frozen=True, slots=True)
class CancelResult:
    """One orphan's outcome, with the reason in words."""

    cancel: CancelOrder
    outcome: Outcome
    detail: str
    new_order_id: int | None = None  # RESTORED: the equivalent order placed


class ReaperSettings(Protocol):
    """The ``[reaper]`` section of the config (``config.ReaperConfig``)."""

    @property
    def enabled(self) -> bool: ...

    @property
    def dry_run(self) -> bool: ...

    @property
    def grace_ms(self) -> int: ...

    @property
    def client_id_prefix(self) -> str: ...

    @property
    def max_cancels_per_min(self) -> int: ...

    @property
    def stuck_triggering_s(self) -> float: ...


def policy_from_config(section: ReaperSettings, max_rest_lag_ms: int = 2000) -> ReaperPolicy:
    """The pure policy from the ``[reaper]`` config section and ``[core] max_rest_lag_ms``."""
    return ReaperPolicy(grace_ms=section.grace_ms, client_id_prefix=section.client_id_prefix,
                        max_cancels_per_min=section.max_cancels_per_min,
                        stuck_triggering_ms=round(section.stuck_triggering_s * 1000),
                        dry_run=section.dry_run, max_rest_lag_ms=max_rest_lag_ms)


class ReaperTask:
    """The reaper shell: ``step`` decides (in the core loop), ``run`` carries out the cancels.

    ``step`` is synchronous and called by the single writer on every Tick; it never waits on
    Binance or Redis. Selected orphans reach ``submit`` through the effects runner and are
    removed one at a time by ``run``, which also keeps the set of leased positions fresh.
    """

    def __init__(self, exchange: BinanceRest, store: ReaperStore, emit: Emit, clock: Clock,
                 config: ReaperSettings, *, read_positions: ReadPositions | None = None,
                 lease_refresh_s: float = LEASE_REFRESH_S, max_rest_lag_ms: int = 2000,
                 lead: LeadCheck | None = None,
                 read_lease_ends: Callable[[], Awaitable[dict[PositionKey, int]]] | None = None,
                 also_needs_leases: Callable[[], bool] = lambda: False) -> None:
        self._exchange = exchange
        self._lead = lead  # None: a single writer by construction (tests, the orphans CLI)
        # The guard (guard_task.py) needs the leases' ends too, while it says so: one read loop.
        self._read_lease_ends = read_lease_ends
        self._also_needs_leases = also_needs_leases
        self.lease_ends: dict[PositionKey, int] | None = None  # wall ms each lease ends
        self.leases_read_ms = 0
        self._store = store
        self._clock = clock
        self._enabled = config.enabled
        self._policy = policy_from_config(config, max_rest_lag_ms)
        self._read_positions = read_positions or bracketed_reader(exchange, emit)
        self._lease_refresh_s = lease_refresh_s
        self._queue: asyncio.Queue[CancelOrder] = asyncio.Queue()
        self._pending: set[_Ident] = set()
        self._created: dict[_Ident, int] = {}  # exchange create time of each selected order
        self._due_ms: dict[_Ident, int] = {}  # rule 8: exchange ms its proving read may go
        self._sent: deque[float] = deque()
        self._hold: dict[_Ident, float] = {}
        self._alerted: dict[tuple[str, PositionKey | None], float] = {}
        self._asked: dict[frozenset[Symbol] | None, float] = {}
        self._leased: frozenset[PositionKey] | None = None  # None: not read yet (or unreadable)
        self._leased_at = float("-inf")
        self._leases_needed_since: float | None = None  # an order reaches the lease check
        self._positions: PositionsReader | None = None  # the core's books, as given to step
        self._orders: OrderBook | None = None
        self.last_decision: ReaperDecision | None = None
        self.results: deque[CancelResult] = deque(maxlen=100)
        self.removed_total = 0

    @property
    def policy(self) -> ReaperPolicy:
        return self._policy

    def budget_used(self) -> int:
        """Cancel requests sent in the last 60 s, plus those queued."""
        return self._sent_last_minute() + len(self._pending)

    # ------------------------------------------------------------ in the core loop

    def step(self, positions: PositionsReader, orders: OrderBook, now_ms: int) -> list[Effect]:
        """Decide at this Tick; ``now_ms`` (our wall clock) is replaced by Binance's clock."""
        if not self._enabled:
            return []
        if self._lead is not None and not self._lead.leading:
            return []  # a standby decides nothing: the leader reaps (docs/HA.md)
        if self._leased is None:
            return []  # leases unknown: a cancel could race the bot; the log says why (run)
        self._positions, self._orders = positions, orders
        decision = decide(positions, orders, self._leased, self.budget_used(),
                          self._exchange.exchange_time_ms(), self._policy)
        now_s = self._clock.monotonic()
        if not any(a.why in LEASE_DEPENDENT for a in decision.assessments):
            self._leases_needed_since = None  # no verdict here depends on leases: stop reading
        else:
            if self._leases_needed_since is None:
                self._leases_needed_since = now_s  # ``run`` reads them within lease_refresh_s
            if (self._leased_at < self._leases_needed_since
                    and now_s - self._leased_at >= self._lease_refresh_s):
                return []  # rule 1: not decided on a lease set older than the need for it
        self.last_decision = decision
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
                    self._created[(cancel.is_algo, cancel.order_id)] = order.create_time_ms
                effects.append(cancel)
        return effects

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

    async def run(self) -> NoReturn:
        """Refresh leases while ``step`` needs them (or they are unknown) and remove queued
        orphans, one at a time, forever."""
        while True:
            if (self._leased is None or self._leases_needed_since is not None
                    or self._also_needs_leases()):
                await self.refresh_leases()
            try:
                async with asyncio.timeout(self._lease_refresh_s):
                    cancel = await self._queue.get()
            except TimeoutError:
                continue
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
        if self._clock.monotonic() - self._leased_at < self._lease_refresh_s:
            return
        try:
            if self._read_lease_ends is None:
                leased = await self._store.leased_symbols()
            else:
                left = await self._read_lease_ends()
                now_ms = self._clock.wall_ms()
                self.lease_ends = {key: now_ms + ms for key, ms in left.items()}
                self.leases_read_ms = now_ms
                leased = frozenset(left)
        except StoreError as exc:
            if self._leased is not None:
                logger.warning("reaper paused: cannot read leases from Redis: {}", exc)
            self._leased = None
            self.lease_ends = None
        else:
            if self._leased is None:
                logger.info("reaper active: leases readable (policy {})", self._policy)
            self._leased = leased
        self._leased_at = self._clock.monotonic()

    def _wanted(self, cancel: CancelOrder) -> bool:
        ident = (cancel.is_algo, cancel.order_id)
        if ident in self._pending:
            return False
        held_until = self._hold.get(ident)
        return held_until is None or self._clock.monotonic() >= held_until

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

    # ------------------------------------------------------------ one orphan

    async def reap(self, cancel: CancelOrder) -> CancelResult:
        """Remove one selected orphan, with every pre-cancel check (module rules 1-5)."""
        return (await self.reap_batch([cancel]))[0]

    async def reap_batch(self, cancels: list[CancelOrder]) -> list[CancelResult]:
        """Remove the selected orphans of one position (rule 9), with every pre-cancel check
        (module rules 1-5); one result per order, in order."""
        key = cancels[0].key
        assert all(c.key == key for c in cancels), "one position per batch"
        logs = [logger.bind(position=str(c.key), order_id=c.order_id, is_algo=c.is_algo,
                            client_id=c.client_id) for c in cancels]
        for cancel, olog in zip(cancels, logs, strict=True):
            olog.info("orphan selected: {}", cancel.reason)
        try:
            await self._store.mark_reaping(key, REAPING_TTL_MS)
        except StoreError as exc:
            return [self._done(olog, c, Outcome.ABORTED,
                               f"cannot mark reaping in Redis (no veto for the bot): {exc}")
                    for c, olog in zip(cancels, logs, strict=True)]
        try:
            return await self._reap_marked(cancels, logs)
        finally:
            try:
                await self._store.clear_reaping(key)
            except StoreError as exc:
                logs[0].error("reaping mark not cleared (expires in {} ms): {}",
                              REAPING_TTL_MS, exc)

    async def _reap_marked(self, cancels: list[CancelOrder],
                           logs: list[Logger]) -> list[CancelResult]:
        results: dict[int, CancelResult] = {}

        def done(i: int, outcome: Outcome, detail: str) -> None:
            results[i] = self._done(logs[i], cancels[i], outcome, detail)

        def finish() -> list[CancelResult]:
            return [results[i] for i in range(len(cancels))]

        try:
            leased = await self._store.leased_symbols()
        except StoreError as exc:
            for i in range(len(cancels)):
                done(i, Outcome.ABORTED, f"cannot re-read leases: {exc}")
            return finish()
        if cancels[0].key in leased:
            for i in range(len(cancels)):
                done(i, Outcome.ABORTED, "a lease was taken before the reaping mark")
            return finish()
        recipes: dict[int, dict[str, Any]] = {}
        for i, cancel in enumerate(cancels):
            recipe, problem = await self._recipe(cancel)
            if problem:
                done(i, Outcome.ABORTED, problem)
            else:
                recipes[i] = recipe
        if not recipes:
            return finish()
        live = list(recipes)
        # One positions read serves every order of the position: the pre-cancel re-read, and
        # for an order queued by rule 8 the read that proves its grace over.
        problems, proven_ms = await self._recheck([cancels[i] for i in live])
        for i, problem in zip(live, problems, strict=True):
            if problem:
                done(i, Outcome.ABORTED, problem)
        live = [i for i in live if i not in results]
        if not live:
            return finish()
        for i in live:
            problem = self._still_orphan(cancels[i], leased, proven_ms)
            if problem:
                done(i, Outcome.ABORTED, problem)
        live = [i for i in live if i not in results]
        if self._policy.dry_run:
            for i in live:
                done(i, Outcome.WOULD_REMOVE, "dry_run: position re-read flat, cancel not sent")
                await self._publish(("orphan_candidate",), results[i], logs[i], recipes[i])
            return finish()
        sent: dict[int, tuple[int, Outcome, str]] = {}
        for i in live:  # back to back (rule 9): one post-cancel read covers them all
            if self._sent_last_minute() >= self._policy.max_cancels_per_min:
                done(i, Outcome.ABORTED,
                     f"budget: {self._policy.max_cancels_per_min} cancels/min used")
                continue
            if self._lead is not None and not await self._lead.confirm_lead():
                done(i, Outcome.ABORTED,
                     "not the leader any more (proven in Redis right before the cancel)")
                continue
            self._sent.append(self._clock.monotonic())
            sent_ms = self._exchange.exchange_time_ms()
            outcome, detail = await cancel_and_prove(self._exchange, cancels[i], logs[i])
            if outcome not in (Outcome.REMOVED, Outcome.ALREADY_GONE):
                done(i, outcome, detail)
            else:
                sent[i] = (sent_ms, outcome, detail)
        if not sent:
            return finish()
        first = min(sent)
        amount, how = await self._opened_after(cancels[first], proven_ms, logs[first])
        for i, (sent_ms, outcome, detail) in sent.items():
            cancel, olog, recipe = cancels[i], logs[i], recipes[i]
            if amount is None:  # flat through the cancel: it was an orphan
                self.removed_total += 1
                done(i, outcome, detail)
                await self._publish(("orphan_removed", "trailing_stop_orphaned"), results[i],
                                    olog, recipe)
                continue
            side = str(recipe.get("side", ""))
            if outcome is Outcome.ALREADY_GONE or (amount != 0 and not reduces(side, amount)):
                # Not ours to put back (it ended by itself), or it could never have protected
                # this position: say it is gone, but no trailing_stop_orphaned (rule 5).
                self.removed_total += 1
                done(i, outcome, f"{detail}; position reopened ({how})")
                await self._publish(("orphan_removed",), results[i], olog, recipe,
                                    {"position_reopened": 1})
                continue
            results[i] = await self._restore(cancel, recipe, sent_ms, how, olog)
        return finish()

    async def _recipe(self, cancel: CancelOrder) -> tuple[dict[str, Any], str]:
        """The order as Binance has it now (rule 1): what a restore would replay; '' or why the
        cancel must not be sent."""
        try:
            if cancel.is_algo:
                raw = await self._exchange.algo_order_object(cancel.order_id)
                status = str(raw.get("algoStatus", ""))
            else:
                raw = await self._exchange.order_object(cancel.key.symbol, cancel.order_id)
                status = str(raw.get("status", ""))
        except AuthenticationFailed:
            raise
        except ExchangeRejected as exc:
            if exc.code in (CODE_NO_SUCH_ORDER, CODE_CANCEL_REJECTED):
                return {}, ""  # gone already: the cancel's re-query will prove it
            return {}, (f"cannot read the order before cancelling it (it could not be restored "
                        f"if its position opened meanwhile): {exc}")
        except ExchangeError as exc:
            return {}, (f"cannot read the order before cancelling it (it could not be restored "
                        f"if its position opened meanwhile): {exc}")
        if status in ("TRIGGERING", "TRIGGERED"):
            return raw, f"the order is {status}: it may be closing the position"
        return raw, ""

    async def _recheck(self, cancels: list[CancelOrder]) -> tuple[list[str], int]:
        """One fresh REST read of positions for orders of one position: per order '' when its
        position is flat now and the read was requested late enough to prove its grace (or why
        not), and the exchange ms the read proves flatness as of (0 when it failed)."""
        key = cancels[0].key
        lag_ms, grace_ms = self._policy.max_rest_lag_ms, self._policy.grace_ms
        fill_ms = (self._orders.last_opening_fill_ms(key.symbol)
                   if self._orders is not None else None) or 0
        ids = ", ".join(str(c.order_id) for c in cancels)
        snapshot = await self._read_positions(f"reaper re-check before cancelling {ids} on {key}")
        if snapshot is None:
            return ["re-read of positions failed: the position is not known flat now"] * len(
                cancels), 0
        proven_ms = snapshot.requested_time_ms - lag_ms
        for row in snapshot.positions:
            if row.key == key and row.amount != ZERO:
                return [f"position reopened: REST shows amount {row.amount} now"] * len(
                    cancels), 0
        problems = []
        for cancel in cancels:
            start_ms = max(self._created.get((cancel.is_algo, cancel.order_id), 0), fill_ms)
            problems.append(
                "" if proven_ms >= start_ms + grace_ms else
                f"re-read requested at {snapshot.requested_time_ms} proves flatness only as "
                f"of {proven_ms} (REST lag bound {lag_ms} ms), less than {grace_ms} ms "
                f"after {start_ms} (order created or last opening fill)")
        return problems, proven_ms

    def _book_amount(self, key: PositionKey) -> Decimal:
        view = self._positions.view(key) if self._positions is not None else None
        return view.amount if view is not None else ZERO

    async def _opened_after(self, cancel: CancelOrder, proven_ms: int,
                            olog: Logger) -> tuple[Decimal | None, str]:
        """Rule 7: did the position open after ``proven_ms`` (the pre-cancel read)? Returns the
        amount (0: unknown, the read failed) and how it is known, or (None, '') when flat."""
        deadline_ms = self._exchange.exchange_time_ms() + self._policy.max_rest_lag_ms
        early_ms = self._exchange.exchange_time_ms() + int(POST_CANCEL_EARLY_READ_S * 1000)
        while True:
            amount, how = self._learned_open(cancel.key, proven_ms)
            if amount is not None:
                return amount, how
            now_ms = self._exchange.exchange_time_ms()
            left_ms = deadline_ms - now_ms
            if left_ms <= 0:
                break
            if now_ms >= early_ms and left_ms > POST_CANCEL_EARLY_READ_S * 1000:
                # An early read cannot prove flat (it may predate the cancel) but can prove
                # open: the real lag is often shorter than the bound (chaos
                # rest_lag_beyond_grace_entry_muted: 3 s lag, 3.5 s bound).
                early_ms = now_ms + int(POST_CANCEL_EARLY_READ_S * 1000)
                early = await self._read_positions(
                    f"reaper early post-cancel check of {cancel.order_id} on {cancel.key}")
                for row in (early.positions if early is not None else ()):
                    if early is not None and row.key == cancel.key and row.amount != ZERO:
                        return row.amount, (
                            f"REST requested {early.requested_time_ms} (early) shows amount "
                            f"{row.amount}; flat as of {proven_ms} before the cancel")
                continue
            await asyncio.sleep(min(POST_CANCEL_POLL_S, left_ms / 1000))
        for _ in range(POST_CANCEL_READS):
            snapshot = await self._read_positions(
                f"reaper post-cancel check of {cancel.order_id} on {cancel.key}")
            if snapshot is not None:
                break
        else:
            olog.error("post-cancel read of positions failed: flatness after the cancel is "
                       "unproven, restoring the order")
            return ZERO, "post-cancel read failed"
        for row in snapshot.positions:
            if row.key == cancel.key and row.amount != ZERO:
                return row.amount, (f"REST requested {snapshot.requested_time_ms} shows amount "
                                    f"{row.amount}; flat as of {proven_ms} before the cancel")
        return self._learned_open(cancel.key, proven_ms)

    def _learned_open(self, key: PositionKey, proven_ms: int) -> tuple[Decimal | None, str]:
        """Rule 7: what the watchdog learned after the pre-cancel read, stream facts included:
        the book shows the position open, or a fill that may have opened it is dated after
        ``proven_ms`` (the re-check required every fill it knew to be ``grace_ms`` older, so
        this one was learned since). The fill is evidence even when a REST answer lagging
        beyond ``max_rest_lag_ms`` has put the book back to flat meanwhile. (amount, how): 0
        when the amount is unknown (a fill), (None, '') when nothing says open."""
        amount = self._book_amount(key)
        if amount != ZERO:
            return amount, "the book shows it open"
        fill_ms = (self._orders.last_opening_fill_ms(key.symbol)
                   if self._orders is not None else None)
        if fill_ms is not None and fill_ms > proven_ms:
            return ZERO, (f"the stream reported a fill on {key.symbol} at {fill_ms}, after the "
                          f"pre-cancel read proved flat as of {proven_ms}")
        return None, ""

    async def _restore(self, cancel: CancelOrder, recipe: Mapping[str, object], sent_ms: int,
                       how: str, olog: Logger) -> CancelResult:
        """Place an order equivalent to the one just cancelled (rule 7) and say so."""
        client_id = new_client_id(cancel.order_id)
        try:
            params = restore_params(recipe, is_algo=cancel.is_algo, client_id=client_id)
            if cancel.is_algo:
                placed = await self._exchange.place_algo_order(params)
                new_id = int(str(placed["algoId"]))
            else:
                placed = await self._exchange.place_order(params)
                new_id = int(str(placed["orderId"]))
        except AuthenticationFailed:
            raise
        except (RestoreImpossible, ExchangeError, KeyError, TypeError, ValueError) as exc:
            result = self._done(olog, cancel, Outcome.UNPROTECTED,
                                f"position opened during the cancel ({how}) and the order "
                                f"could not be restored: {type(exc).__name__}: {exc}")
            await self._alert_unprotected(result, recipe, olog)
            return result
        unprotected_ms = self._exchange.exchange_time_ms() - sent_ms
        result = self._done(olog, cancel, Outcome.RESTORED,
                            f"position opened during the cancel ({how}): restored as "
                            f"{new_id} ({client_id}) {unprotected_ms} ms after the cancel was "
                            f"sent", new_order_id=new_id)
        await self._publish(("protection_restored",), result, olog, recipe,
                            {"new_order_id": new_id, "new_client_id": client_id,
                             "unprotected_ms": unprotected_ms, "detail": how})
        return result

    async def _alert_unprotected(self, result: CancelResult, recipe: Mapping[str, object],
                                 olog: Logger) -> None:
        cancel = result.cancel
        fields = {"code": "protection_not_restored",
                  "message": f"{cancel.key}: order {cancel.order_id} ({cancel.client_id}) was "
                             f"cancelled as an orphan but its position opened meanwhile; "
                             f"re-place its protection: {result.detail}",
                  **self._order_fields(result, recipe)}
        try:
            await self._store.emit("alert", fields)
        except StoreError as exc:
            olog.error("alert protection_not_restored not written to Redis: {}", exc)

    def _still_orphan(self, cancel: CancelOrder, leased: frozenset[PositionKey],
                      proven_ms: int) -> str:
        """The pure decision again, on the book as it is now (after the awaits above): a
        failed read, a stream gap or an open fact may have arrived meanwhile. '' if still
        an orphan, else why not. An order kept only for want of a newer read (rule 8) is an
        orphan when the pre-cancel read, flat as of ``proven_ms``, is that read: the same
        arithmetic as ``core.reaper`` rule 2, with that read as the run's newest."""
        if self._positions is None or self._orders is None:
            return ""
        unlimited = replace(self._policy, max_cancels_per_min=1_000_000)
        decision = decide(self._positions, self._orders, leased, 0,
                          self._exchange.exchange_time_ms(), unlimited)
        for a in decision.assessments:
            if a.order.order_id != cancel.order_id or a.order.is_algo != cancel.is_algo:
                continue
            if a.why is Why.ORPHAN:
                return ""
            if a.why is Why.NOT_FLAT_LONG_ENOUGH and a.remaining_ms == 0:
                flat_since = self._positions.flat_since(cancel.key)
                fill_ms = self._orders.last_opening_fill_ms(cancel.key.symbol) or 0
                if flat_since is not None and proven_ms - max(
                        flat_since, a.order.create_time_ms, fill_ms) >= self._policy.grace_ms:
                    return ""
            return f"no longer an orphan: {a.why}: {a.detail}"
        return "no longer open in the book"

    def _order_fields(self, result: CancelResult,
                      recipe: Mapping[str, object]) -> dict[str, object]:
        """Rule 5: the position and the order, by name (fields only ever added)."""
        cancel = result.cancel
        tracked = (self._orders.get(cancel.order_id, is_algo=cancel.is_algo)
                   if self._orders is not None else None)
        order_type = recipe.get("orderType") or recipe.get("type") or (
            tracked.order_type if tracked else "")
        order_side = recipe.get("side") or (tracked.side if tracked else "")
        return {"position": str(cancel.key), "symbol": cancel.key.symbol,
                "side": cancel.key.side.value, "position_side": cancel.key.side.value,
                "order_id": cancel.order_id, "algo": int(cancel.is_algo),
                "client_id": cancel.client_id, "order_side": str(order_side),
                "order_type": str(order_type)}

    async def _publish(self, kinds: tuple[str, ...], result: CancelResult, olog: Logger,
                       recipe: Mapping[str, object],
                       extra: Mapping[str, object] | None = None) -> None:
        fields: dict[str, object] = {**self._order_fields(result, recipe),
                                     "outcome": result.outcome.value,
                                     "reason": result.cancel.reason, **(extra or {})}
        for kind in kinds:
            try:
                await self._store.emit(kind, fields)
            except StoreError as exc:
                olog.error("event {} not written to Redis (the bot will not hear of it): {}",
                           kind, exc)

    def _sent_last_minute(self) -> int:
        now_s = self._clock.monotonic()
        while self._sent and now_s - self._sent[0] >= BUDGET_WINDOW_S:
            self._sent.popleft()
        return len(self._sent)

    def _done(self, olog: Logger, cancel: CancelOrder, outcome: Outcome,
              detail: str, *, new_order_id: int | None = None) -> CancelResult:
        ident = (cancel.is_algo, cancel.order_id)
        now_s = self._clock.monotonic()
        for key in [k for k, until in self._hold.items() if until < now_s]:
            del self._hold[key]
        pause_s = {Outcome.FAILED: RETRY_AFTER_FAILURE_S,
                   Outcome.ABORTED: RETRY_AFTER_ABORT_S}.get(outcome, GONE_MEMORY_S)
        self._hold[ident] = now_s + pause_s
        self._created.pop(ident, None)
        level = {Outcome.FAILED: "ERROR", Outcome.UNPROTECTED: "ERROR",
                 Outcome.ABORTED: "WARNING", Outcome.RESTORED: "WARNING"}.get(outcome, "INFO")
        olog.log(level, "orphan {}: {}", outcome.value, detail)
        return CancelResult(cancel, outcome, detail, new_order_id)


def bracketed_reader(rest: BinanceRest, emit: Emit) -> ReadPositions:
    """``binance.snapshots.read_positions`` bound to the client and the core's inbox: the
    re-check is bracketed like every read, so the book learns from it (a failure included)."""

    async def read(reason: str) -> PositionSnapshot | None:
        return await read_positions(rest, emit, reason=reason, priority=Priority.SAFETY)

    return read
