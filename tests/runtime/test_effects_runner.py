"""EffectsRunner against a real redis-server that goes away: writes are deferred, not lost,
the caller is not stalled or killed, and ``recover`` writes them (positions first)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from tests.support.store import ACCOUNT, make_view, position_key
from watchdog.core.book import PositionBook
from watchdog.core.effects import (
    CancelOrder,
    Firing,
    MarkFiring,
    Notify,
    Publish,
    RaiseAlert,
    ReadNow,
    Reconnect,
    RequestSnapshot,
)
from watchdog.core.model import OrderId, PositionState
from watchdog.runtime.effects_runner import EffectsRunner
from watchdog.runtime.vitals import Identity, Vitals
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEY = position_key("BASUSDT")
KEYS = AccountKeys(ACCOUNT)
NOW_MS = 1_764_000_000_000


class Sinks:
    """Where the runner hands snapshot requests and cancels (the poller's and reaper's queues)."""

    def __init__(self) -> None:
        self.snapshots: list[RequestSnapshot] = []
        self.reads_now: list[ReadNow] = []
        self.cancels: list[CancelOrder] = []
        self.blind: list[str] = []

    def request_snapshot(self, request: RequestSnapshot) -> None:
        self.snapshots.append(request)

    def read_now(self, effect: ReadNow) -> None:
        self.reads_now.append(effect)

    def submit(self, cancel: CancelOrder) -> None:
        self.cancels.append(cancel)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisPublisher]:
    # A short socket timeout and no client retries: the outage must show up quickly.
    pub = RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=5000, closed_ttl_s=60,
                                  events_maxlen=1000, veto_max_age_ms=3000, socket_timeout_s=0.3)
    await pub.start()
    assert await pub.acquire()  # the only instance: it leads
    yield pub
    await pub.close()


def make_runner(store: RedisPublisher, sinks: Sinks) -> tuple[EffectsRunner, Vitals]:
    vitals = Vitals(Identity(1, "h", "0", 0), PositionBook(), weight_budget_1m=360, progress_limit_s=10)
    runner = EffectsRunner(store, sinks, sinks, vitals, store_timeout_s=2.0,
                           reconnect=sinks.blind.append)
    return runner, vitals


async def event_kinds(redis_url: str) -> list[str]:
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        entries: Any = await client.xrange(KEYS.events)
        return [str(fields["kind"]) for _, fields in entries]
    finally:
        await client.aclose()


async def read(redis_url: str, *command: Any) -> Any:
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        return await client.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()


async def test_effects_are_routed(store: RedisPublisher, redis_url: str) -> None:
    sinks = Sinks()
    runner, _ = make_runner(store, sinks)
    cancel = CancelOrder(KEY, OrderId(7), is_algo=True, client_id="ts-1", reason="orphan")
    await runner.run([Publish(make_view(KEY, verified_ms=NOW_MS)), RequestSnapshot("gap"), cancel,
                      RaiseAlert("stream_blind", "REST shows a change", KEY),
                      Reconnect("REST shows a change"), ReadNow(KEY.symbol)])
    assert sinks.snapshots == [RequestSnapshot("gap")]
    assert sinks.reads_now == [ReadNow(KEY.symbol)]
    assert sinks.cancels == [cancel]
    assert sinks.blind == ["REST shows a change"]
    assert await read(redis_url, "HGET", KEYS.position(KEY), "state") == "open"
    kinds = await event_kinds(redis_url)
    assert "alert" in kinds


async def test_only_a_reconnect_effect_replaces_the_stream(store: RedisPublisher) -> None:
    """The core says when to reconnect (core/blindness.py rule 3); the runner reads no alert code."""
    sinks = Sinks()
    runner, _ = make_runner(store, sinks)
    await runner.run([RaiseAlert("stream_blind", "REST shows a change", KEY)])
    assert sinks.blind == []
    await runner.run([Reconnect("canary unseen")])
    assert sinks.blind == ["canary unseen"]


async def test_redis_outage_defers_then_recover_writes_everything(
        store: RedisPublisher, redis_server: Any, redis_url: str) -> None:
    sinks = Sinks()
    runner, vitals = make_runner(store, sinks)
    await runner.run([Publish(make_view(KEY, verified_ms=NOW_MS, version=1))])
    redis_server.stop()
    try:
        closed = make_view(KEY, state=PositionState.CLOSED, verified_ms=NOW_MS + 10, version=2)
        await runner.run([Publish(closed), Notify("position_closed", KEY), RequestSnapshot("after")])
        assert runner.store_down
        assert vitals.store_error
        assert "redis writes failing" in " ".join(vitals.problems())
        assert sinks.snapshots == [RequestSnapshot("after")], "non-store effects still run"
        assert not await runner.recover(), "Redis is still down"
    finally:
        redis_server.start()
    # As run_heartbeat does: the beat first (Redis lost the fence with the rest: lead again,
    # republish the held views, docs/HA.md), then what the runner deferred.
    assert await store.heartbeat({})
    assert await runner.recover()
    assert not runner.store_down
    assert vitals.store_error == ""
    assert await read(redis_url, "HGET", KEYS.position(KEY), "state") == "closed"
    kinds = await event_kinds(redis_url)
    assert "position_closed" in kinds


async def test_a_firing_marker_is_deferred_during_an_outage_and_written_after_its_position(
        store: RedisPublisher, redis_url: str, redis_server: Any) -> None:
    sinks = Sinks()
    runner, _ = make_runner(store, sinks)
    firing = Firing(OrderId(9), "TRIGGERING", NOW_MS)
    redis_server.stop()
    try:
        await runner.run([Publish(make_view(KEY, verified_ms=NOW_MS)), MarkFiring(KEY, None),
                          MarkFiring(KEY, firing)])
        assert runner.store_down
    finally:
        redis_server.start()
    # As run_heartbeat does: the beat first (Redis lost the fence with the rest: lead again,
    # republish the held views, docs/HA.md), then what the runner deferred.
    assert await store.heartbeat({})
    assert await runner.recover()
    fields = await read(redis_url, "HGETALL", KEYS.position(KEY))
    assert fields["state"] == "open"
    assert fields["firing_algo_id"] == "9"  # the latest marker, written after its hash
