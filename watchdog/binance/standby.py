"""The user stream's standby connection (make-before-break at suspicion), the shell.

When the core first holds back a position change REST showed and the live stream did not report
(``PrepareStandby``), a second connection is opened on the same listen key (Binance delivers
every event of a key to each of its connections, as the 24 h rotation relies on). It buffers
what it receives and feeds the core nothing but ``StandbyListening`` once it listens. If the
verdict is ``stream_blind``, the stream promotes it instead of opening a fresh connection, and
the core breaks its flat runs as of that mark rather than at the reconnect (core/book.py rule
9). If no verdict comes, it is dropped after its hold. What to do when is
``protocol/standby.py``'s (its rules); this module carries it out. One job: the standby's
lifetime; the promotion itself (the gap events, the buffered frames, the resync) is the
stream's connection loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from loguru import logger
from websockets.exceptions import InvalidHandshake

from watchdog.binance.connection import Connection, describe_error
from watchdog.binance.protocol.budget import Priority
from watchdog.binance.protocol.standby import (
    STANDBY_MAX_AGE_HOLDS,
    StandbyAction,
    promotes,
    standby_action,
)
from watchdog.binance.protocol.weights import CONNECT_WEIGHT, POSITIONS_WEIGHT
from watchdog.binance.rest import BinanceRest
from watchdog.binance.snapshots import Emit, read_positions
from watchdog.core.events import StandbyListening
from watchdog.errors import ExchangeError

__all__ = ["StandbyKeeper"]


class StandbyKeeper:
    """At most one standby connection for the current one (protocol/standby.py rules)."""

    def __init__(self, open_connection: Callable[[], Awaitable[Connection]], rest: BinanceRest,
                 *, hold_s: float) -> None:
        self._open = open_connection
        self._rest = rest
        self.hold_s = hold_s
        self._for: int | None = None  # the connection the standby stands by (None: no standby)
        self._conn: Connection | None = None  # open (listening once ``_listening``)
        self._listening = False
        self._attempt = 0  # which open is the wanted one (a dropped one may still be opening)
        self._since = 0.0  # when the standby was asked for (loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._emit: Emit | None = None
        self.opened = 0    # standbys that listened
        self.promoted = 0  # standbys that replaced a blind connection
        self.dropped = 0   # standbys closed unused (no verdict, another ending, a rotation)
        self.failed = 0    # standbys that could not be opened

    @property
    def listening_id(self) -> int | None:
        """The id of the listening standby, if any."""
        return self._conn.id if self._conn is not None and self._listening else None

    @property
    def active(self) -> bool:
        """A standby is opening or listening."""
        return self._for is not None

    def start(self, tg: asyncio.TaskGroup, emit: Emit) -> None:
        self._tg, self._emit = tg, emit

    def request(self, reason: str, *, current: Connection | None, rotating: bool,
                blind_now: bool) -> None:
        """A ``PrepareStandby`` of the core (rule 1)."""
        room = self._rest.budget_wait_s(CONNECT_WEIGHT, priority=Priority.REQUESTED) <= 0
        action = standby_action(hold_s=self.hold_s, serving=current is not None,
                                rotating=rotating, blind_now=blind_now,
                                exists=self._for is not None, room=room)
        if action is StandbyAction.EXTEND:
            if asyncio.get_running_loop().time() - self._since < STANDBY_MAX_AGE_HOLDS * self.hold_s:
                self._arm()  # rule 2; an older one goes at its deadline (its buffer grows)
            return
        if action is not StandbyAction.OPEN or current is None or self._tg is None:
            logger.debug("user stream standby not opened ({}) reason={}", action, reason)
            return
        self._for = current.id
        self._since = asyncio.get_running_loop().time()
        self._attempt += 1
        self._arm()
        logger.info("user stream opening a standby for connection_id={} (make-before-break at "
                    "suspicion) reason={}", current.id, reason)
        self._tg.create_task(self._make(current.id, self._attempt),
                             name=f"user-stream-standby-{current.id}")

    def _wanted(self, for_id: int, attempt: int) -> bool:
        return self._for == for_id and self._attempt == attempt

    async def _make(self, for_id: int, attempt: int) -> None:
        try:
            conn = await self._open()
        except (ExchangeError, InvalidHandshake, OSError, TimeoutError) as exc:
            self.failed += 1
            logger.warning("user stream standby failed to open (nothing changes: a blind "
                           "verdict reconnects as before) error={}", describe_error(exc))
            if self._wanted(for_id, attempt):
                self.drop("it failed to open", quiet=True)
            return
        if not self._wanted(for_id, attempt):  # dropped or taken meanwhile (rule 5)
            _abort(conn)
            return
        self._conn = conn
        assert self._emit is not None
        await self._emit(StandbyListening(conn.id))
        if self._conn is not conn:  # dropped while the core was told: that mark is unused
            return
        self._listening = True
        self.opened += 1
        logger.info("user stream standby connection_id={} listening for connection_id={} "
                    "(buffering its events; promoted if that one is found blind)", conn.id,
                    for_id)
        # Rule 3: a positions read requested after the mark, at once (a flat run the promotion
        # keeps starts at the first such read): one read per standby, a priority call; not
        # when the budget would refuse it (a refused read is a failed one: keys go unknown).
        if self._rest.budget_wait_s(POSITIONS_WEIGHT, priority=Priority.REQUESTED) > 0:
            logger.info("user stream standby connection_id={}: no weight for its positions "
                        "read now (the next read after its mark serves)", conn.id)
            return
        await read_positions(self._rest, self._emit,
                             reason=f"standby connection {conn.id} listening")

    def take(self, ended_id: int, *, blind_ending: bool) -> Connection | None:
        """The connection ``ended_id`` ended: the standby that replaces it (rule 4), else None
        (and any standby is dropped)."""
        if self._for is None:
            return None
        conn = self._conn
        if conn is None or not promotes(listening=self._listening, for_ended=self._for == ended_id,
                                        blind_ending=blind_ending):
            self.drop("its connection ended " + ("before it listened" if blind_ending
                                                 else "for another reason"))
            return None
        self._clear()
        self.promoted += 1
        logger.warning("user stream standby connection_id={} promoted: it replaces the blind "
                       "connection_id={} (make-before-break at suspicion; standby #{})", conn.id,
                       ended_id, self.promoted)
        return conn

    def drop(self, why: str, *, quiet: bool = False) -> None:
        """Close the standby and forget what it buffered (rules 2, 4 and 5)."""
        if self._for is None:
            return
        conn = self._conn
        self._clear()
        if conn is not None:
            _abort(conn)
            self.dropped += 1
        if not quiet:
            logger.info("user stream standby{} dropped: {}",
                        "" if conn is None else f" connection_id={conn.id}", why)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(
            self.hold_s, self.drop, f"no blind verdict within {self.hold_s:g}s")

    def _clear(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._for, self._conn, self._listening = None, None, None, False


def _abort(conn: Connection) -> None:
    conn.room.set()  # a reader waiting for room must see the close
    conn.ws.transport.abort()
