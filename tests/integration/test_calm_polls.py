"""Issue 13 item 2 with `[binance] idle_poll_interval_s = 2.0` (off by default; this test is
about that setting), otherwise defaults, the daemon against the simulator and a real
redis-server: the routine positions poll slows down while calm (stream live and proven, no stop
near its trigger), and a closure a muted stream hides is still published by REST, the first
one (the stream went mute without a gap, so the poll was calm) and the next ones (the stream is
then unproven, the poll fast again)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio

from tests.integration.test_blind_proof import default_table, event_kinds
from tests.integration.test_daemon import BASUSDT, KEYS, start_daemon
from tests.support.waiting import eventually
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

IDLE_S = 2.0
IDLE_MS = IDLE_S * 1000


async def _verified_steps(rclient: redis.asyncio.Redis, *, timeout_s: float,
                          until: float) -> list[int]:
    """The steps of the position's ``verified_ms`` (one per positions read that re-verified it),
    watched until one step is at least ``until`` ms or the deadline passes."""
    key = KEYS.position(BASUSDT)
    steps: list[int] = []
    last = int(await rclient.hget(key, "verified_ms") or 0)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = int(await rclient.hget(key, "verified_ms") or 0)
        if now != last:
            steps.append(now - last)
            last = now
            if steps[-1] >= until:
                return steps
        await asyncio.sleep(0.01)
    return steps


async def test_a_calm_poll_slows_down_and_a_muted_stream_still_gets_its_closure_published(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    table = default_table(sim, redis_url)
    table["binance"]["idle_poll_interval_s"] = IDLE_S
    daemon, stop = start_daemon(sim, table)
    try:
        await eventually(lambda: rclient.hgetall(KEYS.health),
                         lambda h: h.get("ready") == "true" and h.get("healthy") == "true",
                         timeout_s=30, what="daemon ready and healthy")
        sim.fill("BASUSDT", "BUY", "1216")  # reported by the live stream
        await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "state"),
                         lambda s: s == "open", timeout_s=20, what="open")
        # Calm after CALM_AFTER_S: a read ~idle_poll_interval_s after the one before.
        steps = await _verified_steps(rclient, timeout_s=40, until=IDLE_MS * 0.9)
        assert steps, "no positions read re-verified the position"
        assert steps[-1] >= IDLE_MS * 0.9, steps
        assert steps[-1] < 3000, steps  # [veto] max_age_ms: begin still finds it fresh

        # The stream goes mute without a gap: the daemon cannot know; the calm poll finds it.
        sim.set_faults(stream="mute")
        sim.fill("BASUSDT", "SELL", "1216")
        await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "state"),
                         lambda s: s == "closed", timeout_s=20, what="closed seen through REST")
        await eventually(event_kinds(rclient), lambda k: "stream_blind" in k, timeout_s=20,
                         what="the stream found blind")
        health = await eventually(lambda: rclient.hgetall(KEYS.health),
                                  lambda h: h.get("stream_proof") == "unproven", timeout_s=20,
                                  what="the stream unproven")
        assert health["healthy"] == "false"

        # Unproven: the poll is fast again, and the next closures are seen by it too.
        sim.fill("BASUSDT", "BUY", "1216")
        await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "state"),
                         lambda s: s == "open", timeout_s=20, what="reopened, seen through REST")
        # Watched past CALM_AFTER_S (10 s) after the reopen: still ~poll_interval_s apart.
        steps = await _verified_steps(rclient, timeout_s=15, until=IDLE_MS * 0.9)
        assert len(steps) >= 10, steps
        assert max(steps) < IDLE_MS * 0.9, steps
        sim.fill("BASUSDT", "SELL", "1216")
        await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "state"),
                         lambda s: s == "closed", timeout_s=20, what="closed again, through REST")
    finally:
        stop.set()
        await asyncio.wait_for(daemon, timeout=30)
