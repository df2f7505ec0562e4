"""The reaper's shell: run ``decide()`` on each tick and remove the orphans it selects, carefully.

Rules of this module (the decision itself is ``core/reaper.py``; nothing here decides alone):
1. Before every cancel, in this order: mark the position as *reaping* in Redis (the bot's
   ``begin`` now vetoes with ``reaping``), check again that no lease was taken before the mark,
   then re-read positions from REST. Only if that fresh read shows the position flat is the
   cancel sent: a position may reopen between the decision and the cancel. That read is also
   the REST snapshot "taken after the order was created" the decision relies on. Last, the pure
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
5. After each removal: publish ``orphan_removed`` and ``trailing_stop_orphaned`` (so the bot drops
   its in-memory trailing stop), then clear the reaping mark; the mark is cleared in ``finally``
   and has a TTL, so a crash cannot leave the bot vetoed for long.
6. Every step is logged with the position, the order id and the outcome; never a secret.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NoReturn, Protocol

from loguru import logger

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
from watchdog.errors import AuthenticationFailed, StoreError
from watchdog.runtime.orphan_cancel import Outcome, cancel_and_prove

if TYPE_CHECKING:
    from loguru import Logger

    from watchdog.runtime.clock import Clock

__all__ = [
    "CancelResult",
    "Emit",
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
SNAPSHOT_ASK_S = 1.0          # ask the poller to confirm a stream-only flat at most this often

_Ident = tuple[bool, OrderId]
Emit = Callable[[Event], Awaitable[None]]


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


def policy_from_config(section: ReaperSettings) -> ReaperPolicy:
    """The pure policy from the ``[reaper]`` config section."""
    return ReaperPolicy(grace_ms=section.grace_ms, client_id_prefix=section.client_id_prefix,
                        max_cancels_per_min=section.max_cancels_per_min,
                        stuck_triggering_ms=round(section.stuck_triggering_s * 1000),
                        dry_run=section.dry_run)


class ReaperTask:
    """The reaper shell: ``step`` decides (in the core loop), ``run`` carries out the cancels.

    ``step`` is synchronous and called by the single writer on every Tick; it never waits on
    Binance or Redis. Selected orphans reach ``submit`` through the effects runner and are
    removed one at a time by ``run``, which also keeps the set of leased positions fresh.
    """

    def __init__(self, exchange: BinanceRest, store: ReaperStore, emit: Emit, clock: Clock,
                 config: ReaperSettings, *, read_positions: ReadPositions | None = None,
                 lease_refresh_s: float = LEASE_REFRESH_S,
                 read_lease_ends: Callable[[], Awaitable[dict[PositionKey, int]]] | None = None,
                 also_needs_leases: Callable[[], bool] = lambda: False) -> None:
        self._exchange = exchange
        # The guard (guard_task.py) needs the leases' ends too, while it says so: one read loop.
        self._read_lease_ends = read_lease_ends
        self._also_needs_leases = also_needs_leases
        self.lease_ends: dict[PositionKey, int] | None = None  # wall ms each lease ends
        self.leases_read_ms = 0
        self._store = store
        self._clock = clock
        self._enabled = config.enabled
        self._policy = policy_from_config(config)
        self._read_positions = read_positions or bracketed_reader(exchange, emit)
        self._lease_refresh_s = lease_refresh_s
        self._queue: asyncio.Queue[CancelOrder] = asyncio.Queue()
        self._pending: set[_Ident] = set()
        self._created: dict[_Ident, int] = {}  # exchange create time of each selected order
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
        for request in decision.snapshot_requests:  # at most one a second per symbol set
            if now_s - self._asked.get(request.symbols, float("-inf")) >= SNAPSHOT_ASK_S:
                self._asked[request.symbols] = now_s
                effects.append(request)
        for cancel in decision.cancels:
            if self._wanted(cancel):
                order = orders.get(cancel.order_id, is_algo=cancel.is_algo)
                if order is not None:
                    self._created[(cancel.is_algo, cancel.order_id)] = order.create_time_ms
                effects.append(cancel)
        return effects

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
            try:
                self.results.append(await self.reap(cancel))
            except AuthenticationFailed as exc:
                # Nothing was cancelled; the daemon's health says why (Vitals.problems) and the
                # order is selected again once Binance accepts the key.
                logger.warning("orphan not removed: Binance rejects the credentials: {} "
                               "position={} order_id={}", exc, cancel.key, cancel.order_id)
            finally:
                self._pending.discard((cancel.is_algo, cancel.order_id))

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
        olog = logger.bind(position=str(cancel.key), order_id=cancel.order_id,
                          is_algo=cancel.is_algo, client_id=cancel.client_id)
        olog.info("orphan selected: {}", cancel.reason)
        try:
            await self._store.mark_reaping(cancel.key, REAPING_TTL_MS)
        except StoreError as exc:
            return self._done(olog, cancel, Outcome.ABORTED,
                              f"cannot mark reaping in Redis (no veto for the bot): {exc}")
        try:
            return await self._reap_marked(cancel, olog)
        finally:
            try:
                await self._store.clear_reaping(cancel.key)
            except StoreError as exc:
                olog.error("reaping mark not cleared (expires in {} ms): {}", REAPING_TTL_MS, exc)

    async def _reap_marked(self, cancel: CancelOrder, olog: Logger) -> CancelResult:
        try:
            leased = await self._store.leased_symbols()
        except StoreError as exc:
            return self._done(olog, cancel, Outcome.ABORTED, f"cannot re-read leases: {exc}")
        if cancel.key in leased:
            return self._done(olog, cancel, Outcome.ABORTED,
                              "a lease was taken before the reaping mark")
        problem = await self._recheck(cancel) or self._still_orphan(cancel, leased)
        if problem:
            return self._done(olog, cancel, Outcome.ABORTED, problem)
        if self._policy.dry_run:
            result = self._done(olog, cancel, Outcome.WOULD_REMOVE,
                                "dry_run: position re-read flat, cancel not sent")
            await self._publish(("orphan_candidate",), result, olog)
            return result
        if self._sent_last_minute() >= self._policy.max_cancels_per_min:
            return self._done(olog, cancel, Outcome.ABORTED,
                              f"budget: {self._policy.max_cancels_per_min} cancels/min used")
        self._sent.append(self._clock.monotonic())
        outcome, detail = await cancel_and_prove(self._exchange, cancel, olog)
        result = self._done(olog, cancel, outcome, detail)
        if outcome in (Outcome.REMOVED, Outcome.ALREADY_GONE):
            self.removed_total += 1
            await self._publish(("orphan_removed", "trailing_stop_orphaned"), result, olog)
        return result

    async def _recheck(self, cancel: CancelOrder) -> str:
        """A fresh REST read of positions; '' when ``cancel.key`` is flat now, else why not."""
        created_ms = self._created.get((cancel.is_algo, cancel.order_id), 0)
        snapshot = await self._read_positions(
            f"reaper re-check before cancelling {cancel.order_id} on {cancel.key}")
        if snapshot is None:
            return "re-read of positions failed: the position is not known flat now"
        if snapshot.requested_time_ms <= created_ms:
            return (f"re-read requested at {snapshot.requested_time_ms}, not after the order "
                    f"was created at {created_ms}")
        for row in snapshot.positions:
            if row.key == cancel.key and row.amount != ZERO:
                return f"position reopened: REST shows amount {row.amount} now"
        return ""

    def _still_orphan(self, cancel: CancelOrder, leased: frozenset[PositionKey]) -> str:
        """The pure decision again, on the book as it is now (after the awaits above): a
        failed read, a stream gap or an open fact may have arrived meanwhile. '' if still
        an orphan, else why not."""
        if self._positions is None or self._orders is None:
            return ""
        unlimited = replace(self._policy, max_cancels_per_min=1_000_000)
        decision = decide(self._positions, self._orders, leased, 0,
                          self._exchange.exchange_time_ms(), unlimited)
        for a in decision.assessments:
            if a.order.order_id == cancel.order_id and a.order.is_algo == cancel.is_algo:
                return "" if a.why is Why.ORPHAN else f"no longer an orphan: {a.why}: {a.detail}"
        return "no longer open in the book"

    async def _publish(self, kinds: tuple[str, ...], result: CancelResult, olog: Logger) -> None:
        cancel = result.cancel
        fields: dict[str, object] = {
            "position": str(cancel.key), "symbol": cancel.key.symbol,
            "side": cancel.key.side.value, "order_id": cancel.order_id,
            "algo": int(cancel.is_algo), "client_id": cancel.client_id,
            "outcome": result.outcome.value, "reason": cancel.reason}
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
              detail: str) -> CancelResult:
        ident = (cancel.is_algo, cancel.order_id)
        now_s = self._clock.monotonic()
        for key in [k for k, until in self._hold.items() if until < now_s]:
            del self._hold[key]
        pause_s = {Outcome.FAILED: RETRY_AFTER_FAILURE_S,
                   Outcome.ABORTED: RETRY_AFTER_ABORT_S}.get(outcome, GONE_MEMORY_S)
        self._hold[ident] = now_s + pause_s
        self._created.pop(ident, None)
        level = {Outcome.FAILED: "ERROR", Outcome.ABORTED: "WARNING"}.get(outcome, "INFO")
        olog.log(level, "orphan {}: {}", outcome.value, detail)
        return CancelResult(cancel, outcome, detail)


def bracketed_reader(rest: BinanceRest, emit: Emit) -> ReadPositions:
    """``binance.snapshots.read_positions`` bound to the client and the core's inbox: the
    re-check is bracketed like every read, so the book learns from it (a failure included)."""

    async def read(reason: str) -> PositionSnapshot | None:
        return await read_positions(rest, emit, reason=reason, urgent=True)

    return read
