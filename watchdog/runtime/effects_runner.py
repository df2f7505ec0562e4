"""Runs the core's effects, in the order returned, against the store, the poller, the reaper
and the user stream (``Reconnect``).

Rules of this module:
1. Store effects (Publish, Reverified, Retract, Notify, RaiseAlert, MarkFiring,
   PublishProtection) are awaited in order; snapshot requests
   and cancels are handed to their own tasks without waiting (the core loop must never wait on
   Binance).
2. Redis down is a state, not a crash and not a stall: after one ``StoreUnavailable`` the runner
   stops writing and *defers* (the latest view per position, and events in order, bounded), so
   the core loop keeps pace with the stream (a ``Reverified`` is deferred as the refreshes it
   stands for, one per position: core/effects.py rule 3). The heartbeat task calls
   :meth:`recover` once Redis answers again, which writes the deferred effects before new ones
   flow. Readers meanwhile see the positions' ``verified_ms`` age, and the veto says ``stale`` /
   ``watchdog_down``.
3. Every alert and notification is also logged, so an operator sees it with Redis down.
4. A step-down on a lapsed lease (the lead task could not reach Redis for a whole lease, and saw
   no other leader) is that same outage: the runner defers from then on (:meth:`lead_lapsed`),
   even if none of its own writes failed yet. A stepped-down instance's store writes nothing,
   so without this an event the core produced after the step-down was dropped silently, and
   when Redis came back empty no takeover comparison could tell it again.
5. What was deferred is written only while the store is writable (leading, and a takeover's
   first beat written), checked before each write, and a write refused as ``FENCED`` stays
   deferred: after Redis lost its data the heartbeat and the lead task may each take the lease
   back, so the refused token may be this instance's own older one, and a newer acquisition
   leaves the store unannounced for a moment, when the publisher would drop an event without a
   word. What was deferred is dropped only when another instance is seen leading.
6. A batch is reported written (the observer's ``written``) only when it reached Redis. One the
   store would not write while this instance leads (a takeover's first beat not written yet),
   or one refused as ``FENCED``, is deferred as in rule 2 and written once the store is
   writable (:meth:`recover`, run by the takeover and by each beat), exactly once. Without it
   such a batch was dropped yet reported written: its position events were told again by the
   takeover's comparison with Redis, its alerts and other events were lost. (A pipeline cut
   by a fence moving in the middle of it may have written its first events: they may appear
   twice, never not at all.) A standby's batch is not written and not deferred: the leader
   tells its own. A deferred ``position_opened``/``position_closed`` is the core's to tell:
   the store's takeover comparison leaves its key alone (``will_tell``), or a store that
   held the batch's view would tell the change too, and bots would read it twice.
7. Dropping what was deferred (another instance leads) hands the views, firing markers and
   protections to the store to hold, as a standby's store holds what it is handed: a later
   takeover republishes them as the latest this instance knew. Kept here (protections were),
   they were written over newer state at the next outage's recovery; thrown away, a takeover
   republished older ones while the guard believed the newer published (it publishes a
   protection only when it changes).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, assert_never

from loguru import logger

from watchdog.cancel import raise_if_cancelling
from watchdog.core.effects import (
    CancelGuardStop,
    CancelOrder,
    Effect,
    Firing,
    MarkFiring,
    Notify,
    PlaceGuardStop,
    PrepareStandby,
    Publish,
    PublishProtection,
    RaiseAlert,
    ReadNow,
    Reconnect,
    RequestSnapshot,
    Retract,
    Reverified,
)
from watchdog.core.model import PositionKey
from watchdog.errors import Fenced, StoreUnavailable
from watchdog.runtime.vitals import Vitals
from watchdog.store.publisher import RedisPublisher, StoreEffect

__all__ = ["CancelSink", "EffectsObserver", "EffectsRunner", "GuardSink", "SnapshotSink"]

_MAX_DEFERRED_EVENTS = 1000
_WARN_KINDS = frozenset({"position_unprotected"})  # core/guard.py rule 3: an operator must see it


class _NotWritable(Exception):
    """Raised by ``_call``: the store would not write a deferred effect now (rule 5)."""


class SnapshotSink(Protocol):
    """The poller side: queue a REST read (coalesced by the poller); must not block."""

    def request_snapshot(self, request: RequestSnapshot) -> None: ...

    def read_now(self, effect: ReadNow) -> None: ...


class CancelSink(Protocol):
    """The reaper shell side: queue one cancel (re-checked before it is sent); must not block."""

    def submit(self, cancel: CancelOrder) -> None: ...


class EffectsObserver(Protocol):
    """Sees what the runner did (the metrics): must not block nor raise."""

    def effects_run(self, effects: Sequence[Effect], *, written: bool) -> None: ...

    def store_written(self, seconds: float) -> None: ...


class GuardSink(Protocol):
    """The guard shell side: queue a last-resort stop placement or removal; must not block."""

    def submit(self, order: PlaceGuardStop | CancelGuardStop) -> None: ...


class EffectsRunner:
    """Turns effects into I/O; the core loop is its only caller (besides ``recover``)."""

    def __init__(self, store: RedisPublisher, snapshots: SnapshotSink, cancels: CancelSink,
                 vitals: Vitals, *, store_timeout_s: float,
                 reconnect: Callable[[str], None] | None = None,
                 standby: Callable[[str], None] | None = None,
                 observer: EffectsObserver | None = None,
                 guard: GuardSink | None = None) -> None:
        self._store = store
        self._observer = observer
        self._guard = guard
        self._reconnect = reconnect  # the user stream's: replace the connection
        self._standby = standby  # the user stream's: open a standby connection
        self._snapshots = snapshots
        self._cancels = cancels
        self._vitals = vitals
        self._timeout_s = store_timeout_s
        self._down = False
        self._positions: dict[PositionKey, Publish | Retract] = {}
        self._firing: dict[PositionKey, MarkFiring] = {}
        self._protections: dict[PositionKey, PublishProtection] = {}  # the guard's, deferred
        self._events: deque[Notify | RaiseAlert] = deque(maxlen=_MAX_DEFERRED_EVENTS)
        self._events_dropped = 0
        # One recovery at a time: the heartbeat task's and the takeover's (rule 6) would
        # otherwise interleave the deferred events.
        self._recovering = asyncio.Lock()

    @property
    def store_down(self) -> bool:
        """True from a failed write until :meth:`recover` has written everything deferred."""
        return self._down

    async def run(self, effects: list[Effect]) -> None:
        """Run ``effects`` in order. Raises only what is not a store outage."""
        writes: list[StoreEffect] = []
        read_now = self._snapshots.read_now
        for effect in effects:
            if type(effect) is ReadNow:  # one per stream event: the hot case of a flood
                read_now(effect)
                continue
            if type(effect) is Reverified or (type(effect) is Publish and effect.refresh_of):
                writes.append(effect)  # re-verifications (300 a poll): nothing to log (_log)
                continue
            match effect:
                case Publish() | Retract() | Notify() | RaiseAlert() | MarkFiring():
                    _log(effect)
                    writes.append(effect)
                case Reverified():  # pragma: no cover - taken above, without a log line
                    writes.append(effect)
                case Reconnect(reason=reason):
                    if self._reconnect is None:
                        logger.error("reconnect effect without a user stream (not run): {}",
                                     reason)
                    else:
                        self._reconnect(reason)
                case PrepareStandby(reason=reason):
                    if self._standby is None:
                        logger.debug("standby effect without a user stream (not run): {}",
                                     reason)
                    else:
                        self._standby(reason)
                case RequestSnapshot():
                    self._snapshots.request_snapshot(effect)
                case ReadNow():
                    self._snapshots.read_now(effect)
                case CancelOrder():
                    self._cancels.submit(effect)
                case PublishProtection():
                    _log(effect)
                    writes.append(effect)
                case PlaceGuardStop() | CancelGuardStop():
                    if self._guard is None:
                        logger.error("guard stop effect without a guard shell (not sent): {}",
                                     effect)
                    else:
                        self._guard.submit(effect)
                case _:
                    assert_never(effect)
        # All store writes of this batch in one pipelined round trip, in order (bench/run.py:
        # one round trip per change capped ingest at Redis latency on a busy 2-core machine).
        written = await self._write_many(writes)
        if self._observer is not None:
            self._observer.effects_run(effects, written=written)

    async def _write_many(self, writes: list[StoreEffect]) -> bool:
        """True when ``writes`` reached Redis now, False when they were deferred."""
        if not writes:
            return True
        if not self._down:
            try:
                started = time.perf_counter()
                async with asyncio.timeout(self._timeout_s):
                    written = await self._store.run_many(writes)
                if written:
                    if self._observer is not None:
                        self._observer.store_written(time.perf_counter() - started)
                    return True
                if not self._store.leading:
                    return False  # a standby writes nothing: the leader's writes are what bots see
                self._hold_back("INFO", "this instance leads, its takeover's first beat is not "
                                "written yet")  # rule 6
                return self._defer_all(writes)
            except Fenced as exc:  # rule 6: kept until it leads again or sees another leader
                self._hold_back("WARNING", f"refused: {exc}")
                return self._defer_all(writes)
            except TimeoutError as exc:
                raise_if_cancelling(exc)
                error = StoreUnavailable(f"redis write timed out after {self._timeout_s:.1f}s")
                error.__cause__ = exc
            except StoreUnavailable as exc:
                error = exc
            self._down = True
            self._vitals.store_result(str(error))
            logger.warning("redis write failed, deferring writes until it answers: {}", error)
        return self._defer_all(writes)

    def _defer_all(self, writes: list[StoreEffect]) -> bool:
        for effect in writes:  # some may have landed: rewriting them is safe (CAS on version)
            self._defer(effect)
        return False

    def _hold_back(self, level: str, why: str) -> None:
        """Defer from now on (rule 6): not an outage, so no store error in the health hash
        (a takeover's first beat would carry it)."""
        self._down = True
        logger.log(level, "deferring writes until this instance's store writes again: {}", why)

    async def recover(self) -> bool:
        """Write what was deferred while Redis was down; True when the store is writable again."""
        if not self._down:
            return True
        async with self._recovering:
            return await self._recover()

    async def _recover(self) -> bool:
        if not self._down:
            return True
        if not self._store.writable:
            # Stepped down during the outage (the lease lapsed): keep what was deferred until
            # this instance leads again (the lead task takes the lease back at once when it is
            # free), or drop it when another instance leads (``drop_deferred``).
            return False
        # Positions first: a bot that reads an event checks the position next. Each effect is
        # taken out before the await: the core loop may defer a newer one for the same key
        # meanwhile, and that one must survive (it is written on the next pass).
        while self._positions:
            key = next(iter(self._positions))
            position = self._positions.pop(key)
            try:
                await self._call(position)
            except (StoreUnavailable, Fenced, _NotWritable) as exc:
                self._positions.setdefault(key, position)
                self._vitals.store_result(str(exc))
                return False
        while self._firing:  # after the positions: a marker needs its position's hash
            key = next(iter(self._firing))
            mark = self._firing.pop(key)
            try:
                await self._call(mark)
            except (StoreUnavailable, Fenced, _NotWritable) as exc:
                self._firing.setdefault(key, mark)
                self._vitals.store_result(str(exc))
                return False
        while self._protections:  # after the positions: the script writes only existing hashes
            key = next(iter(self._protections))
            protection = self._protections.pop(key)
            try:
                await self._call(protection)
            except (StoreUnavailable, Fenced, _NotWritable) as exc:
                self._protections.setdefault(key, protection)
                self._vitals.store_result(str(exc))
                return False
        while self._events:
            event = self._events.popleft()
            try:
                await self._call(event)
            except (StoreUnavailable, Fenced, _NotWritable) as exc:
                if len(self._events) == self._events.maxlen:
                    self._events_dropped += 1  # appendleft drops the newest: count it
                self._events.appendleft(event)
                self._vitals.store_result(str(exc))
                return False
            if self._positions:
                return await self._recover()  # a position changed meanwhile: it goes first
        if self._events_dropped:
            logger.warning("redis was down: {} event(s) could not be kept for the events stream",
                           self._events_dropped)
            self._events_dropped = 0
        self._down = False
        self._vitals.store_result("")
        logger.info("redis writable again: deferred effects written")
        return True

    def lead_lapsed(self, why: str) -> None:
        """The lead task stepped down because Redis could not prove the lease (rule 4): defer
        every write from now on, as after a failed write, until this instance leads again
        (:meth:`recover`) or sees another leader (:meth:`drop_deferred`)."""
        if self._down:
            return
        self._down = True
        self._vitals.store_result(why)
        logger.warning("deferring writes until this instance leads again: {}", why)

    def drop_deferred(self, why: str) -> None:
        """Another instance leads: what this one deferred is not its to write any more (the
        leader tells its own events; a takeover tells what bots missed, docs/HA.md)."""
        if not self._down:
            return
        held: list[StoreEffect] = [*self._positions.values(), *self._firing.values(),
                                   *self._protections.values()]
        count = len(held) + len(self._events)
        self._store.hold(held)  # rule 7: the latest this instance knew, for a later takeover
        self._positions.clear()
        self._firing.clear()
        self._protections.clear()
        self._events.clear()
        self._events_dropped = 0
        self._down = False
        self._vitals.store_result("")
        logger.warning("dropped {} deferred write(s), its views held for a takeover: {}", count,
                       why)

    async def _call(self, effect: StoreEffect) -> None:
        """One deferred write; ``Fenced`` is raised on: the caller keeps the effect (rule 5)."""
        if not self._store.writable:  # checked here: nothing yields between this and the write
            raise _NotWritable("deferred writes kept: this instance does not lead, or its "
                               "takeover's first beat is not written yet")
        try:
            async with asyncio.timeout(self._timeout_s):
                written = await self._store.run(effect)
        except TimeoutError as exc:
            raise_if_cancelling(exc)
            raise StoreUnavailable(f"redis write timed out after {self._timeout_s:.1f}s") from exc
        if not written:  # pragma: no cover - writable was checked with nothing awaited since
            raise _NotWritable("deferred write not written: the store stopped writing")

    def _defer(self, effect: StoreEffect) -> None:
        match effect:
            case Publish(view=view):
                self._positions.pop(view.key, None)  # keep the order of last change
                self._positions[view.key] = effect
            case Reverified():  # the latest view per position, as the refreshes it stands for
                for publish in effect.publishes():
                    self._positions.pop(publish.view.key, None)
                    self._positions[publish.view.key] = publish
            case Retract(key=key):
                self._positions.pop(key, None)
                self._positions[key] = effect
            case MarkFiring(key=key):
                self._firing.pop(key, None)
                self._firing[key] = effect
            case PublishProtection(key=key):
                self._protections.pop(key, None)
                self._protections[key] = effect
            case Notify() | RaiseAlert():
                if type(effect) is Notify and effect.key is not None \
                        and effect.kind in ("position_opened", "position_closed"):
                    self._store.will_tell(effect.key)  # a takeover must not tell it too
                if len(self._events) == self._events.maxlen:
                    self._events_dropped += 1
                self._events.append(effect)


def _log(effect: StoreEffect) -> None:
    match effect:
        case RaiseAlert(code=code, message=message, key=key):
            logger.warning("alert {}: {}{}", code, message, f" position={key}" if key else "")
        case Notify(kind=kind, key=key, detail=detail):
            logger.log("WARNING" if kind in _WARN_KINDS else "INFO", "{}{}{}", kind,
                       f" position={key}" if key else "", "".join(f" {k}={v}" for k, v in detail))
        case Publish(refresh_of=refresh_of) if refresh_of:
            pass  # only verified_ms moved: a line per position per poll would say nothing new
        case Reverified():
            pass  # the same, for many positions
        case Publish(view=view):
            logger.debug("publish {} state={} knowledge={} amount={} v{}", view.key, view.state.value,
                         view.knowledge.value, view.amount, view.version)
        case Retract(key=key, reason=reason):
            logger.info("retract {}: {}", key, reason)
        case MarkFiring(key=key, firing=None):
            logger.info("stop no longer firing position={}", key)
        case MarkFiring(key=key, firing=Firing() as firing):
            logger.info("stop firing position={} algo={} status={} since_ms={} child={}", key,
                        firing.algo_id, firing.status, firing.since_ms, firing.child_id)
        case PublishProtection(key=key, protection=protection, unprotected_since_ms=since):
            logger.debug("protection {} {} since={}", key, protection or "-", since)
