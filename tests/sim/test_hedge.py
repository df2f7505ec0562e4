"""Hedge mode (dualSidePosition): positions per side, positionSide rules, close-all per side."""

from __future__ import annotations

from decimal import Decimal

import websockets

from tests.sim.streams import events_until
from tests.support.simulator import SimClient
from watchdog.sim import Simulator


async def _hedge(sim_client: SimClient) -> None:
    assert (await sim_client.get("/fapi/v1/positionSide/dual")).json() == {"dualSidePosition": False}
    response = await sim_client.post("/fapi/v1/positionSide/dual", dualSidePosition="true")
    assert response.json() == {"code": 200, "msg": "success"}
    assert (await sim_client.get("/fapi/v1/positionSide/dual")).json() == {"dualSidePosition": True}


async def test_switching_mode_rules(sim: Simulator, sim_client: SimClient) -> None:
    again = await sim_client.post("/fapi/v1/positionSide/dual", dualSidePosition="false")
    assert again.json()["code"] == -4059
    sim.fill("BTCUSDT", "BUY", "0.002")
    blocked = await sim_client.post("/fapi/v1/positionSide/dual", dualSidePosition="true")
    assert blocked.json()["code"] == -4068


async def test_position_side_must_match_mode(sim: Simulator, sim_client: SimClient) -> None:
    one_way = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET",
                                    quantity="0.002", positionSide="LONG")
    assert one_way.json()["code"] == -4061
    await _hedge(sim_client)
    missing = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="MARKET",
                                    quantity="0.002")
    assert missing.json()["code"] == -4061
    reduce = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="SELL", type="MARKET",
                                   quantity="0.002", positionSide="LONG", reduceOnly="true")
    assert reduce.json()["code"] == -1106


async def test_both_sides_and_per_side_close(sim: Simulator, sim_client: SimClient) -> None:
    await _hedge(sim_client)
    for side, position_side in (("BUY", "LONG"), ("SELL", "SHORT")):
        response = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side=side, type="MARKET",
                                         quantity="0.003", positionSide=position_side)
        assert response.status_code == 200, response.text
    rows = (await sim_client.get("/fapi/v2/positionRisk", symbol="BTCUSDT")).json()
    assert {(r["positionSide"], r["positionAmt"]) for r in rows} == {("LONG", "0.003"), ("SHORT", "-0.003")}
    over = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="SELL", type="MARKET",
                                 quantity="0.004", positionSide="LONG")
    assert over.json()["code"] == -2022
    wrong = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT", side="BUY",
                                  positionSide="LONG", type="STOP_MARKET", triggerPrice="95000",
                                  closePosition="true")
    assert wrong.json()["code"] == -4136
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key)) as ws:
        await sim.wait_connections(1)
        stop = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT",
                                     side="SELL", positionSide="LONG", type="STOP_MARKET",
                                     triggerPrice="89000", closePosition="true")
        assert stop.status_code == 200, stop.text
        sim.set_mark_price("BTCUSDT", "88000")
        seen = await events_until(ws, lambda e: e["e"] == "ALGO_UPDATE" and e["o"]["X"] == "FINISHED")
    update = next(e for e in seen if e["e"] == "ACCOUNT_UPDATE")
    assert [(p["ps"], p["pa"]) for p in update["a"]["P"]] == [("LONG", "0.000")]
    account = sim.exchange.account(sim.api_key)
    assert account.position("BTCUSDT", "LONG").amount == 0
    assert account.position("BTCUSDT", "SHORT").amount == Decimal("-0.003")
    v3 = (await sim_client.get("/fapi/v3/positionRisk")).json()
    assert {(r["positionSide"], r["positionAmt"]) for r in v3} == {("LONG", "0.000"), ("SHORT", "-0.003")}


async def test_hedge_fixture_setting(sim_factory: object) -> None:
    async with sim_factory(dual_side=True) as sim:  # type: ignore[operator]
        sim.fill("ETHUSDT", "SELL", "0.100", position_side="SHORT")
        assert sim.exchange.account(sim.api_key).position("ETHUSDT", "SHORT").amount == Decimal("-0.100")
