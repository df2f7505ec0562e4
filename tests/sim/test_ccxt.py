"""A real Binance client, ccxt ``binanceusdm`` 4.5.90 (and ccxt.pro for the user stream),
unchanged except for its URLs.

Every ``https://…`` entry of ``urls['api']`` re-pointed at the simulator (paths kept) and
``has['fetchCurrencies'] = False`` (docs/ADAPTERS.md § Measured here).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt
import pytest

from watchdog.sim import Simulator

SYMBOL = "BTC/USDT:USDT"


@pytest.fixture
async def exchange(sim: Simulator) -> AsyncIterator[Any]:
    ex = ccxt.binanceusdm({"apiKey": sim.api_key, "secret": sim.api_secret})
    for name, url in list(ex.urls["api"].items()):
        if isinstance(url, str) and url.startswith("https://"):
            ex.urls["api"][name] = sim.rest_url + urlsplit(url).path
    ex.has["fetchCurrencies"] = False
    try:
        await ex.load_markets()
        yield ex
    finally:
        await ex.close()


async def test_markets_come_from_exchange_info(exchange: Any) -> None:
    market = exchange.market("BAS/USDT:USDT")
    assert market["id"] == "BASUSDT"
    assert market["precision"]["price"] == pytest.approx(1e-8)
    assert market["limits"]["cost"]["min"] == 5


async def test_positions_market_order_and_stop_lifecycle(sim: Simulator, exchange: Any) -> None:
    assert await exchange.fetch_positions([SYMBOL]) == []

    order = await exchange.create_order(SYMBOL, "market", "buy", 0.002)
    assert order["status"] == "closed"
    assert order["filled"] == pytest.approx(0.002)
    positions = await exchange.fetch_positions([SYMBOL])
    assert len(positions) == 1
    assert positions[0]["contracts"] == pytest.approx(0.002)
    assert positions[0]["side"] == "long"

    stop = await exchange.create_order(SYMBOL, "market", "sell", 0.002,
                                       params={"stopPrice": 80000, "reduceOnly": True})
    assert stop["status"] == "open"
    assert stop["info"]["algoType"] == "CONDITIONAL"  # routed to POST /fapi/v1/algoOrder
    algo = sim.exchange.find_algo(sim.api_key, int(stop["id"]), None)
    assert algo.order_type == "STOP_MARKET"
    assert algo.trigger_price == Decimal("80000")
    assert algo.reduce_only

    # The classic endpoint does not see it (docs/BINANCE.md §3.1) ...
    assert await exchange.fetch_open_orders(SYMBOL) == []
    # ... the algo endpoint does.
    listed = await exchange.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert [o["id"] for o in listed] == [stop["id"]]
    assert listed[0]["triggerPrice"] == pytest.approx(80000)

    cancelled = await exchange.cancel_order(stop["id"], SYMBOL, params={"trigger": True})
    assert cancelled["id"] == stop["id"]
    assert await exchange.fetch_open_orders(SYMBOL, params={"trigger": True}) == []
    assert sim.exchange.find_algo(sim.api_key, int(stop["id"]), None).status == "CANCELED"


async def test_errors_surface_as_ccxt_exceptions(exchange: Any) -> None:
    """Binance bodies reach the caller verbatim (ccxt maps codes by *host*, so against a local
    URL it raises the generic class; the raw body is what docs/BINANCE.md §5.1 quotes)."""
    await exchange.create_order(SYMBOL, "market", "buy", 0.002)
    with pytest.raises(ccxt.ExchangeError) as info:
        await exchange.create_order(SYMBOL, "market", "sell", 0.002, params={"stopPrice": 95000})
    assert str(info.value) == 'binanceusdm {"code":-2021,"msg":"Order would immediately trigger."}'
    with pytest.raises(ccxt.ExchangeError) as info:
        await exchange.cancel_order("12345", SYMBOL, params={"trigger": True})
    assert str(info.value) == 'binanceusdm {"code":-2011,"msg":"Unknown order sent."}'


@pytest.fixture
async def pro(sim: Simulator) -> AsyncIterator[Any]:
    """ccxt.pro: its user stream goes to ``urls['api']['ws']['linear']`` + ``/private/ws?listenKey=``."""
    import ccxt.pro as ccxtpro

    ex = ccxtpro.binanceusdm({"apiKey": sim.api_key, "secret": sim.api_secret})
    for name, url in list(ex.urls["api"].items()):
        if isinstance(url, str) and url.startswith("https://"):
            ex.urls["api"][name] = sim.rest_url + urlsplit(url).path
    ex.urls["api"]["ws"]["linear"] = sim.ws_url + "/ws"
    ex.has["fetchCurrencies"] = False
    try:
        await ex.load_markets()
        yield ex
    finally:
        await ex.close()


async def test_ccxt_pro_reads_the_user_stream(sim: Simulator, pro: Any) -> None:
    assert await pro.watch_positions() == []  # the REST snapshot; the stream opens next call
    positions = asyncio.ensure_future(pro.watch_positions())
    await sim.wait_connections(1)
    sim.fill("BTCUSDT", "BUY", "0.002")
    (position,) = await asyncio.wait_for(positions, timeout=10)
    assert (position["symbol"], position["contracts"], position["side"]) == (SYMBOL, 0.002, "long")
    orders = asyncio.ensure_future(pro.watch_orders(SYMBOL))
    sim.fill("BTCUSDT", "SELL", "0.002")
    updates = await asyncio.wait_for(orders, timeout=10)
    assert updates[-1]["status"] == "closed"
    assert updates[-1]["filled"] == pytest.approx(0.002)
