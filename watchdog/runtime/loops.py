"""The daemon's long-running coroutines (each becomes one named task in ``daemon.run``).

Rules of this module:
1. ``CoreLoop`` is the single writer of the books: it takes events from the inbox one at a time,
   applies them, and runs the effects before taking the next. Besides the position and order
   books it feeds ``OrderBlindness`` (rule 7 for orders) and ``vitals.proof`` (``StreamProof``:
   unproven after a blind verdict until REST corroborates the stream).
2. Producers never block: ``Inbox.put`` raises ``InvariantViolation`` when the core has stalled
   long enough to fill the inbox, instead of dropping events or holding the stream's reader.
3. The systemd keepalive (``WATCHDOG=1``) is sent only from the core loop, after it handled a
   ``Tick``, and only while every loop reports progress (see ``vitals.py`` for why an outage
   degrades instead of stopping the keepalive).
4. The ticker and the heartbeat (and the lead task, ``lead_task.py``) sleep until a point of
   one grid, ``[service] tick_interval_s`` (``beat.py``): never later than their own period,
   and due together, they wake the event loop once instead of once each. After every batch
   the core loop calls ``after_batch`` (the reaper's ``poke``): a task idle without a timer
   hears there that it is needed.
5. Ticks only when due: after every batch the core loop tells the ticker (``ticker.py``) when
   the next Tick is due, the earliest of every consumer's: the book's ageing
   (``next_due_ms``), the trigger watch (every point while a crossing is pending), the guard's
   heap and the reaper (``TickDue``: every point while leases are read, an outcome waits, or
   the reaper's last decision may differ, reaper_task.py rule 10), the keepalive (under
   systemd) and the status line; every point until READY. A Tick at a point where nothing
   was due changed nothing, so the Ticks that act go at the very points they went before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn

from loguru import logger

from watchdog.cancel import raise_if_cancelling
from watchdog.clock import Clock
from watchdog.core.book import PositionBook
from watchdog.core.effects import Effect
from watchdog.core.events import (
    AlgoUpdate,
    Event,
    OrdersSnapshot,
    OrderUpdate,
    PositionSnapshot,
    SnapshotFailed,
    Tick,
)
from watchdog.core.firing import FiringWatch
from watchdog.core.order_blindness import OrderBlindness
from watchdog.core.orders import OrderBook
from watchdog.errors import Fenced, InvariantViolation, StoreUnavailable
from watchdog.runtime.beat import beat_at, sleep_until
from watchdog.runtime.effects_runner import EffectsRunner
from watchdog.runtime.stalls import Woke
from watchdog.runtime.systemd import Notifier
from watchdog.runtime.ticker import Ticker
from watchdog.runtime.trigger_task import TriggerTask
from watchdog.runtime.vitals import Vitals
from watchdog.store.heartbeat import summary_line
from watchdog.store.publisher import RedisPublisher

__all__ = ["KEEPALIVE_LOOPS", "CoreLoop", "Inbox", "TickDue", "run_heartbeat", "run_ticker"]

# Loops whose progress gates the systemd keepalive: a REST outcome (snapshot or failure) and a
# Redis write attempt (success or failure) must keep coming; only a hang stops them.
KEEPALIVE_LOOPS = ("poller", "heartbeat")
_STALL_S = 10.0  # a full inbox that does not move for this long means the core has stalled
_MAX_BATCH = 512  # events applied before their effects are written (bounds one pipeline)
_ORDER_FACTS = (AlgoUpdate, OrderUpdate, OrdersSnapshot)  # what can change a firing stop


class Inbox:
    """Events from the adapters to the core loop, in arrival order, bounded."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)

    def put(self, event: Event) -> None:
        """Hand ``event`` to the core; never blocks. Raises InvariantViolation when full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull as exc:
            raise InvariantViolation(
                f"core loop stalled: inbox full ({self._queue.maxsize} events) while adding "
                f"{type(event).__name__}") from exc

    async def emit(self, event: Event) -> None:
        """For adapters: waits while the inbox is full (backpressure down to the socket); a core
        that frees no room for ``_STALL_S`` has stalled (InvariantViolation)."""
        if not self._queue.full():
            self._queue.put_nowait(event)
            return
        try:
            async with asyncio.timeout(_STALL_S):
                await self._queue.put(event)
        except TimeoutError as exc:
            raise_if_cancelling(exc)
            raise InvariantViolation(
                f"core loop stalled: inbox full ({self._queue.maxsize} events) for {_STALL_S:g}s "
                f"while adding {type(event).__name__}") from exc

    async def get(self) -> Event:
        return await self._queue.get()

    def drain(self, limit: int) -> list[Event]:
        """Up to ``limit`` events already queued, without waiting."""
        events: list[Event] = []
        while len(events) < limit and not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    def qsize(self) -> int:
        return self._queue.qsize()


ReaperStep = Callable[[PositionBook, OrderBook, int], list[Effect]]


class CoreLoop:
    """Applies inbox events to the books and runs their effects; sends READY/WATCHDOG/STATUS."""

    def __init__(self, inbox: Inbox, book: PositionBook, orders: OrderBook, runner: EffectsRunner,
                 vitals: Vitals, notifier: Notifier, clock: Clock, *, status_interval_s: float,
                 reaper_step: ReaperStep | None = None,
                 observers: Iterable[Callable[[Event], None]] = (),
                 triggers: TriggerTask | None = None,
                 guard_step: ReaperStep | None = None,
                 after_batch: Callable[[], None] | None = None,
                 ticker: Ticker | None = None, due: TickDue | None = None) -> None:
        self._inbox = inbox
        self._book = book
        self._orders = orders
        self._runner = runner
        self._vitals = vitals
        self._notifier = notifier
        self._clock = clock
        self._status_interval_s = status_interval_s
        self._reaper_step = reaper_step
        self._triggers = triggers
        self._guard_step = guard_step  # once per batch, after its events (core/guard.py)
        self._after_batch = after_batch  # e.g. the reaper's poke: a need for leases began
        self._observers = tuple(observers)
        self._ticker = ticker  # rule 5: told after every batch when the next Tick is due
        self._due = due or TickDue()
        self._books_seen: tuple[int, int | None] | None = None
        self._firing_revision = -1  # the order book's revision the firing marks were taken at
        self._firing = FiringWatch()  # stops firing, for begin's stop_triggered (core/firing.py)
        policy = book.policy
        self._order_blindness = OrderBlindness(blind_after_ms=policy.blind_after_ms,
                                               max_rest_lag_ms=policy.max_rest_lag_ms)
        self._published_snapshot = False
        self._status_at = float("-inf")
        self._keepalive_at = float("-inf")

    async def run(self) -> NoReturn:
        while True:
            events = [await self._inbox.get()]
            # Everything already queued (bounded): applied in order, effects run together, so a
            # burst costs one Redis round trip instead of one per event.
            events += self._inbox.drain(_MAX_BATCH - 1)
            await self.handle_many(events)

    async def handle(self, event: Event) -> None:
        """Apply one event and run its effects (the unit of work of the single writer)."""
        await self.handle_many([event])

    async def handle_many(self, events: list[Event]) -> None:
        """Apply events in order, run all their effects in order, then the per-event follow-ups."""
        effects: list[Effect] = []
        stamps: list[int] = []
        order_facts = False
        ticks_only = True
        for event in events:
            now_ms = self._clock.wall_ms()
            stamps.append(now_ms)
            self._vitals.observe_event(event)
            for observe in self._observers:
                # Bookkeeping of facts, never a decision (those come back as effects): e.g. the
                # poller counts the REST reads others made against its schedule and budget.
                observe(event)
            self._orders.apply(event)
            order_facts = order_facts or isinstance(event, _ORDER_FACTS)
            found = self._book.apply(event, now_ms)
            found += self._order_blindness.apply(event, now_ms)
            # The stream's proof hears every blind verdict (book rule 7 and orders) first.
            found += self._vitals.proof.apply(event, now_ms, found)
            effects += found
            if type(event) is not Tick:
                ticks_only = False
            elif self._reaper_step is not None:
                effects += self._reaper_step(self._book, self._orders, now_ms)
            if self._triggers is not None:
                effects += self._triggers.step(event, self._orders, now_ms)
        if self._triggers is not None:
            self._triggers.after_batch(self._orders)  # the market stream follows new stops
        crossings = self._triggers is not None and self._triggers.marks_dirty
        # The firing stops read only the order book's content (core/orders.py rule 8) and the
        # crossings: an orders read that changed nothing changes no mark.
        if (order_facts and self._orders.revision != self._firing_revision) or crossings:
            self._firing_revision = self._orders.revision
            # A crossing not yet answered by the exchange marks the position firing too.
            crossed = None if self._triggers is None else self._triggers.watch.firing()
            if self._triggers is not None:
                self._triggers.marks_dirty = False
            effects += self._firing.update(self._orders, crossed)
        if self._guard_step is not None:
            effects += self._guard_step(self._book, self._orders, stamps[-1])
        if not ticks_only and self._due.books_changed is not None:
            # What a reaper verdict reads beside time: the views (their generation), the run of
            # never-held keys (reaper_task.py rule 10; the orders: their book's revision,
            # which the reaper compares itself, so a read that changed nothing asks no Tick).
            seen = (self._book.view_generation(), self._book.unseen_flat_since())
            if seen != self._books_seen:
                self._books_seen = seen
                self._due.books_changed()
        if self._after_batch is not None:
            self._after_batch()
        await self._runner.run(effects)
        for event, now_ms in zip(events, stamps, strict=True):
            self._after(event, now_ms)
        if self._ticker is not None:
            self._ticker.due_in(self.next_tick_in())

    def next_tick_in(self) -> float | None:
        """Rule 5: seconds until the next Tick is due (0: at the next grid point; None: no
        consumer waits on time). Asks every consumer of Tick; conservative: a Tick it asks
        for in vain changes nothing."""
        if not self._vitals.ready:
            return 0.0  # READY follows the first beat, which no event of ours reports
        now_ms, now_s = self._clock.wall_ms(), self._clock.monotonic()
        triggers = None if self._triggers is None else self._triggers.watch.next_due_ms(now_ms)
        dues = [d for d in (self._book.next_due_ms(), triggers,
                            *(f(now_ms) for f in self._due.wall_ms)) if d is not None]
        if any(f() for f in self._due.busy):
            return 0.0
        delays = [(d - now_ms) / 1000 for d in dues]
        if self._notifier.enabled:
            delays.append(self._keepalive_at + self._notifier.keepalive_interval_s - now_s)
        delays.append(self._status_at + self._status_interval_s - now_s)
        return max(min(delays), 0.0)

    def _after(self, event: Event, now_ms: int) -> None:
        if isinstance(event, PositionSnapshot | SnapshotFailed):
            self._vitals.progressed("poller", self._clock.monotonic())
        if isinstance(event, PositionSnapshot) and not self._runner.store_down:
            self._published_snapshot = True
        self._maybe_ready(now_ms)
        if isinstance(event, Tick):
            self._on_tick(now_ms)

    def _maybe_ready(self, now_ms: int) -> None:
        if self._vitals.ready or not self._published_snapshot or not self._vitals.heartbeat_written:
            return
        self._vitals.ready = True
        line = summary_line(self._vitals.health(now_ms), now_ms)
        logger.info("ready: first snapshot published; {}", line)
        self._notifier.ready(status=line)

    def _on_tick(self, now_ms: int) -> None:
        now_at = self._clock.monotonic()
        if (self._vitals.ready and now_at - self._keepalive_at >= self._notifier.keepalive_interval_s
                and self._vitals.keepalive_due(now_at, KEEPALIVE_LOOPS)):
            self._keepalive_at = now_at
            self._notifier.keepalive()
        if now_at - self._status_at >= self._status_interval_s:
            self._status_at = now_at
            line = summary_line(self._vitals.health(now_ms), now_ms)
            self._notifier.status(line)
            logger.info("{} inbox={}", line, self._inbox.qsize())


@dataclass(frozen=True, slots=True)
class TickDue:
    """The consumers of Tick outside the core's own books (rule 5), wired by build.py.
    ``wall_ms``: each returns the wall ms at which a Tick may make it act (None: never by time
    alone; at most ``now_ms``: at once); ``busy``: each is True while it needs every grid
    point's Tick (its state moves outside the core loop, e.g. leases being read);
    ``books_changed``: told after a batch that replaced a view or moved the run of never-held
    keys (the order book's changes: its ``revision``, read by the consumer itself)."""

    wall_ms: tuple[Callable[[int], int | None], ...] = ()
    busy: tuple[Callable[[], bool], ...] = ()
    books_changed: Callable[[], None] | None = None


async def run_ticker(inbox: Inbox, interval_s: float) -> NoReturn:
    """A ``Tick`` at every point of the grid: the ticker before runtime/ticker.py (the
    daemon's ``Ticker`` sends only the due ones); kept for the tests that compare both."""
    loop = asyncio.get_running_loop()
    while True:
        await inbox.emit(Tick())  # a burst may fill the inbox: wait, as the stream does
        await sleep_until(beat_at(loop.time(), interval_s, interval_s))


async def run_heartbeat(store: RedisPublisher, runner: EffectsRunner, vitals: Vitals, clock: Clock,
                        *, interval_s: float, timeout_s: float, grid_s: float = 0.0,
                        woke: Woke | None = None) -> NoReturn:
    """Write the health hash every ``interval_s``; after a Redis outage, write what was deferred.
    ``grid_s``: the beat shared with the ticker and the lead task (runtime/beat.py); ``woke``:
    told when each beat's timer woke (runtime/stalls.py rule 1)."""
    loop = asyncio.get_running_loop()
    while True:
        now_ms = clock.wall_ms()
        try:
            async with asyncio.timeout(timeout_s):
                await store.heartbeat(vitals.health(now_ms).to_fields(), wall_ms=now_ms)
                vitals.store_result("")
                if await runner.recover():
                    vitals.heartbeat_written = True
        except Fenced:
            pass  # no longer the leader (logged by the publisher); the lead task takes it again
        except (StoreUnavailable, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                raise_if_cancelling(exc)
            reason = str(exc) or f"heartbeat timed out after {timeout_s:.1f}s"
            if not vitals.store_error:
                logger.warning("redis heartbeat failed: {}", reason)
            vitals.store_result(reason)
        vitals.progressed("heartbeat", clock.monotonic())
        when_s = beat_at(loop.time(), interval_s, grid_s)  # always after now (beat.py rule 1)
        await sleep_until(when_s)
        if woke is not None:
            woke("heartbeat", when_s)
