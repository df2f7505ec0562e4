"""EffectsRunner with ``Reverified`` (core/effects.py rule 3): deferred while the lease lapses and
through a write refused as FENCED (rules 4 and 5), as the refreshes it stands for, and written
once this instance leads again. Real redis-server, real publisher."""

from __future__ import annotations

from typing import Any

import redis.asyncio

from tests.runtime.test_effects_runner import Sinks, make_runner
from tests.runtime.test_effects_runner_lead import ACCOUNT, leader, publisher  # noqa: F401
from tests.support.store import make_view, now_ms, position_key
from watchdog.core.effects import Publish, Reverified
from watchdog.core.model import PositionState
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
BAS, ETH = position_key("BASUSDT"), position_key("ETHUSDT")


async def positions(redis_url: str) -> dict[str, list[str | None]]:
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        return {str(k): await client.hmget(KEYS.position(k), "state", "version", "verified_ms")
                for k in (BAS, ETH)}
    finally:
        await client.aclose()


async def test_a_deferred_reverification_survives_a_lapse_and_a_fenced_refusal(
        leader: RedisPublisher, redis_server: Any, redis_url: str) -> None:  # noqa: F811
    runner, _ = make_runner(leader, Sinks())
    t = now_ms()  # a takeover republishes a closed view only within the closed TTL
    first = [make_view(BAS, verified_ms=t, version=1),
             make_view(ETH, state=PositionState.CLOSED, verified_ms=t, version=1)]
    await runner.run([Publish(v) for v in first])
    again = Reverified(tuple(v.reverified(t + 900, 2) for v in first), t + 900)
    redis_server.stop()
    try:
        await runner.run([again])
        assert runner.store_down, "the write failed: deferred"
        leader.step_down("lease not renewed (test: the outage outlived it)")
        assert not await runner.recover(), "not leading: nothing written"
    finally:
        redis_server.start()  # empty: no persistence
    assert await leader.acquire(announce=True)
    await leader.take_over({})  # republishes what it holds: the failed write's views
    assert await positions(redis_url) == {"BASUSDT:BOTH": ["open", "2", str(t + 900)],
                                          "ETHUSDT:BOTH": ["closed", "2", str(t + 900)]}
    client = redis.asyncio.from_url(redis_url)
    await client.delete(KEYS.position(BAS))  # lost again: only the deferred write restores it
    await client.aclose()
    # The same instance's other path takes its own lease again: the deferred write carries
    # the older token, is refused, and stays deferred (rule 5).
    same = publisher(redis_url, leader.instance)
    await same.start()
    try:
        assert await same.acquire()
        assert not await runner.recover(), "the older token's writes are refused"
        assert runner.store_down, "refused, not written: still deferred"
        assert await leader.acquire(announce=True)
        await leader.take_over({})
        assert await runner.recover()
    finally:
        await same.close()
    assert await positions(redis_url) == {"BASUSDT:BOTH": ["open", "2", str(t + 900)],
                                          "ETHUSDT:BOTH": ["closed", "2", str(t + 900)]}
    assert leader._held == {v.key: v for v in again.views}
