"""Red-team: the verdict scripts on odd stored values (real redis-server, real store and Lua)."""

from __future__ import annotations

import time

import pytest
import redis

from tests.support.store import ACCOUNT, MAX_AGE_MS, make_view, position_key
from watchdog.client import WatchdogClient
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
BTC = position_key("BTCUSDT")


_NAN = ("store/lua/_prelude.lua age_of: Redis Lua's tonumber accepts 'nan'/'inf'; "
        "math.max(0, now - offset - verified) is then 0, so a corrupt verified_ms reads as "
        "perfectly fresh (check ALLOWs) instead of age unknown")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def check(redis_url: str) -> tuple[bool, str]:
    bot = WatchdogClient.from_url(redis_url, ACCOUNT)
    try:
        verdict = bot.check("BTCUSDT", "BOTH")
    finally:
        bot.close()
    return verdict.allowed, verdict.reason


@pytest.mark.parametrize("field_value", [
    ("verified_ms", ""), ("verified_ms", "abc"), ("verified_ms", "-inf"),
    pytest.param(("verified_ms", "nan"), marks=pytest.mark.xfail(strict=True, reason=_NAN)),
    pytest.param(("verified_ms", "inf"), marks=pytest.mark.xfail(strict=True, reason=_NAN)),
    ("state", "OPEN"), ("state", ""), ("state", "open "),
])
async def test_odd_position_fields_are_never_allowed(publisher: RedisPublisher, redis_url: str,
                                                     field_value: tuple[str, str]) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, verified_ms=now_ms()))
    rc = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        rc.hset(KEYS.position(BTC), *field_value)
    finally:
        rc.close()
    assert check(redis_url) == (False, "stale")


@pytest.mark.parametrize("max_age", ["", "0", "-1", "garbage"])
async def test_missing_or_odd_veto_max_age_in_health_is_stale_not_ok(
        publisher: RedisPublisher, redis_url: str, max_age: str) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, verified_ms=now_ms() - 50))
    rc = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        rc.hset(KEYS.health, "veto_max_age_ms", max_age)
    finally:
        rc.close()
    assert check(redis_url) == (False, "stale")


async def test_redis_flush_is_watchdog_down_until_the_next_beat_republishes(
        publisher: RedisPublisher, redis_url: str) -> None:
    """After FLUSHALL: down (never a default), then the republished old fact reads as old."""
    await publisher.heartbeat({"stream": "live"})
    old_ms = now_ms() - 3 * MAX_AGE_MS
    await publisher.publish(make_view(BTC, verified_ms=old_ms))
    rc = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        rc.flushall()
    finally:
        rc.close()
    assert check(redis_url) == (False, "watchdog_down")
    await publisher.heartbeat({"stream": "live"})
    assert check(redis_url) == (False, "stale")


@pytest.mark.xfail(strict=True, reason=(
    "store/lua/_prelude.lua age_of clamps a negative age to 0: a verified_ms far in the "
    "watchdog's future (its wall clock stepped back after publishing) reads as perfectly "
    "fresh and check/begin ALLOW on it"))
async def test_verified_in_the_future_is_not_fresh(publisher: RedisPublisher,
                                                   redis_url: str) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, verified_ms=now_ms() + 60_000))
    assert check(redis_url) == (False, "stale")


@pytest.mark.xfail(strict=True, reason=(
    "store/lua/_prelude.lua judge: rule 3 (state=closed → position_closed) runs before the age "
    "check, so a closed fact older than max_age (a wedged core loop, a restarted watchdog "
    "within closed_ttl_s) is answered as the truth 'position_closed' (bots drop their trailing "
    "stop on it, docs/PROTOCOL.md §3) instead of 'stale'"))
async def test_an_aged_closure_is_stale_not_position_closed(publisher: RedisPublisher,
                                                           redis_url: str) -> None:
    from watchdog.core.model import PositionState

    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, state=PositionState.CLOSED,
                                      verified_ms=now_ms() - 10 * MAX_AGE_MS))
    assert check(redis_url) == (False, "stale")
