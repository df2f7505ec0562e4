"""A real Binance client, python-binance 1.0.37 (sync, requests), unchanged except for its
futures URL, against the simulator: the REST calls a bot makes, and errors it can parse."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from binance.client import Client
from binance.exceptions import BinanceAPIException

from watchdog.sim import Simulator

T = TypeVar("T")


def client(sim: Simulator) -> Client:
    c = Client(sim.api_key, sim.api_secret, ping=False)
    c.FUTURES_URL = sim.rest_url + "/fapi"
    return c


async def call(fn: Callable[[], T]) -> T:
    """python-binance blocks: run it off the loop that serves the simulator."""
    return await asyncio.to_thread(fn)


async def test_market_data_calls_parse(sim: Simulator) -> None:
    c = client(sim)
    sim.set_mark_price("BASUSDT", "0.0077")
    candles = await call(lambda: c.futures_klines(symbol="BASUSDT", interval="1h", limit=3))
    assert len(candles) == 3
    assert candles[-1][4] == "0.00770000"  # close
    assert candles[1][0] - candles[0][0] == 3_600_000
    ticker = await call(lambda: c.futures_symbol_ticker(symbol="BASUSDT"))   # /fapi/v2/ticker/price
    assert ticker["price"] == "0.00770000"
    mark = await call(lambda: c.futures_mark_price(symbol="BASUSDT"))        # /fapi/v1/premiumIndex
    assert mark["markPrice"] == "0.0077"
    assert mark["nextFundingTime"] > mark["time"]


async def test_account_calls_after_a_fill(sim: Simulator) -> None:
    c = client(sim)
    sim.fill("BTCUSDT", "BUY", "0.002")
    balance = await call(c.futures_account_balance)                        # /fapi/v3/balance
    assert [row["asset"] for row in balance] == ["USDT"]
    assert float(balance[0]["balance"]) < 10_000                           # the taker fee
    trades = await call(lambda: c.futures_account_trades(symbol="BTCUSDT"))  # /fapi/v1/userTrades
    assert [(t["side"], t["qty"], t["price"], t["buyer"]) for t in trades] == [
        ("BUY", "0.002", "90000.00", True)]
    [position] = await call(lambda: c.futures_position_information(symbol="BTCUSDT"))
    assert position["positionAmt"] == "0.002"
    order = await call(lambda: c.futures_create_order(symbol="BTCUSDT", side="SELL", type="MARKET",
                                                      quantity="0.002", reduceOnly="true"))
    assert order["status"] == "NEW"   # the default ACK answer; the fill shows in the trades
    trades = await call(lambda: c.futures_account_trades(symbol="BTCUSDT"))
    assert [t["orderId"] for t in trades][-1] == order["orderId"]
    assert float(trades[-1]["realizedPnl"]) == 0.0
    assert await call(c.futures_stream_get_listen_key)


@pytest.mark.parametrize(("request_", "status", "code"), [
    (lambda c: c.futures_cancel_order(symbol="BTCUSDT", orderId=1), 400, -2011),
    (lambda c: c._request_futures_api("get", "noSuchEndpoint"), 404, -5000),
    (lambda c: c.futures_klines(symbol="BTCUSDT", interval="7m"), 400, -1120),
])
async def test_errors_are_binance_json_the_client_parses(sim: Simulator, request_: Callable[[Client], Any],
                                                         status: int, code: int) -> None:
    c = client(sim)
    with pytest.raises(BinanceAPIException) as caught:
        await call(lambda: request_(c))
    assert (caught.value.status_code, caught.value.code) == (status, code)
