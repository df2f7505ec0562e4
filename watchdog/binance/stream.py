"""The user-data stream: one private WebSocket at a time, never blind without saying so.

This is the shell: when a connection is silent, when its rotation is due, what ends it, what a
successor's fate is and what an end means for the next connect are decided by the pure
``protocol/session.py`` (with ``protocol/probation.py`` and ``protocol/reconnect.py``); here they
are executed. Why one module over 400 lines: the connection loop, the make-before-break rotation
and the listen-key keepalive all act on the one current connection and its queue, and splitting
them would pass that state between modules.

Rules of this module:
1. Every connection is announced to the core: ``StreamConnected`` before its first event,
   ``StreamLost(reason)`` after it ends (dropped, silent, key expired, found blind). A reconnect
   is a fact the core sees.
2. Gap handling (buffer → snapshot → replay, as nautilus_trader does): after each connect the
   reader buffers frames while a positions snapshot *requested after the connect* is read; the
   core then gets ``StreamConnected → SnapshotRequested → PositionSnapshot|SnapshotFailed →
   buffered events in order → OrdersSnapshot`` (per symbol holding a position).
3. Liveness: websockets pings every ``ping_interval_s`` (5 s, at most ``max_silence_s/3``) and
   wants the pong within as long (its defaults hide a stall for 50 s: docs/ADAPTERS.md
   § Measured here); any frame (data, ping or pong) proves the link alive; ``max_silence_s``
   without one ends the connection as "silent". A *muted* link (pongs but no events) is only provable by REST:
   the runtime calls ``request_blind_reconnect`` when the core reports ``stream_blind``.
4. Before every connect we POST listenKey (the account's one active key, docs/BINANCE.md §1.1);
   it is PUT every ``keepalive_interval_s``; a refused PUT (-1125) forces a reconnect with a
   fresh POST. The key is never DELETEd (shared with the bot) and never logged.
5. Proactive rotation before Binance's 24 h cut is make-before-break: the new connection is
   open, answers a ping, and then is on probation (``probation.py``) while the old one keeps
   delivering: it replaces the old one only once it delivered an event the old one delivered
   too (or events the old one missed). A new connection that misses what the old one delivers
   is closed and the rotation retried later (``rotations_rejected``); a quiet account keeps
   both until Binance cuts the old one, which is then an ordinary reconnect (gap, resync).
   On the switch the old one's remaining frames are delivered first and the overlap's
   duplicates are dropped, so rotation leaves no gap and is not reported as one.
6. A blind connection is replaced at once the first time, then at most every
   ``blind_reconnect_interval_s`` (``reconnect.BlindReconnects``; default 60 s): a report
   while one is held back schedules it, later reports only log. Each replacement logs one
   WARNING with the next earliest time; it neither waits for nor grows the backoff (the link
   did not fail), so its post-connect snapshot also serves the core's request after the loss.
   When the core suspected the connection first (``PrepareStandby``: REST showed a change the
   stream had not reported), a standby connection on the same key may be listening
   (``standby.py``, ``protocol/standby.py``): a blind ending then promotes it instead of
   opening a fresh one. The core gets ``StreamLost``, ``StreamConnected(standby=True)``, the
   frames the standby buffered (in order, duplicates of the old one's dropped), then the resync
   of rule 2 as after any connect.
   One a minute costs about 8 weight (listen key, one positions read, that snapshot's order
   reads). A new connection for any other reason cancels a scheduled one (the verdict was
   about the old connection).
7. Reconnects are paid from the REST weight budget like everything else: a connect waits until
   the budget has room for its listen key and post-connect snapshot (priority ``REQUESTED``;
   the order reads of the first ``RESYNC_PRIORITY_SYMBOLS`` open symbols too, the others
   only while routine polls have room; with more open symbols than one all-symbols read costs,
   that one read instead, a priority call: 80 weight rather than 2 a symbol, which on a
   300-symbol account took the whole share and stopped the positions poll for a minute),
   and the backoff is reset only by a connection that lived ``HEALTHY_AFTER_S``
   (``reconnect.backoff_resets``): one that ends within seconds (``listenKeyExpired`` at
   once, found blind, dropped) makes the next delay grow, whoever decided to end it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from watchdog.binance.connection import (
    READ_HIGH_WATER,
    Connect,
    Connection,
    Control,
    End,
    StreamSocket,
    Successor,
    classify_stream_error,
    close_text,
    describe_error,
    frame_excerpt,
    open_stamped,
    user_stream_url,
)
from watchdog.binance.protocol import wire
from watchdog.binance.protocol.budget import Priority
from watchdog.binance.protocol.probation import PROBATION_TOLERANCE_S, Probation, Verdict
from watchdog.binance.protocol.reconnect import (
    BLIND_RECONNECT_INTERVAL_S,
    Backoff,
    BlindReconnects,
    RecentEvents,
    StreamFailure,
    event_identity,
)
from watchdog.binance.protocol.session import (
    BLIND,
    EXPIRED,
    BlindRequest,
    Do,
    Phase,
    Session,
    SuccessorFate,
    aborts,
    blind_request,
    successor_fate,
    user_stream_ending,
)
from watchdog.binance.protocol.standby import STANDBY_HOLD_S, promotable_in_time
from watchdog.binance.protocol.weights import CONNECT_WEIGHT, ORDERS_WEIGHT, SWEEP_WEIGHT
from watchdog.binance.rest import BinanceRest
from watchdog.binance.snapshots import Emit, read_all_orders, read_orders, read_positions
from watchdog.binance.standby import StandbyKeeper
from watchdog.cancel import raise_if_cancelling
from watchdog.clock import Clock
from watchdog.core.events import ListenKeyExpired, MalformedFrame, StreamConnected, StreamLost
from watchdog.core.model import ZERO, Symbol
from watchdog.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    WireFormatError,
)

__all__ = ["StreamStats", "UserDataStream"]

_loads: Callable[[str | bytes], Any] = json.loads
try:
    import orjson

    _loads = orjson.loads  # the fast extra: about 2x faster on these frames
except ImportError:  # pragma: no cover - optional
    pass
RESYNC_PRIORITY_SYMBOLS = 5  # post-connect order reads sent as priority calls (rule 7)
_PING_INTERVAL_S = 5.0   # client ping period; the pong must arrive within the same time
_PROBATION_RECHECK_S = 1.0  # a probation also notices the old connection ending or the new closing


@dataclass
class StreamStats:
    """Counters for status output and tests (never reset)."""

    connects: int = 0
    reconnects: int = 0
    rotations: int = 0
    rotations_rejected: int = 0  # new connections that failed their probation (rule 5)
    received: int = 0      # frames read off sockets (buffered or not)
    frames: int = 0        # frames handled (delivered, dropped or malformed)
    events: int = 0
    malformed: int = 0
    ignored: int = 0
    duplicates: int = 0
    blind_reconnects: int = 0  # connections replaced because REST proved them blind
    blind_deferred: int = 0    # blind reports that had to wait for rule 6's interval
    last_lost_reason: str = ""


class UserDataStream:
    """Runs the private stream and emits core events through ``emit`` (see module rules).

    ``run(emit)`` never returns; a refused API key is retried with backoff like a failed
    connect (the REST client keeps the refusal for the daemon's health and startup verdict).
    """

    def __init__(self, rest: BinanceRest, *, ws_url: str, clock: Clock,
                 keepalive_interval_s: float = 1800.0, rotate_after_s: float = 23 * 3600.0,
                 connect: Connect | None = None,
                 max_silence_s: float = 10.0, reconnect_min_delay_s: float = 0.2,
                 reconnect_max_delay_s: float = 30.0, open_timeout_s: float = 10.0,
                 ping_interval_s: float = _PING_INTERVAL_S,
                 blind_reconnect_interval_s: float | None = None,
                 standby_hold_s: float = STANDBY_HOLD_S,
                 rng: random.Random | None = None) -> None:
        self._rest = rest
        self._ws_url = ws_url
        # A lane of a connection shared with other accounts (shared_stream.py), or our own.
        self._connect: Connect = connect or self._connect_own
        self._clock = clock
        self._keepalive_interval_s = keepalive_interval_s
        self._rotate_after_s = rotate_after_s
        self._max_silence_s = max_silence_s
        # Our own pings find a stall in at most two intervals, whatever max_silence_s is (a
        # quiet Binance account may legitimately send nothing but a ping every 3 min).
        self._ping_interval_s = min(ping_interval_s, max_silence_s / 3)
        self._open_timeout_s = open_timeout_s
        self._backoff = Backoff(reconnect_min_delay_s, reconnect_max_delay_s,
                                rng or random.Random())
        self._blind = BlindReconnects(blind_reconnect_interval_s or BLIND_RECONNECT_INTERVAL_S)
        self._blind_timer: asyncio.TimerHandle | None = None
        self._ids = itertools.count(1)
        self._recent = RecentEvents()
        self._current: Connection | None = None
        self._tg: asyncio.TaskGroup | None = None
        self.stats = StreamStats()
        self.standby = StandbyKeeper(self._open, rest, hold_s=standby_hold_s)  # rule 6

    @property
    def connected(self) -> bool:
        """True while a connection is open (which says nothing about whether it delivers)."""
        return self._current is not None

    def request_reconnect(self, reason: str) -> None:
        """End the current connection and reconnect with a fresh key check (e.g. found blind)."""
        if self._current is None:  # already reconnecting: the next connection is fresh
            logger.info("user stream reconnect requested while reconnecting reason={}", reason)
            return
        logger.warning("user stream reconnect requested reason={}", reason)
        self._current.queue.put_nowait(Control(reason))

    def request_blind_reconnect(self, reason: str) -> None:
        """REST proved the connection blind: replace it now or when rule 6 allows."""
        wait_s = self._blind.wait_s(self._clock.monotonic())
        action = blind_request(connected=self._current is not None,
                               scheduled=self._blind_timer is not None, wait_s=wait_s)
        if action is BlindRequest.RECONNECTING:
            logger.info("user stream found blind while reconnecting: the next connection is "
                        "fresh reason={}", reason)
            return
        if action is BlindRequest.SCHEDULED:
            logger.info("user stream still blind: its replacement is already scheduled "
                        "reason={}", reason)
            return
        if action is BlindRequest.NOW:
            self._blind_reconnect(reason)
            return
        self.stats.blind_deferred += 1
        logger.warning("user stream blind again: reconnecting in {:.1f}s (blind reconnects at most "
                       "every {:g}s; REST polling is the truth meanwhile) reason={}", wait_s,
                       self._blind.interval_s, reason)
        self._blind_timer = asyncio.get_running_loop().call_later(
            wait_s, self._blind_reconnect, reason)

    def prepare_standby(self, reason: str) -> None:
        """The core suspects the connection (``PrepareStandby``): open a standby (rule 6)."""
        current = self._current
        self.standby.request(
            reason, current=current,
            rotating=current is not None and current.session.phase is Phase.ROTATING,
            blind_now=promotable_in_time(blind_wait_s=self._blind.wait_s(self._clock.monotonic()),
                                         hold_s=self.standby.hold_s))

    def _blind_reconnect(self, reason: str) -> None:
        self._blind_timer = None
        if self._current is None:  # reconnecting anyway: the next connection is fresh
            return
        self._blind.started(self._clock.monotonic())
        self.stats.blind_reconnects += 1
        logger.warning("user stream blind: reconnecting now (blind reconnect #{}; the next one "
                       "{:g}s from now at the earliest) connection_id={} reason={}",
                       self.stats.blind_reconnects, self._blind.interval_s, self._current.id,
                       reason)
        self._current.queue.put_nowait(Control(f"{BLIND}{reason}"))

    def _cancel_blind_timer(self) -> None:
        if self._blind_timer is not None:
            self._blind_timer.cancel()
            self._blind_timer = None

    async def run(self, emit: Emit) -> None:
        """Connect, resync, deliver and reconnect forever; see the module rules."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self.standby.start(tg, emit)
                tg.create_task(self._keepalive_loop(), name="listen-key-keepalive")
                await self._connection_loop(emit)
        finally:
            self._cancel_blind_timer()
            self.standby.drop("the stream stopped")
            conn, self._current = self._current, None
            if conn is not None:  # cancelled or failed: leave no socket behind
                conn.ws.transport.abort()

    # -------------------------------------------------------------- connection lifecycle

    async def _connection_loop(self, emit: Emit) -> None:
        cause, delay_s = "startup", 0.0
        promoted: Connection | None = None  # rule 6: a standby replacing a blind connection
        while True:
            promoted = self._still_open(promoted)
            standby = promoted is not None
            if delay_s > 0 and not standby:
                logger.info("user stream reconnecting cause={} delay_s={:.2f}", cause, delay_s)
                await asyncio.sleep(delay_s)
            room_s = 0.0 if standby else self._rest.budget_wait_s(CONNECT_WEIGHT,
                                                                  priority=Priority.REQUESTED)
            if room_s > 0:  # rule 7: a connect is paid from the one budget, never beside it
                logger.warning("user stream reconnect waits {:.1f}s for REST weight (listen key "
                               "and post-connect snapshot) cause={}", room_s, cause)
                await asyncio.sleep(room_s)
            try:
                conn = promoted if promoted is not None else await self._open()
            except (ExchangeError, InvalidHandshake, OSError, TimeoutError) as exc:
                if classify_stream_error(exc) is StreamFailure.FATAL:
                    raise
                delay_s = self._backoff.next_delay_s()
                if isinstance(exc, ExchangeUnavailable) and exc.retry_after_s is not None:
                    delay_s = max(delay_s, exc.retry_after_s)  # 429/418 or our own budget
                cause = f"connect failed: {describe_error(exc)}"
                logger.warning("user stream connect failed error={} next_delay_s={:.2f}",
                               describe_error(exc), delay_s)
                continue
            promoted = None
            self._current = conn
            self._cancel_blind_timer()  # rule 6: that verdict was about an older connection
            self.stats.connects += 1
            if cause != "startup":
                self.stats.reconnects += 1
            logger.info("user stream connected connection_id={} cause={}{}", conn.id, cause,
                        " (the promoted standby)" if standby else "")
            await emit(StreamConnected(conn.id, standby=standby))
            # Rule 6: a standby that ended while its frames were delivered missed what came
            # after; no post-connect read then, so the core keeps no run across this gap.
            if not standby or await self._deliver_buffered(conn, emit):
                await self._resync(conn, emit)
            conn, reason = await self._serve(conn, emit)
            self._current = None
            self._discard_successors(conn)
            self.stats.last_lost_reason = reason
            logger.warning("user stream lost connection_id={} reason={}", conn.id, reason)
            await emit(StreamLost(conn.id, reason))
            if aborts(reason):
                conn.ws.transport.abort()  # the peer does not answer: no closing handshake
            else:
                await self._close(conn)
            ending = user_stream_ending(reason, asked=conn.session.asked,
                                        lived_s=self._clock.monotonic() - conn.session.opened_at)
            # Rule 7: only a connection that lived resets the backoff. One that expired, was
            # found blind or dropped within seconds is a failure, whoever ended it: a key
            # expiring at every connect must not reconnect at the minimum delay forever.
            if ending.reset_backoff:
                self._backoff.reset()
            # Rule 6: a blind connection is replaced at once (its cadence is already bounded);
            # the post-connect snapshot then also serves the core's request after the loss.
            cause, delay_s = reason, (0.0 if ending.at_once else self._backoff.next_delay_s())
            promoted = self.standby.take(conn.id, blind_ending=ending.at_once)

    def _still_open(self, promoted: Connection | None) -> Connection | None:
        """Rule 6: a standby Binance closed before its promotion missed what came after: it is
        dropped and the connection made afresh."""
        if promoted is not None and promoted.ws.close_code is not None:
            logger.warning("user stream standby connection_id={} closed before its promotion: "
                           "connecting afresh", promoted.id)
            promoted.room.set()
            promoted.ws.transport.abort()
            return None
        return promoted

    async def _open(self) -> Connection:
        """POST listenKey, connect, start the reader (which buffers from the first frame)."""
        key = await self._rest.create_listen_key()
        ws = await self._connect(key, open_timeout_s=self._open_timeout_s,
                                 ping_interval_s=self._ping_interval_s)
        conn = Connection(next(self._ids), ws,
                          Session(opened_at=self._clock.monotonic(),
                                  rotate_after_s=self._rotate_after_s,
                                  max_silence_s=self._max_silence_s))
        assert self._tg is not None
        self._tg.create_task(self._read(conn), name=f"user-stream-reader-{conn.id}")
        return conn

    async def _connect_own(self, key: str, *, open_timeout_s: float,
                           ping_interval_s: float) -> StreamSocket:
        """A connection of this account's own (the default ``connect``)."""
        return await open_stamped(user_stream_url(self._ws_url, key),
                                  open_timeout_s=open_timeout_s, ping_interval_s=ping_interval_s,
                                  max_queue=READ_HIGH_WATER)

    async def _read(self, conn: Connection) -> None:
        try:
            async for message in conn.ws:
                self.stats.received += 1
                if conn.observe is not None:
                    conn.observe(message)
                conn.queue.put_nowait(message)
                if conn.queue.qsize() >= READ_HIGH_WATER:
                    # Backpressure: stop reading while the core is behind, so TCP (not our
                    # memory) holds a burst; websockets' own buffer is bounded by max_queue.
                    conn.room.clear()
                    await conn.room.wait()
        except ConnectionClosed as exc:
            conn.queue.put_nowait(End(f"closed: {close_text(exc)}"))
            return
        code = conn.ws.close_code
        conn.queue.put_nowait(End(f"closed by server: code={code}"))

    async def _close(self, conn: Connection) -> None:
        conn.room.set()  # a reader waiting for room must see the close
        try:
            await conn.ws.close()
        except ConnectionClosed as exc:
            logger.debug("user stream close connection_id={}: {}", conn.id, close_text(exc))

    async def _deliver_buffered(self, conn: Connection, emit: Emit) -> bool:
        """Rule 6: the frames a promoted standby buffered before its ``StreamConnected``, in
        order and before the post-connect read (the core's run resumes at its mark only if a
        fill since then is applied before any later read). False when the standby turned out
        to have ended (its end is held for ``_serve``)."""
        for _ in range(conn.queue.qsize()):
            item = conn.take()
            if not isinstance(item, (str, bytes)):
                conn.held.append(item)  # an end: _serve sees it first
                return False
            if await self._deliver(item, emit):
                conn.held.append(End(EXPIRED))
                return False
        return True

    async def _resync(self, conn: Connection, emit: Emit) -> None:
        """Rule 2: a snapshot requested after the connect, then the frames buffered meanwhile.

        Open orders of the symbols holding a position are read after those frames, so no other
        REST read can slip in between the snapshot and the events that happened after it.
        """
        snapshot = await read_positions(self._rest, emit, reason="stream connected")
        while not conn.queue.empty():
            item = conn.queue.get_nowait()
            if not isinstance(item, (str, bytes)):
                conn.held.append(item)  # an end or a control: _serve sees it first
                break
            if await self._deliver(item, emit):
                conn.held.append(End(EXPIRED))
                break
        if snapshot is not None and not conn.held:
            open_symbols = sorted({Symbol(p.key.symbol) for p in snapshot.positions
                                   if p.amount != ZERO})
            # Rule 7: one all-symbols read when it costs less than the per-symbol ones (on
            # failure, the per-symbol path below: nothing is emitted by a failed one).
            if len(open_symbols) * ORDERS_WEIGHT > SWEEP_WEIGHT and await read_all_orders(
                    self._rest, emit, reason="stream connected",
                    priority=Priority.REQUESTED) is not None:
                return
            # Rule 7: the first few as priority reads; the rest only while routine polls have
            # room (a big account must not spend the whole share on them after every connect
            # and starve the positions poll; the poller reads those symbols periodically).
            first, rest = (open_symbols[:RESYNC_PRIORITY_SYMBOLS],
                           open_symbols[RESYNC_PRIORITY_SYMBOLS:])
            await read_orders(self._rest, emit, first, reason="stream connected",
                              priority=Priority.REQUESTED)
            if rest:
                await read_orders(self._rest, emit, rest, reason="stream connected",
                                  priority=Priority.ROUTINE)

    async def _serve(self, conn: Connection, emit: Emit) -> tuple[Connection, str]:
        """Deliver frames until the connection ends; returns the connection and why it ended.
        What is due (silence, rotation) and what each item means is ``conn.session``'s call."""
        while True:
            session = conn.session
            wait_s = session.wait_s(self._clock.monotonic(),
                                    conn.ws.silence_left_s(self._max_silence_s))
            item: str | bytes | End | Control | Successor
            try:
                if conn.held:
                    item = conn.held.popleft()
                elif wait_s > 0 and not conn.queue.empty():
                    item = conn.take()  # a burst: no timer per frame
                else:
                    conn.room.set()
                    async with asyncio.timeout(max(0.0, wait_s)):
                        item = await conn.queue.get()
            except TimeoutError as exc:
                raise_if_cancelling(exc)  # a stop lost earlier must not be waited through
                step = session.timed_out(self._clock.monotonic(),
                                         conn.ws.silence_left_s(self._max_silence_s))
                if step.do is Do.END:
                    return conn, step.reason
                if step.do is Do.ROTATE:
                    self.standby.drop("a rotation is due (one extra connection at a time)")
                    assert self._tg is not None
                    self._tg.create_task(self._make_successor(conn),
                                         name=f"user-stream-successor-{conn.id}")
                continue
            if isinstance(item, End):
                return conn, session.closed(item.reason).reason
            if isinstance(item, Control):
                return conn, session.asked_to_end(item.reason).reason
            if isinstance(item, Successor):
                if item.conn is None:
                    retry_s = self._backoff.next_delay_s()
                    session.successor_failed(self._clock.monotonic(), retry_s)
                    logger.warning("user stream rotation failed, keeping connection_id={} "
                                   "error={} retry_in_s={:.2f}", conn.id, item.error, retry_s)
                    continue
                session.successor_ready()
                conn, expired = await self._break(conn, item.conn, emit)
                if expired:
                    return conn, conn.session.key_expired().reason
                continue
            if await self._deliver(item, emit):
                return conn, session.key_expired().reason

    async def _make_successor(self, old: Connection) -> None:
        """Rule 5, make: open the next connection, ping it, and keep it on probation while
        ``old`` keeps delivering; the result goes into ``old``'s queue, in order with its
        frames."""
        try:
            new = await self._open()
        except (ExchangeError, InvalidHandshake, OSError, TimeoutError) as exc:
            old.queue.put_nowait(Successor(None, describe_error(exc)))
            return
        try:
            pong = await new.ws.ping()
            async with asyncio.timeout(self._max_silence_s):
                await pong
        except (TimeoutError, ConnectionClosed) as exc:
            new.ws.transport.abort()
            old.queue.put_nowait(Successor(None, describe_error(exc)))
            return
        if old is not self._current:  # old ended meanwhile: the reconnect path took over
            new.ws.transport.abort()
            return
        error = await self._probation(old, new)
        fate = successor_fate(old_is_current=old is self._current, error=error)
        if fate is SuccessorFate.PROMOTE:
            old.queue.put_nowait(Successor(new, ""))
            return
        new.ws.transport.abort()
        if fate is SuccessorFate.REJECT:
            self.stats.rotations_rejected += 1
            logger.warning("user stream rotation rejected: keeping connection_id={} instead of "
                           "{} ({}; rejected #{})", old.id, new.id, error,
                           self.stats.rotations_rejected)
            old.queue.put_nowait(Successor(None, f"probation failed: {error}"))

    async def _probation(self, old: Connection, new: Connection) -> str | None:
        """Rule 5: None once ``new`` proved itself, else why it is rejected (or ``old`` ended)."""
        loop = asyncio.get_running_loop()
        probation = Probation(ready_at=loop.time(), tolerance_s=PROBATION_TOLERANCE_S)
        wake = asyncio.Event()

        def observer(record: Callable[[Hashable, float], None]) -> Callable[[str | bytes], None]:
            def observe(message: str | bytes) -> None:
                try:
                    raw = _loads(message)
                except ValueError:
                    return  # _deliver reports it when it is delivered
                if isinstance(raw, dict):
                    record(event_identity(raw, message), loop.time())
                    wake.set()
            return observe

        old.observe, new.observe = observer(probation.old_frame), observer(probation.new_frame)
        try:
            while True:
                if old is not self._current:
                    return "the old connection ended first"
                if new.ws.close_code is not None:
                    return f"the new connection closed (code {new.ws.close_code})"
                decision = probation.decide(loop.time())
                if decision.verdict is Verdict.PROMOTE:
                    logger.info("user stream connection_id={} passed its probation: {}", new.id,
                                decision.reason)
                    return None
                if decision.verdict is Verdict.REJECT:
                    return decision.reason
                wake.clear()
                wait_s = _PROBATION_RECHECK_S
                if decision.wake_at is not None:
                    wait_s = min(wait_s, max(0.0, decision.wake_at - loop.time()))
                try:
                    async with asyncio.timeout(wait_s):
                        await wake.wait()
                except TimeoutError as exc:
                    raise_if_cancelling(exc)  # our own deadline: decide again
        finally:
            old.observe = new.observe = None

    async def _break(self, old: Connection, new: Connection,
                     emit: Emit) -> tuple[Connection, bool]:
        """Rule 5, break: close ``old``, deliver what it still holds, continue on ``new``;
        True when one of those frames was ``listenKeyExpired``."""
        self._current = new
        await self._close(old)
        expired = False
        while True:
            old.room.set()
            item = await old.queue.get()
            if isinstance(item, End):
                break
            if isinstance(item, Control):
                new.queue.put_nowait(item)
            elif isinstance(item, (str, bytes)) and await self._deliver(item, emit):
                expired = True
        self.stats.rotations += 1
        logger.info("user stream rotated connection_id={} -> {} (make-before-break)", old.id,
                    new.id)
        return new, expired

    def _discard_successors(self, conn: Connection) -> None:
        """A connection ended while its successor was being made: drop that successor."""
        while not conn.queue.empty():
            item = conn.queue.get_nowait()
            if isinstance(item, Successor) and item.conn is not None:
                item.conn.ws.transport.abort()

    async def _deliver(self, message: str | bytes, emit: Emit) -> bool:
        """Parse, de-duplicate and emit one frame; True when it was ``listenKeyExpired``."""
        self.stats.frames += 1
        try:
            raw = _loads(message)
        except ValueError:
            await emit(self._malformed("not JSON", frame_excerpt(message)))
            return False
        if not isinstance(raw, dict):
            await emit(self._malformed("not a JSON object", frame_excerpt(message)))
            return False
        if not self._recent.first_time(event_identity(raw, message)):
            self.stats.duplicates += 1
            logger.debug("user stream duplicate dropped e={} E={}", raw.get("e"), raw.get("E"))
            return False
        try:
            events = wire.parse_user_event(raw)
        except WireFormatError as exc:
            await emit(self._malformed(str(exc), exc.excerpt))
            return False
        if isinstance(events, wire.Ignored):
            self.stats.ignored += 1
            logger.debug("user stream event ignored e={}", events.event_type)
            return False
        expired = False
        for event in events:
            self.stats.events += 1
            await emit(event)
            expired = expired or isinstance(event, ListenKeyExpired)
        if expired:
            logger.warning("user stream listenKeyExpired: reconnecting with a fresh key")
        return expired

    def _malformed(self, problem: str, excerpt: str) -> MalformedFrame:
        """Count and log a frame that could not be read; the core is told (it asks REST)."""
        self.stats.malformed += 1
        logger.warning("user stream malformed frame problem={} excerpt={!r} count={}", problem,
                       excerpt, self.stats.malformed)
        return MalformedFrame(problem)

    def use_connections(self, connect: Connect) -> None:
        """Open this stream's connections with ``connect`` from its next connect on (several
        accounts: lanes of shared connections, ``shared_stream.py``)."""
        self._connect = connect

    def request_rotation(self, reason: str) -> None:
        """Rotate the current connection now, make-before-break as before the 24 h cut (rule
        5); e.g. another connection has room for this account (``shared_stream.py``). Nothing
        happens while a rotation is under way or the connection is silent (it ends anyway)."""
        conn, now = self._current, self._clock.monotonic()
        if (conn is None or self._tg is None or conn.session.phase is not Phase.SERVING
                or conn.ws.silence_left_s(self._max_silence_s) <= 0):
            return
        conn.session.rotate_at = min(conn.session.rotate_at, now)
        if conn.session.timed_out(now, conn.ws.silence_left_s(self._max_silence_s)).do is Do.ROTATE:
            logger.info("user stream rotating early connection_id={} reason={}", conn.id, reason)
            self._tg.create_task(self._make_successor(conn),
                                 name=f"user-stream-successor-{conn.id}")

    # -------------------------------------------------------------- listen key keepalive

    async def _keepalive_loop(self) -> None:
        """PUT the key every interval; a refused PUT means the key is gone: reconnect."""
        delay_s = self._keepalive_interval_s
        while True:
            await asyncio.sleep(delay_s)
            delay_s = self._keepalive_interval_s
            if self._current is None:
                continue
            try:
                await self._rest.keepalive_listen_key()
            except AuthenticationFailed as exc:
                # The key is refused, not the listen key: the connection may still deliver for
                # up to 60 min, so keep it and retry soon (the REST client reports the refusal).
                delay_s = min(60.0, self._keepalive_interval_s / 4)
                logger.debug("listen key keepalive refused error={} retry_in_s={:.0f}", exc,
                             delay_s)
            except ExchangeRejected as exc:
                self.request_reconnect(f"keepalive rejected: code {exc.code}")
            except ExchangeUnavailable as exc:
                # The key stays valid 60 min after the last keepalive: retry soon, not blindly.
                delay_s = min(60.0, self._keepalive_interval_s / 4)
                logger.warning("listen key keepalive failed error={} retry_in_s={:.0f}", exc,
                               delay_s)
            except ExchangeError as exc:
                self.request_reconnect(f"keepalive failed: {type(exc).__name__}")
            else:
                logger.debug("listen key keepalive ok")
