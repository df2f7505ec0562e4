"""Account, leverage and bracket endpoints; LIMIT time-in-force rules."""

from __future__ import annotations

import websockets

from tests.sim.streams import next_event
from tests.support.simulator import SimClient
from watchdog.sim import Simulator


async def test_account_v3_and_v2(sim: Simulator, sim_client: SimClient) -> None:
    sim.fill("BTCUSDT", "BUY", "0.010")
    sim.set_mark_price("BTCUSDT", "91000")
    v3 = (await sim_client.get("/fapi/v3/account")).json()
    assert v3["totalUnrealizedProfit"] == "10.00000000"
    assert v3["assets"][0]["asset"] == "USDT"
    assert [(p["symbol"], p["positionAmt"]) for p in v3["positions"]] == [("BTCUSDT", "0.010")]
    v2 = (await sim_client.get("/fapi/v2/account")).json()
    assert v2["canTrade"] is True
    rows = {(p["symbol"], p["positionSide"]): p for p in v2["positions"]}
    assert rows[("BTCUSDT", "BOTH")]["positionAmt"] == "0.010"
    assert rows[("BASUSDT", "BOTH")]["positionAmt"] == "0"


async def test_leverage_and_brackets(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key)) as ws:
        await sim.wait_connections(1)
        response = await sim_client.post("/fapi/v1/leverage", symbol="BASUSDT", leverage=5)
        assert response.json() == {"leverage": 5, "maxNotionalValue": "500000", "symbol": "BASUSDT"}
        event = await next_event(ws)
    assert (event["e"], event["ac"]) == ("ACCOUNT_CONFIG_UPDATE", {"s": "BASUSDT", "l": 5})
    bad = await sim_client.post("/fapi/v1/leverage", symbol="BASUSDT", leverage=500)
    assert bad.json()["code"] == -4028
    rows = (await sim_client.get("/fapi/v2/positionRisk", symbol="BASUSDT")).json()
    assert rows[0]["leverage"] == "5"
    bracket = (await sim_client.get("/fapi/v1/leverageBracket", symbol="BASUSDT")).json()
    assert bracket["symbol"] == "BASUSDT"
    assert bracket["brackets"][0]["initialLeverage"] == 75
    assert len((await sim_client.get("/fapi/v1/leverageBracket")).json()) == 3


async def test_limit_time_in_force(sim: Simulator, sim_client: SimClient) -> None:
    async def limit(tif: str, price: str) -> dict[str, object]:
        response = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                         timeInForce=tif, quantity="0.010", price=price,
                                         newOrderRespType="RESULT")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    assert (await limit("IOC", "89000"))["status"] == "EXPIRED"
    assert (await limit("FOK", "89000"))["status"] == "EXPIRED"
    assert (await limit("GTX", "90500"))["status"] == "EXPIRED"  # post-only that would take
    taken = await limit("GTC", "90500")
    assert (taken["status"], taken["avgPrice"]) == ("FILLED", "90000.00")  # crosses: takes at market
    missing = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                    quantity="0.010", price="89000")
    assert missing.json()["code"] == -1102


async def test_unknown_symbol_is_1121(sim_client: SimClient) -> None:
    response = await sim_client.get("/fapi/v3/positionRisk", symbol="NOPEUSDT")
    assert response.json() == {"code": -1121, "msg": "Invalid symbol."}
