"""Two tokens of one instance (store/lead.py rules 1 and 2, docs/HA.md): after Redis lost its
data the refused-heartbeat path and the lead task may each take the lease again, and this
instance's own live lease is taken again with a new token. A refusal of the older token must
not step the newer, valid lead down. Real redis-server; each race is played in a fixed order
by running the other path's acquisition while one call is on its way to Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio

from watchdog.errors import Fenced
from watchdog.store.publisher import RedisPublisher


def race_once(pub: RedisPublisher, script: str, other: Callable[[], Awaitable[object]], *,
              after_reply: bool = False) -> list[bool]:
    """The next ``script`` call of ``pub`` runs ``other`` (the other path of the same instance)
    while it is in flight: before Redis runs it, or after Redis answered but before the reply
    is applied (``after_reply``). Returns a list that holds True once the race was played."""
    runner: Any = pub._runner
    original = runner.one
    played: list[bool] = []

    async def one(call: Any) -> Any:
        if call.script != script or played:
            return await original(call)
        played.append(True)
        if not after_reply:
            await other()
        reply = await original(call)
        if after_reply:
            await other()
        return reply

    runner.one = one
    return played


async def stored_fence(redis_url: str, pub: RedisPublisher) -> int:
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        return int(await client.get(pub.keys.fence) or 0)
    finally:
        await client.aclose()


async def test_a_refused_write_of_the_older_token_does_not_step_the_newer_lead_down(
        publisher: RedisPublisher, redis_url: str) -> None:
    older = publisher.fence
    played = race_once(publisher, "emit_event", lambda: publisher.acquire(announce=False))
    with pytest.raises(Fenced):
        await publisher.emit("probe", {})
    assert played
    assert publisher.fence > older
    assert publisher.leading, "the newer token is this instance's and valid: no step-down"
    assert publisher.fence == await stored_fence(redis_url, publisher)
    assert await publisher.emit("probe", {}), "writes under the newer token land"


async def test_a_refused_renewal_of_the_older_token_does_not_step_the_newer_lead_down(
        publisher: RedisPublisher, redis_url: str) -> None:
    played = race_once(publisher, "renew_lead", lambda: publisher.acquire(announce=False))
    assert not await publisher.renew(), "the older token's renewal proves nothing"
    assert played
    assert publisher.leading
    assert publisher.fence == await stored_fence(redis_url, publisher)
    assert await publisher.renew()


async def test_a_refused_beat_of_the_older_token_beats_again_under_the_newer_one(
        publisher: RedisPublisher, redis_url: str) -> None:
    """The heartbeat path took no third token (which would refuse the lead task's writes in
    turn, and republish twice): the beat is written under the token that leads."""
    newer: list[int] = []

    async def lead_task_takes_the_lease() -> None:
        assert await publisher.acquire(announce=True)
        newer.append(publisher.fence)

    played = race_once(publisher, "heartbeat", lead_task_takes_the_lease)
    republished = await publisher.heartbeat({"stream": "live"})
    assert played
    assert not republished, "nothing was lost: no republish"
    assert publisher.leading
    assert publisher.writable
    assert publisher.fence == newer[0] == await stored_fence(redis_url, publisher), \
        "no third token"
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        assert await client.hget(publisher.keys.health, "fence") == str(publisher.fence)
    finally:
        await client.aclose()


async def test_an_older_tokens_late_reply_does_not_replace_the_newer_token(
        publisher: RedisPublisher, redis_url: str) -> None:
    """Two acquisitions of one instance in flight: Redis answers the first with the older token,
    and the second's reply (the newer) is applied before the first's."""
    publisher.step_down("test: the fence is gone")
    played = race_once(publisher, "acquire_lead", lambda: publisher.acquire(announce=True),
                       after_reply=True)
    assert await publisher.acquire()
    assert played
    assert publisher.fence == await stored_fence(redis_url, publisher)
    assert not publisher.writable, "the newer acquisition's takeover has not beaten yet"
    await publisher.heartbeat({})
    assert await publisher.emit("probe", {})
    assert publisher.leading
