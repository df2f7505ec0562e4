"""stop_triggered against a real redis-server: mark_firing, begin/check veto, confirm unchanged,
and the marker surviving publishes, a lost hash and a Redis outage's deferral."""

from __future__ import annotations

import pytest

from tests.support.store import ACCOUNT, make_view, now_ms, position_key, take_lead
from watchdog.client import AsyncWatchdogClient, Vetoed
from watchdog.core.effects import Firing, MarkFiring, Publish
from watchdog.core.model import OrderId, PositionState
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
BTC = position_key("BTCUSDT")
FIRING = Firing(OrderId(4000000017), "TRIGGERING", 1_700_000_000_000)


async def test_begin_and_check_veto_while_a_stop_fires(alive: RedisPublisher,
                                                       client: AsyncWatchdogClient) -> None:
    rev = await alive._redis.hget(KEYS.position(BTC), "rev")
    assert await alive.mark_firing(BTC, FIRING)
    assert int(await alive._redis.hget(KEYS.position(BTC), "rev")) == int(rev) + 1
    for verdict in (await client.check("BTCUSDT"), await client.begin("BTCUSDT", holder="bot")):
        assert (verdict.allowed, verdict.reason) == (False, "stop_triggered")
        assert verdict.retry_later
        assert verdict.firing == {"algo_id": "4000000017", "status": "TRIGGERING",
                                  "since_ms": "1700000000000", "child_id": ""}
    veto = [e for _, e in await alive._redis.xrange(KEYS.events) if e["kind"] == "veto"]
    assert veto[-1]["reason"] == "stop_triggered"
    with pytest.raises(Vetoed, match=r"stop_triggered.*algo 4000000017 TRIGGERING"):
        async with client.guard_stop_update("BTCUSDT", holder="bot"):
            pytest.fail("begin must veto")
    assert await alive.mark_firing(BTC, None)
    assert (await client.check("BTCUSDT")).reason == "ok"
    assert "firing_algo_id" not in await alive._redis.hgetall(KEYS.position(BTC))


async def test_confirm_does_not_veto_on_a_firing_stop(alive: RedisPublisher,
                                                      client: AsyncWatchdogClient) -> None:
    """Only positive knowledge of a closure vetoes confirm: the bot has already cancelled."""
    begun = await client.begin("BTCUSDT", holder="bot")
    assert begun.allowed
    await alive.mark_firing(BTC, FIRING)
    confirmed = await client.confirm("BTCUSDT", "BOTH", begun.lease or 0)
    assert (confirmed.allowed, confirmed.reason) == (True, "ok")
    await alive.publish(make_view(BTC, state=PositionState.CLOSED, version=2, verified_ms=now_ms()))
    closed = await client.confirm("BTCUSDT", "BOTH", begun.lease or 0)
    assert (closed.allowed, closed.reason) == (False, "position_closed")


async def test_a_fresh_closure_wins_over_a_firing_stop(alive: RedisPublisher,
                                                       client: AsyncWatchdogClient) -> None:
    await alive.mark_firing(BTC, FIRING)
    await alive.publish(make_view(BTC, state=PositionState.CLOSED, version=2, verified_ms=now_ms()))
    assert (await client.begin("BTCUSDT", holder="bot")).reason == "position_closed"


async def test_no_hash_is_created_and_the_marker_follows_the_next_publish(
        publisher: RedisPublisher, client: AsyncWatchdogClient) -> None:
    await publisher.heartbeat({"stream": "live"})
    assert not await publisher.mark_firing(BTC, FIRING)
    assert not await publisher._redis.exists(KEYS.position(BTC))
    await publisher.publish(make_view(BTC, version=1, verified_ms=now_ms()))
    assert (await client.check("BTCUSDT")).reason == "stop_triggered"
    # A full publish keeps the marker (publish_position writes its own fields only) ...
    await publisher.run_many([Publish(make_view(BTC, version=2, verified_ms=now_ms(), amount="0.02")),
                              Publish(make_view(position_key("ETHUSDT"), version=1,
                                                verified_ms=now_ms()))])
    assert (await client.check("BTCUSDT")).reason == "stop_triggered"
    # ... and Redis losing everything brings it back with the republish.
    await publisher._redis.flushall()
    assert await publisher.heartbeat({"stream": "live"})
    assert (await client.check("BTCUSDT")).reason == "stop_triggered"
    await publisher.run_many([MarkFiring(BTC, None), MarkFiring(position_key("ETHUSDT"), None)])
    assert (await client.check("BTCUSDT")).reason == "ok"


async def test_a_marker_left_by_an_earlier_run_is_cleared_by_the_next_runs_first_publish(
        alive: RedisPublisher, redis_url: str, client: AsyncWatchdogClient) -> None:
    """The earlier run crashed with a stop firing; the stop finished while it was down."""
    await alive.mark_firing(BTC, FIRING)
    assert (await client.check("BTCUSDT")).reason == "stop_triggered"
    restarted = RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=10_000,
                                        closed_ttl_s=60, events_maxlen=1000,
                                        veto_max_age_ms=5_000, socket_timeout_s=2.0)
    await restarted.start()
    await take_lead(restarted)
    try:
        await restarted.run_many([Publish(make_view(BTC, version=7, verified_ms=now_ms())),
                                  Publish(make_view(position_key("ETHUSDT"), version=7,
                                                    verified_ms=now_ms()))])
        assert (await client.check("BTCUSDT")).reason == "ok"
        await restarted.run_many([Publish(make_view(BTC, version=8, verified_ms=now_ms(),
                                                    amount="0.02"))])
        await restarted.mark_firing(BTC, FIRING)
        await restarted.publish(make_view(BTC, version=9, verified_ms=now_ms()))
        assert (await client.check("BTCUSDT")).reason == "stop_triggered"  # this run's marker
    finally:
        await restarted.close()


async def test_a_marker_another_leader_left_is_cleared_at_a_takeover_of_an_instance_that_led_before(
        redis_url: str, client: AsyncWatchdogClient) -> None:
    """B led and published the position, handed the lead on (a fair share's hand-on, or a
    failover back); A marked a stop firing; the stop finished, seen by B as a standby; A dies
    and B takes over. B's first complete publish in its earlier term had synced the key, so
    until session 9 its republish did not drop A's marker: ``begin`` vetoed the bot with
    ``stop_triggered`` (retry later) on an open position whose stop was long gone, for as long
    as B led. Each lead term now starts unsynced, as a run does."""
    def instance() -> RedisPublisher:
        return RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=10_000,
                                       closed_ttl_s=60, events_maxlen=1000,
                                       veto_max_age_ms=5_000, socket_timeout_s=2.0)
    a, b = instance(), instance()
    await a.start()
    await b.start()
    try:
        t = now_ms()
        assert await b.acquire()
        await b.heartbeat({"stream": "live"}, wall_ms=t)
        assert await b.run_many([Publish(make_view(BTC, version=1, verified_ms=t))])
        await b.resign("test: hand-on")
        assert await a.acquire()
        await a.heartbeat({"stream": "live"}, wall_ms=t)
        assert await a.run_many([Publish(make_view(BTC, version=1, verified_ms=t)),
                                 MarkFiring(BTC, FIRING)])
        assert (await client.check("BTCUSDT")).reason == "stop_triggered"
        assert not await b.run_many([MarkFiring(BTC, FIRING)])  # held: a standby
        assert not await b.run_many([MarkFiring(BTC, None)])  # the stop finished
        await a._redis.delete(KEYS.leader)  # A killed: its lease deleted, not waited out
        a.step_down("test: killed")
        assert await b.acquire(announce=True)
        await b.take_over({"stream": "live"}, wall_ms=now_ms())
        assert (await client.check("BTCUSDT")).reason == "ok"
        assert "firing_algo_id" not in await b._redis.hgetall(KEYS.position(BTC))
        # A marker the leader knows is written again by its next takeover's republish.
        assert await b.run_many([MarkFiring(BTC, FIRING)])
        await b._redis.flushall()
        assert await b.heartbeat({"stream": "live"})
        assert (await client.check("BTCUSDT")).reason == "stop_triggered"
    finally:
        await a.close()
        await b.close()
