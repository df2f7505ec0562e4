"""Publication against a real redis-server: CAS on version, TTLs, health, events, restart."""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

import pytest
import redis.asyncio

from tests.support.redis_server import RedisServer, dead_redis_url
from tests.support.store import ACCOUNT, as_leader, make_view, now_ms, position_key, take_lead
from tests.support.waiting import eventually
from watchdog.core.effects import Notify, RaiseAlert, Retract
from watchdog.core.model import PositionState
from watchdog.errors import InvariantViolation, StoreError, StoreUnavailable
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)


async def test_publish_writes_every_field(publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    view = make_view(version=3, verified_ms=1_700_000_000_123)
    assert await publisher.publish(view)
    stored = await r.hgetall(KEYS.position(view.key))
    assert stored["state"] == "open"
    assert stored["knowledge"] == "confirmed"
    assert stored["amt"] == "0.010"
    assert stored["entry"] == "60000.5"
    assert stored["source"] == "stream"
    assert stored["as_of_ms"] == "1700000000118"
    assert stored["verified_ms"] == "1700000000123"
    assert stored["version"] == "3"
    assert stored["symbol"] == "BTCUSDT"
    assert stored["side"] == "BOTH"
    assert await r.smembers(KEYS.positions) == {"BTCUSDT:BOTH"}
    assert await r.pttl(KEYS.position(view.key)) == -1


async def test_amounts_are_plain_decimal_strings(publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    view = dataclasses.replace(make_view(version=1, verified_ms=now_ms()), amount=Decimal("-1E+1"),
                               entry_price=Decimal("0E-8"))
    await publisher.publish(view)
    assert await r.hmget(KEYS.position(view.key), "amt", "entry") == ["-10", "0.00000000"]


async def test_older_version_never_overwrites_newer(publisher: RedisPublisher,
                                                    r: redis.asyncio.Redis) -> None:
    newer = make_view(state=PositionState.CLOSED, version=7, verified_ms=now_ms())
    older = make_view(state=PositionState.OPEN, version=6, verified_ms=now_ms() + 1000)
    assert await publisher.publish(newer)
    assert not await publisher.publish(older)
    assert not await publisher.publish(newer)  # same version: no rewrite
    assert await r.hget(KEYS.position(newer.key), "state") == "closed"


async def test_closed_position_keeps_hash_with_ttl(publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    await publisher.publish(make_view(version=1, verified_ms=now_ms()))
    await publisher.publish(make_view(state=PositionState.CLOSED, version=2, verified_ms=now_ms()))
    ttl_ms = await r.pttl(KEYS.position(position_key()))
    assert 0 < ttl_ms <= 60_000
    await publisher.publish(make_view(version=3, verified_ms=now_ms()))  # reopened: no TTL any more
    assert await r.pttl(KEYS.position(position_key())) == -1


async def test_retract_marks_unknown_and_keeps_version(publisher: RedisPublisher,
                                                       r: redis.asyncio.Redis) -> None:
    await publisher.publish(make_view(version=5, verified_ms=now_ms()))
    await publisher.run(Retract(position_key(), "stream_lost"))
    stored = await r.hgetall(KEYS.position(position_key()))
    assert stored["state"] == "unknown"
    assert stored["reason"] == "stream_lost"
    assert stored["version"] == "5"
    assert not await publisher.publish(make_view(version=5, verified_ms=now_ms()))  # the retracted fact
    assert await publisher.publish(make_view(version=6, verified_ms=now_ms()))      # a newer fact


async def test_heartbeat_writes_health_with_ttl(publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    await publisher.heartbeat({"stream": "live", "last_event_age_ms": 12, "weight_used": None,
                               "reaping": {"cancelled": 1}})
    health = await r.hgetall(KEYS.health)
    assert health["stream"] == "live"
    assert health["last_event_age_ms"] == "12"
    assert health["reaping"] == '{"cancelled":1}'
    assert health["veto_max_age_ms"] == "5000"
    assert health["instance"].count(":") == 2
    assert health["sha_begin"]
    assert 0 < await r.pttl(KEYS.health) <= 10_000


async def test_heartbeat_refuses_secret_looking_fields(publisher: RedisPublisher,
                                                       r: redis.asyncio.Redis) -> None:
    with pytest.raises(InvariantViolation, match="secret"):
        await publisher.heartbeat({"binance_api_secret": "x"})
    assert not await r.exists(KEYS.health)


async def test_secrets_never_reach_redis(publisher: RedisPublisher, r: redis.asyncio.Redis,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    secret, api_key = "s3cr3t-SECRET-value", "k3y-API-KEY-value"
    monkeypatch.setenv("BINANCE_API_KEY", api_key)
    monkeypatch.setenv("BINANCE_API_SECRET", secret)
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(version=1, verified_ms=now_ms()))
    await publisher.emit("position_opened", {"position": "BTCUSDT:BOTH"})
    dump = []
    async for key in r.scan_iter("*"):
        dump.append(key)
        kind = await r.type(key)
        if kind == "hash":
            dump.extend(str(v) for pair in (await r.hgetall(key)).items() for v in pair)
        elif kind == "stream":
            dump.extend(str(entry) for entry in await r.xrange(key))
        elif kind == "string":
            dump.append(str(await r.get(key)))
    text = "\n".join(dump)
    assert secret not in text
    assert api_key not in text


async def test_emit_goes_to_stream_and_channel(publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    pubsub = r.pubsub()
    await pubsub.subscribe(KEYS.channel)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    await publisher.run(Notify("position_closed", position_key(), (("amt", "0"),)))
    await publisher.run(RaiseAlert("stream_lost", "user data stream dropped"))
    entries = await r.xrange(KEYS.events)
    assert [e[1]["kind"] for e in entries] == ["position_closed", "alert"]
    assert entries[0][1]["position"] == "BTCUSDT:BOTH"
    assert entries[0][1]["amt"] == "0"
    message = await eventually(lambda: pubsub.get_message(timeout=0.1), lambda m: m is not None,
                               what="pub/sub notification")
    assert '"position_closed"' in message["data"]
    await pubsub.aclose()


async def test_redis_restart_republishes_within_one_heartbeat(
        redis_server: RedisServer, publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    key_a, key_b = position_key("BTCUSDT"), position_key("ETHUSDT", "LONG")
    await publisher.publish(make_view(key_a, version=4, verified_ms=now_ms()))
    await publisher.publish(make_view(key_b, version=2, verified_ms=now_ms()))
    await publisher.retract(key_b, "snapshot_failed")
    assert not await publisher.heartbeat({"stream": "live"})  # it leads: nothing was lost
    assert not await publisher.heartbeat({"stream": "live"})
    redis_server.restart()
    assert await publisher.heartbeat({"stream": "live"})
    assert (await r.hgetall(KEYS.position(key_a)))["version"] == "4"
    assert (await r.hgetall(KEYS.position(key_b)))["state"] == "unknown"
    assert await r.exists(KEYS.health)


async def test_flushall_is_detected_by_the_next_heartbeat(publisher: RedisPublisher,
                                                          r: redis.asyncio.Redis) -> None:
    await publisher.publish(make_view(version=1, verified_ms=now_ms()))
    await publisher.heartbeat({})
    await r.flushall()
    await r.script_flush()
    assert await publisher.heartbeat({})
    assert await r.hget(KEYS.position(position_key()), "state") == "open"
    assert all(await r.script_exists(*(await r.hmget(KEYS.health, "sha_check", "sha_begin"))))


async def _command_calls(r: redis.asyncio.Redis) -> dict[str, int]:
    stats = await r.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def test_a_steady_beat_is_one_round_trip_without_script_exists(
        publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    """Session 7: the beat's own EVALSHA is the scripts' check (a NOSCRIPT reloads them all)."""
    await publisher.heartbeat({})
    await r.config_resetstat()
    await publisher.heartbeat({})
    calls = await _command_calls(r)  # the script's own commands are counted too
    assert calls["evalsha"] == 1
    assert not {name for name in calls if name.startswith("script")}


async def test_a_script_flush_reloads_the_bots_scripts_within_the_next_beat(
        publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    await publisher.heartbeat({})
    await r.script_flush()
    assert not any(await r.script_exists(*(await r.hmget(KEYS.health, "sha_check", "sha_begin",
                                                         "sha_confirm", "sha_end"))))
    assert not await publisher.heartbeat({})  # the data is still there: no republish
    assert all(await r.script_exists(*(await r.hmget(KEYS.health, "sha_check", "sha_begin",
                                                     "sha_confirm", "sha_end"))))


async def test_unreachable_redis_is_store_unavailable(redis_server: RedisServer) -> None:
    url = dead_redis_url()
    pub = RedisPublisher.from_url(url, account=ACCOUNT, health_ttl_ms=1000,
                                  closed_ttl_s=1, events_maxlen=10, veto_max_age_ms=1000,
                                  socket_timeout_s=0.2)
    as_leader(pub)
    with pytest.raises(StoreUnavailable, match=re.escape(url.removesuffix("/0"))):
        await pub.publish(make_view(version=1, verified_ms=now_ms()))
    await pub.close()


async def test_failed_write_is_rewritten_by_the_next_heartbeat(redis_url: str,
                                                               r: redis.asyncio.Redis) -> None:
    """Redis keeps its data but refused one write (here: the watchdog's ACL user was deleted)."""
    await r.acl_setuser("wd", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"], commands=["+@all"])
    url = redis_url.replace("redis://", "redis://wd:pw@")
    pub = RedisPublisher.from_url(url, account=ACCOUNT, health_ttl_ms=5_000, closed_ttl_s=60,
                                  events_maxlen=100, veto_max_age_ms=5_000, socket_timeout_s=2.0)
    await pub.start()
    await take_lead(pub)
    await pub.publish(make_view(version=1, verified_ms=now_ms()))
    await pub.heartbeat({})
    await r.acl_deluser("wd")                      # disconnects the publisher; it cannot log in again
    with pytest.raises(StoreError):
        await pub.publish(make_view(state=PositionState.CLOSED, version=2, verified_ms=now_ms()))
    await r.acl_setuser("wd", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"], commands=["+@all"])
    assert not await pub.heartbeat({})             # Redis kept its data: no full republish …
    stored = await r.hgetall(KEYS.position(position_key()))
    assert stored["version"] == "2"                # … but the failed write was made good
    assert stored["state"] == "closed"
    await pub.close()
    await r.acl_deluser("wd")
