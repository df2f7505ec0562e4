"""Fencing against real Redis (docs/HA.md): once a newer instance leads, every write path of
the older one is refused by Lua (``Fenced``), leaves Redis unchanged, and makes it a standby;
the token never goes backwards, even when Redis lost the fence key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio

from tests.support.store import ACCOUNT, make_view, now_ms, position_key, take_lead
from watchdog.core.effects import Firing, MarkFiring, Notify, Publish, PublishProtection, Retract
from watchdog.core.model import OrderId, PositionState
from watchdog.errors import Fenced
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
KEY = position_key()


def new_publisher(redis_url: str) -> RedisPublisher:
    return RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=10_000, closed_ttl_s=60,
                                   events_maxlen=1000, veto_max_age_ms=5_000, socket_timeout_s=2.0)


@pytest.fixture
async def deposed(redis_url: str, publisher: RedisPublisher) -> AsyncIterator[RedisPublisher]:
    """``publisher`` led and wrote; then a second instance took the lead (its lease lapsed)."""
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(KEY, version=1, verified_ms=now_ms()))
    newer = new_publisher(redis_url)
    await newer.start()
    await take_lead(newer)
    await newer.heartbeat({"stream": "live"})
    assert newer.fence > publisher.fence
    yield publisher
    await newer.close()


async def dataset(rclient: redis.asyncio.Redis) -> dict[str, object]:
    """Every key but the instances set (each instance's own registration, leader or not)."""
    return {key: await rclient.dump(key) for key in await rclient.keys("*")
            if key != KEYS.instances}


WRITES: dict[str, Callable[[RedisPublisher], Awaitable[object]]] = {
    "publish": lambda p: p.publish(make_view(KEY, state=PositionState.CLOSED, version=9,
                                             verified_ms=now_ms())),
    "retract": lambda p: p.retract(KEY, "stream_lost"),
    "heartbeat": lambda p: p.heartbeat({"stream": "live"}),
    "emit": lambda p: p.emit("alert", {"code": "x"}),
    "revoke_lease": lambda p: p.revoke_leases_for(KEY, "operator"),
    "mark_firing": lambda p: p.mark_firing(KEY, Firing(OrderId(7), "TRIGGERING", now_ms())),
    "mark_reaping": lambda p: p.mark_reaping(KEY, 5_000),
    "clear_reaping": lambda p: p.clear_reaping(KEY),
    "set_protection": lambda p: p.run(PublishProtection(KEY, "none", now_ms(), "wd-guard-1-1")),
    "run_many": lambda p: p.run_many([Publish(make_view(KEY, version=9, verified_ms=now_ms())),
                                      Retract(KEY, "x"), Notify("position_opened", KEY),
                                      MarkFiring(KEY, None),
                                      PublishProtection(KEY, "covered", None)]),
}


@pytest.mark.parametrize("path", sorted(WRITES))
async def test_every_write_of_a_deposed_leader_is_refused_and_changes_nothing(
        path: str, deposed: RedisPublisher, rclient: redis.asyncio.Redis) -> None:
    before = await dataset(rclient)
    with pytest.raises(Fenced):
        await WRITES[path](deposed)
    assert await dataset(rclient) == before
    assert not deposed.leading
    assert not await deposed.confirm_lead()  # the reaper's check before a cancel says no
    # A standby writes nothing at all afterwards (no round trip, nothing refused).
    if path not in ("mark_reaping", "clear_reaping"):
        await WRITES[path](deposed)
        assert await dataset(rclient) == before


async def test_the_token_never_goes_backwards_when_redis_lost_the_fence(
        publisher: RedisPublisher, rclient: redis.asyncio.Redis) -> None:
    first = publisher.fence
    await rclient.delete(KEYS.fence, KEYS.leader)  # a promoted replica that missed the last writes
    await rclient.set(KEYS.fence, "5")  # … and held a much older token
    assert await publisher.heartbeat({"stream": "live"})  # refused, led again, republished
    assert publisher.fence > first
    assert int(await rclient.get(KEYS.fence)) == publisher.fence


async def test_a_standby_cannot_take_a_live_lease(redis_url: str, publisher: RedisPublisher,
                                                  rclient: redis.asyncio.Redis) -> None:
    standby = new_publisher(redis_url)
    await standby.start()
    try:
        assert not await standby.acquire()
        assert standby.leader == publisher.instance
        assert {name for name, _ in await standby.instances()} == {publisher.instance,
                                                                   standby.instance}
        assert await publisher.renew()
    finally:
        await standby.close()
