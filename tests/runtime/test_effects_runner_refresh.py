"""EffectsRunner with re-verifications: written through to Redis, and not logged line by line
(a real change still is: one debug line per publish)."""

from __future__ import annotations

import dataclasses

import redis.asyncio
from loguru import logger

from tests.runtime.test_effects_runner import KEY, NOW_MS, Sinks, make_runner, store  # noqa: F401
from tests.support.store import ACCOUNT, make_view, position_key
from watchdog.core.effects import Publish
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
ETH = position_key("ETHUSDT")


async def test_refreshes_written_quietly(store: RedisPublisher, redis_url: str) -> None:  # noqa: F811
    runner, _ = make_runner(store, Sinks())
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    try:
        first = [make_view(KEY, version=1, verified_ms=NOW_MS), make_view(ETH, version=1, verified_ms=NOW_MS)]
        await runner.run([Publish(v) for v in first])
        again = [dataclasses.replace(v, version=2, verified_ms=NOW_MS + 900) for v in first]
        await runner.run([Publish(v, refresh_of=1) for v in again])
    finally:
        logger.remove(sink)
    assert len([line for line in lines if line.startswith("publish ")]) == 2  # the first two only
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        assert await client.hmget(KEYS.position(KEY), "version", "verified_ms") == [
            "2", str(NOW_MS + 900)]
    finally:
        await client.aclose()
