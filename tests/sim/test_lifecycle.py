"""Listen key expiry, the 24 h cut and server pings, on a compressed time scale."""

from __future__ import annotations

import aiohttp
import httpx
import pytest
import websockets

from tests.sim.streams import next_event
from tests.support.simulator import SimClient
from watchdog.sim import Simulator


async def test_listen_key_expires_after_ttl_without_keepalive(sim_factory: object) -> None:
    # time_scale 3600: the 60 min validity is 1 s.
    async with sim_factory(time_scale=3600, ping_interval_s=5) as sim, httpx.AsyncClient() as h:  # type: ignore[operator]
        client = SimClient(sim, h)
        key = await client.listen_key()
        async with websockets.connect(client.stream_url(key)) as ws:
            event = await next_event(ws, timeout_s=10)
            assert event == {"e": "listenKeyExpired", "E": event["E"], "listenKey": key}
            assert isinstance(event["E"], str)
            sim.fill("BTCUSDT", "BUY", "0.002")  # nothing more arrives on a dead key
            assert sim.venue.hub.sent.get("ACCOUNT_UPDATE", 0) == 0
        assert (await client.request("PUT", "/fapi/v1/listenKey", signed=False)).json()["code"] == -1125
        fresh = await client.listen_key()
        assert fresh != key


async def test_keepalive_extends_validity(sim: Simulator, sim_client: SimClient) -> None:
    await sim_client.listen_key()
    account = sim.exchange.account(sim.api_key)
    account.listen_key_expires_ms -= 30 * 60 * 1000  # half an hour "passed"
    before = account.listen_key_expires_ms
    await sim_client.request("PUT", "/fapi/v1/listenKey", signed=False)
    assert account.listen_key_expires_ms >= before + 30 * 60 * 1000 - 1000


async def test_control_api_can_expire_a_key(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key)) as ws:
        await sim.wait_connections(1)
        await sim_client.control("POST", "listen-key/expire", {})
        assert (await next_event(ws))["e"] == "listenKeyExpired"


async def test_connection_is_cut_at_24h(sim_factory: object) -> None:
    # time_scale 172800: 24 h is 0.5 s (the listen key is kept valid for the test).
    async with sim_factory(time_scale=172_800, listen_key_ttl_s=60, ping_interval_s=5,  # type: ignore[operator]
                           pong_timeout_s=60) as sim:
        async with httpx.AsyncClient() as h:
            key = await SimClient(sim, h).listen_key()
        async with websockets.connect(sim.user_stream_url(key, ["ACCOUNT_UPDATE"])) as ws:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await next_event(ws, timeout_s=10)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1001
        await sim.wait_connections(0)


async def test_server_pings_and_drops_silent_peers(sim_factory: object) -> None:
    async with sim_factory(ping_interval_s=0.1, pong_timeout_s=0.5) as sim, aiohttp.ClientSession() as http:  # type: ignore[operator]
        async with httpx.AsyncClient() as h:
            key = await SimClient(sim, h).listen_key()
        async with http.ws_connect(sim.user_stream_url(key, ["ACCOUNT_UPDATE"]), autoping=False) as ws:
            first = await ws.receive(timeout=5)
            assert first.type == aiohttp.WSMsgType.PING
            while True:  # never answer: the server gives up after the pong window
                msg = await ws.receive(timeout=5)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            assert ws.close_code == 1008
