"""BinanceRest against the strict simulator: every call the reaper and the poller make, signed
for real, parsed by the wire module, and the typed errors of the re-query path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from tests.support.simulator import SimClient
from watchdog.binance.rest import BinanceRest, make_http_client
from watchdog.clock import SystemClock
from watchdog.config import BinanceConfig, Config, Credentials
from watchdog.core.model import AlgoStatus, OrderId, PositionSide, Symbol
from watchdog.errors import AuthenticationFailed, ExchangeRejected
from watchdog.runtime.build import rest_of
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

BTC = Symbol("BTCUSDT")


@pytest.fixture
async def rest(sim: Simulator) -> AsyncIterator[BinanceRest]:
    cfg = BinanceConfig(rest_url=sim.rest_url, ws_url=sim.ws_url)
    async with make_http_client(cfg.rest_url, cfg.request_timeout_s) as http:
        yield rest_of(Config(binance=cfg), Credentials(sim.api_key, sim.api_secret), SystemClock(), http)


async def test_positions_mode_and_listen_key(sim: Simulator, rest: BinanceRest) -> None:
    sim.fill("BTCUSDT", "BUY", "0.010")
    rows = await rest.fetch_positions()
    assert [(r.key.symbol, r.key.side, r.amount) for r in rows] == [
        ("BTCUSDT", PositionSide.BOTH, Decimal("0.010"))]
    assert await rest.position_mode() is False
    key = await rest.create_listen_key()
    assert key == await rest.create_listen_key()  # the account's one active key
    await rest.keepalive_listen_key()
    assert rest.weight_used_1m > 0  # X-MBX-USED-WEIGHT-1M seen


async def test_algo_order_query_and_cancel(sim: Simulator, sim_client: SimClient,
                                           rest: BinanceRest) -> None:
    sim.fill("BTCUSDT", "BUY", "0.010")
    placed = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="BTCUSDT",
                                   side="SELL", type="STOP_MARKET", triggerPrice="80000",
                                   quantity="0.010", reduceOnly="true")
    assert placed.status_code == 200, placed.text
    algo_id = OrderId(placed.json()["algoId"])
    [listed] = await rest.fetch_open_algo_orders(BTC)
    assert listed.algo_id == algo_id
    assert listed.status is AlgoStatus.NEW
    assert (await rest.get_algo_order(algo_id)).status is AlgoStatus.NEW
    await rest.cancel_algo_order(algo_id)
    assert await rest.fetch_open_algo_orders(BTC) == ()
    assert (await rest.get_algo_order(algo_id)).status is AlgoStatus.CANCELED


async def test_regular_order_query_cancel_and_unknown_order(sim: Simulator, sim_client: SimClient,
                                                            rest: BinanceRest) -> None:
    placed = await sim_client.post("/fapi/v1/order", symbol="BTCUSDT", side="BUY", type="LIMIT",
                                   price="50000", quantity="0.010", timeInForce="GTC")
    assert placed.status_code == 200, placed.text
    order_id = OrderId(placed.json()["orderId"])
    [listed] = await rest.fetch_open_orders(BTC)
    assert listed.order_id == order_id
    assert (await rest.get_order(BTC, order_id)).status == "NEW"
    await rest.cancel_order(BTC, order_id)
    assert (await rest.get_order(BTC, order_id)).status == "CANCELED"
    with pytest.raises(ExchangeRejected) as info:
        await rest.cancel_order(BTC, order_id)  # already gone: a definite answer, re-query
    assert info.value.code in (-2011, -2013)


async def test_wrong_secret_is_authentication_or_signature_rejection(sim: Simulator) -> None:
    cfg = BinanceConfig(rest_url=sim.rest_url, ws_url=sim.ws_url)
    async with make_http_client(cfg.rest_url, cfg.request_timeout_s) as http:
        bad_key = rest_of(Config(binance=cfg), Credentials("nobody", "x"), SystemClock(), http)
        with pytest.raises(AuthenticationFailed):
            await bad_key.fetch_positions()
        bad_secret = rest_of(Config(binance=cfg), Credentials(sim.api_key, "wrong"), SystemClock(), http)
        with pytest.raises(AuthenticationFailed) as info:
            await bad_secret.fetch_positions()
        assert info.value.code == -1022


async def test_a_rejected_key_is_remembered_reported_sparingly_and_cleared(
        sim: Simulator, rest: BinanceRest) -> None:
    """An IP outside the key's whitelist (-2015 on every keyed call, public ones still answer):
    the client keeps the latest rejection for the health problem, logs it once per interval
    (not once per poll), and forgets it when a keyed call succeeds again."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        await rest.fetch_positions()
        assert rest.auth_rejection is None
        sim.set_faults(ip_not_whitelisted=True)
        await rest.server_time()  # public: still answered
        for _ in range(5):
            with pytest.raises(AuthenticationFailed) as info:
                await rest.fetch_positions()
            assert info.value.code == -2015
        with pytest.raises(AuthenticationFailed):
            await rest.create_listen_key()
        assert rest.auth_rejection is not None
        assert rest.auth_rejection.code == -2015
        reported = [line for line in lines if "rejects the credentials" in line]
        assert len(reported) == 1, lines
        sim.clear_faults()
        await rest.fetch_positions()
        assert rest.auth_rejection is None
    finally:
        logger.remove(sink)
        sim.clear_faults()
