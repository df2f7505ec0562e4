"""Issue 12, Deliver 5: ``begin`` knows a stop is firing. The real daemon (``run()``) on the
simulator and a real redis-server, default settings: a reduce-only stop goes TRIGGERING and
stays there (the simulator's ``stuck_triggering`` fault, docs/BINANCE.md §3.6); ``begin``
answers ``stop_triggered`` instead of ``allow`` (on main it allowed, and the bot's cancel raced
the fill). A STOP (limit) whose child order rests is firing too until the child fills; then
the closure vetoes and no marker is left behind."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio

from tests.integration.test_daemon import ACCOUNT, BASUSDT, KEYS, start_daemon
from tests.support.simulator import SimClient
from tests.support.waiting import eventually
from watchdog.client import AsyncWatchdogClient, Verdict
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


def default_table(sim: Simulator, redis_url: str) -> dict[str, dict[str, object]]:
    """Default settings: only where to find Binance and Redis."""
    return {"binance": {"rest_url": sim.rest_url, "ws_url": sim.ws_url},
            "redis": {"url": redis_url, "account": ACCOUNT}}


async def test_begin_vetoes_stop_triggered_while_a_stop_is_triggering(
        sim: Simulator, sim_client: SimClient, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    daemon, stop = start_daemon(sim, default_table(sim, redis_url))
    bot = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
    try:
        async def check() -> Verdict:
            return await bot.check("BASUSDT")

        await eventually(check, lambda v: v.allowed, timeout_s=30, what="BASUSDT open and allowed")
        placed = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL",
                                       symbol="BASUSDT", side="SELL", type="STOP_MARKET",
                                       triggerPrice="0.00771", quantity="1216", reduceOnly="true")
        algo_id = str(placed.json()["algoId"])
        sim.set_faults(stuck_triggering=True)
        sim.set_mark_price("BASUSDT", "0.0077")
        vetoed = await eventually(check, lambda v: v.reason == "stop_triggered", timeout_s=15,
                                  what="check says stop_triggered")
        assert vetoed.firing is not None
        assert (vetoed.firing["algo_id"], vetoed.firing["status"]) == (algo_id, "TRIGGERING")
        begun = await bot.begin("BASUSDT", holder="bot-1")
        assert (begun.allowed, begun.reason) == (False, "stop_triggered")
    finally:
        await bot.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await asyncio.wait_for(daemon, 30) == 0


async def test_a_working_child_order_vetoes_until_it_fills(
        sim: Simulator, sim_client: SimClient, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    daemon, stop = start_daemon(sim, default_table(sim, redis_url))
    bot = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
    try:
        async def check() -> Verdict:
            return await bot.check("BASUSDT")

        await eventually(check, lambda v: v.allowed, timeout_s=30, what="BASUSDT open and allowed")
        # A stop-limit: at 0.00771 it becomes a SELL LIMIT at 0.0080, above the market: it rests.
        placed = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL",
                                       symbol="BASUSDT", side="SELL", type="STOP",
                                       triggerPrice="0.00771", price="0.0080", quantity="1216",
                                       reduceOnly="true", timeInForce="GTC")
        assert placed.status_code == 200, placed.text
        algo_id = str(placed.json()["algoId"])
        sim.set_mark_price("BASUSDT", "0.0077")
        vetoed = await eventually(check, lambda v: v.reason == "stop_triggered"
                                  and bool(v.firing and v.firing["child_id"]), timeout_s=15,
                                  what="check says stop_triggered with the child working")
        assert vetoed.firing is not None
        # TRIGGERED while the algo order is known in trigger; CHILD_WORKING once only its child
        # is (an orders read that no longer lists the triggered algo order can come first under
        # load): both name the algo order and both veto (core/firing.py rule 1).
        assert vetoed.firing["algo_id"] == algo_id
        assert vetoed.firing["status"] in ("TRIGGERED", "CHILD_WORKING"), vetoed.firing
        assert (await bot.begin("BASUSDT", holder="bot-1")).reason == "stop_triggered"
        sim.set_mark_price("BASUSDT", "0.0081")  # the child fills: the position closes
        await eventually(check, lambda v: v.reason == "position_closed", timeout_s=15,
                         what="position_closed after the child filled")
        position = await rclient.hgetall(KEYS.position(BASUSDT))
        assert "firing_algo_id" not in position
    finally:
        await bot.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await asyncio.wait_for(daemon, 30) == 0
