"""User data stream: shapes, ordering, filters, paths, listen key lifecycle."""

from __future__ import annotations

import pytest
import websockets

from tests.sim.streams import events_until, next_event
from tests.support.simulator import SimClient
from watchdog.sim import Simulator


def _kind(event: dict) -> str:
    if event["e"] == "ALGO_UPDATE":
        return f"ALGO_UPDATE:{event['o']['X']}"
    if event["e"] == "ORDER_TRADE_UPDATE":
        return f"ORDER_TRADE_UPDATE:{event['o']['x']}"
    return str(event["e"])


async def test_triggered_stop_event_order(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key)) as ws:
        await sim.wait_connections(1)
        sim.fill("BASUSDT", "BUY", "1216")
        await events_until(ws, lambda e: e["e"] == "ACCOUNT_UPDATE")
        placed = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BASUSDT",
                                       side="SELL", type="STOP_MARKET", triggerPrice="0.00771",
                                       closePosition="true", workingType="MARK_PRICE", clientAlgoId="sl-1")
        assert placed.status_code == 200, placed.text
        algo = placed.json()
        assert algo["algoStatus"] == "NEW"
        assert algo["orderType"] == "STOP_MARKET"
        new = await next_event(ws)
        assert _kind(new) == "ALGO_UPDATE:NEW"
        assert new["o"]["aid"] == algo["algoId"]
        await sim_client.control("POST", "mark-price", {"symbol": "BASUSDT", "price": "0.0077"})
        seen = await events_until(ws, lambda e: _kind(e) == "ALGO_UPDATE:FINISHED")
    assert [_kind(e) for e in seen] == [
        "ALGO_UPDATE:TRIGGERING", "ALGO_UPDATE:TRIGGERED", "ORDER_TRADE_UPDATE:NEW", "TRADE_LITE",
        "ORDER_TRADE_UPDATE:TRADE", "ACCOUNT_UPDATE", "ALGO_UPDATE:FINISHED"]
    triggered, child_new = seen[1]["o"], seen[2]["o"]
    assert triggered["ai"] == str(child_new["i"])
    assert triggered["act"] == "MARKET"
    assert child_new["c"] == "sl-1"
    assert seen[5]["a"]["P"][0]["pa"] == "0"
    assert seen[6]["o"]["aq"] == "1216"
    positions = (await sim_client.get("/fapi/v2/positionRisk", symbol="BASUSDT")).json()
    assert positions[0]["positionAmt"] == "0"
    assert (await sim_client.get("/fapi/v1/openAlgoOrders")).json() == []


async def test_events_filter_is_honoured(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key, ["ACCOUNT_UPDATE"])) as ws:
        await sim.wait_connections(1)
        sim.fill("BTCUSDT", "BUY", "0.002")
        event = await next_event(ws)
        assert event["e"] == "ACCOUNT_UPDATE"
        sim.fill("BTCUSDT", "BUY", "0.002")
        assert (await next_event(ws))["e"] == "ACCOUNT_UPDATE"  # no OTU/TRADE_LITE in between


async def test_legacy_path_connects_and_delivers_nothing(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    async with websockets.connect(f"{sim.ws_url}/ws/{key}") as legacy, \
            websockets.connect(sim_client.stream_url(key, ["ACCOUNT_UPDATE"])) as routed:
        await sim.wait_connections(1)
        sim.fill("BTCUSDT", "BUY", "0.002")
        assert (await next_event(routed))["e"] == "ACCOUNT_UPDATE"
        pong = await legacy.ping()
        await pong  # the legacy connection is alive ...
    assert sim.venue.hub.sent["ACCOUNT_UPDATE"] == 1  # ... and got nothing


async def test_unknown_listen_key_refuses_handshake(sim: Simulator) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{sim.ws_url}/private/ws?listenKey=nope&events=ACCOUNT_UPDATE"):
            pass
    assert info.value.response.status_code == 400
