"""Issue 13 deliver 4: zero-gap stop replacement (``poswatch`` ``replace_stop``) against the real
daemon, the simulator (real sockets) and a real redis-server (docs/RULES.md rule 1).

- The move leaves no instant without a stop: asserted on the simulator's order history (every
  algo order with its creation and end time), and ``end`` records a window of 0.
- Two reduce-only / close-position stops coexist; the one that triggers second finds nothing to
  reduce and ends as Binance ends it (``REJECTED``, ``rm`` "Reduce Only reject").
- ``confirm`` vetoes (the old stop fired while the new one was being placed): the NEW stop is
  cancelled, nothing is left on the flat position.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from decimal import Decimal

import pytest
import redis.asyncio

from poswatch import AsyncWatchdogClient, Reason, Vetoed
from tests.integration.test_daemon import ACCOUNT, BASUSDT, KEYS, config_table, start_daemon
from tests.support.simulator import SimClient
from tests.support.waiting import eventually
from watchdog.sim import Simulator
from watchdog.sim.orders import AlgoOrder

pytestmark = pytest.mark.integration
_ENDED = ("CANCELED", "FINISHED", "REJECTED", "EXPIRED")


async def place_stop(sim_client: SimClient, trigger: str, **extra: str) -> int:
    response = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BASUSDT",
                                     side="SELL", type="STOP_MARKET", triggerPrice=trigger, **extra)
    assert response.status_code == 200, response.text
    return int(response.json()["algoId"])


async def cancel_stop(sim_client: SimClient, algo_id: int) -> None:
    response = await sim_client.request("DELETE", "/fapi/v1/algoOrder", algoId=algo_id)
    assert response.status_code == 200, response.text


def uncovered_ms(algos: list[AlgoOrder], start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """Stretches of [start_ms, end_ms] during which no stop of the list was open, from the
    simulator's history: each algo protects from its creation until it ended (cancelled, fired,
    rejected); one still open protects to the end."""
    spans = sorted((a.create_time_ms, a.update_time_ms if a.status in _ENDED else end_ms) for a in algos)
    gaps, covered_to = [], start_ms
    for begin, end in spans:
        if begin > covered_to:
            gaps.append((covered_to, begin))
        covered_to = max(covered_to, end)
    if covered_to < end_ms:
        gaps.append((covered_to, end_ms))
    return gaps


def bas_algos(sim: Simulator) -> list[AlgoOrder]:
    return [a for a in sim.exchange.account(sim.api_key).algos.values() if a.symbol == "BASUSDT"]


async def test_the_move_leaves_no_instant_without_a_stop_and_records_window_0(
        sim: Simulator, sim_client: SimClient, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    old = await place_stop(sim_client, "0.0077", closePosition="true")
    daemon, stop = start_daemon(sim, config_table(sim, redis_url))
    bot = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
    try:
        await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                         lambda h: h.get("state") == "open", timeout_s=20, what="open published")
        first_ms = sim.exchange.account(sim.api_key).algos[old].create_time_ms

        async def create() -> int:
            return await place_stop(sim_client, "0.0079", reduceOnly="true", quantity="1216")

        async def cancel_new(algo_id: int) -> None:
            await cancel_stop(sim_client, algo_id)

        moved = await bot.replace_stop("BASUSDT", "BOTH", holder="bot-1", create=create,
                                       cancel_new=cancel_new,
                                       cancel_old=lambda: cancel_stop(sim_client, old))
        assert moved.ended.released
        assert moved.ended.window_ms == 0
        record = json.loads(await rclient.hget(KEYS.windows, "BASUSDT:BOTH") or "{}")
        assert (record["window_ms"], record["mode"], record["outcome"]) == (0, "replace", "ok")
        algos = {a.algo_id: a for a in bas_algos(sim)}
        assert (algos[old].status, algos[moved.new_stop].status) == ("CANCELED", "NEW")
        assert algos[moved.new_stop].create_time_ms <= algos[old].update_time_ms  # both lived at once
        assert uncovered_ms(list(algos.values()), first_ms, sim.exchange.now_ms()) == []
    finally:
        await bot.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await asyncio.wait_for(daemon, 30) == 0


async def test_two_stops_coexist_and_the_second_to_trigger_ends_as_binance_ends_it(
        sim: Simulator, sim_client: SimClient) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    close_all = await place_stop(sim_client, "0.0078", closePosition="true")
    reduce_only = await place_stop(sim_client, "0.0077", reduceOnly="true", quantity="1216")
    assert {a.status for a in bas_algos(sim)} == {"NEW"}
    sim.set_mark_price("BASUSDT", "0.0076")  # crosses both: the higher trigger fires first
    algos = sim.exchange.account(sim.api_key).algos
    assert algos[close_all].status == "FINISHED"
    assert (algos[reduce_only].status, algos[reduce_only].reject_reason) == ("REJECTED", "Reduce Only reject")
    position = sim.exchange.account(sim.api_key).positions[("BASUSDT", "BOTH")]
    assert position.amount == 0  # closed once, never flipped short


async def test_a_confirm_veto_cancels_the_new_stop_and_leaves_nothing_on_the_flat_position(
        sim: Simulator, sim_client: SimClient, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    old = await place_stop(sim_client, "0.0077", closePosition="true")
    daemon, stop = start_daemon(sim, config_table(sim, redis_url))
    bot = AsyncWatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
    try:
        await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                         lambda h: h.get("state") == "open", timeout_s=20, what="open published")

        async def create() -> int:
            new = await place_stop(sim_client, "0.0075", reduceOnly="true", quantity="1216")
            sim.set_mark_price("BASUSDT", "0.00765")  # meanwhile the OLD stop fires: flat
            await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                             lambda h: h.get("state") == "closed", timeout_s=20,
                             what="the closure published before confirm")
            return new

        cancelled: list[int] = []

        async def cancel_new(algo_id: int) -> None:
            cancelled.append(algo_id)
            await cancel_stop(sim_client, algo_id)

        async def cancel_old() -> None:
            pytest.fail("the old stop must not be touched after a veto")

        with pytest.raises(Vetoed) as vetoed:
            await bot.replace_stop("BASUSDT", "BOTH", holder="bot-1", create=create,
                                   cancel_new=cancel_new, cancel_old=cancel_old)
        assert vetoed.value.op == "confirm"
        assert vetoed.value.verdict.reason in (Reason.POSITION_CLOSED, Reason.LEASE_REVOKED)
        account = sim.exchange.account(sim.api_key)
        assert account.open_algos() == []
        assert account.open_orders() == []
        assert account.positions[("BASUSDT", "BOTH")].amount == Decimal(0)
        assert account.algos[old].status == "FINISHED"
        assert [account.algos[i].status for i in cancelled] == ["CANCELED"]
        record = json.loads(await rclient.hget(KEYS.windows, "BASUSDT:BOTH") or "{}")
        assert (record["window_ms"], record["outcome"]) == (0, "vetoed")
    finally:
        await bot.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            assert await asyncio.wait_for(daemon, 30) == 0
