"""One user-data connection and its vocabulary, for ``stream.py`` (which runs them).

Rules of this module:
1. A ``Connection`` owns one websocket and the queue its reader fills: frames in arrival order,
   then an ``End``; the stream may add a ``Control`` (end it on purpose) or a ``Successor`` (the
   connection that replaces it on rotation), so every cause is ordered with the frames.
2. Both streams (user and market) open their sockets and judge their silence here: our pings
   every ``ping_interval_s`` with the pong due as fast, and any frame (data, ping or pong)
   proves the link alive (``StampedConnection``).
3. ``classify_stream_error`` is the one mapping of this seam's failures (websockets, sockets,
   the listen-key calls) to ``reconnect.StreamFailure`` (pure; table-tested).
4. Nothing here logs a listen key: URLs are built here and never printed; error texts are cut
   before any query string, frame excerpts mask ``"listenKey"``.
5. The user stream opens its sockets through a ``Connect`` (the seam for several accounts on
   one connection, ``shared_stream.py``); by default its own ``StampedConnection`` at
   ``user_stream_url``. A ``StreamSocket`` is what the stream may use of either.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Frame

from watchdog.binance.protocol.reconnect import StreamFailure
from watchdog.binance.protocol.session import Session
from watchdog.binance.protocol.wire import USER_EVENT_TYPES
from watchdog.errors import AuthenticationFailed, ExchangeError, ExchangeRejected

__all__ = [
    "Connect",
    "Connection",
    "Control",
    "End",
    "StampedConnection",
    "StreamSocket",
    "Successor",
    "classify_stream_error",
    "close_text",
    "describe_error",
    "frame_excerpt",
    "open_stamped",
    "user_stream_url",
]



def user_stream_url(ws_url: str, listen_key: str) -> str:
    """``{ws_url}/private/ws?listenKey=…&events=…`` (routed private URL since 2026-04-23).

    The explicit ``events=`` filter (docs/BINANCE.md §1.2) names the types the wire parses:
    without it production may deliver nothing; the algo event is spelled ALGO_UPDATE (not
    UBWA's ALGO_ORDER_UPDATE)."""
    return (f"{ws_url.rstrip('/')}/private/ws?listenKey={quote(listen_key, safe='')}"
            f"&events={'/'.join(USER_EVENT_TYPES)}")


class StampedConnection(ClientConnection):
    """A websockets connection that remembers when *any* frame last arrived (rule 2)."""

    last_frame_at: float = 0.0

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame):
            self.last_frame_at = self.loop.time()
        super().process_event(event)

    def silence_left_s(self, max_silence_s: float) -> float:
        """Seconds until ``max_silence_s`` without a frame is reached (0 or less: silent now)."""
        return self.last_frame_at + max_silence_s - self.loop.time()


async def open_stamped(url: str, *, open_timeout_s: float, ping_interval_s: float,
                       **options: Any) -> StampedConnection:
    """Connect with our pings every ``ping_interval_s`` and the pong due as fast (rule 2); the
    silence clock starts at the handshake."""
    ws = await connect(url, create_connection=StampedConnection, open_timeout=open_timeout_s,
                       ping_interval=ping_interval_s, ping_timeout=ping_interval_s,
                       close_timeout=min(1.0, ping_interval_s), **options)
    assert isinstance(ws, StampedConnection)
    ws.last_frame_at = ws.loop.time()
    return ws


class _Transport(Protocol):
    def abort(self) -> None: ...


class StreamSocket(Protocol):
    """What ``stream.py`` uses of a user-data socket (rule 5): a ``StampedConnection``, or a
    lane of a connection shared by several accounts (``shared_stream.py``)."""

    @property
    def transport(self) -> _Transport: ...
    @property
    def close_code(self) -> int | None: ...
    def __aiter__(self) -> AsyncIterator[str | bytes]: ...
    def silence_left_s(self, max_silence_s: float) -> float: ...
    async def ping(self) -> Awaitable[float]: ...
    async def close(self) -> None: ...


# rule 5: ``connect(listen_key, *, open_timeout_s=…, ping_interval_s=…)`` opens the socket of
# one connection of the user stream.
Connect = Callable[..., Awaitable[StreamSocket]]


@dataclass(frozen=True, slots=True)
class End:
    reason: str


@dataclass(frozen=True, slots=True)
class Control:
    reason: str


@dataclass(frozen=True, slots=True)
class Successor:
    conn: Connection | None
    error: str


READ_HIGH_WATER = 512  # frames read ahead of the core before the reader pauses


@dataclass(eq=False)
class Connection:
    id: int
    ws: StreamSocket
    session: Session  # its silence, rotation and end (pure: protocol/session.py)
    queue: asyncio.Queue[str | bytes | End | Control | Successor] = field(
        default_factory=asyncio.Queue)
    held: deque[End | Control | Successor] = field(default_factory=deque)
    room: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: the reader waits
    observe: Callable[[str | bytes], None] | None = None  # sees each frame as it is read

    def take(self) -> str | bytes | End | Control | Successor:
        """An item already queued; wakes the reader once the queue is half empty."""
        item = self.queue.get_nowait()
        if not self.room.is_set() and self.queue.qsize() <= READ_HIGH_WATER // 2:
            self.room.set()
        return item


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".split("?")[0]  # never the URL's query (listen key)


def close_text(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    return f"code={frame.code} reason={frame.reason!r}" if frame else "no close frame (1006)"


_LISTEN_KEY_VALUE = re.compile(r'("listenKey"\s*:\s*")[^"]*')


def frame_excerpt(message: str | bytes) -> str:
    """The start of a bad frame, with any listen key masked (HELPERS rule 4)."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return _LISTEN_KEY_VALUE.sub(r"\1***", text[:200])


def classify_stream_error(exc: BaseException) -> StreamFailure:
    """Classify a failure around the user-data connection (pure; table-tested)."""
    if isinstance(exc, AuthenticationFailed):
        # The API key refused: back off and try again. Whether that ends the daemon (exit 77
        # before it was ever ready) or degrades it (after) is the daemon's call, not the stream's.
        return StreamFailure.RETRY
    if isinstance(exc, ExchangeRejected):
        return StreamFailure.NEW_KEY      # e.g. -1125 on keepalive: the key no longer exists
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return StreamFailure.NEW_KEY if 400 <= status < 500 else StreamFailure.RETRY
    if isinstance(exc, (InvalidHandshake, ConnectionClosed, OSError, TimeoutError,
                        ExchangeError, EOFError)):
        return StreamFailure.RETRY
    return StreamFailure.FATAL
