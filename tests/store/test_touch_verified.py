"""Re-verifications (``Publish.refresh_of``) on a real redis-server: one touch_verified call
leaves exactly what complete publishes would, and never freshens anything but the re-verified
version and state."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from poswatch.client import AsyncWatchdogClient
from tests.support.store import ACCOUNT, MAX_AGE_MS, make_view, now_ms, position_key, take_lead
from watchdog.core.effects import Notify, Publish
from watchdog.core.model import PositionState, PositionView
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
REF = AccountKeys("ref")
BTC, ETH = position_key("BTCUSDT"), position_key("ETHUSDT")


def refresh(view: PositionView, verified_ms: int) -> Publish:
    """The core's re-verification of ``view``: same facts, later time, next version."""
    return Publish(dataclasses.replace(view, verified_ms=verified_ms, version=view.version + 1),
                   refresh_of=view.version)


@pytest.fixture
async def reference(redis_url: str) -> AsyncIterator[RedisPublisher]:
    """A second account written with complete publishes only, to compare against."""
    pub = RedisPublisher.from_url(redis_url, account="ref", health_ttl_ms=10_000, closed_ttl_s=60,
                                  events_maxlen=1000, veto_max_age_ms=MAX_AGE_MS, socket_timeout_s=2.0)
    await pub.start()
    await take_lead(pub)
    yield pub
    await pub.close()


async def position(r: redis.asyncio.Redis, keys: AccountKeys, view: PositionView) -> dict[str, str]:
    stored = await r.hgetall(keys.position(view.key))
    stored.pop("updated_ms", None)  # Redis server time of the write
    stored.pop("fence", None)  # each publisher leads its own account, with its own token
    return dict(stored)


async def evalsha_calls(r: redis.asyncio.Redis) -> int:
    return int((await r.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0))


async def test_same_hash_as_complete_publishes(publisher: RedisPublisher, reference: RedisPublisher,
                                               r: redis.asyncio.Redis) -> None:
    t = now_ms() - 2_000
    btc = make_view(BTC, version=7, verified_ms=t)
    eth = make_view(ETH, state=PositionState.CLOSED, version=3, verified_ms=t)
    batches = [[Publish(btc), Publish(eth)],
               [refresh(btc, t + 900), refresh(eth, t + 900)],
               [refresh(dataclasses.replace(btc, version=8, verified_ms=t + 900), t + 1800),
                refresh(dataclasses.replace(eth, version=4, verified_ms=t + 900), t + 1800)]]
    for batch in batches:
        await r.config_resetstat()
        await publisher.run_many(batch)
        assert await evalsha_calls(r) == (2 if batch is batches[0] else 1)  # one call for all
        await reference.run_many([Publish(p.view) for p in batch])  # type: ignore[union-attr]
        for view in (btc, eth):
            assert await position(r, KEYS, view) == await position(r, REF, view)
    stored = await r.hgetall(KEYS.position(BTC))
    assert (stored["verified_ms"], stored["version"], stored["rev"]) == (str(t + 1800), "9", "3")
    assert await r.smembers(KEYS.positions) == {"BTCUSDT:BOTH", "ETHUSDT:BOTH"}
    assert await r.pttl(KEYS.position(BTC)) == -1
    assert 0 < await r.pttl(KEYS.position(ETH)) <= 60_000  # closed: TTL renewed as a publish does


async def test_refresh_makes_a_stale_open_position_fresh(publisher: RedisPublisher,
                                                         redis_url: str) -> None:
    await publisher.heartbeat({"stream": "live"})
    old = make_view(BTC, version=1, verified_ms=now_ms() - 2 * MAX_AGE_MS)
    await publisher.run_many([Publish(old), Notify("position_opened", BTC)])
    client = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
    try:
        assert (await client.check("BTCUSDT")).reason == "stale"
        await publisher.run_many([refresh(old, now_ms()), refresh(make_view(ETH, verified_ms=1), 1)])
        verdict = await client.check("BTCUSDT")
        assert (verdict.allowed, verdict.reason) == (True, "ok")
    finally:
        await client.close()


async def test_a_lost_or_older_record_gets_the_complete_view(publisher: RedisPublisher,
                                                             r: redis.asyncio.Redis) -> None:
    t = now_ms()
    v1 = make_view(BTC, version=1, verified_ms=t, amount="0.010")
    await publisher.run_many([Publish(v1), Publish(make_view(ETH, version=1, verified_ms=t))])
    # v2 (amount 0.020) never reached Redis (a failed write); v3 only re-verifies v2.
    v2 = make_view(BTC, version=2, verified_ms=t + 100, amount="0.020")
    await r.delete(KEYS.position(ETH))  # Redis lost this one (FLUSHALL, failover)
    await publisher.run_many([refresh(v2, t + 200),
                              refresh(make_view(ETH, version=1, verified_ms=t), t + 200)])
    btc = await r.hgetall(KEYS.position(BTC))
    assert (btc["amt"], btc["version"], btc["verified_ms"]) == ("0.020", "3", str(t + 200))
    eth = await r.hgetall(KEYS.position(ETH))
    assert (eth["state"], eth["version"], eth["verified_ms"]) == ("open", "2", str(t + 200))


async def test_never_freshens_another_state_or_a_newer_version(publisher: RedisPublisher,
                                                               r: redis.asyncio.Redis) -> None:
    t = now_ms()
    closed = make_view(BTC, state=PositionState.CLOSED, version=5, verified_ms=t)
    await publisher.run_many([Publish(closed), Publish(make_view(ETH, version=2, verified_ms=t))])
    await publisher.retract(ETH, "stream lost")  # unknown, version 2 kept
    # An open view re-verified from version 5, and ETH re-verified from version 2.
    await publisher.run_many([
        Publish(make_view(BTC, version=4, verified_ms=t + 500), refresh_of=3),
        refresh(make_view(ETH, version=2, verified_ms=t), t + 500),
    ])
    btc = await r.hgetall(KEYS.position(BTC))
    assert (btc["state"], btc["version"], btc["verified_ms"]) == ("closed", "5", str(t))
    eth = await r.hgetall(KEYS.position(ETH))  # the complete view, as a publish of v3 writes it
    assert (eth["state"], eth["version"], eth["verified_ms"]) == ("open", "3", str(t + 500))


async def test_refresh_of_a_closure_revokes_a_live_lease(publisher: RedisPublisher,
                                                         reference: RedisPublisher,
                                                         r: redis.asyncio.Redis) -> None:
    t = now_ms()
    for pub, keys in ((publisher, KEYS), (reference, REF)):
        closed = make_view(BTC, state=PositionState.CLOSED, version=2, verified_ms=t)
        await pub.run_many([Publish(closed), Notify("position_closed", BTC)])
        # A live lease on a closed record (only a hand-made one can exist): a publish revokes it.
        await r.hset(keys.lease(BTC), mapping={"token": "9", "holder": "bot",
                                               "expires_ms": str(t + 60_000)})
        await r.zadd(keys.leases, {"BTCUSDT:BOTH": t + 60_000})
    await publisher.run_many([refresh(closed, t + 900), Notify("x", None)])
    await reference.run_many([Publish(refresh(closed, t + 900).view), Notify("x", None)])
    for keys in (KEYS, REF):
        assert await r.hget(keys.lease(BTC), "revoked") == "position_closed"
        assert await r.zcard(keys.leases) == 0
        kinds = [(e["kind"], e.get("action")) for _, e in await r.xrange(keys.events)]
        assert kinds == [("position_closed", None), ("lease", "revoked"), ("x", None)]


async def test_scripts_flushed_before_a_refresh(publisher: RedisPublisher,
                                                r: redis.asyncio.Redis) -> None:
    t = now_ms()
    v1 = make_view(BTC, version=1, verified_ms=t)
    await publisher.run_many([Publish(v1), Notify("position_opened", BTC)])
    await r.script_flush()
    await publisher.run_many([refresh(v1, t + 900), Notify("x", None)])
    assert await r.hmget(KEYS.position(BTC), "version", "verified_ms") == ["2", str(t + 900)]


async def test_order_kept_around_complete_publishes(publisher: RedisPublisher,
                                                    r: redis.asyncio.Redis) -> None:
    t = now_ms()
    v1 = make_view(BTC, version=1, verified_ms=t, amount="0.010")
    v3 = make_view(BTC, version=3, verified_ms=t + 100, amount="0.020")
    await publisher.run_many([Publish(v1), refresh(v1, t + 50), Publish(v3), refresh(v3, t + 200),
                              Notify("position_opened", BTC)])
    btc = await r.hgetall(KEYS.position(BTC))
    assert (btc["amt"], btc["version"], btc["verified_ms"], btc["rev"]) == (
        "0.020", "4", str(t + 200), "4")
    assert publisher._held[BTC].version == 4  # a republish after a loss writes the newest
