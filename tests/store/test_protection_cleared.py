"""A protection that is gone is never shown by Redis after a republish (docs/HA.md, "Nothing
shown is older than what the leader knows"). Red team, real redis-server: the guard's fields
(``protection``, ``unprotected_since_ms``, ``guard_order``) of a position written by one
leader, the position closed (the stop cancelled or filled with it) while the write of that
could not reach Redis — a standby saw it, a restarted watchdog was down, Redis lost the write —
then a takeover, a restart or a recovery republishes. Until session 9 each of these left the
old leader's ``covered`` (and its ``guard_order``) on the closed hash for ``closed_ttl_s`` (a
day by default): the republish wrote only the protections its store held, and a cleared one
was held as nothing, so nothing cleared it.

What is never removed: a protection the new leader still knows (tests at the end)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from tests.support.store import ACCOUNT, make_view, now_ms, position_key, publisher_on, take_lead
from watchdog.core.effects import Publish, PublishProtection, Reverified
from watchdog.core.model import PositionKey, PositionState
from watchdog.errors import Fenced
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher, StoreEffect

KEYS = AccountKeys(ACCOUNT)
BAS, ETH = position_key("BASUSDT"), position_key("ETHUSDT")
GUARD_FIELDS = ("protection", "unprotected_since_ms", "guard_order")


@pytest.fixture
async def standby(redis_url: str) -> AsyncIterator[RedisPublisher]:
    """A second instance of the same account, not leading."""
    pub = publisher_on(redis_url)
    await pub.start()
    try:
        yield pub
    finally:
        await pub.close()


async def shown(r: redis.asyncio.Redis, key: PositionKey = BAS) -> dict[str, str]:
    return {str(k): str(v) for k, v in (await r.hgetall(KEYS.position(key))).items()}


def guard_fields(stored: dict[str, str]) -> dict[str, str]:
    return {name: stored[name] for name in GUARD_FIELDS if name in stored}


def opened(t: int, version: int = 1) -> Publish:
    return Publish(make_view(BAS, version=version, verified_ms=t))


def closed(t: int, version: int) -> Publish:
    return Publish(make_view(BAS, state=PositionState.CLOSED, version=version, verified_ms=t))


COVERED_BY_OURS = PublishProtection(BAS, "covered", None, "wd-guard-1-1")
CLEARED = PublishProtection(BAS, "", None, "")  # core/guard.py: the position is not open


async def lead_shows_covered(leader: RedisPublisher, r: redis.asyncio.Redis, t: int) -> None:
    """The leader published the position open, covered (by a stop of the watchdog's own)."""
    await leader.heartbeat({}, wall_ms=t)
    await leader.run_many([opened(t), COVERED_BY_OURS])
    assert guard_fields(await shown(r)) == {"protection": "covered", "unprotected_since_ms": "",
                                            "guard_order": "wd-guard-1-1"}


async def dies(leader: RedisPublisher) -> None:
    """kill -9: nothing more written; its lease deleted instead of waited out."""
    await leader._redis.delete(leader.keys.leader)
    leader.step_down("test: killed")


async def test_a_closure_a_standby_saw_clears_the_protection_at_its_takeover(
        publisher: RedisPublisher, standby: RedisPublisher, r: redis.asyncio.Redis) -> None:
    """The hole of session 8: the standby's guard cleared the protection (the position closed,
    its stop with it) while the leader could no longer write; the standby takes over."""
    t = now_ms()
    await lead_shows_covered(publisher, r, t)
    assert not await standby.run_many([opened(t), COVERED_BY_OURS])  # held: a standby
    await dies(publisher)
    assert not await standby.run_many([closed(t + 10, 2), CLEARED])
    assert await standby.acquire(announce=True)
    assert await standby.take_over({}, wall_ms=t + 20) == 1
    stored = await shown(r)
    assert stored["state"] == "closed"
    assert guard_fields(stored) == {}, "a stop shown on a position whose stop is gone"


async def test_a_protection_cleared_then_dropped_as_deferred_is_cleared_at_a_later_takeover(
        publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    """effects_runner.py rule 7: the deferred clearing handed to the store to hold (``hold``)
    when another instance was seen leading, which then went away without writing it."""
    t = now_ms()
    await lead_shows_covered(publisher, r, t)
    publisher.step_down("test: the lease lapsed")
    publisher.hold([closed(t + 10, 2), CLEARED])
    assert await publisher.acquire(announce=True)
    await publisher.take_over({}, wall_ms=t + 20)
    stored = await shown(r)
    assert stored["state"] == "closed"
    assert guard_fields(stored) == {}


async def test_a_restarted_watchdog_publishing_a_closure_clears_what_its_predecessor_showed(
        publisher: RedisPublisher, redis_url: str, r: redis.asyncio.Redis) -> None:
    """The position closed while no watchdog ran: the restarted one never saw it open, so its
    guard has no run to end and says nothing; its first positions read publishes it closed."""
    t = now_ms()
    await lead_shows_covered(publisher, r, t)
    await dies(publisher)
    restarted = publisher_on(redis_url)
    await restarted.start()
    try:
        await take_lead(restarted)
        await restarted.take_over({}, wall_ms=t + 20)
        assert await restarted.run_many([closed(t + 30, 1)])
    finally:
        await restarted.close()
    stored = await shown(r)
    assert stored["state"] == "closed"
    assert guard_fields(stored) == {}


async def lose_the_last_writes(r: redis.asyncio.Redis, snapshot: dict[str, bytes],
                               *, fence: bool) -> None:
    """A failover to a replica that missed the last writes (replication is asynchronous):
    Redis holds again what ``snapshot`` dumped, with or without the fence key."""
    await r.flushall()
    for name, dump in snapshot.items():
        if fence or name != KEYS.fence:
            await r.restore(name, 0, dump)


async def dump(redis_url: str, *names: str) -> dict[str, bytes]:
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        dumps = {name: await raw.dump(name) for name in names}
    finally:
        await raw.aclose()
    return {name: dump for name, dump in dumps.items() if dump is not None}


@pytest.mark.parametrize("fence_kept", [False, True])
async def test_a_closure_lost_by_a_failover_clears_the_protection_when_written_again(
        publisher: RedisPublisher, redis_url: str, r: redis.asyncio.Redis,
        fence_kept: bool) -> None:
    """The leader wrote the closure and the cleared fields; the promoted replica missed both.
    Fence lost: the next beat leads again and republishes. Fence kept: the next positions
    read's re-verification finds the version missing and writes the complete view."""
    t = now_ms()
    await lead_shows_covered(publisher, r, t)
    before = await dump(redis_url, KEYS.position(BAS), KEYS.positions, KEYS.fence)
    assert await publisher.run_many([closed(t + 10, 2), CLEARED])
    assert guard_fields(await shown(r)) == {}
    await lose_the_last_writes(r, before, fence=fence_kept)
    assert (await shown(r))["state"] == "open"
    if fence_kept:
        view = make_view(BAS, state=PositionState.CLOSED, version=3, verified_ms=t + 900)
        assert await publisher.run_many([Reverified((view,), t + 900)])
    else:
        assert await publisher.heartbeat({}, wall_ms=t + 1000), "Redis lost the fence: republished"
    stored = await shown(r)
    assert stored["state"] == "closed"
    assert guard_fields(stored) == {}


# ------------------------------------------------------------ what is never removed

async def test_a_takeover_keeps_every_protection_the_new_leader_still_knows(
        publisher: RedisPublisher, standby: RedisPublisher, r: redis.asyncio.Redis) -> None:
    """Open positions: the standby's latest answer is written, whatever the old leader showed
    (a stop cancelled while standing by: ``none`` with its start, not the old ``covered``)."""
    t = now_ms()
    await lead_shows_covered(publisher, r, t)
    await publisher.run_many([Publish(make_view(ETH, version=1, verified_ms=t)),
                              PublishProtection(ETH, "partial", t - 500, "")])
    assert not await standby.run_many([
        opened(t), COVERED_BY_OURS, PublishProtection(BAS, "none", t + 5, ""),
        Publish(make_view(ETH, version=1, verified_ms=t)),
        PublishProtection(ETH, "covered", None, "")])
    await dies(publisher)
    assert await standby.acquire(announce=True)
    assert await standby.take_over({}, wall_ms=t + 20) == 2
    assert guard_fields(await shown(r)) == {"protection": "none",
                                            "unprotected_since_ms": str(t + 5), "guard_order": ""}
    assert guard_fields(await shown(r, ETH)) == {"protection": "covered",
                                                 "unprotected_since_ms": "", "guard_order": ""}


async def test_an_open_position_the_new_leader_never_judged_keeps_what_was_shown(
        publisher: RedisPublisher, standby: RedisPublisher, r: redis.asyncio.Redis) -> None:
    """No answer held (its guard has not judged it yet): the takeover does not clear what
    bots were shown; the guard judges every position at its next step and publishes then."""
    t = now_ms()
    await lead_shows_covered(publisher, r, t)
    assert not await standby.run_many([opened(t)])
    await dies(publisher)
    assert await standby.acquire(announce=True)
    await standby.take_over({}, wall_ms=t + 20)
    stored = await shown(r)
    assert stored["state"] == "open"
    assert stored["protection"] == "covered"


async def test_a_flushall_republishes_open_protections_and_no_cleared_one(
        publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    """One instance, Redis emptied, the closure refused (the fence went with the data): it
    leads again, republishes, and the runner's recovery writes the refused batch (effects_runner
    rule 6). The open position comes back with its protection, the closed one without any."""
    t = now_ms()
    await lead_shows_covered(publisher, r, t)
    await publisher.run_many([Publish(make_view(ETH, version=1, verified_ms=t)),
                              PublishProtection(ETH, "none", t, "")])
    await r.flushall()
    batch: list[StoreEffect] = [closed(t + 10, 2), CLEARED]
    with pytest.raises(Fenced):
        await publisher.run_many(batch)
    assert await publisher.acquire(announce=True)
    await publisher.take_over({}, wall_ms=t + 1000)
    assert await publisher.run_many(batch)  # the runner's recover
    assert (await shown(r))["state"] == "closed"
    assert guard_fields(await shown(r)) == {}
    assert guard_fields(await shown(r, ETH)) == {"protection": "none",
                                                 "unprotected_since_ms": str(t), "guard_order": ""}


# ------------------------------------------------------------ the script itself

async def test_the_write_that_closes_a_position_drops_the_guards_fields_and_nothing_else(
        publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    """publish_position.lua: ``closed`` drops the three fields; a refused write (an older
    version of the same writer) drops nothing; ``open`` and ``unknown`` keep them."""
    t = now_ms()
    await lead_shows_covered(publisher, r, t)
    assert await publisher.run_many([opened(t + 5, version=2)])
    assert guard_fields(await shown(r))["protection"] == "covered", "an open write keeps them"
    await publisher.retract(BAS, "stream_lost")
    assert guard_fields(await shown(r))["protection"] == "covered", "a retraction keeps them"
    assert not await publisher.publish(make_view(BAS, state=PositionState.CLOSED, version=2,
                                                 verified_ms=t + 10))
    stored = await shown(r)
    assert (stored["state"], stored["version"]) == ("unknown", "2"), "refused by version"
    assert guard_fields(stored)["protection"] == "covered", "a refused write changes nothing"
    rev = int(stored["rev"])
    assert await publisher.publish(make_view(BAS, state=PositionState.CLOSED, version=3,
                                             verified_ms=t + 20))
    stored = await shown(r)
    assert stored["state"] == "closed"
    assert guard_fields(stored) == {}
    assert int(stored["rev"]) == rev + 1, "one write, one rev"
    assert await publisher.run_many([CLEARED]), "the guard's own clearing after it: a no-op"
    assert int((await shown(r))["rev"]) == rev + 1
