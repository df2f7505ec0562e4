"""POST /sim/v1/flood: valid alternating frames, increasing times, REST settles, bad requests."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import websockets

from tests.support.simulator import SimClient
from watchdog.binance.protocol.wire import parse_user_event
from watchdog.core.events import OrderUpdate, StreamPositions
from watchdog.sim import Simulator


async def _read(ws: websockets.ClientConnection, n: int) -> list[str]:
    async with asyncio.timeout(10):
        return [str(await ws.recv()) for _ in range(n)]


async def test_flood_sends_valid_alternating_frames(sim: Simulator, sim_client: SimClient) -> None:
    sim.fill("ETHUSDT", "SELL", "0.5")  # a short (before connecting): amounts move away from 0
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key)) as ws:
        await sim.wait_connections(1)
        response, frames = await asyncio.gather(
            sim_client.control("POST", "flood", {"count": 12, "symbols": ["BTCUSDT", "ETHUSDT"]}),
            _read(ws, 12))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["sent"] == 12
    assert report["connections"] == 1
    assert len(set(frames)) == len(frames)  # never byte-identical: duplicate filters keep all
    events = [e for f in frames for e in parse_user_event(json.loads(f))]  # type: ignore[union-attr]
    assert [type(e) for e in events] == [StreamPositions, OrderUpdate] * 6
    times = [e.event_time_ms for e in events]
    assert times == sorted(times)
    assert times[0] == report["first_event_ms"]
    amounts = [(e.positions[0].key.symbol, e.positions[0].amount)
               for e in events if isinstance(e, StreamPositions)]
    assert amounts[:4] == [("BTCUSDT", Decimal("0.001")), ("ETHUSDT", Decimal("-0.501")),
                           ("BTCUSDT", Decimal("0.002")), ("ETHUSDT", Decimal("-0.502"))]
    orders = [e for e in events if isinstance(e, OrderUpdate)]
    assert all(o.last_filled_quantity == 0 for o in orders)
    # Each order is placed, then cancelled by the next order frame: none stays open.
    assert [o.execution_type for o in orders] == ["NEW", "CANCELED"] * 3
    assert [o.status for o in orders] == ["NEW", "CANCELED"] * 3
    assert [o.order_id for o in orders[::2]] == [o.order_id for o in orders[1::2]]
    assert len({o.order_id for o in orders}) == 3
    # Rule 3: REST ends where the stream left each symbol.
    rows = {r["symbol"]: r for r in (await sim_client.get("/fapi/v2/positionRisk")).json()}
    assert rows["BTCUSDT"]["positionAmt"] == "0.001"
    assert rows["ETHUSDT"]["positionAmt"] == "-0.501"
    assert rows["BTCUSDT"]["updateTime"] == report["last_event_ms"]


async def test_flood_at_a_rate_takes_its_time(sim: Simulator, sim_client: SimClient) -> None:
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key)) as ws:
        await sim.wait_connections(1)
        response, frames = await asyncio.gather(
            sim_client.control("POST", "flood", {"count": 20, "rate_per_s": 200}), _read(ws, 20))
    assert response.json()["elapsed_s"] >= 19 / 200  # frame k is due at start + k / rate
    assert len(frames) == 20


async def test_flood_refuses_bad_requests(sim: Simulator, sim_client: SimClient) -> None:
    async def error(doc: dict) -> str:
        response = await sim_client.control("POST", "flood", doc)
        assert response.status_code == 400
        return str(response.json()["error"])

    assert "no user-stream connection" in await error({"count": 1})
    key = await sim_client.listen_key()
    async with websockets.connect(sim_client.stream_url(key, ["ACCOUNT_UPDATE"])) as ws:
        await sim.wait_connections(1)
        assert "no user-stream connection" in await error({"count": 1})  # filter lacks OTU
    async with websockets.connect(sim_client.stream_url(key)) as ws:
        await sim.wait_connections(1)
        assert (await error({"count": 0})).startswith("count:")
        assert (await error({"count": 1, "rate_per_s": -1})).startswith("rate_per_s:")
        assert "not listed" in await error({"count": 1, "symbols": ["NOPEUSDT"]})
        assert "api_key" in await error({"count": 1, "api_key": "nobody"})
        sim.set_faults(stream="mute")
        assert "mute" in await error({"count": 1})
        await ws.close()
