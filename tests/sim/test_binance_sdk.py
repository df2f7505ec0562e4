"""Binance's official USDⓈ-M SDK (binance-sdk-derivatives-trading-usds-futures 18.1.0),
unchanged except for its base URLs, against the simulator: REST calls, and the user stream in
the SDK's own form (``/private/stream`` plus a SUBSCRIBE of the listen key; it also opens the
``/market`` and ``/public`` routes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
from binance_common.configuration import ConfigurationRestAPI, ConfigurationWebSocketStreams
from binance_common.errors import BadRequestError, ClientError
from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
    DerivativesTradingUsdsFutures,
)

from tests.support.waiting import eventually
from watchdog.sim import Simulator

T = TypeVar("T")


@pytest.fixture
def sdk(sim: Simulator) -> DerivativesTradingUsdsFutures:
    return DerivativesTradingUsdsFutures(
        config_rest_api=ConfigurationRestAPI(api_key=sim.api_key, api_secret=sim.api_secret,
                                             base_path=sim.rest_url),
        config_ws_streams=ConfigurationWebSocketStreams(stream_url=sim.ws_url))


async def call(fn: Callable[[], T]) -> T:
    """The SDK's REST client blocks: run it off the loop that serves the simulator."""
    return await asyncio.to_thread(fn)


async def test_rest_calls_parse_into_the_sdks_models(sim: Simulator,
                                                     sdk: DerivativesTradingUsdsFutures) -> None:
    api = sdk.rest_api
    sim.set_mark_price("BTCUSDT", "91000")
    candles = (await call(lambda: api.kline_candlestick_data("BTCUSDT", "15m", limit=2))).data()
    assert [row[4] for row in candles] == ["91000.00", "91000.00"]
    ticker = (await call(lambda: api.symbol_price_ticker_v2(symbol="BTCUSDT"))).data()
    assert ticker.actual_instance.price == "91000.00"
    mark = (await call(lambda: api.mark_price(symbol="BTCUSDT"))).data()
    assert mark.actual_instance.mark_price == "91000"
    sim.fill("BTCUSDT", "SELL", "0.002")
    [balance] = (await call(api.futures_account_balance_v3)).data()
    assert balance.asset == "USDT"
    trades = (await call(lambda: api.account_trade_list(symbol="BTCUSDT"))).data()
    assert [(t.side, t.qty, t.price) for t in trades] == [("SELL", "0.002", "91000.00")]
    [position] = (await call(lambda: api.position_information_v3(symbol="BTCUSDT"))).data()
    assert position.position_amt == "-0.002"


async def test_errors_reach_the_sdk_as_binance_errors(sdk: DerivativesTradingUsdsFutures) -> None:
    with pytest.raises((BadRequestError, ClientError), match=r"Invalid interval"):
        await call(lambda: sdk.rest_api.kline_candlestick_data("BTCUSDT", "7m"))


@pytest.fixture
async def streams(sdk: DerivativesTradingUsdsFutures) -> AsyncIterator[Any]:
    connection = await sdk.websocket_streams.create_connection()
    try:
        yield connection
    finally:
        await connection.close_connection(close_session=True)


async def test_user_stream_in_the_sdks_subscribe_form(sim: Simulator, sdk: DerivativesTradingUsdsFutures,
                                                      streams: Any) -> None:
    key = (await call(sdk.rest_api.start_user_data_stream)).data().listen_key
    received: list[Any] = []
    handle = await streams.user_data(key)
    handle.on("message", received.append)
    await sim.wait_connections(1)   # the /private/stream connection, once subscribed
    sim.fill("BTCUSDT", "BUY", "0.002")

    async def kinds() -> list[str]:
        return [type(m.actual_instance).__name__ for m in received]

    seen = await eventually(kinds, lambda k: "AccountUpdate" in k, what="the SDK parsed an ACCOUNT_UPDATE")
    assert "OrderTradeUpdate" in seen
    update = next(m.actual_instance for m in received if type(m.actual_instance).__name__ == "AccountUpdate")
    assert [(p.s, p.pa) for p in update.a.P] == [("BTCUSDT", "0.002")]
