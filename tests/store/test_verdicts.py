"""docs/RULES.md rule 2 on the verdict scripts: odd stored values are never a fresh answer
(real redis-server, real store and Lua)."""

from __future__ import annotations

import pytest
import redis

from poswatch.client import WatchdogClient
from tests.support.store import ACCOUNT, MAX_AGE_MS, make_view, now_ms, position_key
from watchdog.core.model import PositionState
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
BTC = position_key("BTCUSDT")


def check(redis_url: str) -> tuple[bool, str]:
    bot = WatchdogClient.from_url(redis_url, ACCOUNT)
    try:
        verdict = bot.check("BTCUSDT", "BOTH")
    finally:
        bot.close()
    return verdict.allowed, verdict.reason


@pytest.mark.parametrize("field_value", [
    ("verified_ms", ""), ("verified_ms", "abc"), ("verified_ms", "-inf"),
    # Redis Lua's tonumber accepts these: age_of must still call the age unknown, never 0
    ("verified_ms", "nan"), ("verified_ms", "inf"), ("verified_ms", "-nan"), ("verified_ms", "1e400"),
    ("verified_ms", "0x7fffffffffffffff"),
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


async def test_verified_in_the_future_is_not_fresh(publisher: RedisPublisher,
                                                   redis_url: str) -> None:
    """Age clamped at 0 would read a fact from the watchdog's future as perfectly fresh."""
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, verified_ms=now_ms() + 60_000))
    assert check(redis_url) == (False, "stale")


async def test_a_clock_stepped_back_after_publishing_makes_the_fact_stale(
        publisher: RedisPublisher, redis_url: str) -> None:
    """The realistic path: a fact verified now, then the watchdog's wall clock steps back 60 s
    and the next beat measures the new offset: the fact lies in the future, its age unknown."""
    wall = now_ms()
    await publisher.heartbeat({"stream": "live"}, wall_ms=wall)
    await publisher.publish(make_view(BTC, verified_ms=wall))
    assert check(redis_url) == (True, "ok")
    await publisher.heartbeat({"stream": "live"}, wall_ms=now_ms() - 60_000)
    assert check(redis_url) == (False, "stale")


@pytest.mark.parametrize(("ahead_ms", "verdict"), [
    (300, (True, "ok")),        # within the tolerance: the beat's own measurement error
    (2_500, (False, "stale")),  # beyond it: a clock step, the age is unknown
])
async def test_the_future_tolerance_is_one_second(publisher: RedisPublisher, redis_url: str,
                                                  ahead_ms: int, verdict: tuple[bool, str]) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, verified_ms=now_ms() + ahead_ms))
    assert check(redis_url) == verdict


@pytest.mark.parametrize("offset", ["nan", "inf", "-inf"])
async def test_an_odd_clock_offset_in_health_is_stale(publisher: RedisPublisher, redis_url: str,
                                                      offset: str) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, verified_ms=now_ms()))
    rc = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        rc.hset(KEYS.health, "clock_offset_ms", offset)
    finally:
        rc.close()
    assert check(redis_url) == (False, "stale")


@pytest.mark.parametrize("verified", ["future", "nan", "aged"])
async def test_confirm_on_unknown_age_is_unverified_never_ok(
        publisher: RedisPublisher, redis_url: str, verified: str) -> None:
    """Confirm never says ok on a fact of unknown age: the bot puts its stop back 'unverified'."""
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, verified_ms=now_ms()))
    bot = WatchdogClient.from_url(redis_url, ACCOUNT)
    try:
        begun = bot.begin("BTCUSDT", "BOTH", holder="bot")
        assert begun.allowed
        value = {"future": str(now_ms() + 60_000), "nan": "nan",
                 "aged": str(now_ms() - 10 * MAX_AGE_MS)}[verified]
        rc = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            rc.hset(KEYS.position(BTC), "verified_ms", value)
        finally:
            rc.close()
        confirmed = bot.confirm("BTCUSDT", "BOTH", begun.lease or 0)
    finally:
        bot.close()
    assert (confirmed.allowed, confirmed.reason) == (True, "unverified")
    if verified != "aged":
        assert confirmed.age_ms is None


async def test_an_aged_closure_is_stale_not_position_closed(publisher: RedisPublisher,
                                                           redis_url: str) -> None:
    """A closed fact older than max_age (a wedged core loop, a restarted watchdog within
    closed_ttl_s) is not the truth: bots drop their trailing stop on position_closed."""
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, state=PositionState.CLOSED,
                                      verified_ms=now_ms() - 10 * MAX_AGE_MS))
    assert check(redis_url) == (False, "stale")
    bot = WatchdogClient.from_url(redis_url, ACCOUNT)
    try:
        begun = bot.begin("BTCUSDT", "BOTH", holder="bot")
    finally:
        bot.close()
    assert (begun.allowed, begun.reason, begun.lease) == (False, "stale", None)


async def test_a_fresh_closure_is_still_position_closed(publisher: RedisPublisher,
                                                        redis_url: str) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, state=PositionState.CLOSED, verified_ms=now_ms()))
    assert check(redis_url) == (False, "position_closed")


@pytest.mark.parametrize(("age_ms", "verdict"), [
    (0, (False, "position_closed")),
    (10 * MAX_AGE_MS, (True, "unverified")),
])
async def test_confirm_vetoes_only_a_fresh_closure(publisher: RedisPublisher, redis_url: str,
                                                   age_ms: int, verdict: tuple[bool, str]) -> None:
    """Confirm without a lease record to compare (expired past its linger, Redis flushed): a
    fresh closure is positive knowledge (veto); an aged one is not (docs/RULES.md rule 2), so the bot puts its
    stop back: an orphaned stop is cheaper than a naked position."""
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, state=PositionState.CLOSED, version=5,
                                      verified_ms=now_ms() - age_ms))
    bot = WatchdogClient.from_url(redis_url, ACCOUNT)
    try:
        confirmed = bot.confirm("BTCUSDT", "BOTH", 12345)
    finally:
        bot.close()
    assert (confirmed.allowed, confirmed.reason) == verdict
