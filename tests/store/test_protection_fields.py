"""The guard's fields on the position hash (set_protection.lua) and the leases' ends, on a real
redis-server: added fields only, never a hash created, kept across position writes and data loss."""

from __future__ import annotations

import redis.asyncio

from tests.support.store import ACCOUNT, make_view, now_ms, position_key
from watchdog.client import AsyncWatchdogClient
from watchdog.core.effects import Publish, PublishProtection
from watchdog.core.model import PositionState
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
BTC, ETH = position_key("BTCUSDT"), position_key("ETHUSDT")


async def test_fields_are_added_kept_by_later_writes_and_removed_on_close(
        publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    t = now_ms()
    await publisher.run_many([Publish(make_view(BTC, version=1, verified_ms=t)),
                              PublishProtection(BTC, "none", t, "")])
    stored = await r.hgetall(KEYS.position(BTC))
    assert stored["protection"] == "none"
    assert stored["unprotected_since_ms"] == str(t)
    assert stored["guard_order"] == ""
    assert stored["state"] == "open"
    assert stored["rev"] == "2"
    await publisher.run(Publish(make_view(BTC, version=2, verified_ms=t + 5, amount="0.02")))
    stored = await r.hgetall(KEYS.position(BTC))
    assert stored["protection"] == "none"
    assert stored["amt"] == "0.02"
    await publisher.run(PublishProtection(BTC, "covered", None, "wd-guard-1-1"))
    stored = await r.hgetall(KEYS.position(BTC))
    assert (stored["protection"], stored["unprotected_since_ms"], stored["guard_order"]) == (
        "covered", "", "wd-guard-1-1")
    await publisher.run_many([Publish(make_view(BTC, version=3, verified_ms=t + 9,
                                                state=PositionState.CLOSED)),
                              PublishProtection(BTC, "", None, "")])
    stored = await r.hgetall(KEYS.position(BTC))
    assert stored["state"] == "closed"
    assert "protection" not in stored
    assert "unprotected_since_ms" not in stored
    assert "guard_order" not in stored


async def test_never_creates_a_hash(publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    await publisher.run(PublishProtection(ETH, "none", now_ms(), ""))
    assert await r.exists(KEYS.position(ETH)) == 0


async def test_the_verdicts_still_read_the_position(publisher: RedisPublisher,
                                                    redis_url: str) -> None:
    """Bots reading the hash through check see the same verdict with the fields added."""
    t = now_ms()
    await publisher.heartbeat({}, wall_ms=t)
    await publisher.run_many([Publish(make_view(BTC, version=1, verified_ms=t)),
                              PublishProtection(BTC, "partial", t, "")])
    client = AsyncWatchdogClient.from_url(redis_url, account=ACCOUNT)
    try:
        verdict = await client.check("BTCUSDT", "BOTH")
    finally:
        await client.close()
    assert verdict.allowed
    assert verdict.position["protection"] == "partial"


async def test_republished_after_redis_lost_its_data(publisher: RedisPublisher,
                                                     r: redis.asyncio.Redis) -> None:
    t = now_ms()
    await publisher.heartbeat({}, wall_ms=t)
    await publisher.run_many([Publish(make_view(BTC, version=1, verified_ms=t)),
                              PublishProtection(BTC, "none", t, "")])
    await r.flushall()
    assert await publisher.heartbeat({}, wall_ms=t + 1000)
    stored = await r.hgetall(KEYS.position(BTC))
    assert stored["protection"] == "none"
    assert stored["unprotected_since_ms"] == str(t)


async def test_lease_ends_in_reads_what_is_left_on_redis_clock(
        publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    secs, micros = await r.time()
    server_ms = secs * 1000 + micros // 1000
    await r.zadd(KEYS.leases, {"BTCUSDT:BOTH": server_ms + 4000, "ETHUSDT:BOTH": server_ms - 1,
                               "bnbusdt:BOTH": server_ms + 1000})
    left = await publisher.lease_ends_in()
    assert set(left) == {BTC, position_key("BNBUSDT")}
    assert 3000 < left[BTC] <= 4000
