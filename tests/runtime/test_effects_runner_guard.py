"""EffectsRunner and the guard's effects, against a real redis-server that goes away: the
protection fields are deferred like positions (the latest per position, written after them)
and the last-resort stop effects reach the guard shell without waiting."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import redis.asyncio

from tests.runtime.test_effects_runner import KEY, KEYS, NOW_MS, Sinks, make_runner, store  # noqa: F401
from tests.support.store import make_view
from watchdog.core.effects import CancelGuardStop, PlaceGuardStop, Publish, PublishProtection
from watchdog.core.model import OrderId
from watchdog.runtime.effects_runner import EffectsRunner
from watchdog.store.publisher import RedisPublisher


class GuardSink:
    def __init__(self) -> None:
        self.orders: list[PlaceGuardStop | CancelGuardStop] = []

    def submit(self, order: PlaceGuardStop | CancelGuardStop) -> None:
        self.orders.append(order)


async def fields(redis_url: str) -> dict[str, str]:
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        return dict(await client.hgetall(KEYS.position(KEY)))
    finally:
        await client.aclose()


async def test_guard_effects_are_routed_and_protection_deferred_through_an_outage(
        store: RedisPublisher, redis_server: Any, redis_url: str) -> None:  # noqa: F811
    sinks, guard = Sinks(), GuardSink()
    runner, vitals = make_runner(store, sinks)
    runner = EffectsRunner(store, sinks, sinks, vitals, store_timeout_s=2.0, guard=guard)
    place = PlaceGuardStop(KEY, "SELL", "wd-guard-1-1", Decimal(5), "none for 10000 ms")
    remove = CancelGuardStop(KEY, OrderId(9), True, "wd-guard-1-1", "covered again")
    await runner.run([Publish(make_view(KEY, verified_ms=NOW_MS, version=1)),
                      PublishProtection(KEY, "covered", None, ""), place, remove])
    assert guard.orders == [place, remove]
    assert (await fields(redis_url))["protection"] == "covered"
    redis_server.stop()
    try:
        await runner.run([PublishProtection(KEY, "none", NOW_MS, "")])
        await runner.run([PublishProtection(KEY, "none", NOW_MS, "wd-guard-1-2")])
        assert runner.store_down
    finally:
        redis_server.start()
    await runner.run([Publish(make_view(KEY, verified_ms=NOW_MS + 5, version=2))])  # deferred too
    # As run_heartbeat does: the beat first (Redis lost the fence with the rest: lead again,
    # republish the held views and their protection, docs/HA.md), then what was deferred.
    assert await store.heartbeat({})
    assert await runner.recover()
    stored = await fields(redis_url)
    assert (stored["protection"], stored["unprotected_since_ms"], stored["guard_order"]) == (
        "none", str(NOW_MS), "wd-guard-1-2")
