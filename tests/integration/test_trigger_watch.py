"""Issue 13, trigger watching, end to end: the real daemon (``run()``) on the simulator (market
streams on ``/market``, real sockets) and a real redis-server.

- A stop-triggered closure with the user stream muted is published via the trigger path: the
  routine positions poll is set to 60 s, so only the crossing's own read can publish it (on
  main the closure waited for that poll).
- A crossing with no ALGO_UPDATE following (a stuck trigger, the ALGO_UPDATE dropped) raises
  ``trigger_not_acted``.
- The market connection lost: the daemon reconnects and subscribes again; the position is never
  published safer meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import redis.asyncio

from tests.integration.test_daemon import ACCOUNT, BASUSDT, KEYS, config_table, start_daemon
from tests.support.simulator import SimClient
from tests.support.waiting import eventually
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


def slow_poll_table(sim: Simulator, redis_url: str) -> dict[str, Any]:
    """Routine positions polls once a minute: a quick closure can only come from the trigger
    path (the user stream is muted in these tests)."""
    table = config_table(sim, redis_url)
    table["binance"].update(poll_interval_s=60.0, weight_budget_pct=15)
    table["core"] = {"max_age_ms": 180_000}
    table["veto"] = {"max_age_ms": 120_000}
    return table


async def place_stop(sim_client: SimClient, trigger: str, **extra: str) -> int:
    response = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BASUSDT",
                                     side="SELL", type="STOP_MARKET", triggerPrice=trigger, **extra)
    assert response.status_code == 200, response.text
    return int(response.json()["algoId"])


async def events_of(rclient: redis.asyncio.Redis, kind: str) -> list[dict[str, str]]:
    return [fields for _, fields in await rclient.xrange(KEYS.events) if fields.get("kind") == kind]


async def test_a_stop_triggered_closure_with_the_user_stream_muted_comes_from_the_trigger_path(
        sim: Simulator, sim_client: SimClient, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    daemon, stop = start_daemon(sim, slow_poll_table(sim, redis_url))
    try:
        await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                         lambda h: h.get("state") == "open", timeout_s=20, what="open published")
        algo_id = await place_stop(sim_client, "0.0077", closePosition="true")
        await sim.wait_market_subscribed(["basusdt@aggTrade"], timeout_s=20)
        sim.set_faults(stream="mute")  # the incident: the private stream says nothing
        sim.set_mark_price("BASUSDT", "0.0076")  # prints 0.0076: the stop fires and closes
        assert sim.exchange.account(sim.api_key).algos[algo_id].status == "FINISHED"
        position = await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                                    lambda h: h.get("state") == "closed", timeout_s=20,
                                    what="closure published well before the 60 s poll")
        assert position["amt"] == "0"
        crossed = await events_of(rclient, "stop_crossed")
        assert [(e["position"], e["order_id"]) for e in crossed] == [("BASUSDT:BOTH", str(algo_id))]
        assert await events_of(rclient, "position_closed")
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await asyncio.wait_for(daemon, 30) == 0


async def test_a_crossing_the_exchange_does_not_report_raises_the_alert(
        sim: Simulator, sim_client: SimClient, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    daemon, stop = start_daemon(sim, config_table(sim, redis_url))
    try:
        await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                         lambda h: h.get("state") == "open", timeout_s=20, what="open published")
        algo_id = await place_stop(sim_client, "0.0077", reduceOnly="true", quantity="1216",
                                   workingType="MARK_PRICE")
        await sim.wait_market_subscribed(["basusdt@markPrice@1s"], timeout_s=20)
        sim.set_faults(stuck_triggering=True, drop_events=["ALGO_UPDATE"])
        sim.set_mark_price("BASUSDT", "0.0076")
        assert sim.exchange.account(sim.api_key).algos[algo_id].status == "TRIGGERING"
        alerts = await eventually(lambda: events_of(rclient, "alert"),
                                  lambda a: any(e["code"] == "trigger_not_acted" for e in a),
                                  timeout_s=20, what="trigger_not_acted alert")
        alert = next(e for e in alerts if e["code"] == "trigger_not_acted")
        assert str(algo_id) in alert["message"]
        # The position is still open on the exchange (nothing fired): REST says so again.
        await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                         lambda h: h.get("state") == "open", timeout_s=20, what="open again")
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await asyncio.wait_for(daemon, 30) == 0


async def test_market_connection_loss_resubscribes_and_never_looks_safer(
        sim: Simulator, sim_client: SimClient, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    daemon, stop = start_daemon(sim, slow_poll_table(sim, redis_url))
    try:
        await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                         lambda h: h.get("state") == "open", timeout_s=20, what="open published")
        await place_stop(sim_client, "0.0077", closePosition="true")
        await sim.wait_market_subscribed(["basusdt@aggTrade"], timeout_s=20)
        before = await rclient.hgetall(KEYS.position(BASUSDT))
        sim.set_faults(market="disconnect")
        await sim.wait_for(lambda s: not s.venue.market.connections, what="market connection dropped")
        await sim.wait_market_subscribed(["basusdt@aggTrade"], timeout_s=20)  # back, resubscribed
        after = await rclient.hgetall(KEYS.position(BASUSDT))
        assert (after["state"], after["amt"]) == (before["state"], before["amt"])  # nothing confirmed
        sim.set_faults(stream="mute")
        sim.set_mark_price("BASUSDT", "0.0076")
        await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                         lambda h: h.get("state") == "closed", timeout_s=20,
                         what="the trigger path works on the new connection")
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await asyncio.wait_for(daemon, 30) == 0


assert ACCOUNT  # the daemon tests' account: KEYS above is built on it


async def test_the_heartbeat_shows_the_market_stream(
        sim: Simulator, sim_client: SimClient, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    daemon, stop = start_daemon(sim, config_table(sim, redis_url))
    try:
        await place_stop(sim_client, "0.0077", closePosition="true")
        health = await eventually(lambda: rclient.hgetall(KEYS.health),
                                  lambda h: h.get("market_streams") == "1", timeout_s=20,
                                  what="the heartbeat counts the followed stream")
        assert (health["market_stream"], health["trigger_crossings"]) == ("connected", "0")
        sim.set_faults(market="stall")
        await eventually(lambda: rclient.hgetall(KEYS.health),
                         lambda h: h.get("market_stream") == "down" or h.get("market_streams") == "0",
                         timeout_s=30, what="the stalled market stream shown")
        health = await rclient.hgetall(KEYS.health)
        assert "market stream" not in health["problems"]  # informative, not a problem
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await asyncio.wait_for(daemon, 30) == 0


async def test_a_crossing_marks_the_position_firing_for_begin(
        sim: Simulator, sim_client: SimClient, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    """With the verdicts' firing mark: a crossing the exchange has not reported on makes begin
    answer stop_triggered (status CROSSED) once REST shows the position open again, until the
    trigger_not_acted alert."""
    from poswatch import AsyncWatchdogClient

    sim.fill("BASUSDT", "BUY", "1216")
    daemon, stop = start_daemon(sim, config_table(sim, redis_url))
    bot = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
    try:
        await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                         lambda h: h.get("state") == "open", timeout_s=20, what="open published")
        algo_id = await place_stop(sim_client, "0.0077", reduceOnly="true", quantity="1216")
        await sim.wait_market_subscribed(["basusdt@aggTrade"], timeout_s=20)
        sim.set_faults(stuck_triggering=True, drop_events=["ALGO_UPDATE"])
        sim.set_mark_price("BASUSDT", "0.0076")
        verdict = await eventually(lambda: bot.check("BASUSDT"),
                                   lambda v: v.reason == "stop_triggered", timeout_s=20,
                                   what="begin/check answer stop_triggered")
        assert verdict.firing is not None
        assert (verdict.firing["algo_id"], verdict.firing["status"]) == (str(algo_id), "CROSSED")
        await eventually(lambda: bot.check("BASUSDT"), lambda v: v.reason == "ok", timeout_s=20,
                         what="the mark cleared with the trigger_not_acted alert")
        assert any(e["code"] == "trigger_not_acted" for e in await events_of(rclient, "alert"))
    finally:
        await bot.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await asyncio.wait_for(daemon, 30) == 0
