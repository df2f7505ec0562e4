"""Issue 12, "blindness is a state, not a moment": the daemon at default settings against the
simulator and a real redis-server. Once REST found the stream blind, the stream stays
``unproven`` across the blind reconnect (heartbeat, ``status``) until it delivers an event REST
corroborates; REST keeps detecting meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio

from tests.integration.test_daemon import ACCOUNT, BASUSDT, KEYS, start_daemon
from tests.support.waiting import eventually
from watchdog.ops.status import EXIT_DEGRADED, EXIT_HEALTHY, read_status
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


def default_table(sim: Simulator, redis_url: str, **binance: Any) -> dict[str, Any]:
    """The defaults, pointed at the simulator and the test's Redis (docs/RULES.md rule 7: defaults)."""
    return {"binance": {"rest_url": sim.rest_url, "ws_url": sim.ws_url, **binance},
            "redis": {"url": redis_url, "account": ACCOUNT}}


def event_kinds(rclient: redis.asyncio.Redis) -> Callable[[], Awaitable[list[str]]]:
    async def kinds() -> list[str]:
        entries = await rclient.xrange(KEYS.events)
        return [fields.get("kind", fields.get("type", "")) for _, fields in entries]
    return kinds


@pytest.mark.parametrize("opened_before_start", [False, True], ids=["opened-live", "opened-before"])
async def test_a_still_muted_stream_stays_unproven_after_its_blind_reconnect(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis,
        opened_before_start: bool) -> None:
    """opened-live: main found the stream blind, reconnected, and then said `healthy
    stream=live` with the new connection as mute. opened-before: main never found it blind at
    all (the position's only fact came from a read answered across the connect)."""
    if opened_before_start:
        sim.fill("BASUSDT", "BUY", "1216")
    daemon, stop = start_daemon(sim, default_table(sim, redis_url))
    try:
        await eventually(lambda: rclient.hgetall(KEYS.health),
                         lambda h: h.get("ready") == "true" and h.get("healthy") == "true",
                         timeout_s=30, what="daemon ready and healthy")
        if not opened_before_start:
            sim.fill("BASUSDT", "BUY", "1216")
        await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "state"),
                         lambda s: s == "open", timeout_s=20, what="open")
        if opened_before_start:
            # A change within max_rest_lag_ms of the connect may predate it (book rule 7):
            # wait until REST has re-verified the open position past that.
            first = int(await rclient.hget(KEYS.position(BASUSDT), "verified_ms") or 0)
            await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "verified_ms"),
                             lambda v: int(v or 0) >= first + 3000, timeout_s=20,
                             what="open re-verified 3 s after the first read")
        sim.set_faults(stream="mute")  # for the rest of the test, across reconnects
        sim.fill("BASUSDT", "SELL", "1216")
        await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "state"),
                         lambda s: s == "closed", timeout_s=20, what="closed seen through REST")
        kinds = await eventually(event_kinds(rclient),
                                 lambda k: "stream_blind" in k
                                 and "stream_recovered" in k[k.index("stream_blind"):],
                                 timeout_s=30, what="found blind, reconnected, reconciled")
        assert kinds.count("stream_lost") >= 1
        # Today's main said `healthy stream=live` here: the new connection is as mute.
        reconciled_ms = time.time_ns() // 1_000_000
        health = await eventually(lambda: rclient.hgetall(KEYS.health),
                                  lambda h: h.get("stream_state") == "live"
                                  and int(h.get("updated_ms", 0)) > reconciled_ms, timeout_s=20,
                                  what="a heartbeat written after the blind reconnect")
        assert health["healthy"] == "false", health  # main: healthy, stream=live
        assert health["stream_proof"] == "unproven"
        report = read_status(redis_url, ACCOUNT, socket_timeout_s=2)
        assert report.exit_code == EXIT_DEGRADED
        data = report.to_json()
        assert data["stream"]["state"] == "live"
        assert data["stream"]["proof"] == "unproven"
        assert "stream unproven" in " ".join(report.reasons)
        # REST keeps full detection speed meanwhile: a position opened now is seen by REST.
        sim.fill("BASUSDT", "BUY", "100")
        await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                         lambda h: h.get("state") == "open" and h.get("amt") == "100",
                         timeout_s=10, what="open seen through REST while unproven")
        # The stream comes back: its next event is corroborated by REST, status is healthy.
        sim.clear_faults()
        await eventually(lambda: rclient.hget(KEYS.health, "stream_state"),
                         lambda s: s == "live", timeout_s=90, what="live again")
        sim.fill("BASUSDT", "SELL", "100")
        await eventually(lambda: rclient.hgetall(KEYS.health),
                         lambda h: h.get("stream_proof") == "proven"
                         and h.get("healthy") == "true", timeout_s=30,
                         what="proven by a corroborated event")
        assert "stream_proven" in await event_kinds(rclient)()
        assert read_status(redis_url, ACCOUNT, socket_timeout_s=2).exit_code == EXIT_HEALTHY
    finally:
        stop.set()
        assert await asyncio.wait_for(daemon, timeout=20) == 0
