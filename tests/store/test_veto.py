"""The veto protocol against a real redis-server: every verdict reason, leases, expiry, down."""

from __future__ import annotations

import pytest

from poswatch.client import AsyncWatchdogClient, Vetoed, WatchdogClient
from tests.support.redis_server import dead_redis_url
from tests.support.store import ACCOUNT, MAX_AGE_MS, make_view, now_ms, position_key
from tests.support.waiting import eventually
from watchdog.core.model import PositionState
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
BTC = position_key("BTCUSDT")


async def test_open_and_fresh_is_allowed(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    verdict = await client.check("BTCUSDT")
    assert verdict.allowed
    assert verdict.reason == "ok"
    assert verdict.lease is None
    assert verdict.position["state"] == "open"
    assert verdict.position["amt"] == "0.010"
    assert verdict.age_ms is not None
    assert 0 <= verdict.age_ms < MAX_AGE_MS


async def test_watchdog_down_without_health(publisher: RedisPublisher, client: AsyncWatchdogClient) -> None:
    await publisher.publish(make_view(BTC, version=1, verified_ms=now_ms()))
    for verdict in (await client.check("BTCUSDT"), await client.begin("BTCUSDT", holder="bot")):
        assert not verdict.allowed
        assert verdict.reason == "watchdog_down"


async def test_no_position(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    verdict = await client.begin("ETHUSDT", holder="bot")
    assert (verdict.allowed, verdict.reason) == (False, "no_position")
    assert (verdict.position, verdict.age_ms) == ({}, None)


async def test_position_closed(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    await alive.publish(make_view(BTC, state=PositionState.CLOSED, version=2, verified_ms=now_ms()))
    verdict = await client.begin("BTCUSDT", holder="bot")
    assert not verdict.allowed
    assert verdict.reason == "position_closed"


@pytest.mark.parametrize("view_kwargs", [
    {"verified_ms_delta": -(MAX_AGE_MS + 2_000)},                        # open but too old
    {"state": PositionState.UNKNOWN, "verified_ms_delta": 0},            # knowledge lost
], ids=["too_old", "unknown"])
async def test_stale(alive: RedisPublisher, client: AsyncWatchdogClient, view_kwargs: dict[str,
                     object]) -> None:
    delta = int(view_kwargs.pop("verified_ms_delta"))  # type: ignore[call-overload]
    await alive.publish(make_view(BTC, version=2, verified_ms=now_ms() + delta, **view_kwargs))  # type: ignore[arg-type]
    verdict = await client.begin("BTCUSDT", holder="bot")
    assert not verdict.allowed
    assert verdict.reason == "stale"


async def test_retracted_position_is_stale(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    await alive.retract(BTC, "snapshot_failed")
    assert (await client.check("BTCUSDT")).reason == "stale"


async def test_max_age_argument_overrides_the_watchdogs(alive: RedisPublisher, redis_url: str) -> None:
    await alive.publish(make_view(BTC, version=2, verified_ms=now_ms() - 3_000))
    strict = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, max_age_ms=1_000)
    assert (await strict.check("BTCUSDT")).reason == "stale"
    await strict.close()


async def test_reaping(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    await alive.mark_reaping(BTC, ttl_ms=30_000)
    assert (await client.begin("BTCUSDT", holder="bot")).reason == "reaping"
    await alive.clear_reaping(BTC)
    assert (await client.begin("BTCUSDT", holder="bot")).allowed


async def test_two_holders_one_lease(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    first = await client.begin("BTCUSDT", holder="bot-a", ttl_ms=30_000)
    second = await client.begin("BTCUSDT", holder="bot-b", ttl_ms=30_000)
    assert first.allowed
    assert first.lease is not None
    assert not second.allowed
    assert second.reason == "lease_held"
    assert (await client.check("BTCUSDT")).reason == "lease_held"
    assert await alive.leased_symbols() == frozenset({BTC})
    ended = await client.end("BTCUSDT", "BOTH", first.lease, "ok")
    assert ended.released
    assert ended.window_ms is not None
    third = await client.begin("BTCUSDT", holder="bot-b", ttl_ms=30_000)
    assert third.allowed
    assert third.lease is not None
    assert third.lease > first.lease
    assert await client.end("BTCUSDT", "BOTH", first.lease, "late") == type(ended)(False, "lease_lost", None)


async def test_lease_expiry(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    first = await client.begin("BTCUSDT", holder="bot-a", ttl_ms=200)
    assert first.allowed
    second = await eventually(lambda: client.begin("BTCUSDT", holder="bot-b", ttl_ms=30_000),
                              lambda v: v.allowed, what="lease expiry")
    assert second.lease != first.lease
    expired = [e for _, e in await alive._redis.xrange(KEYS.events) if e.get("action") == "expired"]
    assert expired
    assert expired[0]["token"] == str(first.lease)
    late = await client.confirm("BTCUSDT", "BOTH", first.lease or 0)
    assert late.allowed
    assert late.reason == "lease_expired"


async def test_closure_between_begin_and_confirm_vetoes(alive: RedisPublisher,
                                                        client: AsyncWatchdogClient) -> None:
    begun = await client.begin("BTCUSDT", holder="bot")
    assert begun.allowed
    assert begun.lease is not None
    await alive.publish(make_view(BTC, state=PositionState.CLOSED, version=2, verified_ms=now_ms()))
    confirmed = await client.confirm("BTCUSDT", "BOTH", begun.lease)
    assert not confirmed.allowed
    assert confirmed.reason == "position_closed"
    assert await alive.leased_symbols() == frozenset()  # the closure revoked the lease
    events = [e for _, e in await alive._redis.xrange(KEYS.events)]
    assert [e["action"] for e in events if e["kind"] == "lease"] == ["begin", "revoked"]
    assert events[-1]["kind"] == "veto"
    assert events[-1]["op"] == "confirm"


async def test_revoked_lease_vetoes_confirm(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    begun = await client.begin("BTCUSDT", holder="bot")
    assert await alive.revoke_leases_for(BTC, "operator")
    confirmed = await client.confirm("BTCUSDT", "BOTH", begun.lease or 0)
    assert not confirmed.allowed
    assert confirmed.reason == "lease_revoked"


async def test_confirm_allows_unverified_when_unsure(alive: RedisPublisher,
                                                     client: AsyncWatchdogClient) -> None:
    begun = await client.begin("BTCUSDT", holder="bot")
    await alive.retract(BTC, "stream_lost")
    unsure = await client.confirm("BTCUSDT", "BOTH", begun.lease or 0)
    assert unsure.allowed
    assert unsure.reason == "unverified"
    await alive._redis.delete(KEYS.health)   # the watchdog is gone
    down = await client.confirm("BTCUSDT", "BOTH", begun.lease or 0)
    assert down.allowed
    assert down.reason == "unverified"


async def test_confirm_ok_and_window_recorded(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    async with client.guard_stop_update("BTCUSDT", holder="bot") as guard:
        verdict = await guard.confirm()
        assert verdict.allowed
        assert verdict.reason == "ok"
        assert verdict.lease == guard.lease
    windows = await alive.read_windows()
    assert windows["BTCUSDT:BOTH:count"] == "1"
    assert '"outcome":"ok"' in windows["BTCUSDT:BOTH"]
    assert await alive.leased_symbols() == frozenset()


async def test_guard_raises_vetoed_and_ends(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    async def update_stop(symbol: str) -> None:
        async with client.guard_stop_update(symbol, holder="bot") as guard:
            await alive.publish(make_view(BTC, state=PositionState.CLOSED, version=2, verified_ms=now_ms()))
            await guard.confirm()

    with pytest.raises(Vetoed) as caught:
        await update_stop("ETHUSDT")
    assert caught.value.op == "begin"
    assert caught.value.verdict.reason == "no_position"
    with pytest.raises(Vetoed) as caught:
        await update_stop("BTCUSDT")
    assert caught.value.op == "confirm"
    assert '"outcome":"vetoed"' in (await alive.read_windows())["BTCUSDT:BOTH"]


async def test_watchdog_stopped_is_down_within_health_ttl(redis_url: str,
                                                          client: AsyncWatchdogClient) -> None:
    short = RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=300, closed_ttl_s=60,
                                    events_maxlen=100, veto_max_age_ms=60_000, socket_timeout_s=2.0)
    await short.start()
    await short.heartbeat({"stream": "live"})
    await short.publish(make_view(BTC, version=1, verified_ms=now_ms()))
    await short.close()   # the watchdog stops: no more heartbeats
    verdict = await eventually(lambda: client.check("BTCUSDT"), lambda v: not v.allowed,
                               timeout_s=10, what="watchdog_down")
    assert verdict.reason == "watchdog_down"


async def test_unreachable_redis_vetoes_begin_and_allows_confirm() -> None:
    c = AsyncWatchdogClient.from_url(dead_redis_url(), ACCOUNT, socket_timeout_s=0.2)
    assert (await c.check("BTCUSDT")).reason == "watchdog_down"
    assert (await c.begin("BTCUSDT", holder="bot")).reason == "watchdog_down"
    assert (await c.confirm("BTCUSDT", "BOTH", 7)).reason == "unverified"
    await c.close()


async def test_sync_client_and_subscribe(alive: RedisPublisher, redis_url: str) -> None:
    c = WatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
    events = c.subscribe(last_id=c.last_event_id(), block_ms=100)
    await alive.emit("position_closed", {"position": "BTCUSDT:BOTH"})
    assert c.check("BTCUSDT").allowed
    with c.guard_stop_update("BTCUSDT", holder="bot") as guard:
        assert guard.confirm().reason == "ok"
    kinds = [next(events).kind for _ in range(4)]
    assert kinds == ["position_closed", "lease", "lease", "lease"]
    c.close()


async def test_async_subscribe_sees_closure(alive: RedisPublisher, client: AsyncWatchdogClient) -> None:
    events = client.subscribe(last_id=await client.last_event_id(), block_ms=100)
    await alive.publish(make_view(BTC, state=PositionState.CLOSED, version=2, verified_ms=now_ms()))
    await alive.emit("position_closed", {"position": "BTCUSDT:BOTH"})
    event = await anext(events)
    assert event.kind == "position_closed"
    assert event.fields["position"] == "BTCUSDT:BOTH"
    await events.aclose()
