"""Live user-stream connections and event delivery, with the stream faults applied.

Delivery rules: an event goes to every connection subscribed to the account's *current* listen
key (``listenKeyExpired`` only to the expired key's connections) whose ``events=`` filter
names its type (no filter: everything, unless ``require_events_filter``). Fault ``mute`` and
``stall`` drop events (counted), ``mute_new`` drops them for connections opened after it was
set, ``drop_events`` drops listed types, ``delay_events_ms`` holds each event back while
keeping order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from watchdog.sim.exchange import Outgoing
from watchdog.sim.faults import Faults
from watchdog.sim.ws_shell import ConnectionSet

__all__ = ["CLOSE", "Connection", "StreamHub"]

CLOSE = "\x00close"  # queue sentinel: close the connection (payload: close code)


@dataclass(eq=False)
class Connection:
    """One accepted WebSocket: its subscriptions (listen key → event filter or None)."""

    id: int
    ws: web.WebSocketResponse
    request: web.Request
    path: str
    subscriptions: dict[str, frozenset[str] | None]
    wrap: bool  # stream mode (/private/stream): {"stream": key, "data": event}
    opened_at: float
    last_pong_at: float
    queue: asyncio.Queue[tuple[float, str, str]] = field(default_factory=asyncio.Queue)
    held: tuple[float, str, str] | None = None  # fault reorder_events: waits for its successor


class StreamHub(ConnectionSet[Connection]):
    """Who is connected, what they asked for, and what was sent or dropped (per event type)."""

    def __init__(self, *, require_events_filter: bool) -> None:
        super().__init__()
        self.require_events_filter = require_events_filter
        self.sent: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self.last_id = 0
        self.mute_new_after: int | None = None  # fault mute_new: ids above this are muted
        self.faults = Faults()

    def next_id(self) -> int:
        self.last_id = next(self._ids)
        return self.last_id

    def muted(self, conn: Connection) -> bool:
        """Faults ``mute``/``stall``, or ``mute_new`` for a connection opened after it was set."""
        if self.faults.stream in ("mute", "stall"):
            return True
        return (self.faults.stream == "mute_new" and self.mute_new_after is not None
                and conn.id > self.mute_new_after)

    async def resubscribe(self, conn: Connection, subscriptions: dict[str, frozenset[str] | None]) -> None:
        """A SUBSCRIBE/UNSUBSCRIBE changed what ``conn`` receives (wakes ``wait_connections``)."""
        if subscriptions == conn.subscriptions:
            return
        await self._change(lambda: setattr(conn, "subscriptions", subscriptions))

    async def wait_connections(self, n: int, timeout_s: float = 10.0) -> None:
        """Wait until exactly ``n`` private connections are open; TimeoutError after ``timeout_s``."""
        await self._wait_for(lambda: self.count_private() == n, timeout_s)

    def count_private(self) -> int:
        return sum(1 for c in self.connections if c.subscriptions)

    def dispatch(self, item: Outgoing, current_key: str | None, now: float) -> None:
        target = item.listen_key or current_key
        if target is None:
            return
        event_type = str(item.event.get("e"))
        for conn in list(self.connections):
            if target not in conn.subscriptions:
                continue
            wanted = conn.subscriptions[target]
            if wanted is None and self.require_events_filter:
                continue
            if wanted is not None and event_type not in wanted:
                continue
            if self.muted(conn) or event_type in self.faults.drop_events:
                self.dropped[event_type] += 1
                continue
            payload = {"stream": target, "data": item.event} if conn.wrap else item.event
            due = now + self.faults.delay_events_ms / 1000
            item_out = (due, event_type, json.dumps(payload, separators=(",", ":")))
            if self.faults.reorder_events:
                if conn.held is None:
                    conn.held = item_out
                    continue
                conn.queue.put_nowait(item_out)
                item_out, conn.held = conn.held, None
            conn.queue.put_nowait(item_out)

    async def send_loop(self, conn: Connection) -> None:
        """Per-connection sender: keeps order, honours each event's due time."""
        loop = asyncio.get_running_loop()
        while True:
            due, event_type, text = await conn.queue.get()
            if event_type == CLOSE:
                await conn.ws.close(code=int(text or 1000))
                return
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if conn.ws.closed:
                return
            if self.muted(conn):  # held back by a delay, then muted
                self.dropped[event_type] += 1
                continue
            await conn.ws.send_str(text)
            self.sent[event_type] += 1

    def release_held(self) -> None:
        """The reorder fault ended: an event still waiting for a partner goes out now."""
        for conn in self.connections:
            if conn.held is not None:
                conn.queue.put_nowait(conn.held)
                conn.held = None

    def close_key(self, listen_key: str) -> None:
        """DELETE listenKey "will close the stream": a normal close after queued events."""
        for conn in list(self.connections):
            if listen_key in conn.subscriptions:
                conn.queue.put_nowait((0.0, CLOSE, "1000"))

    def counts(self) -> dict[str, object]:
        return {"sent": dict(self.sent), "dropped": dict(self.dropped),
                "sent_total": sum(self.sent.values()), "dropped_total": sum(self.dropped.values())}
