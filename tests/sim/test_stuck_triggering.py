"""The ``stuck_triggering`` fault: the Binance failure of docs/BINANCE.md §3.6, on demand."""

from __future__ import annotations

import websockets

from tests.sim.streams import events_until
from tests.support.simulator import SimClient
from watchdog.sim import Simulator


async def test_stuck_triggering_fault(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key)) as ws:
        await sim.wait_connections(1)
        sim.fill("BASUSDT", "BUY", "1216")
        placed = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BASUSDT",
                                       side="SELL", type="STOP_MARKET", triggerPrice="0.00771",
                                       quantity="1216", reduceOnly="true")
        algo_id = placed.json()["algoId"]
        reply = await sim_client.control("POST", "faults", {"stuck_triggering": True})
        assert reply.status_code == 200
        assert reply.json()["faults"]["stuck_triggering"] is True
        sim.set_mark_price("BASUSDT", "0.0077")
        seen = await events_until(ws, lambda e: e.get("e") == "ALGO_UPDATE" and e["o"]["X"] == "TRIGGERING")
        assert seen[-1]["o"]["aid"] == algo_id
    queried = (await sim_client.get("/fapi/v1/algoOrder", algoId=algo_id)).json()
    assert queried["algoStatus"] == "TRIGGERING"
    assert queried["actualOrderId"] == ""
    cancel = await sim_client.delete("/fapi/v1/algoOrder", algoId=algo_id)
    assert cancel.json()["code"] == -2011
    positions = (await sim_client.get("/fapi/v2/positionRisk", symbol="BASUSDT")).json()
    assert positions[0]["positionAmt"] == "1216"  # still open: unprotected


async def test_stuck_triggering_rejects_non_booleans(sim_client: SimClient) -> None:
    reply = await sim_client.control("POST", "faults", {"stuck_triggering": "yes"})
    assert reply.status_code == 400
    assert "stuck_triggering" in reply.text
