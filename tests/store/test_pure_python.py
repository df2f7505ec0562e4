"""The publisher without hiredis: redis-py's pure-Python parser and packer, end to end.

The ``fast`` extra (hiredis) is optional; a client made with a pure-Python parser makes the
publisher pack its batches with redis-py too (``watchdog.store.runner``), so these tests
run, in the normal suite, the path of a venv without hiredis. Before, that path went through
redis-py's own pipeline, which retried a timed-out batch instead of failing it once
(tests/store/test_run_many.py runs its stalled-batch test with these parsers too).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis._parsers import _AsyncRESP2Parser, _AsyncRESP3Parser

from poswatch.client import AsyncWatchdogClient
from tests.support.store import ACCOUNT, make_view, position_key, publisher_on, take_lead
from watchdog.core.effects import Notify, Publish, Retract
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
PARSERS = [_AsyncRESP2Parser, _AsyncRESP3Parser]


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(params=PARSERS, ids=lambda parser: parser.__name__)
async def pure(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[RedisPublisher]:
    pub = publisher_on(redis_url, parser=request.param)
    assert not pub._runner.hiredis_packs
    await pub.start()
    await take_lead(pub)
    yield pub
    await pub.close()


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
