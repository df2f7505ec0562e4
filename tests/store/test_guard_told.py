"""What a new leader reads of an earlier leader's guard at a takeover (``guard_told``,
core/guard.py rule 7), on a real redis-server: the hash's run start, and whether the last guard
event of each position is ``position_unprotected``."""

from __future__ import annotations

import time

from tests.support.store import make_view, position_key
from watchdog.core.effects import Notify, Publish, PublishProtection
from watchdog.store.publisher import RedisPublisher

BTC, ETH, SOL = position_key("BTCUSDT"), position_key("ETHUSDT"), position_key("SOLUSDT")


def alert(key: object, kind: str, since: int) -> Notify:
    return Notify(kind, key, (("unprotected_since_ms", str(since)),))  # type: ignore[arg-type]


async def test_the_hash_gives_the_start_and_the_last_guard_event_gives_the_alert(
        publisher: RedisPublisher) -> None:
    t = int(time.time() * 1000)
    await publisher.heartbeat({"stream": "live"})
    effects: list[object] = [Publish(make_view(k, version=1, verified_ms=t)) for k in (BTC, ETH, SOL)]
    effects += [PublishProtection(BTC, "none", t - 9000, ""), alert(BTC, "position_unprotected", t - 9000),
                # ETH: alerted, then protected, then a new run not alerted yet
                alert(ETH, "position_unprotected", t - 20_000), alert(ETH, "position_protected", t - 20_000),
                PublishProtection(ETH, "partial", t - 1000, ""),
                PublishProtection(SOL, "covered", None, "")]
    await publisher.run_many(effects)  # type: ignore[arg-type]
    for _ in range(30):  # other events after them: the reader pages backwards
        await publisher.emit("position_opened", {"position": "XRPUSDT:BOTH"})
    told = await publisher.guard_told(frozenset({BTC, ETH, SOL}), page=7)
    assert told == {BTC: (t - 9000, True), ETH: (t - 1000, False)}
    assert await publisher.guard_told(frozenset()) == {}
