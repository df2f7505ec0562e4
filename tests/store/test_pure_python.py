"""The publisher without hiredis: redis-py's pure-Python parser and packer, end to end.

The ``fast`` extra (hiredis) is optional; a client made with a pure-Python parser makes the
publisher pack its batches with redis-py too (``watchdog.store.runner``), so these tests
run, in the normal suite, the path of a venv without hiredis. Before, that path went through
redis-py's own pipeline, which retried a timed-out batch instead of failing it once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser

from poswatch.client import AsyncWatchdogClient
from tests.support.store import ACCOUNT, make_view, position_key, take_lead
from watchdog.core.effects import Notify, Publish, Retract
from watchdog.errors import StoreUnavailable
from watchdog.store.connection import connect
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
PARSERS = [_AsyncRESP2Parser, _AsyncRESP3Parser]


def now_ms() -> int:
    return int(time.time() * 1000)


def pure_publisher(redis_url: str, parser: type, socket_timeout_s: float) -> RedisPublisher:
    """As ``RedisPublisher.from_url`` (the same retry policy), reading with ``parser``."""
    client = connect(redis_url, socket_timeout_s=socket_timeout_s, client_name="position-watchdog")
    client.connection_pool.connection_kwargs["parser_class"] = parser
    pub = RedisPublisher(client, account=ACCOUNT, health_ttl_ms=10_000, closed_ttl_s=60,
                         events_maxlen=1000, veto_max_age_ms=5_000, url=redis_url)
    assert not pub._runner.hiredis_packs
    return pub


@pytest.fixture(params=PARSERS, ids=lambda parser: parser.__name__)
async def pure(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[RedisPublisher]:
    pub = pure_publisher(redis_url, request.param, 2.0)
    await pub.start()
    await take_lead(pub)
    yield pub
    await pub.close()


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_a_batch_is_written_in_order_and_bots_read_it(
        pure: RedisPublisher, r: redis.asyncio.Redis, client: AsyncWatchdogClient) -> None:
    btc, eth = position_key("BTCUSDT"), position_key("ETHUSDT")
    assert await pure.heartbeat({"stream": "live"}) is False
    t = now_ms()
    await pure.run_many([
        Publish(make_view(btc, version=1, verified_ms=t, amount="0.010")),
        Notify("position_opened", btc, (("amount", "0.010"),)),
        Publish(make_view(btc, version=2, verified_ms=t, amount="0.020")),
        Publish(make_view(eth, version=1, verified_ms=t)),
        Retract(eth, "stream lost"),
        Publish(make_view(btc, version=1, verified_ms=t, amount="0.5")),  # older: refused by CAS
    ])
    btc_hash = await r.hgetall(KEYS.position(btc))
    assert (btc_hash["amt"], btc_hash["version"]) == ("0.020", "2")
    assert (await r.hget(KEYS.position(eth), "state")) == "unknown"
    assert [fields["kind"] for _, fields in await r.xrange(KEYS.events)] == ["position_opened"]
    assert (await client.check("BTCUSDT")).allowed
    assert await pure.lease_ends_in() == {}


async def test_scripts_flushed_between_batches_are_loaded_again(
        pure: RedisPublisher, r: redis.asyncio.Redis) -> None:
    key = position_key()
    await r.script_flush()
    await pure.run_many([Publish(make_view(key, version=1, verified_ms=now_ms())),
                         Notify("position_opened", key)])
    assert await r.hget(KEYS.position(key), "version") == "1"
    await r.script_flush()
    assert await pure.publish(make_view(key, version=2, verified_ms=now_ms()))  # one call alone
    assert await r.hget(KEYS.position(key), "version") == "2"


@pytest.mark.parametrize("parser", PARSERS, ids=lambda parser: parser.__name__)
async def test_a_stalled_batch_times_out_once_and_the_connection_is_not_reused(
        redis_url: str, r: redis.asyncio.Redis, parser: type) -> None:
    pub = pure_publisher(redis_url, parser, 0.3)
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
