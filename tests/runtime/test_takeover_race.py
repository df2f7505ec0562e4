"""Red team (docs/RULES.md rule 3; docs/HA.md, "one takeover at a time"): the heartbeat and
the lead task may both take the lease back at once (after Redis lost its data each may
acquire: ``store/lead.py`` rule 1), and a refused beat inside a takeover's own first beat
takes it again: ``Pipeline.take_over`` can be asked twice while it runs. Until session 10 it
ran twice, interleaved (no lock: the nested beat would deadlock on it):

- the second one read what was told (``GuardTask.told``) after the first had republished this
  instance's own standby answers over it, and handed the guard its own start as the one bots
  were told (core/guard.py rule 7: the run takes the told start);
- the second one's first beat read what bots were told (open/closed) after the first one's
  republish, so a stale view this instance republished was told changed a second time;
- a flush between the first one's read of what was told and its first beat: the nested one
  handed the guard what Redis shows after the loss (nothing), then the outer one handed it the
  alert read before the loss, last: the alert lost with the data was never sent again.

Real redis-server; Binance is never called (a 503 transport); the order of events is forced by
gates, never by sleeps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis.asyncio

from tests.support.store import ACCOUNT, make_view, position_key
from tests.support.waiting import eventually
from watchdog.clock import SystemClock
from watchdog.config import Config, Credentials, RedisConfig
from watchdog.core.effects import Publish, PublishProtection
from watchdog.core.guard import Told
from watchdog.core.model import Knowledge, PositionKey, PositionState
from watchdog.errors import StoreError
from watchdog.runtime.build import Endpoints, Pipeline, build, store_of, told_again
from watchdog.store.keys import member_of
from watchdog.store.publisher import RedisPublisher

KEY = position_key("BASUSDT")
GONE = position_key("ETHUSDT")  # closed while this instance stood by; it holds it open, stale


@dataclass
class Paused:
    """An instance paused past its lease while another led, found the stop gone, alerted and
    stopped: its own standby answer (``none`` since its own first sighting) is held for the
    takeover's republish; the other leader's start is earlier."""

    pipeline: Pipeline
    store: RedisPublisher
    client: redis.asyncio.Redis
    heartbeat: Any
    paused_fence: int
    other_since_ms: int
    own_since_ms: int
    handed: list[Mapping[PositionKey, Told]] = field(default_factory=list)
    polled: int = 0


@contextlib.asynccontextmanager
async def paused_instance(redis_url: str) -> AsyncIterator[Paused]:
    config = Config(redis=RedisConfig(url=redis_url, account=ACCOUNT))
    store, other = store_of(config), store_of(config)
    await store.start()
    await other.start()
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(503)),
                             base_url=config.binance.rest_url)
    try:
        async with http, build(config, Credentials("key", "secret"), SystemClock(),
                               Endpoints(http=http, store=store)) as pipeline:
            tasks = pipeline.tasks()
            heartbeat = tasks.pop("heartbeat")
            for coro in tasks.values():
                coro.close()  # built, never started: the test plays the lead task's round
            assert await store.acquire()
            paused = store.fence
            now_ms = pipeline.clock.wall_ms()
            other_since, own_since = now_ms - 60_000, now_ms - 20_000
            # What this instance's core and guard handed it as a standby (written by nobody).
            store.hold([Publish(make_view(KEY, verified_ms=now_ms)),
                        PublishProtection(KEY, "none", own_since),
                        Publish(make_view(GONE, verified_ms=now_ms - 30_000,
                                          knowledge=Knowledge.SUSPECT))])
            await store._redis.delete(store.keys.leader)  # paused past its lease
            assert await other.acquire()
            assert not await other.heartbeat({"pid": 2})
            await other.publish(make_view(KEY, verified_ms=now_ms))
            assert await other.run_many([PublishProtection(KEY, "none", other_since)])
            assert await other.emit("position_unprotected", {"position": member_of(KEY),
                                                             "unprotected_since_ms": other_since})
            await other.publish(make_view(GONE, state=PositionState.CLOSED, verified_ms=now_ms))
            assert await other.emit("position_closed", {"position": member_of(GONE)})
            assert await other.mark_stopped() == "removed"
            state = Paused(pipeline, store, client, heartbeat, paused, other_since, own_since)
            guard_take_over, poller_take_over = pipeline.guard.take_over, pipeline.poller.take_over

            def guard_told(told: Mapping[PositionKey, Told]) -> None:
                state.handed.append(dict(told))
                guard_take_over(told)

            def poller_told() -> None:
                state.polled += 1
                poller_take_over()

            pipeline.guard.take_over = guard_told  # type: ignore[method-assign]
            pipeline.poller.take_over = poller_told  # type: ignore[method-assign]
            yield state
    finally:
        await client.aclose()
        await other.close()
        await store.close()


@contextlib.asynccontextmanager
async def beating(paused: Paused) -> AsyncIterator[asyncio.Task[Any]]:
    task = asyncio.create_task(paused.heartbeat)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until_beat_after(paused: Paused, since: float) -> None:
    progress = paused.pipeline.vitals.progress_at
    await eventually(lambda: asyncio.sleep(0, progress.get("heartbeat", 0.0)),
                     lambda at: at >= since, what="a heartbeat round after the takeover")


async def test_the_lead_tasks_takeover_during_the_heartbeats_joins_it(redis_url: str) -> None:
    """The heartbeat's takeover has republished this instance's own answers and waits on a
    write; the lead task's acquisition (issued while it saw no lead) lands then and asks for
    the takeover again. Handing the guard what Redis shows now would hand it this instance's
    own start (``own_since_ms``) as the one bots were told: it must stay the other leader's.
    Nor may the newer token's first beat read this instance's republished stale view of a
    position the other leader told closed as what bots were told (told closed again)."""
    async with paused_instance(redis_url) as paused:
        pipeline, store = paused.pipeline, paused.store
        recover = pipeline.runner.recover
        at_gate, release = asyncio.Event(), [asyncio.Event(), asyncio.Event()]
        calls = 0

        async def gated_recover() -> bool:
            # The first two takeover passes wait here, after their republish: the heartbeat's
            # until the lead task's has read what was told, the second until the first ends.
            nonlocal calls
            calls += 1
            if calls <= 2:
                at_gate.set()
                await release[calls - 1].wait()
            return await recover()

        pipeline.runner.recover = gated_recover  # type: ignore[method-assign]
        resumed = pipeline.clock.monotonic()
        async with beating(paused):
            await asyncio.wait_for(at_gate.wait(), 10)
            first = store.fence
            assert first > paused.paused_fence, "the heartbeat's path took the lead"
            shown = await paused.client.hget(store.keys.position(KEY), "unprotected_since_ms")
            assert shown == str(paused.own_since_ms), "its own answer is republished already"

            async def lead_round() -> int:  # run_lead's round: acquire, then on_takeover
                assert await store.acquire(announce=True)
                return await pipeline.take_over()

            second = asyncio.create_task(lead_round())
            await eventually(lambda: asyncio.sleep(0, (calls,
                                                       getattr(pipeline, "takeovers_joined", 0))),
                             lambda seen: seen[0] >= 2 or seen[1] >= 1,
                             what="the lead task's takeover at its republish's end, or joined")
            for gate in release:  # the heartbeat's first, then the second
                gate.set()
            await asyncio.wait_for(second, 10)
            await until_beat_after(paused, resumed)
        assert store.leading
        assert store.writable
        assert store.fence > first, "the newer acquisition leads"
        told = {KEY: Told(paused.other_since_ms, True)}
        assert paused.handed
        assert all(handed == told for handed in paused.handed), \
            f"the guard is handed the other leader's start and alert, never its own: {paused.handed}"
        assert paused.polled >= 1
        health = await paused.client.hgetall(store.keys.health)
        position = await paused.client.hgetall(store.keys.position(KEY))
        assert health["fence"] == str(store.fence), "health is written under the newer token"
        assert position["fence"] == str(store.fence), \
            "the position is written under the newer token"
        # The core confirms what the other leader told (closed): told once, by that leader.
        assert await store.publish(make_view(GONE, state=PositionState.CLOSED, version=2,
                                             verified_ms=pipeline.clock.wall_ms()))
        entries: Any = await paused.client.xrange(store.keys.events)
        closed = [fields for _, fields in entries if fields["kind"] == "position_closed"]
        assert [fields["position"] for fields in closed] == [member_of(GONE)], \
            f"the closure is not told a second time after the second pass's republish: {closed}"


async def test_a_flush_inside_the_takeover_sends_the_lost_alert_again(redis_url: str) -> None:
    """Redis loses its data between the takeover's read of what was told and its first beat:
    that beat is refused, the lease is free, and the beat takes the lead again inside the
    running takeover (no deadlock). The other leader's alert went with the data: the guard must
    end up told it is not shown (sent again: repeated, never lost), from the start bots saw."""
    async with paused_instance(redis_url) as paused:
        pipeline, store = paused.pipeline, paused.store
        read_told = pipeline.guard_task.told
        reads: list[dict[PositionKey, Told]] = []

        async def told_then_flush() -> dict[PositionKey, Told]:
            told = await read_told()
            reads.append(told)
            if len(reads) == 1:
                await paused.client.flushall()
            return told

        pipeline.guard_task.told = told_then_flush  # type: ignore[method-assign]
        resumed = pipeline.clock.monotonic()
        async with beating(paused):
            await until_beat_after(paused, resumed)
        assert reads[0] == {KEY: Told(paused.other_since_ms, True)}
        assert store.leading
        assert store.writable
        assert paused.handed, "the guard is handed what was told"
        assert paused.handed[-1] == {KEY: Told(paused.other_since_ms, False)}, \
            f"the alert lost with the data is sent again, from the start bots saw: {paused.handed}"
        health = await paused.client.hgetall(store.keys.health)
        position = await paused.client.hgetall(store.keys.position(KEY))
        assert health["fence"] == str(store.fence)
        assert position["fence"] == str(store.fence)
        assert position["state"] == "open"
        assert position["protection"] == "none"


async def test_a_takeover_that_does_not_finish_fails_its_joiners_and_frees_the_next(
        redis_url: str) -> None:
    """The running takeover is cancelled (the lead task's round timed out): whoever joined it
    learns it did not finish (a ``StoreError`` the heartbeat logs and retries, never a bare
    cancellation that would end its task silently), and the next acquisition runs its own."""
    async with paused_instance(redis_url) as paused:
        paused.heartbeat.close()  # the test plays the lead task's rounds only
        pipeline, store = paused.pipeline, paused.store
        recover = pipeline.runner.recover
        at_gate, never = asyncio.Event(), asyncio.Event()
        calls = 0

        async def gated_recover() -> bool:
            nonlocal calls
            calls += 1
            if calls == 1:
                at_gate.set()
                await never.wait()
            return await recover()

        pipeline.runner.recover = gated_recover  # type: ignore[method-assign]
        assert await store.acquire(announce=True)
        owner = asyncio.create_task(pipeline.take_over())
        await asyncio.wait_for(at_gate.wait(), 10)
        assert await store.acquire(announce=True)
        joiner = asyncio.create_task(pipeline.take_over())
        await eventually(lambda: asyncio.sleep(0, pipeline.takeovers_joined), lambda n: n >= 1,
                         what="the second acquisition joined")
        owner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await owner
        with pytest.raises(StoreError, match="did not finish"):  # never told it finished
            await asyncio.wait_for(joiner, 10)
        assert await pipeline.take_over() == 2, "the next takeover runs (nothing left running)"
        assert store.writable


def test_a_pass_again_hands_the_first_start_and_the_alert_redis_shows_now() -> None:
    """``told_again`` (runtime/build.py rule 7), pure: each case of what the first pass read
    and what Redis shows after this instance wrote."""
    a, b, c, d = (position_key(symbol) for symbol in ("AUSDT", "BUSDT", "CUSDT", "DUSDT"))
    first = {a: Told(100, True), b: Told(200, False), c: Told(None, True)}
    now = {a: Told(900, True),  # its own republished start over the told one: the told start
           b: Told(950, True),  # alerted by this instance since: not sent again
           d: Told(700, False)}  # judged by this instance only: its own start
    assert told_again(first, now) == {
        a: Told(100, True), b: Told(200, True),
        # c: the alert (no start shown) is gone with the data: sent again, nothing to hand
        d: Told(700, False)}
    assert told_again(first, {}) == {a: Told(100, False), b: Told(200, False)}, \
        "all lost: every alert sent again, from the starts bots saw"
