"""User-data WebSocket routes.

- ``/private/ws?listenKey=K&events=E1/E2`` — ws mode, raw event frames (Binance since
  2026-04-23, docs/BINANCE.md §1.2). An unknown or expired key refuses the handshake with HTTP
  400 ``{"code": -1125}``.
- ``/private/stream?listenKey=K1&events=…&listenKey=K2&events=…`` — stream mode, frames
  wrapped as ``{"stream": K, "data": event}``.
- ``/private/stream`` without a key, then ``{"method": "SUBSCRIBE", "params": [K], "id": …}``
  — the subscribe form the official Python SDK uses; answered ``{"result": null, "id": …}``
  (UNSUBSCRIBE and LIST_SUBSCRIPTIONS too), frames wrapped as in stream mode.
- ``/ws/{anything}``, ``/stream?streams=…``, ``/public/…`` and other ``/market/…`` paths —
  connect, answer pings and SUBSCRIBE requests, deliver nothing: the legacy paths (production
  since 2026-04-23: un-routed connections "fail silently") and the public route, whose data this
  simulator does not produce (the official SDK opens all three routes). ``/market/stream`` and
  ``/market/ws`` serve mark price and aggTrade (``market_stream.py``).
- ``/private/ws/<key>`` (path form, UNCONFIRMED in production) is not served: 404.

The server pings every ``ping_interval_s`` and closes (1008) a connection whose pongs stop for
``pong_timeout_s``; every connection is closed (1001) at the time-scaled 24 h mark. Fault
``stall`` stops all outgoing frames, pongs and close replies included.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiohttp import web
from loguru import logger

from watchdog.sim import rejections as rj
from watchdog.sim.control import mask
from watchdog.sim.hub import CLOSE, Connection
from watchdog.sim.venue import VENUE, Venue
from watchdog.sim.ws_shell import keepalive, read_request, receive, stop_tasks

__all__ = ["add_routes"]

Subscriptions = dict[str, frozenset[str] | None]


def _subscriptions(request: web.Request, venue: Venue, *, may_be_empty: bool) -> Subscriptions:
    """``listenKey``/``events`` pairs in query order; every key must be live (-1125)."""
    subs: Subscriptions = {}
    key: str | None = None
    for name, value in request.query.items():
        if name == "listenKey":
            if venue.exchange.account_for_listen_key(value) is None:
                raise rj.invalid_listen_key()
            key = value
            subs[key] = None
        elif name == "events" and key is not None:
            subs[key] = frozenset(e for e in value.split("/") if e)
    if not subs and not may_be_empty:
        raise rj.mandatory_param("listenKey")
    return subs


def answer_request(text: str, subs: Subscriptions, *, routed: bool,
                   is_live: Callable[[str], bool]) -> tuple[dict[str, object], Subscriptions]:
    """The reply to a client's request frame and the connection's subscriptions after it (PURE).

    On a routed private connection the stream names of SUBSCRIBE/UNSUBSCRIBE are listen keys
    (an unknown or expired one is refused, -1125, like the handshake); elsewhere they are
    accepted and deliver nothing. Error codes as Binance's stream API: 2 invalid request, 3
    invalid JSON.
    """
    request = read_request(text, subs)
    if isinstance(request, dict):
        return request, subs
    request_id, method, params = request.id, request.method, request.params
    if not routed:
        return {"result": None, "id": request_id}, subs
    after = dict(subs)
    for key in params:
        if method == "UNSUBSCRIBE":
            after.pop(key, None)
        elif not is_live(key):
            refusal = rj.invalid_listen_key()
            return {"error": {"code": refusal.code, "msg": refusal.msg}, "id": request_id}, subs
        else:
            after.setdefault(key, None)
    return {"result": None, "id": request_id}, after


async def _serve(request: web.Request, subs: Subscriptions, *, wrap: bool,
                 routed: bool) -> web.StreamResponse:
    venue = request.app[VENUE]
    hub = venue.hub
    loop = asyncio.get_running_loop()
    ws = web.WebSocketResponse(autoping=False, autoclose=False)
    await ws.prepare(request)
    now = loop.time()
    conn = Connection(hub.next_id(), ws, request, request.path, subs, wrap, now, now)
    await hub.add(conn)
    logger.info("sim stream connected id={} path={} keys={} events={}", conn.id, conn.path,
                [mask(k) for k in subs], [None if e is None else sorted(e) for e in subs.values()])
    tasks = [asyncio.create_task(hub.send_loop(conn), name=f"sim-send-{conn.id}"),
             asyncio.create_task(_tick(conn, venue), name=f"sim-tick-{conn.id}")]

    async def on_text(text: str) -> None:
        reply, after = answer_request(
            text, conn.subscriptions, routed=routed,
            is_live=lambda key: venue.exchange.account_for_listen_key(key) is not None)
        await hub.resubscribe(conn, after)
        await ws.send_str(json.dumps(reply, separators=(",", ":")))

    try:
        await receive(conn, stalled=lambda: hub.faults.stream == "stall", on_text=on_text)
    finally:
        await stop_tasks(tasks)
        await hub.remove(conn)
        logger.info("sim stream closed id={} close_code={}", conn.id, ws.close_code)
    return ws


async def _tick(conn: Connection, venue: Venue) -> None:
    """Server pings, the pong deadline, and the 24 h cut (on the configured time scale)."""

    async def expire() -> None:
        conn.queue.put_nowait((0.0, CLOSE, "1001"))  # a normal close after queued events

    await keepalive(conn, venue.settings, stalled=lambda: venue.hub.faults.stream == "stall",
                    expire=expire)


async def _private(request: web.Request, *, wrap: bool) -> web.StreamResponse:
    venue = request.app[VENUE]
    try:
        injected = venue.take_handshake_error()
        if injected is not None:
            raise rj.server_error(*injected)
        subs = _subscriptions(request, venue, may_be_empty=wrap)
    except rj.Rejection as exc:
        return web.json_response(exc.body(), status=exc.status, headers=exc.headers)
    if not wrap:  # ws mode carries one listen key
        subs = dict(list(subs.items())[:1])
    return await _serve(request, subs, wrap=wrap, routed=True)


async def private_ws(request: web.Request) -> web.StreamResponse:
    return await _private(request, wrap=False)


async def private_stream(request: web.Request) -> web.StreamResponse:
    return await _private(request, wrap=True)


async def legacy_ws(request: web.Request) -> web.StreamResponse:
    """Connects and delivers nothing: un-routed connections only get /public data."""
    return await _serve(request, {}, wrap=False, routed=False)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/private/ws", private_ws)
    app.router.add_get("/private/stream", private_stream)
    app.router.add_get("/ws/{path:.*}", legacy_ws)
    app.router.add_get("/stream", legacy_ws)
    app.router.add_get("/public/{path:.*}", legacy_ws)
    app.router.add_get("/market/{path:.*}", legacy_ws)
