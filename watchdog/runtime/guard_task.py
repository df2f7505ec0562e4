"""The guard's shell: feed the core guard (``core/guard.py``) and carry out its last-resort stops.

Rules of this module (every decision is the core's; this module only checks again and acts):
1. ``observe`` and ``step`` run in the core loop (the single writer); ``step`` hands the core
   the outcomes of earlier placements/removals and the leases the reaper's shell last read
   (``reaper_task.py`` reads them while the guard needs them: one lease read loop, not two).
   While the stream is *unproven* (found blind, core/proof.py) the core is told it is not
   ``live``: its order events no longer keep the orders fresh, only recent REST reads do.
2. Placing a stop: re-read the symbol's positions (positionRisk, weight 5) right before; only if
   the position is still open on the same side is the closePosition STOP_MARKET sent,
   ``stop_pct`` % beyond the mark price (rounded away from the mark to the symbol's tick),
   working on the mark price. A placement whose answer proves nothing (timeout, 5xx) is
   re-queried by client id; if even that fails it counts as placed without an id (never a second
   stop on the same side; the order book adopts it by its client id prefix if it exists).
3. Removing ours: mark the position *reaping* (a bot's ``begin`` is vetoed meanwhile), re-read
   leases and abort if one was taken, then cancel and prove it (``orphan_cancel.py``). Removed
   because the position closed (``if_flat``, core/guard.py rule 4b): the position is re-read
   (positionRisk, weight 5) right before the cancel, and the stop kept unless it is still flat.
4. Only the leader acts (docs/HA.md): a standby's core decides no placement or removal
   (``Guard.step(acting=False)``), and right before each placement or cancel the lead is proven
   in Redis (``confirm_lead``, as the reaper does): no proof, nothing sent.
5. Every action is an event naming the order (``guard_stop_placed``, ``guard_stop_removed``,
   ``guard_stop_failed``) and a log line; never a secret.
6. At a takeover (``take_over``) the guard is told what Redis shows the earlier leader told
   (core/guard.py rule 7): alerts this instance computed as a standby were never written, and
   are sent now unless Redis shows the old leader's. Redis unreadable: nothing counts as told
   (an alert may then be repeated, never lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, NoReturn, Protocol

from loguru import logger

from watchdog.binance.rest import BinanceRest
from watchdog.core.effects import CancelGuardStop, CancelOrder, Effect, PlaceGuardStop
from watchdog.core.events import Event
from watchdog.core.guard import Guard, GuardOutcome, Leases, PositionsView, Told
from watchdog.core.model import ZERO, OrderId, PositionKey, PositionView, Symbol
from watchdog.core.orders import OrderBook
from watchdog.core.protection import closing_side
from watchdog.core.stream_state import StreamState
from watchdog.errors import ExchangeError, ExchangeRejected, OutcomeUnknown, StoreError
from watchdog.runtime.orphan_cancel import CODE_NO_SUCH_ORDER, Outcome, cancel_and_prove
from watchdog.runtime.reaper_cancel import LeadCheck

if TYPE_CHECKING:
    from loguru import Logger

__all__ = ["GuardStore", "GuardTask", "stop_price"]

REAPING_TTL_MS = 15_000


class GuardStore(Protocol):
    """The calls the guard makes on ``store.publisher.RedisPublisher``."""

    async def leased_symbols(self) -> frozenset[PositionKey]: ...

    async def mark_reaping(self, key: PositionKey, ttl_ms: int, reason: str = ...) -> None: ...

    async def clear_reaping(self, key: PositionKey) -> None: ...

    async def emit(self, kind: str, fields: Mapping[str, object]) -> str: ...

    async def published_keys(self) -> frozenset[PositionKey]: ...

    async def guard_told(self, keys: frozenset[PositionKey], *, limit: int = ...
                         ) -> dict[PositionKey, tuple[int | None, bool]]: ...


class _Unproven:
    """The book as the guard must see it while the stream is unproven (core/proof.py): found
    blind once, its order events cannot keep the orders fresh; only REST reads can."""

    def __init__(self, positions: PositionsView) -> None:
        self._positions = positions

    @property
    def stream_state(self) -> StreamState:
        return "gap" if self._positions.stream_state == "live" else self._positions.stream_state

    def views(self) -> list[PositionView]:
        return self._positions.views()

    def view(self, key: PositionKey) -> PositionView | None:
        return self._positions.view(key)

    def key_count(self) -> int:
        return self._positions.key_count()

    def view_generation(self) -> int | None:
        return self._positions.view_generation()


def stop_price(side: str, mark: Decimal, pct: Decimal, tick: Decimal) -> Decimal:
    """``pct`` % beyond the mark on the losing side, rounded away from the mark to ``tick``."""
    if side == "SELL":  # a long: the stop is below
        raw, rounding = mark * (1 - pct / 100), ROUND_FLOOR
    else:
        raw, rounding = mark * (1 + pct / 100), ROUND_CEILING
    steps = (raw / tick).to_integral_value(rounding=rounding)
    return max(steps, Decimal(1)) * tick


class GuardTask:
    """Core-loop side (``observe``/``step``/``submit``) and its own task (``run``)."""

    def __init__(self, guard: Guard, exchange: BinanceRest, store: GuardStore,
                 leases: Callable[[], Leases | None],
                 stream_unproven: Callable[[], bool] = lambda: False,
                 lead: LeadCheck | None = None) -> None:
        self.guard = guard
        self._lead = lead  # None: a single writer by construction (tests)
        self._stream_unproven = stream_unproven
        self._exchange = exchange
        self._store = store
        self._leases = leases
        self._queue: asyncio.Queue[PlaceGuardStop | CancelGuardStop] = asyncio.Queue()
        self._outcomes: list[GuardOutcome] = []
        self._ticks: dict[Symbol, Decimal] = {}
        self.events_maxlen = 10_000  # [redis] events_maxlen: how far back ``told`` reads
        self.on_outcome: Callable[[], None] = lambda: None  # the ticker's poke (build.py)

    # ------------------------------------------------------------ in the core loop

    def observe(self, event: Event) -> None:
        self.guard.observe(event)

    def step(self, positions: PositionsView, orders: OrderBook, now_ms: int) -> list[Effect]:
        outcomes, self._outcomes = self._outcomes, []
        if self._stream_unproven():
            positions = _Unproven(positions)
        acting = self._lead is None or self._lead.leading
        return self.guard.step(positions, orders, self._leases(), now_ms, outcomes, acting=acting)

    def next_due_ms(self, now_ms: int) -> int | None:
        """When ``step`` may judge something new without an event (runtime/ticker.py): at once
        while an outcome waits or leases are read (they change outside the core loop), else
        the guard's own time conditions (core/guard.py rule 5)."""
        if self._outcomes or self.guard.needs_leases:
            return now_ms
        return self.guard.next_due_ms()

    async def _proven_lead(self, olog: Logger, what: str) -> bool:
        """Rule 4: right before an irreversible act, the lead proven in Redis."""
        if self._lead is None or await self._lead.confirm_lead():
            return True
        olog.warning("last-resort stop not {}: this instance does not lead (proven in Redis "
                     "right before); the leader's guard decides", what)
        return False

    async def told(self) -> dict[PositionKey, Told]:
        """Rule 6: what Redis shows the earlier leader told, read right after this instance took
        the lead and *before* it republishes its own view over it."""
        try:
            keys = await self._store.published_keys()
            told = await self._store.guard_told(keys, limit=self.events_maxlen)
        except StoreError as exc:
            logger.warning("takeover: what the earlier leader told about protection is unreadable "
                           "({}): every unprotected position is alerted again", exc)
            return {}
        return {key: Told(since, alerted) for key, (since, alerted) in told.items()}

    def take_over(self, told: dict[PositionKey, Told]) -> None:
        """Rule 6: once republished, the guard continues from what was told."""
        self.guard.take_over(told)
        alerted = sorted(str(key) for key, shown in told.items() if shown.alerted)
        logger.info("takeover: the guard continues from what Redis showed; alerted by the "
                    "earlier leader: {}", ", ".join(alerted) or "none")

    def submit(self, order: PlaceGuardStop | CancelGuardStop) -> None:
        self._queue.put_nowait(order)

    # ------------------------------------------------------------ its own task

    async def run(self) -> NoReturn:
        while True:
            order = await self._queue.get()
            if isinstance(order, PlaceGuardStop):
                outcome = await self.place(order)
            else:
                outcome = await self.remove(order)
            self._outcomes.append(outcome)
            self.on_outcome()  # the next step hears it at the next point of the grid

    async def place(self, order: PlaceGuardStop) -> GuardOutcome:
        """Rule 2."""
        key = order.key
        olog = logger.bind(position=str(key), client_id=order.client_id)
        failed = GuardOutcome(key, "place_failed", order.client_id)
        try:
            amount, mark = (await self._exchange.fetch_marks(key.symbol)).get(key, (ZERO, ZERO))
            if amount == ZERO or closing_side(key, amount) != order.side:
                olog.warning("last-resort stop not placed: the re-read shows amount {}", amount)
                return failed
            if mark <= ZERO:
                olog.error("last-resort stop not placed: mark price {} unusable", mark)
                return failed
            tick = self._ticks.get(key.symbol) or await self._exchange.fetch_tick_size(key.symbol)
            self._ticks[key.symbol] = tick
            price = stop_price(order.side, mark, order.stop_pct, tick)
            if not await self._proven_lead(olog, "placed"):
                return failed
            fields = {"position": str(key), "symbol": key.symbol, "side": key.side.value,
                      "order_side": order.side, "client_id": order.client_id,
                      "trigger_price": price, "mark_price": mark, "stop_pct": order.stop_pct,
                      "working_type": "MARK_PRICE", "reason": order.reason}
            try:
                algo_id: int | None = await self._exchange.place_close_stop(
                    key, order.side, price, order.client_id)
            except OutcomeUnknown as exc:
                olog.warning("last-resort stop: placement outcome unknown ({}): re-querying", exc)
                algo_id = await self._requery(order, olog)
                if algo_id is None:
                    await self._emit("guard_stop_failed", {**fields, "action": "place",
                                                           "error": f"{exc}; not placed"})
                    return failed
        except ExchangeError as exc:
            olog.error("last-resort stop not placed: {}: {}", type(exc).__name__, exc)
            await self._emit("guard_stop_failed", {"position": str(key), "action": "place",
                                                   "client_id": order.client_id,
                                                   "error": f"{type(exc).__name__}: {exc}"})
            return failed
        olog.warning("last-resort stop placed: algo {} closePosition STOP_MARKET {} at {} "
                     "(mark {}, {} %): {}", algo_id or "?", order.side, price, mark,
                     order.stop_pct, order.reason)
        await self._emit("guard_stop_placed", {**fields, "algo_id": algo_id or ""})
        return GuardOutcome(key, "placed", order.client_id, OrderId(algo_id) if algo_id else None)

    async def _requery(self, order: PlaceGuardStop, olog: Logger) -> int | None:
        """The order by client id: its id, None when Binance says it does not exist; an id of
        0 (placed, id unknown) when even the re-query fails."""
        try:
            return int(await self._exchange.get_algo_order_by_client_id(order.client_id))
        except ExchangeRejected as exc:
            if exc.code == CODE_NO_SUCH_ORDER:
                return None
            olog.error("last-resort stop re-query rejected ({}): counted as placed", exc)
        except ExchangeError as exc:
            olog.error("last-resort stop re-query failed ({}): counted as placed", exc)
        return 0

    async def remove(self, order: CancelGuardStop) -> GuardOutcome:
        """Rule 3."""
        key = order.key
        olog = logger.bind(position=str(key), client_id=order.client_id, order_id=order.order_id)
        failed = GuardOutcome(key, "remove_failed", order.client_id, order.order_id)
        if order.order_id is None:
            olog.error("last-resort stop not removed: its order id is unknown")
            return failed
        if self._lead is not None and not self._lead.leading:
            olog.warning("last-resort stop not removed: this instance does not lead")
            return failed
        try:
            await self._store.mark_reaping(key, REAPING_TTL_MS, "guard_stop_removal")
        except StoreError as exc:
            olog.warning("last-resort stop not removed: cannot mark reaping: {}", exc)
            return failed
        try:
            try:
                leased = await self._store.leased_symbols()
            except StoreError as exc:
                olog.warning("last-resort stop not removed: cannot re-read leases: {}", exc)
                return failed
            if key in leased:
                olog.info("last-resort stop kept: a bot took a lease on the position")
                return failed
            if order.if_flat:
                amount, _ = (await self._exchange.fetch_marks(key.symbol)).get(key, (ZERO, ZERO))
                if amount != ZERO:
                    olog.warning("last-resort stop kept: the position was closed, the re-read "
                                 "shows amount {}", amount)
                    return failed
            if not await self._proven_lead(olog, "removed"):
                return failed
            outcome, detail = await cancel_and_prove(
                self._exchange, CancelOrder(key, order.order_id, order.is_algo, order.client_id,
                                            order.reason), olog)
        except ExchangeError as exc:
            outcome, detail = Outcome.FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            try:
                await self._store.clear_reaping(key)
            except StoreError as exc:
                olog.error("reaping mark not cleared (expires in {} ms): {}", REAPING_TTL_MS, exc)
        fields = {"position": str(key), "client_id": order.client_id, "algo_id": order.order_id,
                  "outcome": outcome.value, "reason": order.reason, "detail": detail}
        if outcome in (Outcome.REMOVED, Outcome.ALREADY_GONE):
            olog.info("last-resort stop removed ({}): {}", detail, order.reason)
            await self._emit("guard_stop_removed", fields)
            return GuardOutcome(key, "removed", order.client_id, order.order_id)
        olog.error("last-resort stop not removed: {}", detail)
        await self._emit("guard_stop_failed", {**fields, "action": "remove", "error": detail})
        return failed

    async def _emit(self, kind: str, fields: Mapping[str, object]) -> None:
        try:
            await self._store.emit(kind, fields)
        except StoreError as exc:
            logger.error("event {} not written to Redis: {} ({})", kind, exc, dict(fields))
