"""Fixtures shared by the store tests: a plain Redis connection, a bot's client and a watchdog
that is alive."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from poswatch.client import AsyncWatchdogClient
from tests.support.store import ACCOUNT, make_view, now_ms, position_key
from watchdog.store.publisher import RedisPublisher


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain connection to the tests' redis-server, to read what the watchdog wrote."""
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[AsyncWatchdogClient]:
    c = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
    yield c
    await c.close()


@pytest.fixture
async def alive(publisher: RedisPublisher) -> RedisPublisher:
    """A watchdog that has beaten once and publishes BTCUSDT:BOTH open and fresh (version 1)."""
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(position_key("BTCUSDT"), version=1,
                                      verified_ms=now_ms()))
    return publisher
