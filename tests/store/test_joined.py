"""A lead renewal and a heartbeat handed in one loop iteration travel in one round trip
(watchdog/store/runner.py rule 2), each judged on its own reply (store/lead.py rule 3), on a
real redis-server: the red team's races of HA (another leader took the fence, the lease taken
by hand under our fence, a caller giving up, a dropped connection, lost scripts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from tests.support.store import now_ms, publisher_on, take_lead
from watchdog.errors import Fenced
from watchdog.store.publisher import RedisPublisher


@pytest.fixture
async def pub(redis_url: str) -> AsyncIterator[RedisPublisher]:
    publisher = publisher_on(redis_url)
    await publisher.start()
    await take_lead(publisher)
    yield publisher
    await publisher.close()


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def _together(pub: RedisPublisher, beat: dict[str, object]) -> list[object]:
    """The lead task's renewal and the heartbeat task's beat, handed in one loop iteration as
    on a point of the daemon's beat; each outcome (a reply or the error raised)."""
    return await asyncio.gather(pub.renew(), pub.heartbeat(beat, wall_ms=now_ms()),
                                return_exceptions=True)


async def test_a_renewal_and_a_beat_go_in_one_round_trip_and_both_land(
        pub: RedisPublisher, r: redis.asyncio.Redis) -> None:
    await r.pexpire(pub.keys.leader, 200)  # so that the renewal shows
    assert await _together(pub, {"stream": "live"}) == [True, False]
    assert pub._runner.joined_batches == 1
    assert await r.pttl(pub.keys.leader) > 1000  # lead_ttl_ms 1500: extended
    assert await r.get(pub.keys.leader) == pub.instance
    assert await r.hget(pub.keys.health, "stream") == "live"
    assert pub.leading


async def test_another_leaders_fence_refuses_the_beat_and_the_renewal_alike(
        pub: RedisPublisher, redis_url: str, r: redis.asyncio.Redis) -> None:
    """A standby took over (our lease lapsed, a new fence): the joined beat is refused and the
    renewal answers no; this instance steps down, the new leader's lease and health stand."""
    other = publisher_on(redis_url)
    await other.start()
    try:
        await r.delete(pub.keys.leader)  # our lease lapsed
        assert await other.acquire()
        await other.heartbeat({"who": "other"}, wall_ms=now_ms())
        renewed, beat = await _together(pub, {"who": "stale"})
        assert renewed is False
        assert isinstance(beat, Fenced)
        assert not pub.leading
        assert pub._runner.joined_batches == 1
        assert await r.get(pub.keys.leader) == other.instance
        assert await r.get(pub.keys.fence) == str(other.fence)
        assert await r.hget(pub.keys.health, "who") == "other"
    finally:
        await other.close()


async def test_a_beat_that_lands_proves_no_lead_the_renewal_does_not(
        pub: RedisPublisher, r: redis.asyncio.Redis) -> None:
    """The fence is still ours but the lease is another's: the beat is written (it checks the
    fence only), yet the renewal's own reply says no and this instance stops leading. A lead
    proven by the batch instead of by ``renew_lead`` would have kept it leading."""
    await r.set(pub.keys.leader, "host:1:other", px=5000)
    renewed, beat = await _together(pub, {"stream": "live"})
    assert (renewed, beat) == (False, False)
    assert not pub.leading
    assert await r.get(pub.keys.leader) == "host:1:other"  # not taken back
    assert not await pub.confirm_lead()  # no cancel on this belief


async def test_a_caller_that_stops_waiting_leaves_the_others_reply(
        pub: RedisPublisher, r: redis.asyncio.Redis) -> None:
    """The lead task's timeout ends its wait while the batch is under way: the beat still gets
    its reply, the cancelled renewal raises nothing else, and no reply is left unread."""
    renewal = asyncio.create_task(pub.renew())
    beat = asyncio.create_task(pub.heartbeat({"stream": "live"}, wall_ms=now_ms()))
    await asyncio.sleep(0)  # both handed: the batch is gathered, not sent yet
    renewal.cancel()
    assert await beat is False
    with pytest.raises(asyncio.CancelledError):
        await renewal
    assert await r.hget(pub.keys.health, "stream") == "live"
    assert await _together(pub, {"stream": "live"}) == [True, False]  # the connection reads on


async def test_a_dropped_connection_sends_the_batch_again(
        pub: RedisPublisher, r: redis.asyncio.Redis) -> None:
    assert await _together(pub, {"stream": "live"}) == [True, False]
    killed = await r.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1  # the publisher's pooled connection is gone
    assert await _together(pub, {"stream": "again"}) == [True, False]
    assert await r.hget(pub.keys.health, "stream") == "again"
    assert pub.leading


async def test_scripts_redis_lost_are_loaded_again_for_the_batch(
        pub: RedisPublisher, r: redis.asyncio.Redis) -> None:
    await r.script_flush()
    assert await _together(pub, {"stream": "live"}) == [True, False]
    assert pub._runner.reloads == 1
    assert await r.hget(pub.keys.health, "stream") == "live"


async def test_a_call_handed_alone_goes_alone(pub: RedisPublisher) -> None:
    assert await pub.renew()
    assert await pub.heartbeat({}, wall_ms=now_ms()) is False
    assert pub._runner.joined_batches == 0


async def test_a_batch_that_times_out_is_sent_again_as_one_call_is(
        redis_url: str, r: redis.asyncio.Redis) -> None:
    """Redis stalls longer than the socket timeout (``CLIENT PAUSE``): the batch is sent again
    under the client's retry policy, as ``one`` sends a single call again, and both land."""
    pub = publisher_on(redis_url, socket_timeout_s=0.3)
    await pub.start()
    try:
        await take_lead(pub)
        await r.execute_command("CLIENT", "PAUSE", 450, "ALL")
        assert await _together(pub, {"stream": "paused"}) == [True, False]
        assert pub._runner.joined_batches == 1
        assert await r.hget(pub.keys.health, "stream") == "paused"
    finally:
        await pub.close()
