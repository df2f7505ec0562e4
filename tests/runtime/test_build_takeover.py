"""``Pipeline.take_over`` (runtime/build.py): what the core ran between the acquisition and the
takeover's first beat was deferred (effects_runner.py rule 6), and the takeover writes it at
once, not a heartbeat later. Real redis-server; Binance is never called (a 503 transport)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import httpx
import redis.asyncio

from tests.support.store import ACCOUNT, make_view, position_key
from tests.support.waiting import eventually
from watchdog.clock import SystemClock
from watchdog.config import Config, Credentials, RedisConfig
from watchdog.core.effects import RaiseAlert
from watchdog.core.guard import Told
from watchdog.core.model import PositionKey
from watchdog.runtime.build import Endpoints, build, store_of
from watchdog.store.keys import AccountKeys, member_of


async def test_the_takeover_writes_an_alert_run_before_its_first_beat(redis_url: str) -> None:
    config = Config(redis=RedisConfig(url=redis_url, account=ACCOUNT))
    store = store_of(config)
    await store.start()
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(503)),
                             base_url=config.binance.rest_url)
    async with http, build(config, Credentials("key", "secret"), SystemClock(),
                           Endpoints(http=http, store=store)) as pipeline:
        for coro in pipeline.tasks().values():
            coro.close()  # built, never started: the test plays the lead task's round
        assert await store.acquire(announce=True)
        alert = RaiseAlert("stream_blind", "test: run before the first beat",
                           position_key("BASUSDT"))
        await pipeline.runner.run([alert])
        assert pipeline.runner.store_down, "deferred until the takeover's first beat"
        await pipeline.take_over()
        assert not pipeline.runner.store_down
    await store.close()
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        entries: Any = await client.xrange(AccountKeys(ACCOUNT).events)
    finally:
        await client.aclose()
    assert [fields.get("code") for _, fields in entries if fields["kind"] == "alert"] \
        == ["stream_blind"]


async def test_a_lead_taken_back_by_the_heartbeat_is_the_pipelines_takeover(
        redis_url: str) -> None:
    """Red team (docs/HA.md, "one takeover path"): an instance paused past its lease while
    another led, alerted and stopped, resumes with its heartbeat first. The beat is refused
    (``FENCED``), the lease is free, and the beat's own path takes the lead. Until session 9
    that path ran only the store's takeover: the lead task then found itself leading and
    renewed, so the pipeline's takeover never ran. The guard was never handed what the other
    leader told (its alert) and kept the lead term it had before the pause (core/guard.py
    rule 1c: covered from a book its stream kept while another led), and the poller read
    nothing at once."""
    config = Config(redis=RedisConfig(url=redis_url, account=ACCOUNT))
    store = store_of(config)
    other = store_of(config)
    await store.start()
    await other.start()
    key = position_key("BASUSDT")
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(503)),
                             base_url=config.binance.rest_url)
    async with http, build(config, Credentials("key", "secret"), SystemClock(),
                           Endpoints(http=http, store=store)) as pipeline:
        tasks = pipeline.tasks()
        heartbeat = tasks.pop("heartbeat")
        for coro in tasks.values():
            coro.close()  # built, never started: only the heartbeat runs
        assert await store.acquire()
        paused = store.fence
        # Paused past its lease: the other instance leads, alerts, and stops (hands the lease on).
        await store._redis.delete(store.keys.leader)
        assert await other.acquire()
        assert not await other.heartbeat({"pid": 2}), "its beat names it (no data was lost)"
        since_ms = pipeline.clock.wall_ms() - 60_000
        await other.publish(make_view(key, verified_ms=pipeline.clock.wall_ms()))
        assert await other.emit("position_unprotected", {"position": member_of(key),
                                                         "unprotected_since_ms": since_ms})
        assert await other.mark_stopped() == "removed"
        handed: list[Mapping[PositionKey, Told]] = []
        polled: list[bool] = []
        guard_take_over, poller_take_over = pipeline.guard.take_over, pipeline.poller.take_over

        def guard_told(told: Mapping[PositionKey, Told]) -> None:
            handed.append(dict(told))
            guard_take_over(told)

        def poller_told() -> None:
            polled.append(True)
            poller_take_over()

        pipeline.guard.take_over = guard_told  # type: ignore[method-assign]
        pipeline.poller.take_over = poller_told  # type: ignore[method-assign]
        resumed = pipeline.clock.monotonic()
        beating = asyncio.create_task(heartbeat)
        try:
            await eventually(
                lambda: asyncio.sleep(0, pipeline.vitals.progress_at.get("heartbeat", 0.0)),
                lambda at: at >= resumed, what="the resumed instance's first heartbeat round")
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        assert store.leading
        assert store.fence > paused, "the beat's own path took the lead"
        assert handed == [{key: Told(since_ms, True)}], \
            "the guard is handed the other leader's alert, and starts a new lead term"
        assert polled == [True], "the poller reads at once, as after any takeover"
    await other.close()
    await store.close()
