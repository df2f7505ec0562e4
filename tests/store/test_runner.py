"""How script calls travel (watchdog/store/runner.py), on a real redis-server: a single call
packed by hiredis answers as the client's ``evalsha`` did: replies, error replies, a lost script,
a connection Redis dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis import exceptions as redis_errors

from poswatch.calls import ScriptCall
from tests.support.store import now_ms, publisher_on, take_lead
from watchdog.store.publisher import RedisPublisher


@pytest.fixture
async def pub(redis_url: str) -> AsyncIterator[RedisPublisher]:
    publisher = publisher_on(redis_url)
    assert publisher._runner.hiredis_packs  # the path under test (the fast extra is installed)
    await publisher.start()
    await take_lead(publisher)
    yield publisher
    await publisher.close()


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_a_single_call_after_redis_dropped_the_connection_is_written(
        pub: RedisPublisher, r: redis.asyncio.Redis) -> None:
    assert await pub.heartbeat({"stream": "live"}) is False
    killed = await r.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1  # the publisher's pooled connection is gone
    assert await pub.heartbeat({"stream": "live"}, wall_ms=now_ms()) is False  # reconnected, written
    assert await r.hget(pub.keys.health, "stream") == "live"


async def test_a_single_call_replies_as_evalsha_does(pub: RedisPublisher,
                                                      r: redis.asyncio.Redis) -> None:
    secs, micros, leases = await pub._runner.one(pub.calls.lease_ends())
    assert int(secs) > 0
    assert int(micros) >= 0
    assert list(leases) == []
    with pytest.raises(redis_errors.ResponseError, match="expected"):
        await pub._runner.one(ScriptCall("touch_verified", [pub.keys.positions], []))
    await r.script_flush()  # Redis lost the scripts: loaded again, then answered
    assert list((await pub._runner.one(pub.calls.lease_ends()))[2]) == []
