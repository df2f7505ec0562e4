"""One account's lane of a user-data connection shared by several accounts, and that connection
(for ``shared_stream.py``, which gathers, opens and reads them; its module rules apply).

A ``Lane`` is what an account's ``UserDataStream`` reads instead of a socket of its own
(``connection.StreamSocket``): its frames in order, then how the connection ended; ``close`` or
``transport.abort()`` only takes this account off the connection (the last one closes it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.frames import Close, CloseCode

from watchdog.binance.connection import READ_HIGH_WATER, StampedConnection

__all__ = ["Lane", "SharedConnection"]

_LEFT = Close(CloseCode.NORMAL_CLOSURE, "left the shared connection")


class _Transport:
    """``lane.transport.abort()``, as on a websocket."""

    def __init__(self, lane: Lane) -> None:
        self._lane = lane

    def abort(self) -> None:
        self._lane.leave()


class Lane:
    """One account's share of a shared connection (``connection.StreamSocket``)."""

    def __init__(self, shared: SharedConnection, account: str, key: str) -> None:
        self._shared = shared
        self.account = account
        self.key = key
        self._queue: asyncio.Queue[str | bytes | ConnectionClosed | None] = asyncio.Queue()
        self._room = asyncio.Event()
        self._room.set()
        self.left = False
        self.transport = _Transport(self)

    # -- as a socket, for stream.py
    def __aiter__(self) -> Lane:
        return self

    async def __anext__(self) -> str | bytes:
        item = await self._queue.get()
        if self._queue.qsize() <= READ_HIGH_WATER // 2:
            self._room.set()
        if isinstance(item, ConnectionClosed):
            raise item
        if item is None:
            raise StopAsyncIteration
        return item

    @property
    def close_code(self) -> int | None:
        if self.left:
            return int(CloseCode.NORMAL_CLOSURE)
        return self._shared.ws.close_code

    def silence_left_s(self, max_silence_s: float) -> float:
        return self._shared.ws.silence_left_s(max_silence_s)

    async def ping(self) -> Awaitable[float]:
        return await self._shared.ws.ping()

    async def close(self) -> None:
        self.leave()

    # -- fed by the connection
    def leave(self) -> None:
        """Rule 4: this account no longer reads the connection; the last lane closes it."""
        if self.left:
            return
        self.left = True
        self._room.set()
        self._queue.put_nowait(ConnectionClosedOK(None, _LEFT))
        self._shared.leave(self)

    def push(self, frame: str | bytes) -> None:
        if self.left:
            return
        self._queue.put_nowait(frame)
        if self._queue.qsize() >= READ_HIGH_WATER:
            self._room.clear()

    def end(self, exc: ConnectionClosed | None) -> None:
        """Rule 3: the connection ended; the lane's reader sees it after the frames queued."""
        if not self.left:
            self._queue.put_nowait(exc)
            self._room.set()

    async def wait_room(self) -> None:
        await self._room.wait()


@dataclass(eq=False)
class SharedConnection:
    """One connection and the lanes on it."""

    id: int
    ws: StampedConnection
    wrapped: bool
    keys: frozenset[str]  # every key in its URL
    lanes: dict[str, list[Lane]] = field(default_factory=dict)  # by listen key, lanes reading
    accounts: set[str] = field(default_factory=set)
    on_empty: Callable[[SharedConnection], None] | None = None

    def every_lane(self) -> list[Lane]:
        return [lane for lanes in self.lanes.values() for lane in lanes]

    def leave(self, lane: Lane) -> None:
        mine = self.lanes.get(lane.key, [])
        if lane in mine:
            mine.remove(lane)
            if not mine:
                del self.lanes[lane.key]
        self.accounts = {lane.account for lanes in self.lanes.values() for lane in lanes}
        if not self.lanes and self.on_empty is not None:
            self.on_empty(self)
