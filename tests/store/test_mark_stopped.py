"""A graceful stop made visible at once (``RedisPublisher.mark_stopped``), against real Redis:
the verdicts say ``watchdog_down`` right away, and another instance's health is never removed."""

from __future__ import annotations

import time

import pytest
import redis.asyncio

from poswatch.client import AsyncWatchdogClient
from tests.support.store import ACCOUNT, make_view, take_lead
from watchdog.errors import Fenced
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)


async def test_stop_turns_every_verdict_into_watchdog_down_at_once(
        redis_url: str, publisher: RedisPublisher, rclient: redis.asyncio.Redis) -> None:
    bot = AsyncWatchdogClient.from_url(redis_url, ACCOUNT)
    try:
        view = make_view(version=1, verified_ms=int(time.time() * 1000))
        await publisher.publish(view)
        await publisher.heartbeat({"stream": "live"})
        assert (await bot.check("BTCUSDT")).reason == "ok"

        assert await publisher.mark_stopped() == "removed"

        assert await rclient.exists(KEYS.health) == 0  # the plain-Redis recipe (EXISTS) sees it too
        verdict = await bot.check("BTCUSDT")
        assert (verdict.allowed, verdict.reason) == (False, "watchdog_down")
        kinds = [fields["kind"] for _, fields in await rclient.xrange(KEYS.events)]
        assert kinds[-1] == "watchdog_stopped"
        assert (await bot.begin("BTCUSDT", holder="bot-1")).reason == "watchdog_down"
        assert await publisher.mark_stopped() == "gone"  # a second call changes nothing
    finally:
        await bot.close()


async def test_stop_leaves_another_instances_health_alone(redis_url: str, publisher: RedisPublisher,
                                                          rclient: redis.asyncio.Redis) -> None:
    await publisher.heartbeat({"stream": "live"})
    newer = RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=10_000,
                                    closed_ttl_s=60, events_maxlen=1000, veto_max_age_ms=5_000,
                                    socket_timeout_s=2.0)
    await newer.start()
    await take_lead(newer)
    try:
        await newer.heartbeat({"stream": "live"})  # a second watchdog took the account over
        events_before = await rclient.xlen(KEYS.events)
        assert await publisher.mark_stopped() == "other"
        assert await rclient.hget(KEYS.health, "beat_ms") is not None
        assert await rclient.xlen(KEYS.events) == events_before
    finally:
        await newer.close()


async def test_a_start_after_a_clean_stop_is_no_other_watchdog(redis_url: str,
                                                               publisher: RedisPublisher) -> None:
    """The fence the stopped instance left behind is the previous run's, not a second
    watchdog's: no ERROR on every restart. A second instance that takes the lead makes the
    first one step down, loudly (docs/HA.md)."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{level} {message}")

    def another() -> RedisPublisher:
        return RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=10_000,
                                       closed_ttl_s=60, events_maxlen=1000,
                                       veto_max_age_ms=5_000, socket_timeout_s=2.0)

    try:
        await publisher.heartbeat({"stream": "live"})
        assert await publisher.mark_stopped() == "removed"
        restarted = another()
        await restarted.start()
        await take_lead(restarted)
        try:
            await restarted.heartbeat({"stream": "live"})
            await restarted.heartbeat({"stream": "live"})
            assert not [line for line in lines if "stepping down" in line], lines
            second = another()  # now a real second writer on the same account
            await second.start()
            await take_lead(second)
            try:
                await second.heartbeat({"stream": "live"})
                with pytest.raises(Fenced):
                    await restarted.heartbeat({"stream": "live"})
            finally:
                await second.close()
            assert not restarted.leading
            assert [line for line in lines if line.startswith("ERROR stepping down")], lines
        finally:
            await restarted.close()
    finally:
        logger.remove(sink)
