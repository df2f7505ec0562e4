"""RedisPublisher.last_shown against a real redis-server: what an earlier run last told bots."""

from __future__ import annotations

from tests.support.store import make_view, position_key
from watchdog.core.model import PositionState
from watchdog.store.publisher import RedisPublisher

BTC, ETH, SOL, XRP = (position_key(s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"))


async def test_last_shown_reads_open_and_closed_and_skips_the_rest(publisher: RedisPublisher) -> None:
    await publisher.publish(make_view(BTC, verified_ms=1_000))
    await publisher.publish(make_view(ETH, state=PositionState.CLOSED, verified_ms=2_000))
    await publisher.publish(make_view(SOL, state=PositionState.UNKNOWN, verified_ms=3_000))
    await publisher.publish(make_view(XRP, verified_ms=4_000))
    await publisher._redis.hset(publisher.keys.position(XRP), "verified_ms", "inf")  # corrupt
    keys = await publisher.published_keys()
    assert keys == {BTC, ETH, SOL, XRP}
    assert await publisher.last_shown(keys | {position_key("ADAUSDT")}) == {
        BTC: (PositionState.OPEN, 1_000), ETH: (PositionState.CLOSED, 2_000)}
    assert await publisher.last_shown(frozenset()) == {}
