"""The WebSocket shell the simulator's user streams and market streams share.

One mechanism for both: the set of live connections (with a condition tests wait on), the
server's pings, pong window and 24 h cut, the request-frame prelude of Binance's stream API
(errors code 2 bad request, 3 bad JSON; ``LIST_SUBSCRIPTIONS``), and the receive loop.
What differs (what a frame subscribes to, how events are delivered, which fault stalls the
connection) stays in ``stream.py``/``hub.py`` and ``market_stream.py``/``market_hub.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from aiohttp import WSMsgType, web
from loguru import logger

from watchdog.sim.settings import SimSettings

__all__ = ["MAX_INCOMING_PER_S", "ConnectionSet", "IncomingRate", "Request", "WsConnection",
           "keepalive", "read_request", "receive", "stop_tasks"]

MAX_INCOMING_PER_S = 10     # "a limit of 10 incoming messages per second" (docs/BINANCE.md §1.3)

Reply = dict[str, object]


class WsConnection(Protocol):
    """What the shared shell reads of a connection (``Connection``, ``MarketConnection``)."""

    id: int
    ws: web.WebSocketResponse
    request: web.Request
    opened_at: float
    last_pong_at: float


C = TypeVar("C", bound=WsConnection)


class ConnectionSet(Generic[C]):
    """The open connections; every change wakes whoever waits on a condition over them."""

    def __init__(self) -> None:
        self.connections: set[C] = set()
        self._changed = asyncio.Condition()

    async def _change(self, change: Callable[[], object]) -> None:
        async with self._changed:
            change()
            self._changed.notify_all()

    async def _wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Until ``predicate()`` holds after some change; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(predicate)

    async def add(self, conn: C) -> None:
        await self._change(lambda: self.connections.add(conn))

    async def remove(self, conn: C) -> None:
        await self._change(lambda: self.connections.discard(conn))

    def drop_all(self) -> int:
        """Fault ``disconnect``: abort every TCP connection (the client sees 1006)."""
        count = 0
        for conn in list(self.connections):
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
                count += 1
        return count


@dataclass(frozen=True, slots=True)
class Request:
    """A well-formed SUBSCRIBE or UNSUBSCRIBE frame."""

    id: object
    method: str
    params: list[str]


def read_request(text: str, subs: Iterable[str]) -> Request | Reply:
    """A SUBSCRIBE/UNSUBSCRIBE request, or the reply that already answers the frame (PURE):
    bad JSON (code 3), anything but a request (code 2), or ``LIST_SUBSCRIPTIONS``."""
    try:
        request = json.loads(text)
    except ValueError as exc:
        return {"error": {"code": 3, "msg": f"Invalid JSON: {exc}"}, "id": None}
    if not isinstance(request, dict):
        return {"error": {"code": 2, "msg": "Invalid request: expected a JSON object"}, "id": None}
    request_id, method, params = request.get("id"), request.get("method"), request.get("params", [])
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": sorted(subs), "id": request_id}
    if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list) or not all(
            isinstance(p, str) for p in params):
        return {"error": {"code": 2, "msg": f"Invalid request: method {method!r} with params {params!r}"},
                "id": request_id}
    return Request(request_id, method, params)


@dataclass(slots=True)
class IncomingRate:
    """Incoming frames in the last second (PURE: times are arguments)."""

    limit: int = MAX_INCOMING_PER_S
    times: deque[float] = field(default_factory=deque)

    def admit(self, now_s: float) -> bool:
        """Count one frame at ``now_s``; False once more than ``limit`` arrived within 1 s."""
        self.times.append(now_s)
        while self.times and self.times[0] <= now_s - 1.0:
            self.times.popleft()
        return len(self.times) <= self.limit


async def keepalive(conn: WsConnection, settings: SimSettings, *, stalled: Callable[[], bool],
                    expire: Callable[[], Awaitable[None]]) -> None:
    """Server pings, the pong deadline (1008), and the 24 h cut (``expire``), on the configured
    time scale; a stalled connection gets no pings and is not cut for missing pongs."""
    loop = asyncio.get_running_loop()
    deadline = conn.opened_at + settings.max_connection_age_s
    while not conn.ws.closed:
        await asyncio.sleep(max(0.0, min(settings.effective_ping_interval_s, deadline - loop.time())))
        now = loop.time()
        if now >= deadline:
            # "A single connection is only valid for 24 hours" (docs/BINANCE.md §1.3).
            await expire()
            return
        if stalled():
            continue
        if now - conn.last_pong_at > settings.effective_pong_timeout_s:
            await conn.ws.close(code=1008, message=b"pong timeout")
            return
        await conn.ws.ping()


async def receive(conn: WsConnection, *, stalled: Callable[[], bool],
                  on_text: Callable[[str], Awaitable[None]], rate: IncomingRate | None = None,
                  label: str = "sim stream") -> None:
    """The receive loop until the client closes: pongs answered, pongs noted, text frames to
    ``on_text``; a stalled connection answers nothing. With ``rate``, more incoming frames
    (text, ping, pong) than its limit in a second close the connection (1008)."""
    ws = conn.ws
    loop = asyncio.get_running_loop()
    async for msg in ws:
        is_stalled = stalled()
        if rate is not None and msg.type in (WSMsgType.PING, WSMsgType.PONG, WSMsgType.TEXT) and (
                not rate.admit(loop.time())):
            logger.warning("{} id={} closed: more than {} incoming messages in a second", label,
                           conn.id, rate.limit)
            await ws.close(code=1008, message=b"too many requests")
            break
        if msg.type == WSMsgType.PING and not is_stalled:
            await ws.pong(msg.data)
        elif msg.type == WSMsgType.PONG:
            conn.last_pong_at = loop.time()
        elif msg.type == WSMsgType.TEXT and not is_stalled:
            await on_text(msg.data)
        elif msg.type == WSMsgType.CLOSE:
            if not is_stalled:
                await ws.close()
            break


async def stop_tasks(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel a connection's helper tasks and wait until they are gone."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except ConnectionError as exc:
            # A send that met the closing socket (a disconnect fault mid-send): the connection
            # is over anyway; raising here kept it listed as open (connection counts wrong).
            logger.debug("sim connection task ended by the closed socket: {!r}", exc)
