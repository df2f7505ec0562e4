"""User-data WebSocket routes.

- ``/private/ws?listenKey=K&events=E1/E2`` — ws mode, raw event frames (Binance since
  2026-04-23, BINANCE-API.md §1.3). An unknown or expired key refuses the handshake with HTTP
  400 ``{"code": -1125}``.
- ``/private/stream?listenKey=K1&events=…&listenKey=K2&events=…`` — stream mode, frames
  wrapped as ``{"stream": K, "data": event}``.
- ``/ws/{anything}`` — the legacy path: connects, answers pings, delivers nothing (production
  behaviour since 2026-04-23: "fails silently").

The server pings every ``ping_interval_s`` and closes a connection whose pongs stop for
``pong_timeout_s``; every connection is cut at the (time-scaled) 24 h mark. Fault ``stall``
stops all outgoing frames, pongs and close replies included.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from watchdog.sim import rejections as rj
from watchdog.sim.hub import Connection

__all__ = ["add_routes"]


def _subscriptions(request: web.Request, venue: object) -> dict[str, frozenset[str] | None]:
    from watchdog.sim.server import VENUE

    v = request.app[VENUE]
    subs: dict[str, frozenset[str] | None] = {}
    key: str | None = None
    for name, value in request.query.items():
        if name == "listenKey":
            if v.exchange.account_for_listen_key(value) is None:
                raise rj.invalid_listen_key()
            key = value
            subs[key] = None
        elif name == "events" and key is not None:
            subs[key] = frozenset(e for e in value.split("/") if e)
    if not subs:
        raise rj.mandatory_param("listenKey")
    return subs


async def _serve(request: web.Request, subs: dict[str, frozenset[str] | None], *, wrap: bool) -> web.StreamResponse:
    from watchdog.sim.server import VENUE

    venue = request.app[VENUE]
    hub = venue.hub
    settings = venue.settings
    loop = asyncio.get_running_loop()
    ws = web.WebSocketResponse(autoping=False, autoclose=False)
    await ws.prepare(request)
    now = loop.time()
    conn = Connection(hub.next_id(), ws, request, request.path, subs, wrap, now, now)
    await hub.add(conn)
    sender = asyncio.create_task(hub.send_loop(conn), name=f"sim-send-{conn.id}")
    ticker = asyncio.create_task(_tick(conn, venue), name=f"sim-tick-{conn.id}")
    try:
        async for msg in ws:
            stalled = hub.faults.stream == "stall"
            if msg.type == WSMsgType.PING and not stalled:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                conn.last_pong_at = loop.time()
            elif msg.type == WSMsgType.CLOSE:
                if not stalled:
                    await ws.close()
                break
    finally:
        for task in (sender, ticker):
            task.cancel()
        for task in (sender, ticker):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hub.remove(conn)
    del settings
    return ws


async def _tick(conn: Connection, venue: object) -> None:
    """Server pings, pong deadline, and the 24 h cut (all on the configured time scale)."""
    from watchdog.sim.venue import Venue

    assert isinstance(venue, Venue)
    settings = venue.settings
    loop = asyncio.get_running_loop()
    interval = settings.effective_ping_interval_s
    deadline = conn.opened_at + settings.max_connection_age_s
    while not conn.ws.closed:
        await asyncio.sleep(max(0.0, min(interval, deadline - loop.time())))
        now = loop.time()
        if now >= deadline:
            # "A single connection is only valid for 24 hours" (§1.4).
            conn.queue.put_nowait((0.0, "\x00close", "1001"))
            return
        if venue.hub.faults.stream == "stall":
            continue
        if now - conn.last_pong_at > settings.effective_pong_timeout_s:
            await conn.ws.close(code=1008, message=b"pong timeout")
            return
        await conn.ws.ping()


async def private_ws(request: web.Request) -> web.StreamResponse:
    try:
        subs = _subscriptions(request, None)
    except rj.Rejection as exc:
        return web.json_response(exc.body(), status=exc.status)
    return await _serve(request, dict(list(subs.items())[:1]), wrap=False)


async def private_stream(request: web.Request) -> web.StreamResponse:
    try:
        subs = _subscriptions(request, None)
    except rj.Rejection as exc:
        return web.json_response(exc.body(), status=exc.status)
    return await _serve(request, subs, wrap=True)


async def legacy_ws(request: web.Request) -> web.StreamResponse:
    """Connects and delivers nothing: un-routed connections only get /public data."""
    return await _serve(request, {}, wrap=False)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/private/ws", private_ws)
    app.router.add_get("/private/stream", private_stream)
    app.router.add_get("/ws/{path:.*}", legacy_ws)
