"""EffectsRunner and the lead (docs/HA.md, "leader cut from Redis"): what an instance deferred
during a Redis outage is written only by an instance that leads. A single instance that stepped
down during the outage keeps its deferred writes until it leads again, then writes them all; an
instance that finds another leader drops them (the leader tells its own events). Real
redis-server, real publishers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from tests.runtime.test_effects_runner import NOW_MS, Sinks, make_runner
from tests.support.store import ACCOUNT, make_view, position_key
from tests.support.waiting import eventually
from watchdog.clock import SystemClock
from watchdog.core.book import PositionBook
from watchdog.core.effects import Notify, Publish, PublishProtection, RaiseAlert
from watchdog.core.model import PositionState
from watchdog.errors import Fenced, StoreUnavailable
from watchdog.runtime.effects_runner import EffectsRunner
from watchdog.runtime.lead_task import run_lead
from watchdog.runtime.vitals import Identity, Vitals
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEY = position_key("BASUSDT")
KEYS = AccountKeys(ACCOUNT)


def publisher(redis_url: str, instance: str | None = None) -> RedisPublisher:
    """``instance``: another connection of that instance (its other path to the lease)."""
    extra = {} if instance is None else {"instance": instance}
    return RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=5000, closed_ttl_s=60,
                                   events_maxlen=1000, veto_max_age_ms=3000, socket_timeout_s=0.3,
                                   **extra)


@pytest.fixture
async def leader(redis_url: str) -> AsyncIterator[RedisPublisher]:
    pub = publisher(redis_url)
    await pub.start()
    assert await pub.acquire()
    yield pub
    await pub.close()


async def stored(redis_url: str) -> tuple[list[str], str | None]:
    """The event kinds and the position's published state, read by a fresh connection."""
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        entries: Any = await client.xrange(KEYS.events)
        state = await client.hget(KEYS.position(KEY), "state")
        return [str(fields["kind"]) for _, fields in entries], state
    finally:
        await client.aclose()


async def told_closed_once(redis_url: str) -> list[str]:
    """The position is published closed and its closure told exactly once; the event kinds."""
    kinds, state = await stored(redis_url)
    assert state == "closed"
    assert kinds.count("position_closed") == 1, kinds
    return kinds


async def take_back_and_recover(leader: RedisPublisher, runner: Any) -> None:
    """Take the lead back and take over (as run_lead and the daemon's take_over do); then
    the heartbeat task's recover writes what was deferred."""
    assert await leader.acquire(announce=True)
    await leader.take_over({})
    assert await runner.recover()


async def defer_a_closure_then_lose_the_lead(runner: Any, store: RedisPublisher,
                                             redis_server: Any) -> None:
    await runner.run([Publish(make_view(KEY, verified_ms=NOW_MS, version=1))])
    redis_server.stop()
    try:
        closed = make_view(KEY, state=PositionState.CLOSED, verified_ms=NOW_MS + 10, version=2)
        await runner.run([Publish(closed), Notify("position_closed", KEY)])
        assert runner.store_down
        store.step_down("lease not renewed (test: the outage outlived it)")
    finally:
        redis_server.start()  # empty: no persistence, as in the integration test


async def test_a_stepped_down_instance_keeps_its_deferred_writes_until_it_leads_again(
        leader: RedisPublisher, redis_server: Any, redis_url: str) -> None:
    runner, _ = make_runner(leader, Sinks())
    await defer_a_closure_then_lose_the_lead(runner, leader, redis_server)

    assert not await runner.recover(), "not leading: nothing may be written yet"
    assert runner.store_down, "the deferred writes are kept, not lost"
    assert await stored(redis_url) == ([], None)

    # Nobody else leads: it takes the lead back and takes over (as run_lead and the daemon's
    # take_over do), then the heartbeat task's recover writes what was deferred.
    await take_back_and_recover(leader, runner)
    await told_closed_once(redis_url)


async def test_an_instance_that_finds_another_leader_drops_its_deferred_writes(
        leader: RedisPublisher, redis_server: Any, redis_url: str) -> None:
    runner, vitals = make_runner(leader, Sinks())
    await defer_a_closure_then_lose_the_lead(runner, leader, redis_server)
    other = publisher(redis_url)
    await other.start()
    try:
        assert await other.acquire()
        runner.drop_deferred(f"{other.instance} leads account {ACCOUNT} now")
        assert not runner.store_down
        assert vitals.store_error == ""
        assert await runner.recover()  # nothing left to write
        assert await stored(redis_url) == ([], None), "a standby wrote under the leader"
        assert not leader.leading
    finally:
        await other.close()


async def test_an_event_after_a_step_down_on_a_lapsed_lease_is_written_once_it_leads_again(
        leader: RedisPublisher, redis_server: Any, redis_url: str) -> None:
    """Redis goes away while nothing changes, so no write fails; the lead task steps down when
    the lease lapses; only then does a position close. Redis comes back empty (nothing to
    compare at the takeover): the closure's event must still be written, exactly once."""
    runner, _ = make_runner(leader, Sinks())
    leader.lead_ttl_ms = 300  # a short lease: the lapse comes within a second
    now_ms = int(time.time() * 1000)  # republished views are judged on the wall clock
    await runner.run([Publish(make_view(KEY, verified_ms=now_ms, version=1))])

    async def take_over() -> None:  # as the daemon's (runtime/build.py), Redis side only
        await leader.take_over({})

    lead = asyncio.create_task(run_lead(
        leader, take_over, SystemClock(), timeout_s=1.0, on_lapse=runner.lead_lapsed,
        on_other_leader=lambda other: runner.drop_deferred(f"{other} leads")))
    try:
        redis_server.stop()
        try:
            await eventually(lambda: _value(leader.leading), lambda leading: not leading,
                             timeout_s=10, what="the lead task steps down on the lapsed lease")
            closed = make_view(KEY, state=PositionState.CLOSED, verified_ms=now_ms + 10, version=2)
            await runner.run([Publish(closed), Notify("position_closed", KEY)])
            assert runner.store_down, "a stepped-down instance cut from Redis defers, not drops"
            assert not await runner.recover()
        finally:
            redis_server.start()  # empty: no persistence

        async def beat() -> bool:  # the heartbeat task's round (runtime/loops.py run_heartbeat)
            try:
                await leader.heartbeat({})
                return await runner.recover()
            except (Fenced, StoreUnavailable):
                return False

        await eventually(beat, lambda written: written, timeout_s=10,
                         what="the lead taken back and the deferred writes written")
    finally:
        lead.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lead
    await told_closed_once(redis_url)


async def test_a_deferred_event_refused_as_fenced_stays_deferred_until_it_leads_again(
        leader: RedisPublisher, redis_server: Any, redis_url: str) -> None:
    """After Redis lost its data the heartbeat and the lead task may each take this instance's
    own lease back; a deferred write carrying the earlier of the two tokens is refused. The
    refusal makes it a standby, and what was deferred must survive until it leads again."""
    runner, _ = make_runner(leader, Sinks())
    await defer_a_closure_then_lose_the_lead(runner, leader, redis_server)
    assert await leader.acquire(announce=True)
    await leader.take_over({})
    # The same instance's other path takes its own lease again: a newer token.
    same = publisher(redis_url, leader.instance)
    await same.start()
    try:
        assert await same.acquire()
        assert not await runner.recover(), "the older token's writes are refused"
        assert not leader.leading
        assert runner.store_down, "refused, not written: still deferred"
        assert "position_closed" not in (await stored(redis_url))[0]
        assert await leader.acquire(announce=True)  # its own lease: taken back
        await leader.take_over({})
        assert await runner.recover()
    finally:
        await same.close()
    await told_closed_once(redis_url)


async def test_deferred_writes_wait_for_the_takeovers_first_beat(
        leader: RedisPublisher, redis_server: Any, redis_url: str) -> None:
    """Between an acquisition and the takeover's first beat the publisher writes no event (it
    would drop it without a word): what was deferred waits for that beat. Seen on a loaded
    machine: the lead task took the lease again while the heartbeat task was recovering."""
    runner, _ = make_runner(leader, Sinks())
    await defer_a_closure_then_lose_the_lead(runner, leader, redis_server)
    assert await leader.acquire(announce=True)  # leads, its first beat not written yet
    assert leader.leading
    assert not leader.writable
    assert not await runner.recover(), "nothing written before the takeover's first beat"
    assert runner.store_down
    await leader.take_over({})
    assert await runner.recover()
    await told_closed_once(redis_url)


async def _value(value: bool) -> bool:
    return value


class Seen:
    """The runner's observer (the metrics): whether each batch was reported written."""

    def __init__(self) -> None:
        self.written: list[bool] = []

    def effects_run(self, effects: Any, *, written: bool) -> None:
        self.written.append(written)

    def store_written(self, seconds: float) -> None:
        pass


def observed_runner(store: RedisPublisher) -> tuple[EffectsRunner, Seen]:
    seen, sinks = Seen(), Sinks()
    vitals = Vitals(Identity(1, "h", "0", 0), PositionBook(), weight_budget_1m=360, progress_limit_s=10)
    return EffectsRunner(store, sinks, sinks, vitals, store_timeout_s=2.0, observer=seen), seen


ALERT = RaiseAlert("stream_blind", "test: a stop fired and the stream said nothing", KEY)


async def test_a_batch_run_before_the_takeovers_first_beat_is_deferred_not_dropped(
        leader: RedisPublisher, redis_url: str) -> None:
    """Between an acquisition and the takeover's first beat the publisher writes nothing. A
    batch the core ran then was dropped yet reported written: its position events are told
    again by the takeover's comparison with Redis, its alerts never were (rule 6)."""
    runner, seen = observed_runner(leader)
    await runner.run([Publish(make_view(KEY, verified_ms=NOW_MS, version=1))])
    assert await leader.acquire(announce=True)  # the lead task's takeover: not announced yet
    assert leader.leading
    assert not leader.writable
    closed = make_view(KEY, state=PositionState.CLOSED, verified_ms=NOW_MS + 10, version=2)
    await runner.run([Publish(closed), Notify("position_closed", KEY), ALERT])
    assert seen.written[-1] is False, "not written: it must not be reported written"
    assert await stored(redis_url) == ([], "open")
    await leader.take_over({})  # the first beat under the new fence
    assert await runner.recover()
    assert await runner.recover()  # nothing left: written exactly once
    kinds = await told_closed_once(redis_url)
    assert kinds.count("alert") == 1, kinds


async def test_a_batch_refused_as_fenced_is_deferred_until_it_leads_again(
        leader: RedisPublisher, redis_url: str) -> None:
    """Redis lost the fence (FLUSHALL, a restart without persistence) and the core's batch is
    the first write to find out: refused, it was dropped, alert and all, and Redis (empty) left
    the takeover nothing to compare with. It is deferred and written once it leads again."""
    runner, seen = observed_runner(leader)
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    await runner.run([Notify("position_closed", KEY), ALERT])
    assert seen.written[-1] is False
    assert not leader.leading, "refused: its token is gone"
    assert runner.store_down, "deferred, not dropped"
    await take_back_and_recover(leader, runner)
    kinds, _ = await stored(redis_url)
    assert kinds.count("position_closed") == 1, kinds
    assert kinds.count("alert") == 1, kinds


async def test_a_batch_refused_by_another_leaders_fence_is_dropped_when_it_is_seen(
        leader: RedisPublisher, redis_url: str) -> None:
    """Deposed (paused past its lease): its refused batch waits, and is dropped once the lead
    task sees the other leader (the leader tells its own events), never written under it."""
    runner, _ = observed_runner(leader)
    await leader._redis.delete(leader.keys.leader)  # the lease ran out while it was paused
    other = publisher(redis_url)
    await other.start()
    try:
        assert await other.acquire()
        await runner.run([ALERT])
        assert runner.store_down
        assert not await leader.acquire(announce=True)
        runner.drop_deferred(f"{other.instance} leads account {ACCOUNT} now")
        assert await runner.recover()
        assert "alert" not in (await stored(redis_url))[0]
    finally:
        await other.close()


async def protection_of(redis_url: str) -> str | None:
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        value = await client.hget(KEYS.position(KEY), "protection")
        return None if value is None else str(value)
    finally:
        await client.aclose()


async def defer_then_see_another_leader(runner: EffectsRunner, leader: RedisPublisher,
                                        redis_url: str, deferred: list[Any]) -> None:
    """``deferred`` is deferred on a lapsed lease; another instance leads meanwhile and is
    seen (``drop_deferred``), then goes away (its lease deleted: it stopped)."""
    runner.lead_lapsed("test: the lease could not be renewed")
    leader.step_down("test: the lease lapsed")
    await runner.run(deferred)
    assert runner.store_down
    await leader._redis.delete(leader.keys.leader)
    other = publisher(redis_url)
    await other.start()
    try:
        assert await other.acquire()
        assert not await leader.acquire(announce=True)
        runner.drop_deferred(f"{other.instance} leads account {ACCOUNT} now")
        await other.resign("test: it stops")
    finally:
        await other.close()


async def test_what_was_dropped_on_seeing_another_leader_is_republished_at_a_later_takeover(
        leader: RedisPublisher, redis_url: str) -> None:
    """Rule 7: the dropped views and protections are the latest this instance knew. Lost, a
    later takeover republished the older ones, and the guard (which publishes a protection only
    when it changes) believed the newer one shown."""
    runner, _ = observed_runner(leader)
    now_ms = int(time.time() * 1000)  # republished views are judged on the wall clock
    await runner.run([Publish(make_view(KEY, verified_ms=now_ms, version=1)),
                      PublishProtection(KEY, "covered", None)])
    assert await protection_of(redis_url) == "covered"
    await defer_then_see_another_leader(runner, leader, redis_url, [
        Publish(make_view(KEY, verified_ms=now_ms + 10, version=2)),
        PublishProtection(KEY, "none", now_ms)])
    assert await leader.acquire(announce=True)
    await leader.take_over({})
    assert await protection_of(redis_url) == "none", "the latest protection, not the older"
    assert await runner.recover()


async def test_a_protection_dropped_on_seeing_another_leader_is_never_written_later(
        leader: RedisPublisher, redis_url: str) -> None:
    """``drop_deferred`` kept the deferred protections: the next recovery wrote that old
    answer over a newer one, as if current."""
    runner, _ = observed_runner(leader)
    now_ms = int(time.time() * 1000)
    await runner.run([Publish(make_view(KEY, verified_ms=now_ms, version=1)),
                      PublishProtection(KEY, "covered", None)])
    await defer_then_see_another_leader(runner, leader, redis_url,
                                        [PublishProtection(KEY, "none", now_ms)])
    await runner.run([PublishProtection(KEY, "covered", None)])  # as a standby: held
    assert await leader.acquire(announce=True)
    await leader.take_over({})
    assert await protection_of(redis_url) == "covered"
    runner.lead_lapsed("test: another outage")  # and it passes before the lease lapses
    assert await runner.recover()
    assert await protection_of(redis_url) == "covered", "an old answer written as if current"


async def test_a_closure_deferred_by_a_refusal_is_told_once_when_redis_kept_its_data(
        leader: RedisPublisher, redis_url: str) -> None:
    """A batch refused as FENCED (the same instance's other path took the lease: a newer
    token) is deferred, and its store already holds the closed view. The takeover compares
    what Redis shows (open) with that view and would tell the closure, and the core's own
    deferred ``position_closed`` would tell it again: the takeover leaves it to the core."""
    runner, _ = observed_runner(leader)
    now_ms = int(time.time() * 1000)
    await runner.run([Publish(make_view(KEY, verified_ms=now_ms, version=1)),
                      Notify("position_opened", KEY)])
    same = publisher(redis_url, leader.instance)
    await same.start()
    try:
        assert await same.acquire()
    finally:
        await same.close()
    closed = make_view(KEY, state=PositionState.CLOSED, verified_ms=now_ms + 10, version=2)
    await runner.run([Publish(closed), Notify("position_closed", KEY)])
    assert runner.store_down
    await take_back_and_recover(leader, runner)
    await told_closed_once(redis_url)
