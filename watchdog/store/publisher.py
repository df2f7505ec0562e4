"""RedisPublisher: the watchdog's only writer to Redis (positions, health, events, leases).

Every write is fenced (docs/HA.md): it carries the fencing token this instance got when it
became the account's leader, and Lua refuses it when the token is not the account's any more.
A refused write (``Fenced``) makes the instance a standby at once. A standby writes nothing but
its registration; it keeps the views the core hands it, so a takeover republishes them.

It registers the Lua scripts at startup (``start``), writes positions with a compare-and-set on
version, and keeps the last view it wrote per position so that, when a heartbeat finds Redis
lost its data (restart without persistence, FLUSHALL, failover), it republishes everything
within that same heartbeat. Republished views keep their original ``verified_ms``: freshness is
never refreshed by a republish, so an old view reads as stale, never as new truth.

Rules of this module (the republish, the takeover):
1. No protection is shown once it is gone. The guard's fields are republished as the latest
   answer held per position; a cleared one is held as nothing, so a closed position's fields
   are removed by the write that publishes it closed (``publish_position.lua``): whoever writes
   the closure (a standby taking over, a restarted watchdog, a write again after a failover
   lost it) may never have judged the position open, and until session 9 the old leader's
   ``covered`` stayed beside ``closed`` (docs/HA.md, tests/store/test_protection_cleared.py).
2. No firing marker is shown once its stop is done. The first complete publish of a key in
   each lead term, not only in each run, drops a marker this instance does not hold
   (``clear_firing``): another leader may have written one since this instance last led. Until
   session 9 an instance taking the lead back kept that leader's ``stop_triggered`` veto on
   an open position whose stop it had seen end as a standby (tests/store/test_firing.py).
3. One takeover: a beat refused as ``FENCED`` that finds the lease free takes the lead and
   runs the owner's whole takeover (``on_take_over``: the guard handed what was told, a new
   lead term, the poller's read at once), as the lead task does after its own acquisition.
   Until session 9 it ran only the store's part: an instance paused past its lease whose beat
   ran first after resuming led on without the guard ever seeing a takeover or a standby step
   (core/guard.py rules 1c and 7; tests/runtime/test_build_takeover.py).
4. A takeover asked for while one runs joins it, and the running one passes once more under
   the newest token (runtime/build.py rule 7). That pass's first beat, when the newer token
   must be announced again, reads what Redis shows after the first pass's republish: the
   open/closed states the first pass read and did not tell yet are kept over it (``again``),
   or a position this instance republished from a stale view would be told changed a second
   time once confirmed (``position_closed`` after the other leader's).

Where the rest lives: each script call is built by :mod:`poswatch.calls` (shared with the
bots' client), carried by :mod:`watchdog.store.runner` (every write through :meth:`_write`);
the lead and the fence are :mod:`watchdog.store.lead`, the reads :mod:`watchdog.store.reads`,
the health hash :mod:`watchdog.store.heartbeat`. Over 400 lines on purpose: the held views,
the dirty set and the firing markers are one state that ``publish``, ``run_many``,
``republish`` and the takeover all change; split, their rules would be read in several files.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import redis.asyncio
from loguru import logger

from poswatch.calls import ScriptCall, WatchdogCalls
from poswatch.keys import PositionKeys
from watchdog import __version__
from watchdog.core.effects import (
    Firing,
    MarkFiring,
    Notify,
    Publish,
    PublishProtection,
    RaiseAlert,
    Retract,
    Reverified,
)
from watchdog.core.model import Knowledge, PositionKey, PositionState, PositionView
from watchdog.errors import Fenced, StoreError
from watchdog.store.connection import connect, map_redis_errors
from watchdog.store.heartbeat import Stamp, check_no_secrets, health_value
from watchdog.store.keys import AccountKeys, member_of
from watchdog.store.lead import Leadership
from watchdog.store.refresh import TouchCalls, missed_refreshes
from watchdog.store.runner import ScriptRunner

__all__ = ["RedisPublisher", "StoreEffect"]

StoreEffect = Publish | Reverified | Retract | Notify | RaiseAlert | MarkFiring | PublishProtection

_CORE_TELLS = ("position_opened", "position_closed")  # the changes a takeover tells otherwise


def _plain(number: Decimal) -> str:
    """A Decimal as bots parse it: never exponent notation ('0E-8' → '0.00000000')."""
    return format(number, "f")


@dataclass(frozen=True, slots=True)
class _Retracted:
    reason: str
    version: int


class RedisPublisher(Leadership):
    """Writes what the core decided; one asyncio Redis client, scripts registered at ``start``.

    Args:
        client: an asyncio client made by :func:`watchdog.store.connection.connect`.
        account: ``[redis] account``; every key carries it as the hash tag.
        health_ttl_ms: the health hash expires this long after the last heartbeat.
        closed_ttl_s: a closed position's hash expires this long after it was written.
        events_maxlen: approximate bound of the events stream.
        veto_max_age_ms: the default freshness limit of the verdicts (written to health).
        lead_ttl_ms: the leader lease's TTL ([redis] lead_ttl_ms); renewed every third of it.
    """

    def __init__(self, client: redis.asyncio.Redis, *, account: str, health_ttl_ms: int,
                 closed_ttl_s: float, events_maxlen: int, veto_max_age_ms: int, url: str = "",
                 lead_ttl_ms: int = 1500, instance: str = "") -> None:
        self._redis = client
        self._runner = ScriptRunner(client)
        self._url = url
        self._odd_members: set[str] = set()
        self.keys = AccountKeys(account)
        self.calls = WatchdogCalls(self.keys)
        self._health_ttl_ms = health_ttl_ms
        self._closed_ttl_ms = int(closed_ttl_s * 1000)
        self._events_maxlen = events_maxlen
        self._veto_max_age_ms = veto_max_age_ms
        self._held: dict[PositionKey, PositionView | _Retracted] = {}
        self._protection: dict[PositionKey, PublishProtection] = {}  # the guard's, republished too
        self._names: dict[PositionKey, PositionKeys] = {}  # one entry per position ever seen
        # Keys whose last write failed (Redis unreachable): rewritten by the next heartbeat even
        # when Redis kept its data, so an outage never leaves an older state standing.
        self._dirty: set[PositionKey] = set()
        # Stops firing per position (MarkFiring): written again after every complete publish of
        # that position, so a hash that expired or was lost carries the marker once rewritten.
        self._firing: dict[PositionKey, Firing] = {}
        # Keys whose firing marker this run has written (set or cleared): the first complete
        # publish of a key in this run also drops a marker an earlier run may have left (a
        # crash, a restart: publish_position's clear_firing argument), at no extra call.
        self._firing_synced: set[PositionKey] = set()
        self._touches = TouchCalls(self.calls, self._names_of)
        self._init_lead(lead_ttl_ms, instance)
        self.republished_total = 0
        self._untold: dict[PositionKey, tuple[PositionState, int]] = {}  # see take_over
        # Keys whose open/closed event the core told and its runner deferred (will_tell): the
        # takeover tells no change of theirs, or it would be told twice.
        self._telling: set[PositionKey] = set()
        self._untold_kept = False  # rule 4: a takeover's pass again keeps the first pass's
        # Rule 3: the owner's whole takeover (runtime/build.py ``Pipeline.take_over``, which
        # calls :meth:`take_over`); None: the store's own (a store without a pipeline).
        self.on_take_over: Callable[[], Awaitable[int]] | None = None

    @classmethod
    def from_url(cls, url: str, *, account: str, health_ttl_ms: int, closed_ttl_s: float,
                 events_maxlen: int, veto_max_age_ms: int, socket_timeout_s: float,
                 lead_ttl_ms: int = 1500, sentinels: Sequence[str] = (),
                 sentinel_master: str = "", cluster: bool = False,
                 instance: str = "") -> RedisPublisher:
        """Build the client (explicit retry policy, see ``connection.py``; Sentinel when
        ``sentinels`` are given) and the publisher."""
        client = connect(url, socket_timeout_s=socket_timeout_s, client_name="position-watchdog",
                         sentinels=sentinels, sentinel_master=sentinel_master, cluster=cluster)
        return cls(client, account=account, health_ttl_ms=health_ttl_ms, closed_ttl_s=closed_ttl_s,
                   events_maxlen=events_maxlen, veto_max_age_ms=veto_max_age_ms, url=url,
                   lead_ttl_ms=lead_ttl_ms, instance=instance)

    async def start(self) -> None:
        """Load every script (bots may call them by SHA only). Raises ``StoreUnavailable``."""
        await self._load_scripts()

    async def close(self) -> None:
        await self._redis.aclose()

    async def _load_scripts(self) -> None:
        with map_redis_errors("SCRIPT LOAD", self._url):
            await self._runner.load()

    # ---------------------------------------------------------------- positions

    async def publish(self, view: PositionView) -> bool:
        """Write ``view`` unless Redis holds an equal or newer version; True if written."""
        self._hold(view)
        try:
            written = await self._publish(view)
            if written and (told := self._tell(view)) is not None:
                await self._write([told])
        except StoreError:
            self._dirty.add(view.key)
            raise
        self._dirty.discard(view.key)
        return written

    def _hold(self, view: PositionView) -> None:
        held = self._held.get(view.key)
        if held is None or view.version > held.version:
            self._held[view.key] = view

    async def _publish(self, view: PositionView) -> bool:
        if not self.writable:
            return False  # a standby: held for a takeover, written by the leader
        replies = await self._write(self._view_calls(view))
        written, stored = replies[0]
        if not written:
            logger.debug("publish {} v{} refused: Redis holds v{}", member_of(view.key), view.version,
                         stored)
        self._firing_synced.add(view.key)
        return bool(written)

    def _view_calls(self, view: PositionView) -> list[ScriptCall]:
        """A complete view (compare-and-set on version), then its firing marker if a stop of
        it fires: the first complete publish of a key in this run also drops a marker an
        earlier run may have left (``clear_firing``), at no extra call."""
        firing = self._firing.get(view.key)
        calls = [self.calls.publish_position(
            self._names_of(view.key), version=view.version, state=view.state.value,
            knowledge=view.knowledge.value, amount=_plain(view.amount),
            entry_price=_plain(view.entry_price), source=view.source.value,
            as_of_ms=view.as_of_time_ms, verified_ms=view.verified_ms, reason=view.reason,
            closed_ttl_ms=self._closed_ttl_ms,
            clear_firing=firing is None and view.key not in self._firing_synced, fence=self._fence)]
        if firing is not None:
            calls.append(self._firing_call(view.key, firing))
        return calls

    async def mark_firing(self, key: PositionKey, firing: Firing | None) -> bool:
        """Show (or clear) a firing stop on ``key``'s hash; False when there is no hash yet (the
        marker is then written after the position's next publish)."""
        self._remember_firing(key, firing)
        if not self.writable:
            return False
        try:
            (marked,) = await self._write([self._firing_call(key, firing)])
        except StoreError:
            self._dirty.add(key)
            raise
        return bool(marked)

    def _remember_firing(self, key: PositionKey, firing: Firing | None) -> None:
        if firing is None:
            self._firing.pop(key, None)
        else:
            self._firing[key] = firing

    def _firing_call(self, key: PositionKey, firing: Firing | None) -> ScriptCall:
        names = self._names_of(key)
        if firing is None:
            return self.calls.mark_firing(names, self._fence)
        return self.calls.mark_firing(names, self._fence, algo_id=firing.algo_id,
                                      status=firing.status, since_ms=firing.since_ms,
                                      child_id="" if firing.child_id is None else firing.child_id)

    async def run(self, effect: StoreEffect) -> bool:
        """Run one store effect of the core (:meth:`run_many` of one)."""
        return await self.run_many([effect])

    async def run_many(self, effects: Sequence[StoreEffect]) -> bool:
        """Run store effects in order in ONE pipelined round trip (one call alone: one EVALSHA).
        True when written; False when not writable (a standby, or a takeover whose first beat
        is not written yet): views, firing markers and protections are then held for the
        takeover's republish, events are NOT written (the caller defers them when this instance
        leads: runtime/effects_runner.py rule 6).

        Why: at stream rates one round trip per change caps ingest at Redis latency
        (docs/BENCHMARKS.md, End to end). Redis runs pipelined scripts one after another, in this
        order, so readers see the writes one call each would have made, only sooner. Not a
        transaction: after a ``StoreError`` some writes may have landed; positions are marked
        dirty (rewritten by the next heartbeat, CAS-safe) and events may appear twice if the
        caller retries.
        """
        calls: list[ScriptCall] = []
        touched: set[PositionKey] = set()
        syncing: set[PositionKey] = set()  # firing markers written with this batch
        told_keys: list[PositionKey] = []
        for effect in effects:  # the core tells these itself: no takeover event for them
            if isinstance(effect, Notify) and effect.key is not None \
                    and effect.kind in _CORE_TELLS:
                self._untold.pop(effect.key, None)
                told_keys.append(effect.key)
        # Consecutive re-verifications of one verified_ms go as one touch_verified call, in
        # their place (refresh.py): a Reverified's views (the core's, one per positions read),
        # and Publish refreshes (one each, e.g. deferred while Redis was down).
        touch: list[PositionView] = []  # the run of re-verifications not yet in a call
        touch_ms = 0
        touch_calls: dict[int, list[PositionView]] = {}  # call index -> its re-verifications
        reverified: list[Sequence[PositionView]] = []  # their keys, for the dirty set
        refresh_told: list[ScriptCall] = []  # after their touch call
        telling = self.writable
        held = self._held
        held_get = held.get

        def flush() -> None:
            nonlocal touch, refresh_told
            touch_calls[len(calls)] = touch
            calls.append(self._touch_call(touch, touch_ms))
            calls.extend(refresh_told)
            touch, refresh_told = [], []

        for effect in effects:
            views: Sequence[PositionView] | None = None
            if isinstance(effect, Reverified):  # the hot case: 300 positions a poll
                views, verified_ms = effect.views, effect.verified_ms
            elif isinstance(effect, Publish) and effect.refresh_of \
                    and effect.refresh_of == effect.view.version - 1:
                views, verified_ms = (effect.view,), effect.view.verified_ms
                # (another refresh_of is no refresh as the core makes them, effects rule 2:
                # written in full below)
            if views is not None:
                if touch and verified_ms != touch_ms:
                    flush()
                touch_ms = verified_ms
                for view in views:
                    held_key = view.key
                    last = held_get(held_key)
                    if last is None or view.version > last.version:  # _hold, inline
                        held[held_key] = view
                touch.extend(views)
                reverified.append(views)
                if telling and self._untold:
                    refresh_told.extend(told for view in views if (told := self._tell(view)))
                continue
            if touch:
                flush()
            match effect:
                case Publish(view=view):  # a complete view (refreshes: above)
                    self._hold(view)
                    touched.add(view.key)
                    calls += self._view_calls(view)
                    if telling and (told := self._tell(view)):
                        calls.append(told)
                    syncing.add(view.key)
                case MarkFiring(key=key, firing=firing):
                    self._remember_firing(key, firing)
                    touched.add(key)
                    calls.append(self._firing_call(key, firing))
                case Retract(key=key, reason=reason):
                    touched.add(key)
                    calls.append(self._retract_call(key, self._hold_retracted(key, reason)))
                case Notify(kind=kind, key=key, detail=detail):
                    calls.append(self._emit_call(kind, {**({"position": member_of(key)} if key else {}),
                                                        **dict(detail)}))
                case RaiseAlert(code=code, message=message, key=key, detail=detail):
                    calls.append(self._emit_call("alert", {"code": code, "message": message,
                                                           **({"position": member_of(key)} if key else {}),
                                                           **dict(detail)}))
                case PublishProtection(key=key):
                    touched.add(key)
                    calls.append(self._protection_call(effect))
        if touch:
            flush()

        def reverified_keys() -> Iterator[PositionKey]:  # kept out of ``touched``: 300 a poll
            return (view.key for views in reverified for view in views)

        if not self.writable:
            self._dirty |= touched  # a standby: held for a takeover, which republishes them all
            self._dirty.update(reverified_keys())
            return False
        if not calls:
            return True
        try:
            replies = await self._write(calls)
            for index, entries in touch_calls.items():
                # Redis no longer holds what these re-verify (lost data, a failed write):
                # the complete view, with the usual compare-and-set.
                for view in missed_refreshes(entries, replies[index]):
                    await self._publish(view)
        except StoreError:
            self._dirty |= touched
            self._dirty.update(reverified_keys())
            raise
        self._dirty -= touched
        if self._dirty:
            self._dirty.difference_update(reverified_keys())
        self._firing_synced |= syncing
        if self._telling and told_keys:
            self._telling.difference_update(told_keys)
        return True

    def will_tell(self, key: PositionKey) -> None:
        """The core's open/closed event of ``key`` was deferred by its runner, to be written
        through :meth:`run_many` once writable: a takeover before that tells no change of
        ``key`` (``_tell``), or bots would read the change twice."""
        self._telling.add(key)

    def hold(self, effects: Sequence[StoreEffect]) -> None:
        """Keep ``effects`` as a standby's :meth:`run_many` keeps what it is handed, writing
        nothing: the latest view, firing marker and protection per position, for a takeover's
        republish; events are not kept (the leader tells its own), so none is owed any more
        (:meth:`will_tell`). For what an instance had deferred when it finds another leader
        (runtime/effects_runner.py rule 7)."""
        self._telling.clear()
        for effect in effects:
            match effect:
                case Reverified(views=views):
                    for view in views:
                        self._hold(view)
                        self._dirty.add(view.key)
                case Publish(view=view):
                    self._hold(view)
                    self._dirty.add(view.key)
                case Retract(key=key, reason=reason):
                    self._hold_retracted(key, reason)
                    self._dirty.add(key)
                case MarkFiring(key=key, firing=firing):
                    self._remember_firing(key, firing)
                    self._dirty.add(key)
                case PublishProtection(key=key):
                    self._remember_protection(effect)
                    self._dirty.add(key)
                case Notify() | RaiseAlert():
                    pass

    def _touch_call(self, views: Sequence[PositionView], verified_ms: int) -> ScriptCall:
        """One touch_verified call (refresh.py: the last run's KEYS kept while it is the same)."""
        return self._touches.call(views, verified_ms, self._closed_ttl_ms, self._fence)

    # ---------------------------------------------------------------- the one way to Redis

    async def _write(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Every write goes here: fenced (a ``FENCED`` reply makes this instance a standby),
        then carried by :class:`ScriptRunner` (one EVALSHA, or all in one round trip)."""
        # The calls were built with the token held now (no await since): the refusal of an
        # older token of ours steps nothing down (lead.py rule 1).
        with self._fenced(calls[0].script if len(calls) == 1 else "pipeline", self._fence):
            return await self._runner.run(calls)

    def _names_of(self, key: PositionKey) -> PositionKeys:
        """The key names of ``key``, built and validated once per key."""
        names = self._names.get(key)
        if names is None:
            names = self._names[key] = self.keys.of(key)
        return names

    def _remember_protection(self, effect: PublishProtection) -> None:
        if effect.protection:
            self._protection[effect.key] = effect
        else:
            self._protection.pop(effect.key, None)

    def _protection_call(self, effect: PublishProtection) -> ScriptCall:
        """The guard's fields on the position hash (``set_protection.lua``); remembered so a
        Redis that lost its data gets them back with the position (``republish``)."""
        self._remember_protection(effect)
        return self.calls.set_protection(self._names_of(effect.key), effect.protection,
                                         effect.unprotected_since_ms, effect.guard_order, self._fence)

    def _emit_call(self, kind: str, fields: Mapping[str, object]) -> ScriptCall:
        return self.calls.emit_event(kind, [(name, health_value(value)) for name, value in fields.items()],
                                     self._fence)

    async def retract(self, key: PositionKey, reason: str) -> None:
        """Show ``key`` as unknown with ``reason``; its version is kept (see retract_position.lua)."""
        record = self._hold_retracted(key, reason)
        try:
            await self._retract(key, record)
        except StoreError:
            self._dirty.add(key)
            raise
        self._dirty.discard(key)

    def _hold_retracted(self, key: PositionKey, reason: str) -> _Retracted:
        held = self._held.get(key)
        record = self._held[key] = _Retracted(reason, held.version if held is not None else 0)
        return record

    def _retract_call(self, key: PositionKey, record: _Retracted) -> ScriptCall:
        return self.calls.retract_position(self._names_of(key), record.reason, record.version,
                                           self._fence)

    async def _retract(self, key: PositionKey, record: _Retracted) -> None:
        if self.writable:
            await self._write([self._retract_call(key, record)])

    async def republish(self, now_ms: int, keys: set[PositionKey] | None = None) -> int:
        """Write again every held view, or those of ``keys`` (CAS keeps newer data).

        Closed views older than the closed TTL are dropped instead: Redis would have expired them.
        """
        done = 0
        for key, record in list(self._held.items()):
            if keys is not None and key not in keys:
                continue
            if isinstance(record, _Retracted):
                await self._retract(key, record)
            elif record.state is PositionState.CLOSED and now_ms - record.verified_ms > self._closed_ttl_ms:
                del self._held[key]
                continue
            else:
                await self._publish(record)
            if key in self._protection and self.writable:
                await self._write([self._protection_call(self._protection[key])])
            done += 1
        if keys is None:
            self._dirty.clear()
        else:
            self._dirty.difference_update(keys)
        self.republished_total += done
        return done

    # ---------------------------------------------------------------- health

    async def heartbeat(self, health: Mapping[str, object], *, wall_ms: int | None = None) -> bool:
        """The leader rewrites the health hash (PEXPIRE health_ttl_ms); a standby writes nothing.

        Args:
            health: identity and state as the caller sees it (stream state, last event age, …).
                Values are flattened with :func:`health_value`. A secret-looking field name
                raises ``InvariantViolation``: secrets never go to Redis.
            wall_ms: the watchdog's wall clock (epoch ms); the verdicts measure age on it.

        Returns:
            True when the beat was refused, the lease was free and this instance took the lead
            again and republished everything. Views whose write failed earlier
            (``StoreError`` from publish/retract) are rewritten on every beat. Redis losing our
            data shows as a refused beat (``Fenced``: the fence key went with the rest): the
            instance steps down, takes the lead again at once (``on_take_over``, else
            :meth:`take_over`: rule 3) and republishes everything (this replaced the epoch
            token of earlier versions).
        """
        check_no_secrets(health)
        if not self._fence:
            return False
        now = int(time.time() * 1000) if wall_ms is None else wall_ms
        fields: dict[str, str] = {name: health_value(value) for name, value in health.items()}
        fields.update(Stamp(self._instance, __version__, veto_max_age_ms=self._veto_max_age_ms,
                            events_maxlen=self._events_maxlen, health_ttl_ms=self._health_ttl_ms,
                            republished_total=self.republished_total,
                            lead_ttl_ms=self.lead_ttl_ms).to_fields())
        if not self._announced:
            # The first beat after a takeover, before anything is written under the new fence:
            # what bots were last told (the open/closed states Redis shows). The first
            # confirmed view of each of these keys that differs is told with
            # position_opened/position_closed (``_tell``), as after a restart (core/book.py
            # rule 10), unless the core tells it itself: a standby's own events were never
            # written, and the dead leader may have died before writing its last one.
            keys = set(self._held) | set(await self.published_keys())
            shown = dict(await self.last_shown(frozenset(keys)))
            if not self._announced:  # another beat may have gone first meanwhile
                untold = {key: was for key, was in shown.items() if key not in self._telling}
                # Rule 4: a takeover's pass again reads this instance's own republish; what
                # the first pass read and did not tell yet is still what bots were told.
                self._untold = {**untold, **self._untold} if self._untold_kept else untold
        token = self._fence
        try:
            await self._write([self.calls.heartbeat(self._health_ttl_ms, token, now,
                                                    fields.items())])
            if token == self._fence:  # not a newer acquisition's: its own beat announces it
                self._announced = True
        except Fenced:
            if self._fence and self._fence != token:
                # The refused beat carried an older token of ours: the lead task took the
                # lease again meanwhile. Beat again under the newer one (lead.py rule 1; a
                # third token here would only refuse that one's writes in turn).
                return await self.heartbeat(health, wall_ms=now)
            # Refused: a newer leader holds the lease (acquire fails: stay a standby), or the
            # lease is free: Redis lost our data, the fence and the lease with it (restart
            # without persistence, FLUSHALL, failover), or another leader came and went while
            # this instance was paused past its lease. Lead again at once and take over,
            # within this beat, by the one takeover (rule 3).
            if not await self.acquire(announce=True):
                raise
            logger.warning("the lead was free when this beat was refused (Redis lost the "
                           "watchdog's data, or another leader came and went): leading again "
                           "with fence {}, taking over", self._fence)
            done = await (self.take_over(health, wall_ms=now) if self.on_take_over is None
                          else self.on_take_over())
            logger.info("republished {} position(s) to Redis", done)
            return True
        # No SCRIPT EXISTS here: a Redis that lost the scripts answered this beat's EVALSHA
        # with NOSCRIPT, and the runner loaded every script again, the bots' too (runner.py).
        if self._dirty:
            done = await self.republish(now, set(self._dirty))
            logger.info("rewrote {} position(s) whose write failed earlier", done)
        return False

    async def take_over(self, health: Mapping[str, object], *, wall_ms: int | None = None,
                        again: bool = False) -> int:
        """Just became leader: scripts loaded again (Redis may be new), the health hash naming
        this instance (first: a bot never reads a new leader's position beside the old one's
        health), then every held view republished under the new fence. Returns how many views
        were written. ``again``: a pass again of a takeover that ran already (rule 4)."""
        now = int(time.time() * 1000) if wall_ms is None else wall_ms
        # Rule 2: another leader may have marked stops firing since this instance last wrote.
        self._firing_synced.clear()
        await self._load_scripts()
        self._untold_kept = again
        try:
            await self.heartbeat(health, wall_ms=now)
        finally:
            self._untold_kept = False
        done = await self.republish(now)
        for view in [v for v in self._held.values() if isinstance(v, PositionView)]:
            call = self._tell(view)
            if call is not None:
                await self._write([call])
        return done

    def _tell(self, view: PositionView) -> ScriptCall | None:
        """The event owed for ``view`` after a takeover (see :meth:`take_over`), at most once."""
        if not self._untold or view.knowledge is not Knowledge.CONFIRMED \
                or view.state is PositionState.UNKNOWN or view.key in self._telling:
            return None  # (a change the core's deferred event tells: will_tell)
        shown = self._untold.pop(view.key, None)
        if shown is None or shown[0] is view.state:
            return None
        kind = "position_opened" if view.state is PositionState.OPEN else "position_closed"
        return self._emit_call(kind, {"position": member_of(view.key), "amount": _plain(view.amount),
                                      "while_down": "true", "last_seen_ms": shown[1],
                                      "takeover": "true"})

    async def mark_stopped(self) -> str:
        """Graceful stop: remove our health hash and append ``watchdog_stopped`` atomically, so
        bots get ``watchdog_down`` at once instead of after ``health_ttl_ms``, and hand the lease
        on (a standby takes over without waiting it out). Call only after the heartbeat task has
        ended. Returns ``removed``, ``gone`` (expired already), ``other`` (another instance
        leads: its hash is left alone) or ``standby`` (this instance did not lead); raises
        ``StoreError``."""
        if not self._fence:
            await self._read(self.calls.resign_lead(self._instance))
            return "standby"
        return str(await self._read(self.calls.mark_stopped(self._instance, self._fence)))

    # ---------------------------------------------------------------- events

    async def emit(self, kind: str, fields: Mapping[str, object]) -> str:
        """XADD one event to the bounded stream and PUBLISH it on the channel; returns its id."""
        if not self.writable:
            logger.debug("event {} not written: a standby (the leader writes its own)", kind)
            return ""
        (entry_id,) = await self._write([self._emit_call(kind, fields)])
        return str(entry_id)

    # ---------------------------------------------------------------- veto, watchdog side

    async def revoke_leases_for(self, key: PositionKey, reason: str) -> bool:
        """Revoke the live lease on ``key`` (confirm then vetoes); True if one was revoked."""
        if not self.writable:
            return False
        (revoked,) = await self._write([self.calls.revoke_lease(self._names_of(key), reason, self._fence)])
        return bool(revoked)

    async def mark_reaping(self, key: PositionKey, ttl_ms: int, reason: str = "orphan_removal") -> None:
        """Veto ``begin`` on ``key`` (reason ``reaping``) for up to ``ttl_ms`` while orders are removed."""
        if not self.writable:
            raise Fenced(f"not marking {member_of(key)} reaping: this instance does not lead")
        await self._write([self.calls.mark_reaping(self._names_of(key), self._fence, reason, ttl_ms)])

    async def clear_reaping(self, key: PositionKey) -> None:
        if not self.writable:
            raise Fenced(f"not clearing {member_of(key)}'s reaping mark: this instance does not "
                         "lead (it expires by its TTL)")
        await self._write([self.calls.mark_reaping(self._names_of(key), self._fence, "", 0)])
