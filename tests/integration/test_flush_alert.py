"""After a Redis flush, an alert lost with the data is sent again: repeated, never lost
(docs/RULES.md rule 3; docs/HA.md, failure table "Redis restart … / FLUSHALL"; runtime/build.py
rules 6 and 7).

The daemon (``run()``) leads against the simulator over real sockets and a real redis-server,
with an open position that has no stop: it publishes ``protection=none`` and alerts. FLUSHALL
takes the position hash, the alert, the health hash, the fence and the lease. The next beat
(or the lead task's renewal) is refused, the lease is free, the daemon takes it again and
takes over from what Redis shows now: nothing told. What bots then read is asserted: the
alert told again, the hash back with the same run's protection and start, nothing of the lost
state written over newer (a new fence on every key), the health hash naming the run's alert."""

from __future__ import annotations

import time

import pytest
import redis.asyncio

from tests.integration.test_guard import KEYS, daemon, events, hash_of
from tests.support.waiting import eventually
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

ALERT_MS = 300


async def test_an_alert_lost_in_a_flush_is_sent_again_and_the_hash_comes_back(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")  # open, and no stop at all
    async with daemon(sim, redis_url, unprotected_alert_ms=ALERT_MS):
        alerts = await eventually(lambda: events(rclient, "position_unprotected"), bool,
                                  timeout_s=30, what="position_unprotected before the flush")
        before = await hash_of(rclient)
        assert before["state"] == "open"
        assert before["protection"] == "none"
        since = before["unprotected_since_ms"]
        assert alerts[0]["unprotected_since_ms"] == since
        fence_before = int(await rclient.get(KEYS.fence) or 0)

        flushed_ms = int(time.time() * 1000)
        await rclient.flushall()

        again = await eventually(lambda: events(rclient, "position_unprotected"), bool,
                                 timeout_s=30, what="position_unprotected told again")
        after = await eventually(lambda: hash_of(rclient),
                                 lambda h: h.get("protection") == "none", timeout_s=30,
                                 what="the position hash back with its protection")
        assert [alert["position"] for alert in again] == ["BASUSDT:BOTH"], \
            "told again, once (the flush took the first)"
        assert again[0]["unprotected_since_ms"] == since, "the same run, from the start bots saw"
        assert int(again[0]["at_ms"]) >= flushed_ms
        assert after["state"] == "open"
        assert after["unprotected_since_ms"] == since, "the run's start, not a new one"
        assert after.get("guard_order", "") == ""
        assert not {name for name in after if name.startswith("firing")}
        fence = int(after["fence"])
        assert fence > fence_before, "written under the token taken after the flush"
        health = await eventually(lambda: rclient.hgetall(KEYS.health),
                                  lambda h: "BASUSDT:BOTH" in h.get("problems", ""),
                                  timeout_s=10, what="the health hash naming the alerted run")
        assert int(health["fence"]) == fence
        # Nothing stale: the view republished with its old verified_ms is re-verified by a read
        # after the flush (never shown as fresh from before it).
        fresh = await eventually(lambda: hash_of(rclient),
                                 lambda h: int(h.get("verified_ms", 0)) >= flushed_ms,
                                 timeout_s=10, what="the position verified after the flush")
        assert fresh["protection"] == "none"
        assert fresh["unprotected_since_ms"] == since
        assert [alert["position"] for alert in await events(rclient, "position_unprotected")] \
            == ["BASUSDT:BOTH"], "not told a third time"
        assert await events(rclient, "position_protected") == []
