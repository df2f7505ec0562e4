"""docs/RULES.md rule 3: a bot using the plain-Redis recipe (docs/PROTOCOL.md §4) passes its own
``SYMBOL:SIDE`` member to ``begin``. ``begin`` now refuses a malformed one ("btcusdt:BOTH",
"BTCUSDT") with a clear error and writes nothing (issue 12, bad input); one can still land in
the leases zset by hand (the bot's ACL allows ZADD there). Reading leases must not raise out of
the store (the poller and the reaper call it in their loops: an escaping ValueError ended the
daemon). Real redis-server, real scripts."""

from __future__ import annotations

import time

import pytest
import redis

from tests.support.store import ACCOUNT, make_view, position_key
from watchdog.core.model import PositionKey
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEYS = AccountKeys(ACCOUNT)
BTC = position_key("BTCUSDT")


def raw_begin(redis_url: str, member: str) -> list[object]:
    """``begin`` exactly as the plain-Redis recipe sends it, with the bot's own member."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        sha = client.hget(KEYS.health, "sha_begin")
        p = KEYS.of(BTC)
        reply: list[object] = client.evalsha(  # type: ignore[assignment]
            sha, 4, p.lease, KEYS.lease_seq, KEYS.leases, KEYS.events,
            member, "plain-bot", 30_000, "", KEYS.channel, KEYS.health, p.position, p.reaping)
        return reply
    finally:
        client.close()


ALL_BTC = frozenset(position_key("BTCUSDT", side) for side in ("BOTH", "LONG", "SHORT"))


@pytest.mark.parametrize(("member", "read_as"), [
    ("btcusdt:BOTH", frozenset({BTC})),
    ("BTCUSDT:both", frozenset({BTC})),
    ("BTCUSDT", ALL_BTC),          # no side: when unsure, every side waits
    ("BTCUSDT:BOTHX", ALL_BTC),
    (":", frozenset()),
    ("", frozenset()),
])
async def test_malformed_lease_member_does_not_break_lease_reads(
        publisher: RedisPublisher, redis_url: str, member: str,
        read_as: frozenset[PositionKey]) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, verified_ms=time.time_ns() // 1_000_000))
    with pytest.raises(redis.ResponseError, match="bad member: expected SYMBOL:SIDE"):
        raw_begin(redis_url, member)
    assert await publisher.leased_symbols() == frozenset()  # nothing written
    await publisher._redis.zadd(KEYS.leases, {member: time.time_ns() // 1_000_000 + 30_000})
    assert await publisher.leased_symbols() == read_as
    assert await publisher.leased_symbols() == read_as  # and again (warned once)


async def test_a_well_formed_member_is_read_exactly(publisher: RedisPublisher,
                                                   redis_url: str) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BTC, verified_ms=time.time_ns() // 1_000_000))
    assert raw_begin(redis_url, "BTCUSDT:BOTH")[0] == 1
    assert await publisher.leased_symbols() == frozenset({BTC})
