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
    record = (await sim_client.get("/fapi/v1/algoOrder", algoId=algo["algoId"])).json()
    assert (record["algoStatus"], record["actualOrderId"], record["actualType"]) == (
        "FINISHED", triggered["ai"], "MARKET")
    assert (record["actualPrice"], record["actualQty"]) == ("0.00770000", "1216")


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
        async with websockets.connect(f"{sim.ws_url}/stream?streams={key}") as combined:
            await (await combined.ping())
    assert sim.venue.hub.sent["ACCOUNT_UPDATE"] == 1  # ... and got nothing


async def test_unknown_listen_key_refuses_handshake(sim: Simulator) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{sim.ws_url}/private/ws?listenKey=nope&events=ACCOUNT_UPDATE"):
            pass
    assert info.value.response.status_code == 400


async def test_split_fill_reports_each_execution(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key, ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"])) as ws:
        await sim.wait_connections(1)
        response = await sim_client.control("POST", "fills", {"symbol": "BASUSDT", "side": "BUY",
                                                               "qty": "1000", "parts": 3})
        assert response.json()["executedQty"] == "1000"
        seen = await events_until(ws, lambda e: e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["X"] == "FILLED")
    trades = [(e["o"]["X"], e["o"]["l"], e["o"]["z"]) for e in seen if e["e"] == "ORDER_TRADE_UPDATE"]
    assert trades == [("NEW", "0", "0"), ("PARTIALLY_FILLED", "333", "333"),
                      ("PARTIALLY_FILLED", "333", "666"), ("FILLED", "334", "1000")]
    assert [e["a"]["P"][0]["pa"] for e in seen if e["e"] == "ACCOUNT_UPDATE"] == ["333", "666"]


@pytest.mark.parametrize(("kind", "prefix", "execution"), [
    ("liquidation", "autoclose-", "CALCULATED"), ("adl", "adl_autoclose-", "TRADE")])
async def test_exchange_initiated_close(sim: Simulator, sim_client: SimClient, kind: str, prefix: str,
                                        execution: str) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    stop = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BASUSDT", side="SELL",
                                 type="STOP_MARKET", triggerPrice="0.00771", closePosition="true")
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key)) as ws:
        await sim.wait_connections(1)
        reply = await sim_client.control("POST", "liquidate", {"symbol": "BASUSDT", "kind": kind,
                                                                "account_update": False})
        assert reply.status_code == 200, reply.text
        seen = await events_until(ws, lambda e: e["e"] == "ORDER_TRADE_UPDATE")
        if "TRADE_LITE" not in [e["e"] for e in seen]:
            seen += await events_until(ws, lambda e: e["e"] == "TRADE_LITE")
        sim.fill("BTCUSDT", "BUY", "0.002")  # a marker: whatever came before it is all there was
        seen += await events_until(ws, lambda e: e["e"] == "ACCOUNT_UPDATE")
        seen.pop()
    otu = next(e["o"] for e in seen if e["e"] == "ORDER_TRADE_UPDATE")
    assert otu["c"].startswith(prefix)
    assert (otu["x"], otu["X"], otu["S"], otu["z"]) == (execution, "FILLED", "SELL", "1216")
    assert "ACCOUNT_UPDATE" not in [e["e"] for e in seen]
    assert (await sim_client.get("/fapi/v3/positionRisk", symbol="BASUSDT")).json() == []
    # The stop is left behind: an orphan, as in production.
    assert [a["algoId"] for a in (await sim_client.get("/fapi/v1/openAlgoOrders")).json()] == [
        stop.json()["algoId"]]
    again = await sim_client.control("POST", "liquidate", {"symbol": "BASUSDT"})
    assert again.status_code == 400


async def test_stream_mode_wraps_frames(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    url = f"{sim.ws_url}/private/stream?listenKey={key}&events=ACCOUNT_UPDATE"
    async with websockets.connect(url) as ws:
        await sim.wait_connections(1)
        sim.fill("BTCUSDT", "BUY", "0.002")
        frame = await next_event(ws)
    assert frame["stream"] == key
    assert frame["data"]["e"] == "ACCOUNT_UPDATE"


async def test_deleting_the_listen_key_closes_its_streams(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key)) as ws:
        await sim.wait_connections(1)
        assert (await sim_client.request("DELETE", "/fapi/v1/listenKey", signed=False)).json() == {}
        with pytest.raises(websockets.ConnectionClosedOK):
            await next_event(ws)
    await sim.wait_connections(0)


async def test_require_events_filter_setting(sim_factory: object) -> None:
    import httpx

    async with sim_factory(require_events_filter=True) as sim, httpx.AsyncClient() as http:  # type: ignore[operator]
        client = SimClient(sim, http)
        key = await client.listen_key()
        async with websockets.connect(f"{sim.ws_url}/private/ws?listenKey={key}") as bare, \
                websockets.connect(client.stream_url(key, ["ACCOUNT_UPDATE"])) as filtered:
            await sim.wait_connections(2)
            sim.fill("BTCUSDT", "BUY", "0.002")
            assert (await next_event(filtered))["e"] == "ACCOUNT_UPDATE"
            pong = await bare.ping()
            await pong
        assert sim.venue.hub.sent == {"ACCOUNT_UPDATE": 1}  # the bare connection got nothing
