"""Auth, signing, timestamps and limits over real sockets."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from tests.support.simulator import SimClient
from watchdog.sim import Simulator


async def test_time_and_exchange_info_are_public(sim_client: SimClient) -> None:
    response = await sim_client.request("GET", "/fapi/v1/time", signed=False)
    assert response.status_code == 200
    assert isinstance(response.json()["serverTime"], int)
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "1"
    info = (await sim_client.request("GET", "/fapi/v1/exchangeInfo", signed=False)).json()
    bas = next(s for s in info["symbols"] if s["symbol"] == "BASUSDT")
    filters = {f["filterType"]: f for f in bas["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.00000001"
    assert filters["LOT_SIZE"]["stepSize"] == "1"


async def test_signed_request_succeeds(sim_client: SimClient) -> None:
    response = await sim_client.get("/fapi/v3/positionRisk")
    assert response.status_code == 200, response.text
    assert response.json() == []


async def test_missing_api_key_is_2014(sim: Simulator) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(sim.rest_url + "/fapi/v3/positionRisk?timestamp=1&signature=x")
    assert response.status_code == 401
    assert response.json()["code"] == -2014


async def test_unknown_api_key_is_2015(sim_client: SimClient) -> None:
    sim_client.api_key = "nobody"
    response = await sim_client.get("/fapi/v3/positionRisk")
    assert response.status_code == 401
    assert response.json() == {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}


async def test_wrong_secret_is_1022(sim_client: SimClient) -> None:
    sim_client.api_secret = "not-the-secret"
    response = await sim_client.get("/fapi/v3/positionRisk")
    assert response.status_code == 400
    assert response.json()["code"] == -1022


async def test_tampered_query_is_1022(sim: Simulator, sim_client: SimClient) -> None:
    query = sim_client.signed_query({"symbol": "BTCUSDT"}).replace("BTCUSDT", "ETHUSDT")
    response = await sim_client.http.get(f"{sim.rest_url}/fapi/v3/positionRisk?{query}",
                                         headers={"X-MBX-APIKEY": sim.api_key})
    assert response.json()["code"] == -1022


async def test_signature_over_query_plus_body(sim: Simulator, sim_client: SimClient) -> None:
    """totalParams = query string + body, concatenated without '&' (docs/BINANCE.md §4.2, mixed example)."""
    query = "symbol=BTCUSDT&side=BUY&type=MARKET"
    body = f"quantity=0.002&timestamp={int(time.time() * 1000)}"
    signature = hmac.new(sim.api_secret.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    response = await sim_client.http.post(
        f"{sim.rest_url}/fapi/v1/order?{query}", content=f"{body}&signature={signature}",
        headers={"X-MBX-APIKEY": sim.api_key, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "NEW"


async def test_missing_signature_and_timestamp_are_1102(sim: Simulator, sim_client: SimClient) -> None:
    headers = {"X-MBX-APIKEY": sim.api_key}
    response = await sim_client.http.get(f"{sim.rest_url}/fapi/v3/positionRisk?timestamp=1", headers=headers)
    assert response.json()["code"] == -1102
    assert "'signature'" in response.json()["msg"]
    response = await sim_client.http.get(f"{sim.rest_url}/fapi/v3/positionRisk?signature=ab", headers=headers)
    assert response.json()["code"] == -1102
    assert "'timestamp'" in response.json()["msg"]


async def test_old_and_future_timestamps_are_1021(sim: Simulator, sim_client: SimClient) -> None:
    now = int(time.time() * 1000)
    for timestamp in (now - 10_000, now + 5_000):
        query = sim_client.signed_query({}, timestamp_ms=timestamp)
        response = await sim_client.http.get(f"{sim.rest_url}/fapi/v3/positionRisk?{query}",
                                             headers={"X-MBX-APIKEY": sim.api_key})
        assert response.status_code == 400
        assert response.json()["code"] == -1021


async def test_recv_window_widens_acceptance(sim_client: SimClient) -> None:
    old = int(time.time() * 1000) - 10_000
    query = sim_client.signed_query({"recvWindow": 20_000}, timestamp_ms=old)
    response = await sim_client.http.get(f"{sim_client.sim.rest_url}/fapi/v3/positionRisk?{query}",
                                         headers={"X-MBX-APIKEY": sim_client.api_key})
    assert response.status_code == 200


async def test_clock_skew_fault_causes_1021(sim: Simulator, sim_client: SimClient) -> None:
    await sim_client.control("POST", "faults", {"clock_skew_ms": -30_000})
    response = await sim_client.get("/fapi/v3/positionRisk")
    assert response.json()["code"] == -1021
    server_time = (await sim_client.request("GET", "/fapi/v1/time", signed=False)).json()["serverTime"]
    assert server_time < time.time() * 1000 - 20_000


async def test_weight_limit_gives_429_with_retry_after(sim_factory: object) -> None:
    async with sim_factory(weight_limit=100) as sim, httpx.AsyncClient() as http:  # type: ignore[operator]
        client = SimClient(sim, http)
        statuses = []
        for _ in range(4):  # 40 weight each without a symbol
            response = await client.get("/fapi/v1/openOrders")
            statuses.append(response.status_code)
        assert statuses == [200, 200, 429, 429]
        assert response.json()["code"] == -1003
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["X-MBX-USED-WEIGHT-1M"] == "80"


async def test_listen_key_needs_only_the_api_key(sim_client: SimClient) -> None:
    first = await sim_client.listen_key()
    again = await sim_client.listen_key()
    assert first == again  # "returns the currently active listenKey"
    put = await sim_client.request("PUT", "/fapi/v1/listenKey", signed=False)
    assert put.json() == {"listenKey": first}
    delete = await sim_client.request("DELETE", "/fapi/v1/listenKey", signed=False)
    assert delete.json() == {}
    put = await sim_client.request("PUT", "/fapi/v1/listenKey", signed=False)
    assert put.json()["code"] == -1125


async def test_hammering_after_429_gets_418(sim_factory: object) -> None:
    async with sim_factory(weight_limit=40) as sim, httpx.AsyncClient() as http:  # type: ignore[operator]
        sim.venue.weights.ban_after = 3  # Binance bans "after continuing to send after 429s"
        client = SimClient(sim, http)
        statuses = [(await client.get("/fapi/v1/openOrders")).status_code for _ in range(6)]
        assert statuses == [200, 429, 429, 429, 418, 418]
        banned = await client.request("GET", "/fapi/v1/time", signed=False)
        assert banned.status_code == 418
        assert banned.json()["code"] == -1003
        assert int(banned.headers["Retry-After"]) > 60
