"""The simulator's public market streams (issue 13 deliver 3): routed ``/market`` only, Binance's
payload shapes, SUBSCRIBE/UNSUBSCRIBE, the 1024-stream and 10-messages-a-second limits, the
periodic mark price and prints for every contract-price change and fill. Real sockets."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.sim.streams import assert_silent, events_until, next_event
from tests.support.simulator import SimClient
from watchdog.sim import Simulator
from watchdog.sim.market_hub import (
    MAX_STREAMS,
    IncomingRate,
    answer_market_request,
    parse_stream,
)

SYMBOLS = {"BTCUSDT", "BASUSDT"}


@pytest.mark.parametrize(("name", "parsed"), [
    ("btcusdt@markPrice@1s", ("BTCUSDT", "markPrice@1s")),
    ("btcusdt@markPrice", ("BTCUSDT", "markPrice")),
    ("basusdt@aggTrade", ("BASUSDT", "aggTrade")),
    ("BTCUSDT@aggTrade", None),       # Binance's names are lower case
    ("ethusdt@aggTrade", None),       # not listed here
    ("btcusdt@depth", None),          # a /public stream
    ("btcusdt@markPrice@3s", None),
    ("btcusdt", None),
])
def test_stream_names(name: str, parsed: tuple[str, str] | None) -> None:
    assert parse_stream(name, SYMBOLS) == parsed


def test_subscribe_unsubscribe_list() -> None:
    reply, subs = answer_market_request(
        '{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","basusdt@markPrice@1s"],"id":1}',
        frozenset(), SYMBOLS)
    assert reply == {"result": None, "id": 1}
    assert subs == {"btcusdt@aggTrade", "basusdt@markPrice@1s"}
    reply, subs = answer_market_request('{"method":"UNSUBSCRIBE","params":["btcusdt@aggTrade"],"id":2}',
                                        subs, SYMBOLS)
    assert (reply, subs) == ({"result": None, "id": 2}, {"basusdt@markPrice@1s"})
    reply, _ = answer_market_request('{"method":"LIST_SUBSCRIPTIONS","id":3}', subs, SYMBOLS)
    assert reply == {"result": ["basusdt@markPrice@1s"], "id": 3}


def test_bad_requests_change_nothing() -> None:
    subs = frozenset({"btcusdt@aggTrade"})
    for text, code in (("{nope", 3), ("[1]", 2), ('{"method":"SUBSCRIBE","params":"x","id":1}', 2),
                       ('{"method":"SUBSCRIBE","params":["btcusdt@depth"],"id":1}', 2)):
        reply, after = answer_market_request(text, subs, SYMBOLS)
        assert reply["error"]["code"] == code, text  # type: ignore[index]
        assert after == subs


def test_more_than_1024_streams_on_one_connection_are_refused() -> None:
    symbols = {f"S{i}USDT" for i in range(400)}
    names = [f"s{i}usdt@{kind}" for i in range(400) for kind in ("aggTrade", "markPrice@1s", "markPrice")]
    full = frozenset(names[:MAX_STREAMS])
    reply, after = answer_market_request(json.dumps({"method": "SUBSCRIBE", "params": names[MAX_STREAMS:],
                                                     "id": 9}), full, symbols)
    assert reply["error"]["code"] == 2  # type: ignore[index]
    assert after == full


def test_incoming_rate_window() -> None:
    rate = IncomingRate(limit=10)
    assert all(rate.admit(0.05 * i) for i in range(10))
    assert not rate.admit(0.5)       # the 11th within one second
    assert rate.admit(1.6)           # the window moved on


async def test_stream_mode_delivers_marks_and_trades_in_binances_shapes(sim: Simulator) -> None:
    async with connect(f"{sim.ws_url}/market/stream?streams=basusdt@markPrice@1s/basusdt@aggTrade") as ws:
        await sim.wait_market_subscribed(["basusdt@aggTrade", "basusdt@markPrice@1s"])
        sim.set_mark_price("BASUSDT", "0.0080", contract_price="0.0079")
        frames = await events_until(ws, lambda f: f["data"]["e"] == "aggTrade")
        by_type = {f["data"]["e"]: f for f in frames}
        mark = by_type["markPriceUpdate"]
        assert mark["stream"] == "basusdt@markPrice@1s"
        assert set(mark["data"]) == {"e", "E", "s", "p", "i", "P", "r", "T"}
        assert (mark["data"]["s"], Decimal(mark["data"]["p"])) == ("BASUSDT", Decimal("0.0080"))
        trade = by_type["aggTrade"]
        assert trade["stream"] == "basusdt@aggTrade"
        assert set(trade["data"]) == {"e", "E", "a", "s", "p", "q", "f", "l", "T", "m"}
        assert trade["data"]["p"] == "0.00790000"
        assert trade["data"]["m"] is True  # the price fell: the taker sold


async def test_mark_price_is_pushed_every_scaled_second(sim_factory: object) -> None:
    async with sim_factory(time_scale=20) as s:  # type: ignore[operator]
        async with connect(f"{s.ws_url}/market/ws/btcusdt@markPrice@1s") as ws:
            marks = [await next_event(ws, timeout_s=2.0) for _ in range(3)]
        assert {m["e"] for m in marks} == {"markPriceUpdate"}
        assert marks[0]["E"] <= marks[1]["E"] <= marks[2]["E"]


async def test_every_fill_prints_an_agg_trade(sim: Simulator, sim_client: SimClient) -> None:
    async with connect(f"{sim.ws_url}/market/ws") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 1}))
        assert await next_event(ws) == {"result": None, "id": 1}
        sim.fill("BTCUSDT", "BUY", "0.003")
        trade = await next_event(ws)
        assert (trade["e"], trade["s"], trade["q"], trade["p"], trade["m"]) == (
            "aggTrade", "BTCUSDT", "0.003", "90000.00", False)
        # A triggered stop's fill prints after the crossing price that triggered it.
        response = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT",
                                         side="SELL", type="STOP_MARKET", triggerPrice="89000",
                                         closePosition="true")
        assert response.status_code == 200, response.text
        sim.set_mark_price("BTCUSDT", "88990")
        crossing, fill = await next_event(ws), await next_event(ws)
        assert (crossing["p"], fill["p"], fill["q"], fill["m"]) == ("88990.00", "88990.00", "0.003", True)
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 2}))
        assert await next_event(ws) == {"result": None, "id": 2}
        sim.set_mark_price("BTCUSDT", "88000")
        await assert_silent(ws, sim)


@pytest.mark.parametrize("path", ["/ws/btcusdt@aggTrade", "/stream?streams=btcusdt@aggTrade",
                                  "/public/ws/btcusdt@aggTrade"])
async def test_unrouted_paths_deliver_nothing(sim: Simulator, path: str) -> None:
    async with connect(f"{sim.ws_url}{path}") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 1}))
        assert await next_event(ws) == {"result": None, "id": 1}
        sim.set_mark_price("BTCUSDT", "91000")
        await assert_silent(ws, sim)


async def test_more_than_ten_messages_a_second_disconnect(sim: Simulator) -> None:
    async def flood_then_read(ws: ClientConnection) -> None:
        for i in range(30):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        while True:
            await next_event(ws)

    async with connect(f"{sim.ws_url}/market/ws") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await flood_then_read(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


async def test_market_faults_mute_and_disconnect(sim: Simulator) -> None:
    async with connect(f"{sim.ws_url}/market/ws/btcusdt@aggTrade") as ws:
        await sim.wait_market_subscribed(["btcusdt@aggTrade"])
        sim.set_faults(market="mute")
        sim.set_mark_price("BTCUSDT", "91000")
        await assert_silent(ws, sim)
        assert sim.venue.market.dropped["aggTrade"] == 1
        sim.set_faults(market="disconnect")
        with pytest.raises(ConnectionClosed):
            await next_event(ws)
    await sim.wait_for(lambda s: not s.venue.market.connections, what="market connections gone")
