"""One user-data connection for several accounts of this process (issue 14 item 2).

Each account keeps its whole stream (``stream.py``: listen key and keepalive, resync after a
connect, rotation with probation, silence, blind reconnects, duplicates): what it opens is not a
socket but a *lane*, its share of a connection that carries the listen keys of several accounts
(``protocol/multiplex.py``: URL, cap, attribution, gathering). A lane looks like the socket the
stream would have opened (``connection.StreamSocket``; the lane itself: ``shared_lane.py``), so
one code path serves both.

Rules of this module:
1. Accounts that open a stream at about the same time (start, reconnect after a loss, rotation)
   are gathered onto one connection, at most ``KEYS_PER_CONNECTION`` keys each (multiplex rule
   4). A connection with one key is exactly the one-account connection.
2. Each account gets exactly its own frames, unwrapped: what its stream would have read from a
   connection of its own. A frame that cannot be attributed goes to every lane (the streams
   report it malformed and their cores ask REST); a frame for a key whose account left the
   connection is dropped and counted (``unclaimed``): that account has a connection of its own.
3. Liveness is the connection's: any frame proves it alive for every lane, our pings go on the
   connection. When it ends (closed, dropped, silent), every lane ends with it: a gap for every
   account on it, each of which resyncs as after any loss.
4. One account leaving (its listen key expired, a keepalive refused, its stream found blind,
   a rotation) ends its lane only: the connection keeps serving the others, and the account
   reconnects on a connection of its own at once (no one else is gathering: it does not wait).
   Nobody else loses a frame for one account's key. The connection ends when its last lane does.
   It rejoins the others at their next rotation: a gather for a rotation invites every account
   on a connection carrying fewer than half the cap to rotate now (make-before-break, no gap),
   so one account's trouble (or a rotation that straggled into two gathers) costs an extra
   connection for at most the time to the next rotation (``rotate_after_s``).
5. A handshake refused with a 4xx (one of its keys no longer valid: -1125) fails every joiner
   of that gather; each then retries with a fresh key on a connection of its own, so one bad
   key cannot keep the others off the stream.
6. A lane's reader is paced by the connection: when one account's queue is full, the
   connection stops reading (TCP holds the burst) until that account's stream takes frames.
7. Listen keys are never logged (connection.py rule 4): lanes and connections are named by
   account and id.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
)

from watchdog.binance.connection import (
    READ_HIGH_WATER,
    StampedConnection,
    close_text,
    describe_error,
    open_stamped,
)
from watchdog.binance.protocol.multiplex import (
    KEYS_PER_CONNECTION,
    Gather,
    attribute,
    gather_open_in_s,
    shared_stream_url,
    unwrap,
)
from watchdog.binance.shared_lane import Lane, SharedConnection
from watchdog.cancel import raise_if_cancelling
from watchdog.clock import Clock

__all__ = ["SharedStats", "SharedUserStreams"]

_loads: Callable[[str | bytes], Any] = json.loads
_dumps: Callable[[Any], str] = lambda obj: json.dumps(obj, separators=(",", ":"))  # noqa: E731
try:
    import orjson

    _loads = orjson.loads

    def _dumps(obj: Any) -> str:
        return orjson.dumps(obj).decode()
except ImportError:  # pragma: no cover - optional
    pass

@dataclass
class SharedStats:
    """Counters for status and tests (never reset)."""

    opened: int = 0          # connections opened
    open: int = 0            # connections open now
    refused: int = 0         # handshakes refused (4xx) with several keys (rule 5)
    unattributed: int = 0    # frames handed to every lane (rule 2)
    unclaimed: int = 0       # frames for a key nobody on the connection listens to any more
    most_keys: int = 0       # the largest number of keys one connection carried
    opened_alone: int = 0    # connections opened for one account while several share this


@dataclass(eq=False)
class _Gathering:
    gather: Gather
    joiners: list[tuple[str, str, asyncio.Future[Lane]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    options: dict[str, float] = field(default_factory=dict)


class SharedUserStreams:
    """The user-data connections of one process for one ``ws_url`` (module rules).

    ``connector(account)`` is what an account's ``UserDataStream`` opens its connections with;
    ``run()`` is a task of the process's TaskGroup and owns the connections' readers.
    """

    def __init__(self, ws_url: str, clock: Clock, *,
                 keys_per_connection: int = KEYS_PER_CONNECTION) -> None:
        self._ws_url = ws_url
        self._clock = clock
        self._cap = keys_per_connection
        self._accounts: set[str] = set()
        self._connections: set[SharedConnection] = set()
        self._gathering: _Gathering | None = None
        self._alone: set[str] = set()  # rule 5: their next connection is their own
        self._invites: dict[str, Callable[[str], None]] = {}  # rule 4: rotate now, please
        self._ids = itertools.count(1)
        self._tg: asyncio.TaskGroup | None = None
        self._running = asyncio.Event()
        self.stats = SharedStats()

    def connector(self, account: str) -> Callable[..., Any]:
        """What ``UserDataStream(connect=…)`` opens ``account``'s connections with."""
        self._accounts.add(account)

        async def connect(key: str, *, open_timeout_s: float, ping_interval_s: float) -> Lane:
            return await self.open_lane(account, key, open_timeout_s=open_timeout_s,
                                        ping_interval_s=ping_interval_s)

        return connect

    def bind(self, account: str, rotate: Callable[[str], None]) -> None:
        """How to ask ``account``'s stream to rotate now (``UserDataStream.request_rotation``)."""
        self._invites[account] = rotate

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._connections)

    async def run(self) -> None:
        """Own the connections' readers and gathers until cancelled (then abort them all)."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._running.set()
                await asyncio.Event().wait()
        finally:
            self._running.clear()
            self._tg = None
            for conn in list(self._connections):
                conn.ws.transport.abort()

    # ------------------------------------------------------------------ gathering (rule 1)

    def _settled(self) -> set[str]:
        return {a for c in self._connections for a in c.accounts}

    async def open_lane(self, account: str, key: str, *, open_timeout_s: float,
                        ping_interval_s: float) -> Lane:
        """A lane for ``account``'s ``key`` on the next connection gathered (rule 1)."""
        if not self._running.is_set():  # run() starts with the other tasks: give it a moment
            try:
                async with asyncio.timeout(open_timeout_s):
                    await self._running.wait()
            except TimeoutError as exc:
                raise_if_cancelling(exc)
                raise RuntimeError("the shared user-data connections are not running (a "
                                   "wiring error: Shared.tasks() must run with the pipelines)"
                                   ) from exc
        now = self._clock.monotonic()
        future: asyncio.Future[Lane] = asyncio.get_running_loop().create_future()
        options = {"open_timeout_s": open_timeout_s, "ping_interval_s": ping_interval_s}
        if account in self._alone:  # rule 5: on its own this time, full at once
            self._alone.discard(account)
            alone = self._start(_Gathering(Gather(now, now, joined=self._cap), options=options))
            alone.joiners.append((account, key, future))
            return await future
        gathering = self._gathering
        urgent = account not in self._settled()
        if gathering is None:
            gathering = self._gathering = self._start(_Gathering(Gather(now, now),
                                                                 options=options))
            if not urgent:
                self._invite(account)
        gathering.gather.join(now, urgent=urgent)
        gathering.joiners.append((account, key, future))
        if gathering.gather.joined >= self._cap:
            self._gathering = None  # full: the next joiner starts another
        gathering.changed.set()
        return await future

    def _invite(self, rotating: str) -> None:
        """Rule 4: a rotation gathers; accounts on sparse connections rotate into it now."""
        for conn in list(self._connections):
            if len(conn.accounts) * 2 >= self._cap:
                continue
            for account in sorted(conn.accounts - {rotating}):
                invite = self._invites.get(account)
                if invite is not None:
                    logger.info("shared user stream: account {} on connection id={} ({} "
                                "account(s)) invited to rotate onto the next one", account,
                                conn.id, len(conn.accounts))
                    invite("joining a shared connection")

    def _start(self, gathering: _Gathering) -> _Gathering:
        assert self._tg is not None, "SharedUserStreams.run() is not running"
        self._tg.create_task(self._open_when_gathered(gathering), name="user-stream-gather")
        return gathering

    def _missing(self, gathering: _Gathering) -> int:
        joined = {account for account, _, _ in gathering.joiners}
        return len(self._accounts - self._settled() - joined)

    async def _open_when_gathered(self, gathering: _Gathering) -> None:
        while True:
            wait_s = gather_open_in_s(gathering.gather, self._clock.monotonic(),
                                      missing=self._missing(gathering), cap=self._cap)
            if wait_s <= 0:
                break
            gathering.changed.clear()
            try:
                async with asyncio.timeout(wait_s):
                    await gathering.changed.wait()
            except TimeoutError as exc:
                raise_if_cancelling(exc)  # our own deadline: decide again
        if self._gathering is gathering:
            self._gathering = None
        joiners = [(a, k, f) for a, k, f in gathering.joiners if not f.done()]  # cancelled
        if not joiners:
            return
        keys = [key for _, key, _ in joiners]
        try:
            ws = await open_stamped(shared_stream_url(self._ws_url, keys),
                                    open_timeout_s=gathering.options["open_timeout_s"],
                                    ping_interval_s=gathering.options["ping_interval_s"],
                                    max_queue=READ_HIGH_WATER)
        except BaseException as exc:
            if not isinstance(exc, (InvalidHandshake, OSError, TimeoutError)):
                for _, _, future in joiners:  # not a connect failure: ours, raised below
                    if not future.done():
                        future.set_exception(RuntimeError(f"shared user stream: {exc!r}"))
                raise
            if len(set(keys)) > 1 and isinstance(exc, InvalidStatus) and \
                    400 <= exc.response.status_code < 500:
                self.stats.refused += 1
                self._alone.update(account for account, _, _ in joiners)
                logger.warning("shared user stream refused ({}) for accounts {}: each retries "
                               "on a connection of its own", describe_error(exc),
                               ",".join(sorted({a for a, _, _ in joiners})))
            for _, _, future in joiners:
                if not future.done():
                    future.set_exception(exc)
            return
        self._serve(ws, joiners)

    def _serve(self, ws: StampedConnection,
               joiners: list[tuple[str, str, asyncio.Future[Lane]]]) -> None:
        keys = {key for _, key, _ in joiners}
        conn = SharedConnection(next(self._ids), ws, wrapped=len(keys) > 1, keys=frozenset(keys),
                       on_empty=self._empty)
        for account, key, future in joiners:
            lane = Lane(conn, account, key)
            conn.lanes.setdefault(key, []).append(lane)
            conn.accounts.add(account)
            if not future.done():
                future.set_result(lane)
            else:  # its stream stopped waiting: it never reads this lane
                lane.leave()
        if not conn.lanes:
            return
        self._connections.add(conn)
        self.stats.opened += 1
        self.stats.open = len(self._connections)
        self.stats.most_keys = max(self.stats.most_keys, len(keys))
        if len(keys) == 1 and len(self._accounts) > 1:
            self.stats.opened_alone += 1
        logger.info("shared user stream connected id={} accounts={} keys={}", conn.id,
                    ",".join(sorted(conn.accounts)), len(keys))
        assert self._tg is not None
        self._tg.create_task(self._read(conn), name=f"user-stream-shared-{conn.id}")

    def _empty(self, conn: SharedConnection) -> None:
        """Rule 4: the last lane left: close the connection (its reader then ends)."""
        if conn in self._connections:
            self._connections.discard(conn)
            self.stats.open = len(self._connections)
            conn.ws.transport.abort()  # nobody reads it: no closing handshake to wait for
            logger.info("shared user stream id={} closed: no account left on it", conn.id)

    # ------------------------------------------------------------------ reading (rules 2, 3, 6)

    async def _read(self, conn: SharedConnection) -> None:
        ended: ConnectionClosed | None = None
        try:
            async for message in conn.ws:
                self._dispatch(conn, message)
                await self._paced(conn)
        except ConnectionClosed as exc:
            ended = exc
        finally:
            self._connections.discard(conn)
            self.stats.open = len(self._connections)
            lanes = conn.every_lane()
            logger.info("shared user stream id={} ended ({}): a gap for accounts {}", conn.id,
                        "closed normally" if ended is None else close_text(ended),
                        ",".join(sorted({lane.account for lane in lanes})) or "none")
            for lane in lanes:
                lane.end(ended)

    def _dispatch(self, conn: SharedConnection, message: str | bytes) -> None:
        """Rule 2: each frame to the lanes of its key, unwrapped."""
        if not conn.wrapped:
            for lane in conn.every_lane():
                lane.push(message)
            return
        try:
            parts = unwrap(_loads(message))
        except ValueError:
            parts = None
        key = None if parts is None else attribute(parts[0], conn.keys)
        if parts is None or key is None:
            every = conn.every_lane()
            self.stats.unattributed += 1
            logger.warning("shared user stream id={} frame of no account on it: handed to all "
                           "{} (each reports it malformed)", conn.id, len(every))
            for lane in every:
                lane.push(message)
            return
        lanes = conn.lanes.get(key)
        if not lanes:
            self.stats.unclaimed += 1  # its account left: it has a connection of its own
            return
        text = _dumps(parts[1])
        for lane in lanes:
            lane.push(text)

    async def _paced(self, conn: SharedConnection) -> None:
        """Rule 6: wait while one lane's queue is full (its stream takes frames again)."""
        for lane in conn.every_lane():
            await lane.wait_room()
