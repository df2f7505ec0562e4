"""A read's re-verifications as one ``Reverified`` (core/effects.py rule 3) leave exactly what the
path it replaced left: a ``Publish`` refresh each, written by ``touch_verified`` as it was at
b7481cc (seven values an entry; kept in tests/store/legacy/ for this comparison only).

Random histories of the core (the book property tests' model exchange: stream facts, lagging and
failing reads, gaps, many steady polls) go through two effects runners on one real
redis-server, one account each: the bulk path gets the book's effects as they are, the old path
gets every ``Reverified`` as the refreshes it stands for, and the old publisher's ``run_many``.
Between the core's steps the same mishaps strike both accounts: a hash lost (Redis lost its
data), left at an older version or by an older leader's fence; a newer version, a TTL or a
lost index member set by hand; a retraction, a live lease on a position (a closure revokes it),
firing markers, the guard's fields, a corrupt ``rev``; a lapsed lease (the runners defer, then
write what they deferred) and a step down (the publishers hold and mark dirty, then lead again
with a new token). After every step every key of both accounts is compared (server times only
as written in that step or before), and so is what each publisher holds for a republish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import poswatch.calls
from poswatch.calls import ScriptCall
from poswatch.scripts import script_source
from tests.core.test_book_properties import (
    KEYS,
    POLICY,
    SYMBOLS,
    World,
    _answer,
    _change,
    _request,
    _startup,
)
from tests.runtime.test_effects_runner import Sinks
from tests.support.waiting import eventually
from watchdog.core.book import PositionBook
from watchdog.core.effects import (
    Effect,
    Firing,
    MarkFiring,
    Notify,
    Publish,
    PublishProtection,
    RaiseAlert,
    Retract,
    Reverified,
)
from watchdog.core.events import Event
from watchdog.core.model import OrderId, PositionKey, PositionView
from watchdog.errors import StoreError
from watchdog.runtime.effects_runner import EffectsRunner
from watchdog.runtime.vitals import Identity, Vitals
from watchdog.store.keys import member_of
from watchdog.store.publisher import RedisPublisher, StoreEffect
from watchdog.store.refresh import missed_refreshes

LEGACY = "touch_verified_b7481cc"
_LEGACY_BODY = (Path(__file__).parent / "legacy" / f"{LEGACY}.lua").read_text("utf-8")
SERVER_TIMES = frozenset({"updated_ms", "revoked_ms", "retracted_ms", "at_ms"})  # Redis' clock at the write


class Recorder(PositionBook):
    """The book, keeping every apply's effects for the store."""

    def __init__(self) -> None:
        super().__init__(POLICY)
        self.batches: list[list[Effect]] = []

    def apply(self, event: Event, now_ms: int) -> list[Effect]:
        effects = super().apply(event, now_ms)
        self.batches.append(effects)
        return effects


class LegacyPublisher(RedisPublisher):
    """The old path's store, as it was at b7481cc: ``run_many`` (copied, unchanged but for the
    legacy call and the written flag it returns now, runtime/effects_runner.py rule 6) and
    touch_verified as it was (member, re-verified version, version, verified_ms and state an
    entry)."""

    async def run_many(self, effects: Sequence[StoreEffect]) -> bool:
        assert not any(isinstance(e, Reverified) for e in effects)
        calls: list[ScriptCall] = []
        touched: set[PositionKey] = set()
        syncing: set[PositionKey] = set()  # firing markers written with this batch
        for effect in effects:  # the core tells these itself: no takeover event for them
            if isinstance(effect, Notify) and effect.key is not None \
                    and effect.kind in ("position_opened", "position_closed"):
                self._untold.pop(effect.key, None)
        refreshes: list[tuple[PositionView, int]] = []
        refresh_calls: dict[int, list[tuple[PositionView, int]]] = {}  # call index -> entries
        refresh_told: list[ScriptCall] = []  # after their touch call
        telling = self.writable
        held = self._held
        for effect in effects:
            if type(effect) is Publish and effect.refresh_of:  # the hot case: 300 a poll
                view = effect.view
                last = held.get(view.key)
                if last is None or view.version > last.version:  # _hold, inline
                    held[view.key] = view
                touched.add(view.key)
                refreshes.append((view, effect.refresh_of))
                if telling and self._untold and (told := self._tell(view)):
                    refresh_told.append(told)
                continue
            if refreshes:
                refresh_calls[len(calls)] = refreshes
                calls.append(self._legacy_touch_call(refreshes))
                calls += refresh_told
                refreshes, refresh_told = [], []
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
        if refreshes:
            refresh_calls[len(calls)] = refreshes
            calls.append(self._legacy_touch_call(refreshes))
            calls += refresh_told
        if not self.writable:
            self._dirty |= touched  # a standby: held for a takeover, which republishes them all
            return False
        if not calls:
            return True
        try:
            replies = await self._write(calls)
            for index, entries in refresh_calls.items():
                for view in missed_refreshes([v for v, _ in entries], replies[index]):
                    await self._publish(view)
        except StoreError:
            self._dirty |= touched
            raise
        self._dirty -= touched
        self._firing_synced |= syncing
        return True

    def _legacy_touch_call(self, refreshes: Sequence[tuple[PositionView, int]]) -> ScriptCall:
        k = self.keys
        keys = [k.positions, k.leases, k.events, k.health, k.fence]
        args: list[Any] = [self._closed_ttl_ms, k.channel, self._fence]
        for view, refresh_of in refreshes:
            names = self._names_of(view.key)
            keys += (names.position, names.lease)
            args += (names.member, refresh_of, view.version, view.verified_ms, view.state.value)
        return ScriptCall(LEGACY, keys, args)


def _publisher(cls: type[RedisPublisher], redis_url: str, account: str) -> RedisPublisher:
    return cls.from_url(redis_url, account=account, health_ttl_ms=60_000, closed_ttl_s=600,
                        events_maxlen=1000, veto_max_age_ms=5000, socket_timeout_s=2.0)


def _runner(store: RedisPublisher) -> EffectsRunner:
    vitals = Vitals(Identity(1, "h", "0", 0), PositionBook(), weight_budget_1m=360, progress_limit_s=10)
    return EffectsRunner(store, Sinks(), Sinks(), vitals, store_timeout_s=2.0)


def _plain(field: str, value: str, fences: list[int], since_ms: int) -> str:
    """A field's value as both accounts must agree on it: Redis' clock at a write only as
    "now" (written in this step, from ``since_ms``) or "before", the fencing tokens this
    account's publisher held as "token 0", "token 1"..."""
    if field in SERVER_TIMES:
        return "now" if int(value) >= since_ms else "before"
    if field == "fence" and value in (tokens := [str(f) for f in fences]):
        return f"token {tokens.index(value)}"
    return value


async def contents(r: redis.asyncio.Redis, account: str, fences: list[int],
                   since_ms: int) -> dict[str, object]:
    """Every key of ``account`` but the lead's own (fence, leader, instances, health): its type,
    value (``_plain``) and its TTL (in 100 s
    steps: a closed hash's TTL renewed, 600 s, or not, one set by hand, 300 s)."""
    prefix = f"wd:v1:{{{account}}}:"
    found: dict[str, object] = {}
    async for key in r.scan_iter(match=prefix + "*", count=1000):
        name = key[len(prefix):]
        if name in ("fence", "leader", "instances", "health"):
            continue
        kind = await r.type(key)
        value: object
        if kind == "hash":
            value = {f: _plain(f, v, fences, since_ms) for f, v in (await r.hgetall(key)).items()}
        elif kind == "set":
            value = sorted(await r.smembers(key))
        elif kind == "zset":
            value = await r.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = [{f: _plain(f, v, fences, since_ms) for f, v in fields.items()}
                     for _, fields in await r.xrange(key)]
        else:
            value = await r.get(key)
        ttl = await r.pttl(key)
        found[name] = (kind, value, round(ttl / 100_000) if ttl > 0 else ttl)  # 100 s steps
    return found


_steady = [("request", len(SYMBOLS), 0, 0), ("answer", 0, False), ("advance", 900)]
MISHAPS = ("lose", "older", "newer", "foreign", "ttl", "unindex", "retract", "lease", "fire",
           "unfire", "protect", "rev", "lapse", "standby")
_store_ops = st.tuples(st.sampled_from(MISHAPS),
                       st.integers(0, len(KEYS) - 1))
_ops = st.one_of(_change, _request, _answer, st.tuples(st.just("advance"), st.integers(1, 1500)),
                 st.tuples(st.just("gap"), st.integers(0, 2)), *[st.just(("steady",))] * 5,
                 *[_store_ops] * 4, st.tuples(st.sampled_from(["lapse", "standby", "lease"]),
                                               st.integers(0, len(KEYS) - 1)))
_opened = [*_startup, ("change", KEYS[0], 1, False), ("change", KEYS[1], 2, False),
           ("change", KEYS[2], -1, False), ("steady",)]  # three positions, confirmed
_histories = st.lists(_ops, min_size=10, max_size=40).map(lambda ops: [*_opened, *ops])


class Pair:
    """The two paths, and the same mishaps for both."""

    def __init__(self, r: redis.asyncio.Redis, new: RedisPublisher, old: RedisPublisher) -> None:
        self.r, self.stores = r, (new, old)
        self.runners = (_runner(new), _runner(old))
        self.deferring = 0  # core steps left before a lapsed lease is taken back
        self.standby = 0  # core steps left before the stepped-down publishers lead again
        self.fences: tuple[list[int], list[int]] = ([new.fence], [old.fence])

    async def run(self, effects: list[Effect]) -> None:
        """The bulk path gets the book's effects, the old one every ``Reverified`` as the
        refreshes it stands for (what the book returned at b7481cc)."""
        new, old = self.runners
        await new.run(effects)
        await old.run([p for e in effects for p in (e.publishes() if isinstance(e, Reverified) else [e])])

    async def mishap(self, name: str, index: int) -> None:
        key = KEYS[index]
        if name in ("retract", "fire", "unfire", "protect"):
            effect: Effect = {
                "retract": Retract(key, "stream lost"),
                "fire": MarkFiring(key, Firing(OrderId(4000000017), "TRIGGERING", 5)),
                "unfire": MarkFiring(key, None),
                "protect": PublishProtection(key, "none", 5, "wd-guard-1-1")}[name]
            await self.run([effect])
            return
        if name in ("standby", "lapse") and (self.standby or self.deferring):
            return  # one at a time: a stepped-down runner does not recover (rule 5)
        if name == "standby":  # both step down for two steps (held, dirty), then lead again
            for store in self.stores:
                store.step_down("test: another instance leads")
            self.standby = 3  # this step and the next two
            return
        if name == "lapse":  # a lapsed lease: both defer for two steps, then write it all
            for runner in self.runners:
                runner.lead_lapsed("test: lease lapsed")
            self.deferring = 3  # this step and the next two
            return
        now = await self.now_ms()
        for store in self.stores:
            position, lease = store.keys.position(key), store.keys.lease(key)
            version = await self.r.hget(position, "version")
            if name == "lose":
                await self.r.delete(position)
            elif name == "older" and version is not None:
                await self.r.hset(position, "version", str(max(1, int(version) - 1)))
            elif name == "newer" and version is not None:  # by hand: nothing writes that
                await self.r.hset(position, "version", str(int(version) + 5))
            elif name == "ttl" and version is not None:  # by hand too: an open hash keeps none
                await self.r.pexpire(position, 300_000)
            elif name == "unindex":  # by hand: the index lost a member
                await self.r.srem(store.keys.positions, str(key))
            elif name == "foreign" and version is not None:
                await self.r.hset(position, "fence", "0")
            elif name == "rev" and version is not None:
                await self.r.hset(position, "rev", "x")
            elif name == "lease":
                await self.r.hset(lease, mapping={"token": "9", "holder": "bot-1",
                                                  "expires_ms": str(now + 60_000)})
                await self.r.zadd(store.keys.leases, {str(key): now + 60_000})

    async def recover(self) -> None:
        if self.standby:
            self.standby -= 1
            if not self.standby:
                for store, fences in zip(self.stores, self.fences, strict=True):
                    assert await store.acquire()
                    fences.append(store.fence)
        if self.deferring:
            self.deferring -= 1
            if self.deferring:
                return
        for runner in self.runners:
            if runner.store_down:
                assert await runner.recover()

    async def now_ms(self) -> int:
        seconds, micros = await self.r.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def next_ms(self) -> int:
        """A millisecond of Redis' clock that began after every earlier write: what an earlier
        step wrote in the same millisecond would otherwise count as "now" for one account and
        "before" for the other (seen once the read path got faster, session 10)."""
        since_ms = await self.now_ms() + 1
        await eventually(self.now_ms, lambda now_ms: now_ms >= since_ms, timeout_s=5, interval_s=0.0005,
                         what="Redis' clock past the last step's millisecond")
        return since_ms

    async def compare(self, where: object, since_ms: int) -> None:
        new, old = self.stores
        assert await contents(self.r, "bulk", self.fences[0], since_ms) == await contents(
            self.r, "legacy", self.fences[1], since_ms), where
        assert new._held == old._held, where
        assert new._dirty == old._dirty, where
        assert [r.store_down for r in self.runners] == [bool(self.deferring)] * 2, where


async def _compare(redis_url: str, ops: list[tuple[object, ...]]) -> tuple[int, int]:
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    await r.delete(*[k async for k in r.scan_iter(match="wd:v1:{bulk}:*")],
                   *[k async for k in r.scan_iter(match="wd:v1:{legacy}:*")], "x")
    poswatch.calls._SHAS[LEGACY] = await r.script_load(
        script_source("touch_verified").replace(_read_body("touch_verified"), _LEGACY_BODY))
    new = _publisher(RedisPublisher, redis_url, "bulk")
    old = _publisher(LegacyPublisher, redis_url, "legacy")
    bulk = refreshes = 0
    try:
        for store in (new, old):
            await store.start()
            assert await store.acquire()
        pair = Pair(r, new, old)
        book = Recorder()
        world = World(book=book)
        for step, op in enumerate(ops):
            since_ms = await pair.next_ms()
            name, *args = op
            if name == "steady":
                for part in _steady:
                    getattr(world, str(part[0]))(*part[1:])
            elif name in MISHAPS:
                await pair.mishap(str(name), int(args[0]))  # type: ignore[call-overload]
            else:
                getattr(world, str(name))(*args)
            for effects in book.batches:
                found = [e for e in effects if isinstance(e, Reverified)]
                bulk += len(found)
                refreshes += sum(len(e.views) for e in found)
                await pair.run(effects)
            book.batches.clear()
            await pair.recover()
            await pair.compare((step, op), since_ms)
    finally:
        await new.close()
        await old.close()
        await r.aclose()
    return bulk, refreshes


def _read_body(name: str) -> str:
    source = script_source(name)
    return source[source.index("-- touch_verified:"):]


_STATS: list[tuple[int, int]] = []


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=_histories)
def test_the_bulk_path_leaves_what_a_refresh_each_left(redis_url: str,
                                                      ops: list[tuple[object, ...]]) -> None:
    _STATS.append(asyncio.run(_compare(redis_url, ops)))


def test_the_histories_reverify_in_bulk(redis_url: str) -> None:
    """The comparison means something only if reads re-verify many positions at once, and each
    mishap meets a re-verification: a closed position's lease revoked by a touch, a corrupt
    rev counted again, a hand-made TTL dropped, the index restored, a lost, older, foreign or retracted hash
    written in full, a newer one left alone, a deferral."""
    btc, eth = KEYS[0], KEYS[1]
    steady: list[tuple[object, ...]] = [("steady",)]
    ops: list[tuple[object, ...]] = [
        *_startup, ("change", btc, 1, False), ("change", eth, 2, False), *steady * 2,
        ("change", btc, 0, True), *steady * 2, ("lease", 0), *steady, ("rev", 1), *steady,
        ("foreign", 0), *steady, ("older", 1), *steady, ("ttl", 1), ("ttl", 0), *steady, ("unindex", 1),
        ("unindex", 0), *steady, ("newer", 1), *steady, ("lose", 0), *steady, ("retract", 1),
        *steady, ("lapse", 0), *steady * 3, ("fire", 1), ("protect", 1), *steady * 2,
        ("standby", 0), *steady * 3, ("lose", 1), ("standby", 0), ("change", eth, 3, False),
        *steady * 3]
    bulk, refreshes = asyncio.run(_compare(redis_url, ops))
    assert bulk >= 12
    assert refreshes >= 2 * bulk  # several positions in one effect
