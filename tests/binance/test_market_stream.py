"""binance/market_stream.py against the simulator over real sockets: the routed URL, what it
subscribes, crossings reported once, and a stalled connection found by its pings, replaced and
subscribed again (nothing emitted to the core on the loss)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from watchdog.binance.market_stream import MarketStream, market_stream_url
from watchdog.clock import SystemClock
from watchdog.core.events import Event, StopCrossed
from watchdog.core.model import OrderId, PositionKey, PositionSide, Symbol
from watchdog.core.triggers import TriggerLevel
from watchdog.sim import Simulator

BAS = Symbol("BASUSDT")
KEY = PositionKey(BAS, PositionSide.BOTH)
STOP = TriggerLevel(KEY, OrderId(7), True, "SELL", "STOP_MARKET", Decimal("0.0077"), "CONTRACT_PRICE")
MARK_STOP = TriggerLevel(KEY, OrderId(8), True, "SELL", "STOP_MARKET", Decimal("0.0075"), "MARK_PRICE")


def test_the_url_is_the_routed_market_path() -> None:
    assert market_stream_url("wss://fstream.binance.com/") == "wss://fstream.binance.com/market/ws"


@pytest.fixture
async def running(sim: Simulator) -> AsyncIterator[tuple[MarketStream, list[Event]]]:
    emitted: list[Event] = []

    async def emit(event: Event) -> None:
        emitted.append(event)

    market = MarketStream(ws_url=sim.ws_url, clock=SystemClock(), max_silence_s=0.9,
                          reconnect_min_delay_s=0.05, reconnect_max_delay_s=0.2)
    task = asyncio.create_task(market.run(emit))
    try:
        yield market, emitted
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_follows_the_stops_and_reports_each_crossing_once(
        sim: Simulator, running: tuple[MarketStream, list[Event]]) -> None:
    market, emitted = running
    market.set_levels({BAS: (STOP, MARK_STOP)})
    await sim.wait_market_subscribed(["basusdt@aggTrade", "basusdt@markPrice@1s"])
    sim.set_mark_price("BASUSDT", "0.0080", contract_price="0.0076")  # last crosses, mark not
    sim.set_mark_price("BASUSDT", "0.0080", contract_price="0.00755")  # still crossed: no repeat
    await sim.wait_for(lambda _: market.stats.prices >= 4, what="four prices read")
    assert [(e.order_id, e.price) for e in emitted if isinstance(e, StopCrossed)] == [
        (7, Decimal("0.0076"))]
    market.set_levels({})
    await sim.wait_for(lambda s: not s.venue.market.subscribed(), what="unsubscribed")


async def test_a_stalled_connection_is_replaced_and_resubscribed(
        sim: Simulator, running: tuple[MarketStream, list[Event]]) -> None:
    market, emitted = running
    market.set_levels({BAS: (STOP,)})
    await sim.wait_market_subscribed(["basusdt@aggTrade"])
    sim.set_faults(market="stall")  # open socket, no frames at all: our pings go unanswered
    await sim.wait_for(lambda _: market.stats.losses >= 1, timeout_s=10, what="stall found")
    assert market.stats.last_lost_reason
    assert emitted == []  # a loss is no fact for the core: it never makes a position safer
    sim.clear_faults()
    await sim.wait_market_subscribed(["basusdt@aggTrade"])
    sim.set_mark_price("BASUSDT", "0.0076")
    await sim.wait_for(lambda _: any(isinstance(e, StopCrossed) for e in emitted),
                       what="a crossing on the new connection")
    assert market.stats.connects >= 2
