"""Issue 12, Deliver 6: restart tells the truth. The real daemon (``run()``, its real startup
path) on the simulator and a real redis-server, default settings: a position Redis last showed
open closes while no watchdog runs; the next run publishes it closed AND emits
``position_closed`` with ``while_down=true`` (on main: closed, but no event, so a bot dropping
its trailing stop on the event never did). docs/RULES.md rule 2."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio

from tests.integration.test_daemon import BASUSDT, KEYS, start_daemon
from tests.integration.test_stop_triggered import default_table
from tests.support.waiting import eventually
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def _stop(daemon: asyncio.Task[int], stop: asyncio.Event) -> None:
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        assert await asyncio.wait_for(daemon, 30) == 0


async def _closures(rclient: redis.asyncio.Redis) -> list[dict[str, str]]:
    entries = await rclient.xrange(KEYS.events)
    return [fields for _, fields in entries if fields.get("kind") == "position_closed"]


async def test_a_position_closed_while_down_is_told_after_the_restart(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    daemon, stop = start_daemon(sim, default_table(sim, redis_url))
    try:
        shown = await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                                 lambda h: h.get("state") == "open", timeout_s=30,
                                 what="BASUSDT published open")
    finally:
        await _stop(daemon, stop)
    sim.fill("BASUSDT", "SELL", "1216")  # closes while no watchdog runs
    assert await _closures(rclient) == []
    daemon, stop = start_daemon(sim, default_table(sim, redis_url))
    try:
        closed = await eventually(lambda: _closures(rclient), lambda c: len(c) == 1, timeout_s=30,
                                  what="position_closed after the restart")
        assert closed[0]["position"] == "BASUSDT:BOTH"
        assert closed[0]["while_down"] == "true"
        assert closed[0]["last_seen_ms"] == shown["verified_ms"]
        assert int(closed[0]["at_ms"]) >= int(shown["verified_ms"])
        assert (await rclient.hgetall(KEYS.position(BASUSDT)))["state"] == "closed"
    finally:
        await _stop(daemon, stop)


async def test_a_position_still_open_after_the_restart_tells_nothing(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    version = 0
    for _ in range(2):
        daemon, stop = start_daemon(sim, default_table(sim, redis_url))
        try:
            # Each run counts versions from a higher base: a greater one is this run's write.
            def this_run(h: dict[str, str], floor: int = version) -> bool:
                return h.get("state") == "open" and int(h["version"]) > floor

            held = await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)), this_run,
                                    timeout_s=30, what="BASUSDT published open by this run")
            version = int(held["version"])
        finally:
            await _stop(daemon, stop)
    kinds = [fields["kind"] for _, fields in await rclient.xrange(KEYS.events)]
    assert "position_closed" not in kinds
    assert "position_opened" not in kinds
