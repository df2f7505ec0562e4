"""Each fault of the control API, observed from a client's side."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from tests.sim.streams import assert_silent, events_until, next_event
from tests.support.simulator import SimClient
from watchdog.sim import Simulator


async def _connect(sim: Simulator, sim_client: SimClient,
                   events: list[str] | None = None) -> websockets.ClientConnection:
    key = await sim_client.listen_key()
    ws = await websockets.connect(sim_client.stream_url(key, events))
    await sim.wait_connections(1)
    return ws


async def test_mute_keeps_connection_and_pongs_but_drops_events(sim: Simulator,
                                                                 sim_client: SimClient) -> None:
    ws = await _connect(sim, sim_client, ["ACCOUNT_UPDATE"])
    async with ws:
        response = await sim_client.control("POST", "faults", {"stream": "mute"})
        assert response.json()["faults"]["stream"] == "mute"
        sim.fill("BTCUSDT", "BUY", "0.002")
        await asyncio.wait_for(await ws.ping(), timeout=5)  # pings still answered
        await assert_silent(ws, sim)
        assert sim.venue.hub.dropped["ACCOUNT_UPDATE"] == 1
        rows = (await sim_client.get("/fapi/v3/positionRisk")).json()
        assert rows[0]["positionAmt"] == "0.002"  # REST knows what the stream never said
        await sim_client.control("DELETE", "faults")
        sim.fill("BTCUSDT", "BUY", "0.002")
        assert (await next_event(ws))["a"]["P"][0]["pa"] == "0.004"


async def test_stall_sends_no_frames_at_all(sim: Simulator, sim_client: SimClient) -> None:
    ws = await _connect(sim, sim_client)
    async with ws:
        sim.set_faults(stream="stall")
        sim.fill("BTCUSDT", "BUY", "0.002")
        waiter = await ws.ping()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout=0.3)
        assert sim.venue.hub.count_private() == 1  # the socket is still open
        sim.clear_faults()


async def test_disconnect_drops_every_connection(sim: Simulator, sim_client: SimClient) -> None:
    ws = await _connect(sim, sim_client)
    other = await websockets.connect(sim_client.stream_url(await sim_client.listen_key()))
    await sim.wait_connections(2)
    response = await sim_client.control("POST", "faults", {"stream": "disconnect"})
    assert response.json()["actions"] == ["disconnect"]
    assert response.json()["faults"]["stream"] == "normal"
    for conn in (ws, other):
        with pytest.raises(websockets.ConnectionClosedError) as info:
            await next_event(conn)
        assert info.value.rcvd is None  # no close frame: an abnormal closure (1006)
    await sim.wait_connections(0)


async def test_drop_events_by_type(sim: Simulator, sim_client: SimClient) -> None:
    ws = await _connect(sim, sim_client)
    async with ws:
        sim.set_faults(drop_events=["ACCOUNT_UPDATE", "TRADE_LITE"])
        sim.fill("BTCUSDT", "BUY", "0.002")
        sim.clear_faults()
        sim.fill("BTCUSDT", "BUY", "0.002")
        seen = await events_until(ws, lambda e: e["e"] == "ACCOUNT_UPDATE")
    assert [e["e"] for e in seen] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE",  # first fill, filtered
                                      "ORDER_TRADE_UPDATE", "TRADE_LITE", "ORDER_TRADE_UPDATE",
                                      "ACCOUNT_UPDATE"]
    assert seen[-1]["a"]["P"][0]["pa"] == "0.004"
    assert sim.venue.hub.dropped == {"ACCOUNT_UPDATE": 1, "TRADE_LITE": 1}


async def test_delay_events_keeps_order(sim: Simulator, sim_client: SimClient) -> None:
    ws = await _connect(sim, sim_client, ["ACCOUNT_UPDATE"])
    async with ws:
        sim.set_faults(delay_events_ms=300)
        sim.fill("BTCUSDT", "BUY", "0.002")
        sim.fill("BTCUSDT", "BUY", "0.002")
        with pytest.raises(TimeoutError):  # cannot arrive before its delay
            await asyncio.wait_for(ws.recv(), timeout=0.1)
        first, second = await next_event(ws), await next_event(ws)
    assert (first["a"]["P"][0]["pa"], second["a"]["P"][0]["pa"]) == ("0.002", "0.004")


async def test_rest_lag_answers_from_the_past(sim: Simulator, sim_client: SimClient) -> None:
    sim.set_faults(rest_lag_ms=60_000)
    sim.fill("BTCUSDT", "BUY", "0.002")
    algo = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT", side="SELL",
                                 type="STOP_MARKET", triggerPrice="80000", quantity="0.002")
    assert algo.status_code == 200
    assert (await sim_client.get("/fapi/v3/positionRisk")).json() == []
    v2 = (await sim_client.get("/fapi/v2/positionRisk", symbol="BTCUSDT")).json()
    assert v2[0]["positionAmt"] == "0.000"
    assert (await sim_client.get("/fapi/v1/openAlgoOrders")).json() == []
    sim.clear_faults()
    assert (await sim_client.get("/fapi/v3/positionRisk")).json()[0]["positionAmt"] == "0.002"
    assert len((await sim_client.get("/fapi/v1/openAlgoOrders")).json()) == 1


async def test_rest_errors_for_n_requests(sim_client: SimClient) -> None:
    await sim_client.control("POST", "faults", {"rest_errors": {"status": 503, "count": 2}})
    first = await sim_client.get("/fapi/v3/positionRisk")
    second = await sim_client.request("GET", "/fapi/v1/time", signed=False)
    third = await sim_client.get("/fapi/v3/positionRisk")
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.json() == {"code": -1001, "msg": "Service Unavailable."}


async def test_rest_errors_429_carries_retry_after(sim_client: SimClient) -> None:
    await sim_client.control("POST", "faults", {"rest_errors": {"status": 429, "count": 1}})
    response = await sim_client.get("/fapi/v1/openOrders", symbol="BTCUSDT")
    assert response.status_code == 429
    assert response.json()["code"] == -1003
    assert response.headers["Retry-After"] == "1"


async def test_bad_fault_documents_are_400(sim_client: SimClient) -> None:
    for doc in ({"stream": "sideways"}, {"rest_lag_ms": -1}, {"nope": 1}, {"rest_errors": {"count": 1}}):
        response = await sim_client.control("POST", "faults", doc)
        assert response.status_code == 400, doc
        assert "error" in response.json()


async def test_state_and_reset(sim: Simulator, sim_client: SimClient) -> None:
    ws = await _connect(sim, sim_client, ["ACCOUNT_UPDATE"])
    async with ws:
        await sim_client.control("POST", "fills", {"symbol": "BASUSDT", "side": "BUY", "qty": "1216"})
        await next_event(ws)
        await sim_client.control("POST", "mark-price", {"symbol": "BASUSDT", "price": "0.0083"})
        state = (await sim_client.control("GET", "state")).json()
        account = state["accounts"][0]
        assert account["positions"] == [{"symbol": "BASUSDT", "position_side": "BOTH", "amount": "1216",
                                         "entry_price": "0.00832653", "realized_pnl": "0",
                                         "update_time_ms": account["positions"][0]["update_time_ms"]}]
        assert account["api_key"] == "sim-…"
        assert account["listen_key"]["key"].endswith("…")
        assert state["connections"][0]["events"] == {account["listen_key"]["key"]: ["ACCOUNT_UPDATE"]}
        assert state["events"]["sent"] == {"ACCOUNT_UPDATE": 1}
        assert state["prices"]["BASUSDT"] == {"mark_price": "0.0083", "contract_price": "0.0083"}
        assert (await sim_client.control("POST", "reset")).json() == {"reset": True}
        with pytest.raises(websockets.ConnectionClosed):
            await next_event(ws)
    state = (await sim_client.control("GET", "state")).json()
    assert state["accounts"][0]["positions"] == []
    assert state["connections"] == []
    assert state["prices"]["BASUSDT"]["mark_price"] == "0.00832653"


async def test_ws_handshake_errors(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    sim.set_faults(ws_handshake_errors={"status": 503, "count": 1})
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(sim_client.stream_url(key)):
            pass
    assert info.value.response.status_code == 503
    async with websockets.connect(sim_client.stream_url(key)):
        await sim.wait_connections(1)


async def test_reorder_events_swaps_pairs(sim: Simulator, sim_client: SimClient) -> None:
    ws = await _connect(sim, sim_client, ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"])
    async with ws:
        sim.set_faults(reorder_events=True)
        sim.fill("BTCUSDT", "BUY", "0.002")  # OTU NEW, OTU TRADE, ACCOUNT_UPDATE
        first, second = await next_event(ws), await next_event(ws)
        assert (first["o"]["x"], second["o"]["x"]) == ("TRADE", "NEW")
        sim.clear_faults()  # the unpaired ACCOUNT_UPDATE is released
        assert (await next_event(ws))["e"] == "ACCOUNT_UPDATE"


async def test_mute_new_mutes_only_connections_opened_after_it(sim: Simulator,
                                                               sim_client: SimClient) -> None:
    old = await _connect(sim, sim_client, ["ACCOUNT_UPDATE"])
    response = await sim_client.control("POST", "faults", {"stream": "mute_new"})
    assert response.json()["faults"]["stream"] == "mute_new"
    new = await websockets.connect(sim_client.stream_url(await sim_client.listen_key(),
                                                         ["ACCOUNT_UPDATE"]))
    await sim.wait_connections(2)
    async with old, new:
        sim.set_faults(stream="mute_new")  # set again: the mark stays where it was
        sim.fill("BTCUSDT", "BUY", "0.002")
        assert (await next_event(old))["a"]["P"][0]["pa"] == "0.002"  # the old one delivers
        await asyncio.wait_for(await new.ping(), timeout=5)  # the new one answers pings...
        await assert_silent(new, sim)  # ...and delivers nothing
        assert sim.venue.hub.dropped["ACCOUNT_UPDATE"] == 1
        await sim_client.control("DELETE", "faults")
        sim.fill("BTCUSDT", "BUY", "0.002")
        for ws in (old, new):
            assert (await next_event(ws))["a"]["P"][0]["pa"] == "0.004"
