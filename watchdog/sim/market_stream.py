"""Public market streams on the routed ``/market`` path (docs/BINANCE.md §1.2, §1.3).

- ``/market/stream?streams=s1/s2`` — stream mode: ``{"stream": name, "data": payload}``.
- ``/market/ws`` and ``/market/ws/s1/s2`` — raw mode: the payload alone.
- Both take ``{"method": "SUBSCRIBE"|"UNSUBSCRIBE"|"LIST_SUBSCRIPTIONS", "params": […], "id": …}``
  and answer ``{"result": null, "id": …}`` (Binance's stream API; errors code 2 bad request,
  3 bad JSON).

Streams served (names as Binance spells them, symbol in lower case):
``<symbol>@markPrice@1s`` (every second, divided by ``--time-scale``, and on every mark-price
change made through the control API), ``<symbol>@markPrice`` (every 3 s, likewise),
``<symbol>@aggTrade`` (for every contract-price change and every fill). Un-routed paths
(``/ws/…``, ``/stream``) keep delivering nothing: since 2026-04-23 production serves
``@markPrice``/``@aggTrade`` only on ``/market`` ("fails silently" elsewhere, docs/BINANCE.md §1.2).

Limits (docs/BINANCE.md §1.3): at most 1024 streams per connection (a SUBSCRIBE past it is refused, code 2);
more than 10 incoming messages (text, ping or pong frames) in a second closes the connection
(1008), as Binance disconnects such a client. Server pings, the pong window and the 24 h cut
are those of the user streams. Fault ``market``: ``mute`` (connected, nothing sent), ``stall``
(no frames at all, pongs included) and ``disconnect`` (one-shot: abort every market connection).
"""

from __future__ import annotations

import asyncio
import itertools
import json

from aiohttp import web
from loguru import logger

from watchdog.sim.market_hub import MarketConnection, answer_market_request, parse_stream
from watchdog.sim.venue import VENUE, Venue
from watchdog.sim.ws_shell import keepalive, receive, stop_tasks

__all__ = ["add_routes", "run_mark_ticker"]

_dumps = json.JSONEncoder(separators=(",", ":")).encode


async def _sender(conn: MarketConnection) -> None:
    while True:
        text = await conn.queue.get()
        if text is None or conn.ws.closed:
            return
        await conn.ws.send_str(text)


async def _tick(conn: MarketConnection, venue: Venue) -> None:
    """Server pings, the pong window and the 24 h cut, as on the user streams."""

    async def expire() -> None:
        await conn.ws.close(code=1001, message=b"24h")

    await keepalive(conn, venue.settings, stalled=lambda: venue.market.mode == "stall",
                    expire=expire)


async def _serve(request: web.Request, streams: list[str], *, wrap: bool) -> web.StreamResponse:
    venue = request.app[VENUE]
    hub = venue.market
    loop = asyncio.get_running_loop()
    ws = web.WebSocketResponse(autoping=False, autoclose=False)
    await ws.prepare(request)
    now = loop.time()
    # Unknown names in the URL are ignored (Binance delivers nothing for them).
    subs = frozenset(s for s in streams if parse_stream(s, venue.exchange.specs))
    conn = MarketConnection(next(hub.ids), ws, request, wrap, subs, now, now)
    await hub.add(conn)
    logger.info("sim market stream connected id={} path={} streams={}", conn.id, request.path,
                len(subs))
    tasks = [asyncio.create_task(_sender(conn), name=f"sim-market-send-{conn.id}"),
             asyncio.create_task(_tick(conn, venue), name=f"sim-market-tick-{conn.id}")]

    async def on_text(text: str) -> None:
        reply, after = answer_market_request(text, conn.subs, venue.exchange.specs)
        await hub.resubscribe(conn, after)
        conn.queue.put_nowait(_dumps(reply))

    try:
        await receive(conn, stalled=lambda: hub.mode == "stall", on_text=on_text, rate=conn.rate,
                      label="sim market stream")
    finally:
        conn.queue.put_nowait(None)
        await stop_tasks(tasks)
        await hub.remove(conn)
        logger.info("sim market stream closed id={} close_code={}", conn.id, ws.close_code)
    return ws


async def market_stream(request: web.Request) -> web.StreamResponse:
    names = [s for part in request.query.getall("streams", []) for s in part.split("/") if s]
    return await _serve(request, names, wrap=True)


async def market_ws(request: web.Request) -> web.StreamResponse:
    path = request.match_info.get("streams", "")
    return await _serve(request, [s for s in path.split("/") if s], wrap=False)


async def run_mark_ticker(venue: Venue) -> None:
    """``@markPrice@1s`` every second and ``@markPrice`` every 3 s (both time-scaled)."""
    interval = venue.settings.mark_price_interval_s_effective
    for n in itertools.count(1):
        await asyncio.sleep(interval)
        ex = venue.exchange
        venue.market.tick_marks(ex.specs, ex.mark, "markPrice@1s", venue.now_ms())
        if n % 3 == 0:
            venue.market.tick_marks(ex.specs, ex.mark, "markPrice", venue.now_ms())


def add_routes(app: web.Application) -> None:
    """Before the user-stream routes: ``/market/…`` other than these stays a silent route."""
    app.router.add_get("/market/stream", market_stream)
    app.router.add_get("/market/ws", market_ws)
    app.router.add_get("/market/ws/{streams:.*}", market_ws)
