"""RedisPublisher.run_many: one pipelined round trip, the same writes as run() one by one."""

from __future__ import annotations

import pytest
import redis.asyncio
from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser

from tests.support.redis_server import dead_redis_url
from tests.support.store import (
    ACCOUNT,
    as_leader,
    make_view,
    now_ms,
    position_key,
    publisher_on,
    take_lead,
)
from watchdog.core.effects import Notify, Publish, RaiseAlert, Retract
from watchdog.errors import StoreUnavailable
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)


async def test_batch_writes_in_order(publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    btc, eth = position_key("BTCUSDT"), position_key("ETHUSDT")
    t = now_ms()
    await publisher.run_many([
        Publish(make_view(btc, version=1, verified_ms=t, amount="0.010")),
        Notify("position_opened", btc, (("amount", "0.010"),)),
        Publish(make_view(btc, version=2, verified_ms=t, amount="0.020")),
        Publish(make_view(eth, version=1, verified_ms=t)),
        Retract(eth, "stream lost"),
        RaiseAlert("margin_call", "margin call on ETHUSDT:BOTH", eth),
        Publish(make_view(btc, version=1, verified_ms=t, amount="0.5")),  # older: refused by CAS
    ])
    btc_hash = await r.hgetall(KEYS.position(btc))
    assert (btc_hash["amt"], btc_hash["version"], btc_hash["rev"]) == ("0.020", "2", "2")
    eth_hash = await r.hgetall(KEYS.position(eth))
    assert (eth_hash["state"], eth_hash["reason"]) == ("unknown", "stream lost")
    kinds = [fields["kind"] for _, fields in await r.xrange(KEYS.events)]
    assert kinds == ["position_opened", "alert"]


async def test_scripts_flushed_between_batches(publisher: RedisPublisher, r: redis.asyncio.Redis) -> None:
    key = position_key()
    await r.script_flush()
    await publisher.run_many([Publish(make_view(key, version=1, verified_ms=now_ms())),
                              Notify("position_opened", key)])
    assert await r.hget(KEYS.position(key), "version") == "1"
    assert await r.xlen(KEYS.events) == 1


async def test_unreachable_redis_marks_positions_dirty() -> None:
    pub = RedisPublisher.from_url(dead_redis_url(), account=ACCOUNT, health_ttl_ms=1000,
                                  closed_ttl_s=60, events_maxlen=100, veto_max_age_ms=1000,
                                  socket_timeout_s=0.2)
    as_leader(pub)
    key = position_key()
    with pytest.raises(StoreUnavailable):
        await pub.run_many([Publish(make_view(key, version=1, verified_ms=now_ms())),
                            Notify("position_opened", key)])
    assert key in pub._dirty  # rewritten by the next heartbeat
    await pub.close()


@pytest.mark.parametrize("parser", [None, _AsyncRESP2Parser, _AsyncRESP3Parser],
                         ids=["default", "resp2-python", "resp3-python"])
async def test_a_stalled_batch_times_out_once_and_the_connection_is_not_reused(
        redis_url: str, r: redis.asyncio.Redis, parser: type | None) -> None:
    """Pure-Python parsers too (tests/store/test_pure_python.py): without hiredis this batch
    went through redis-py's own pipeline, which retried it instead of failing it once."""
    pub = publisher_on(redis_url, socket_timeout_s=0.3, parser=parser)
    await pub.start()
    await take_lead(pub)
    btc, eth = position_key("BTCUSDT"), position_key("ETHUSDT")
    await r.execute_command("CLIENT", "PAUSE", "1000", "ALL")  # Redis answers nobody meanwhile
    try:
        with pytest.raises(StoreUnavailable, match="TimeoutError"):
            await pub.run_many([Publish(make_view(btc, version=1, verified_ms=now_ms())),
                                Publish(make_view(eth, version=1, verified_ms=now_ms()))])
    finally:
        await r.execute_command("CLIENT", "UNPAUSE")
    assert {btc, eth} <= pub._dirty  # rewritten by the next heartbeat
    # The late replies of the stalled batch must not be read as the answers of the next one.
    await pub.run_many([Publish(make_view(btc, version=2, verified_ms=now_ms(), amount="0.030")),
                        Notify("position_opened", btc)])
    assert await r.hget(KEYS.position(btc), "amt") == "0.030"
    assert not pub._dirty & {btc}
    await pub.close()
