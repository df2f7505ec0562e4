"""The reaper's cancel shell: remove the selected orphans of one position, carefully
(``reaper_task`` rules 1, 3, 4, 5, 7 and 9; the rules themselves are listed there).

The order of the checks before a cancel (rule 1): the reaping mark, the leases again, each
order's own read (its recipe for a restore), one positions re-read proving flat late enough,
the pure decision again on the book as it is now, the budget, the lead proven in Redis; then
the cancels back to back, one post-cancel look (``reaper_after_cancel.py``) and, for a position
that opened, the restore (``reaper_restore.py``). Every order gets its own result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from watchdog.core.effects import CancelOrder
from watchdog.core.model import ZERO, OrderId, PositionKey
from watchdog.core.orders import OrderBook
from watchdog.core.reaper import PositionsReader, ReaperPolicy, Why, decide
from watchdog.errors import AuthenticationFailed, ExchangeError, ExchangeRejected, StoreError
from watchdog.runtime.orphan_cancel import (
    CODE_CANCEL_REJECTED,
    CODE_NO_SUCH_ORDER,
    Outcome,
    cancel_and_prove,
)
from watchdog.runtime.reaper_after_cancel import ReadPositions, learned_open, opened_after
from watchdog.runtime.reaper_report import CancelResult, publish
from watchdog.runtime.reaper_restore import restore_cancelled
from watchdog.runtime.restore import reduces

if TYPE_CHECKING:
    from decimal import Decimal

    from loguru import Logger

    from watchdog.binance.rest import BinanceRest
    from watchdog.clock import Clock

__all__ = ["LeadCheck", "ReaperStore", "Reaping"]

REAPING_TTL_MS = 15_000       # covers mark → re-read → cancel → re-query, REST timeouts included
BUDGET_WINDOW_S = 60.0
GONE_MEMORY_S = 30.0          # skip a removed order until the book hears it is gone
RETRY_AFTER_FAILURE_S = 5.0   # do not hammer an order whose cancel just failed
RETRY_AFTER_ABORT_S = 1.0     # a pre-cancel check said no: the decision gates the next try

Ident = tuple[bool, OrderId]


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


class Reaping:
    """Removes the orphans of one position at a time; keeps the cancel budget (rule 3) and
    how long each handled order is left alone (``held``)."""

    def __init__(self, exchange: BinanceRest, store: ReaperStore, clock: Clock,
                 policy: ReaperPolicy, read_positions: ReadPositions, *,
                 lead: LeadCheck | None = None) -> None:
        self._exchange = exchange
        self._store = store
        self._clock = clock
        self._policy = policy
        self._read_positions = read_positions
        self._lead = lead  # None: a single writer by construction (tests, the orphans CLI)
        self._created: dict[Ident, int] = {}  # exchange create time of each selected order
        self._sent: deque[float] = deque()
        self._hold: dict[Ident, float] = {}
        self.positions: PositionsReader | None = None  # the core's books, as given to step
        self.orders: OrderBook | None = None
        self.removed_total = 0

    def selected(self, cancel: CancelOrder, create_time_ms: int) -> None:
        """The decision selected ``cancel``, whose order Binance created at ``create_time_ms``."""
        self._created[(cancel.is_algo, cancel.order_id)] = create_time_ms

    def held(self, ident: Ident) -> bool:
        """Handled lately: left alone for a while (``done``)."""
        held_until = self._hold.get(ident)
        return held_until is not None and self._clock.monotonic() < held_until

    def sent_last_minute(self) -> int:
        now_s = self._clock.monotonic()
        while self._sent and now_s - self._sent[0] >= BUDGET_WINDOW_S:
            self._sent.popleft()
        return len(self._sent)

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
            return [self.done(olog, c, Outcome.ABORTED,
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
            results[i] = self.done(logs[i], cancels[i], outcome, detail)

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
                await publish(self._store, ("orphan_candidate",), results[i], logs[i],
                              recipes[i], self.orders)
            return finish()
        sent: dict[int, tuple[int, Outcome, str]] = {}
        for i in live:  # back to back (rule 9): one post-cancel read covers them all
            if self.sent_last_minute() >= self._policy.max_cancels_per_min:
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
        amount, how = await opened_after(
            self._exchange, self._read_positions, self._learned_open, cancels[first], proven_ms,
            max_rest_lag_ms=self._policy.max_rest_lag_ms, olog=logs[first])
        for i, (sent_ms, outcome, detail) in sent.items():
            cancel, olog, recipe = cancels[i], logs[i], recipes[i]
            if amount is None:  # flat through the cancel: it was an orphan
                self.removed_total += 1
                done(i, outcome, detail)
                await publish(self._store, ("orphan_removed", "trailing_stop_orphaned"),
                              results[i], olog, recipe, self.orders)
                continue
            side = str(recipe.get("side", ""))
            if outcome is Outcome.ALREADY_GONE or (amount != 0 and not reduces(side, amount)):
                # Not ours to put back (it ended by itself), or it could never have protected
                # this position: say it is gone, but no trailing_stop_orphaned (rule 5).
                self.removed_total += 1
                done(i, outcome, f"{detail}; position reopened ({how})")
                await publish(self._store, ("orphan_removed",), results[i], olog, recipe,
                              self.orders, {"position_reopened": 1})
                continue
            results[i] = await restore_cancelled(self._exchange, self._store, self.orders,
                                                 cancel, recipe, sent_ms, how, olog, self.done)
        return finish()

    def _learned_open(self, key: PositionKey, proven_ms: int) -> tuple[Decimal | None, str]:
        return learned_open(self.positions, self.orders, key, proven_ms)

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
        fill_ms = (self.orders.last_opening_fill_ms(key.symbol)
                   if self.orders is not None else None) or 0
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

    def _still_orphan(self, cancel: CancelOrder, leased: frozenset[PositionKey],
                      proven_ms: int) -> str:
        """The pure decision again, on the book as it is now (after the awaits above): a
        failed read, a stream gap or an open fact may have arrived meanwhile. '' if still
        an orphan, else why not. An order kept only for want of a newer read (rule 8) is an
        orphan when the pre-cancel read, flat as of ``proven_ms``, is that read: the same
        arithmetic as ``core.reaper`` rule 2, with that read as the run's newest."""
        if self.positions is None or self.orders is None:
            return ""
        unlimited = replace(self._policy, max_cancels_per_min=1_000_000)
        decision = decide(self.positions, self.orders, leased, 0,
                          self._exchange.exchange_time_ms(), unlimited)
        for a in decision.assessments:
            if a.order.order_id != cancel.order_id or a.order.is_algo != cancel.is_algo:
                continue
            if a.why is Why.ORPHAN:
                return ""
            if a.why is Why.NOT_FLAT_LONG_ENOUGH and a.remaining_ms == 0:
                flat_since = self.positions.flat_since(cancel.key)
                fill_ms = self.orders.last_opening_fill_ms(cancel.key.symbol) or 0
                if flat_since is not None and proven_ms - max(
                        flat_since, a.order.create_time_ms, fill_ms) >= self._policy.grace_ms:
                    return ""
            return f"no longer an orphan: {a.why}: {a.detail}"
        return "no longer open in the book"

    def done(self, olog: Logger, cancel: CancelOrder, outcome: Outcome,
             detail: str, *, new_order_id: int | None = None) -> CancelResult:
        """Record one order's outcome: log it, and leave the order alone for a while."""
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
