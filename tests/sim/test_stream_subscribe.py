"""The subscribe form of the routed user stream (``/private/stream`` + SUBSCRIBE), as the
official SDK uses it: the pure request handling, and over a real socket."""

from __future__ import annotations

import json

from websockets.asyncio.client import connect

from tests.sim.streams import events_until, next_event
from tests.support.simulator import SimClient
from watchdog.sim import Simulator
from watchdog.sim.stream import answer_request


def live(key: str) -> bool:
    return key == "LIVE"


def test_subscribe_adds_a_live_key_and_answers_null() -> None:
    reply, subs = answer_request('{"method":"SUBSCRIBE","params":["LIVE"],"id":7}', {}, routed=True,
                                 is_live=live)
    assert (reply, subs) == ({"result": None, "id": 7}, {"LIVE": None})
    reply, subs = answer_request('{"method":"LIST_SUBSCRIPTIONS","id":"a"}', subs, routed=True, is_live=live)
    assert reply == {"result": ["LIVE"], "id": "a"}
    reply, subs = answer_request('{"method":"UNSUBSCRIBE","params":["LIVE"],"id":8}', subs, routed=True,
                                 is_live=live)
    assert (reply, subs) == ({"result": None, "id": 8}, {})


def test_an_unknown_key_is_refused_like_the_handshake_and_changes_nothing() -> None:
    reply, subs = answer_request('{"method":"SUBSCRIBE","params":["LIVE","DEAD"],"id":1}', {}, routed=True,
                                 is_live=live)
    assert reply == {"error": {"code": -1125, "msg": "This listenKey does not exist."}, "id": 1}
    assert subs == {}


def test_malformed_requests_get_binances_stream_error_codes() -> None:
    assert answer_request("{nope", {}, routed=True, is_live=live)[0]["error"]["code"] == 3  # type: ignore[index]
    for text in ('[1]', '{"method":"SUBSCRIBE","params":"LIVE","id":1}', '{"method":"GO","id":1}'):
        reply, subs = answer_request(text, {}, routed=True, is_live=live)
        assert reply["error"]["code"] == 2, text  # type: ignore[index]
        assert subs == {}


def test_an_unrouted_connection_accepts_and_delivers_nothing() -> None:
    reply, subs = answer_request('{"method":"SUBSCRIBE","params":["LIVE"],"id":2}', {}, routed=False,
                                 is_live=live)
    assert (reply, subs) == ({"result": None, "id": 2}, {})


async def test_subscribe_form_over_a_socket(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    async with connect(f"{sim.ws_url}/private/stream") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [key], "id": 1}))
        assert await next_event(ws) == {"result": None, "id": 1}
        await sim.wait_connections(1)
        sim.fill("BTCUSDT", "BUY", "0.002")
        frames = await events_until(ws, lambda f: f.get("data", {}).get("e") == "ACCOUNT_UPDATE")
        assert {f["stream"] for f in frames} == {key}


async def test_the_public_and_market_routes_connect_and_answer(sim: Simulator) -> None:
    for route in ("public", "market"):
        async with connect(f"{sim.ws_url}/{route}/stream") as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice"], "id": 3}))
            assert await next_event(ws) == {"result": None, "id": 3}
