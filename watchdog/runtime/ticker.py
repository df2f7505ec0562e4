"""The ticker: a ``Tick`` for the core only when something is due, on the beat's grid.

Why: the core loop used to get a Tick at every point of the grid (``[service]
tick_interval_s``, 0.25 s), and most of them changed nothing: an idle daemon's positions are
re-verified by every read, so nothing ages, and each Tick cost a trip through the core loop, the
guard, the reaper and the trigger watch, plus a wake-up of its own at the grid points no other
task shares (docs/BENCHMARKS.md, "#13 item 2: ticks only when due"). Now the core loop tells
the ticker, after every batch, when the next Tick is due (``CoreLoop`` asks every consumer:
the book's ageing, the guard's heap, the reaper, the trigger watch, the keepalive and the status
line), and the ticker sleeps until that point of the grid.

Rules of this module:
1. A Tick goes at ``tick_point``: the first grid point (a multiple of ``grid_s`` on the event
   loop's clock, computed as in ``beat.py`` rule 2) at or after the due time less ``slack``
   and after the point of the last Tick: the point at which a Tick at every grid point would
   have found it due, never later (the slack covers the wall clock's rate against the
   monotonic one, so an early point only costs a Tick that changes nothing). At most one Tick
   per grid point, as before.
2. ``due_in(delay_s)`` (the core loop, after every batch) replaces the due time; ``None``: no
   consumer waits on time. ``poke()`` (from outside the core loop: a guard outcome, a
   takeover) asks for a Tick at the next grid point. A due time earlier than the one slept on
   wakes the ticker earlier; a later one moves its timer later (no wake-up for nothing).
3. Wall clock steps: every wake compares ``wall_ms - monotonic`` with the last look; a change
   beyond ``STEP_TOLERANCE_MS`` is a step, and a Tick goes at once, carrying a step back as
   ``wall_stepped_back_ms`` (core/ageing.py rule 3: the book expires what it holds, as a
   smaller ``now_ms`` did). Both clocks run at the same adjusted rate (NTP slews both), so
   only a step (``clock_settime``, a resume from suspend) moves the difference. On Linux a
   ``timerfd`` armed with ``TFD_TIMER_CANCEL_ON_SET`` wakes the ticker the moment the wall
   clock is set (``ClockSetWatch``); where it cannot be armed, the ticker wakes at least every
   ``fallback_cap_s`` (1 s, a point of the grid) to look.
4. The first Tick goes at once (startup), as the old ticker's did.
5. When its timer (not a ``due_in``, a ``poke`` or a clock set) wakes it, ``woke`` hears the
   loop time it asked for (runtime/stalls.py rule 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import math
import os
from collections.abc import Awaitable, Callable
from typing import NoReturn

from loguru import logger

from watchdog.clock import Clock
from watchdog.core.events import Event, Tick
from watchdog.runtime.beat import beat_at
from watchdog.runtime.stalls import Woke

__all__ = ["STEP_TOLERANCE_MS", "ClockSetWatch", "Ticker", "slack_s", "tick_point"]

STEP_TOLERANCE_MS = 20  # a wall-minus-monotonic change beyond this is a step (rule 3)
FALLBACK_CAP_S = 1.0    # without a clock-set watch, look at least this often (rule 3)
_SLACK_MIN_S = 0.002
_SLACK_RATE = 0.001     # 1000 ppm: twice the kernel's largest frequency correction
_EPS_S = 1e-6           # asyncio runs a timer up to its clock's resolution early


def slack_s(delay_s: float) -> float:
    """How much earlier than a due time ``delay_s`` away the ticker may wake (rule 1): the
    wall clock's millisecond truncation, and its rate against the monotonic clock over the
    delay. 0 for a due time already passed: the next grid point is the one."""
    return 0.0 if delay_s <= 0 else _SLACK_MIN_S + _SLACK_RATE * delay_s


def tick_point(due_s: float, after_s: float, grid_s: float) -> float:
    """The first grid point at or after ``due_s`` and strictly after ``after_s`` (rule 1). Pure."""
    if grid_s <= 0:
        return max(due_s, after_s)
    k = max(math.ceil(due_s / grid_s), math.floor(after_s / grid_s))
    while k * grid_s <= after_s:  # at most twice: k starts at most one point before after_s
        k += 1
    return k * grid_s


class ClockSetWatch:
    """A ``timerfd`` on CLOCK_REALTIME with ``TFD_TIMER_CANCEL_ON_SET`` (Linux): readable the
    moment the wall clock is set (rule 3). ``open`` returns None where it cannot be armed."""

    _CLOCK_REALTIME = 0
    _TFD_CLOEXEC = 0o2000000
    _TFD_NONBLOCK = 0o4000
    _TFD_TIMER_ABSTIME = 1
    _TFD_TIMER_CANCEL_ON_SET = 2

    def __init__(self, libc: ctypes.CDLL, fd: int) -> None:
        self._libc = libc
        self.fd = fd

    @classmethod
    def open(cls) -> ClockSetWatch | None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            create = libc.timerfd_create
        except (OSError, AttributeError) as exc:
            logger.info("no timerfd ({}): the ticker looks for wall clock steps every {:g}s",
                        exc, FALLBACK_CAP_S)
            return None
        fd = create(cls._CLOCK_REALTIME, cls._TFD_NONBLOCK | cls._TFD_CLOEXEC)
        if fd < 0:
            logger.info("timerfd_create failed ({}): the ticker looks for wall clock steps "
                        "every {:g}s", os.strerror(ctypes.get_errno()), FALLBACK_CAP_S)
            return None
        watch = cls(libc, fd)
        if not watch.arm():
            watch.close()
            return None
        return watch

    def arm(self) -> bool:
        """(Re-)arm far in the future; True when armed. After a clock set it must be re-armed."""
        spec = (ctypes.c_long * 4)(0, 0, 2**62, 0)  # interval 0; value: an absolute time far off
        if self._libc.timerfd_settime(self.fd, self._TFD_TIMER_ABSTIME
                                      | self._TFD_TIMER_CANCEL_ON_SET, spec, None) != 0:
            logger.info("timerfd_settime failed ({}): the ticker looks for wall clock steps "
                        "every {:g}s", os.strerror(ctypes.get_errno()), FALLBACK_CAP_S)
            return False
        return True

    def fired(self) -> bool:
        """Drain the fd; True when the wall clock was set (ECANCELED), re-armed then."""
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno != errno.ECANCELED:
                raise
            self.arm()
            return True
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Ticker:
    """Sends ``Tick`` to the core when it is due (module rules)."""

    def __init__(self, emit: Callable[[Event], Awaitable[None]], clock: Clock, *, grid_s: float,
                 clock_watch: bool = True, fallback_cap_s: float = FALLBACK_CAP_S,
                 woke: Woke | None = None) -> None:
        self._emit = emit
        self._clock = clock
        self._grid_s = grid_s
        self._use_watch = clock_watch
        self._cap_s = fallback_cap_s
        self._due_s: float | None = float("-inf")  # rule 4: the first Tick goes at once
        self._slack_s = 0.0
        self._last_point = float("-inf")
        self._offset_ms: int | None = None
        self._wake: asyncio.Future[None] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._target: float | None = None  # the loop time slept until (None: no timer)
        self._look_at: float | None = None  # without a clock-set watch: the next look (rule 3)
        self._woke = woke  # rule 5
        self._fired: float | None = None  # the target of the timer that woke us (rule 5)
        self.ticks = 0  # Ticks sent (a test and the bench read it)

    # ------------------------------------------------------------ from the core loop

    def due_in(self, delay_s: float | None) -> None:
        """Rule 2: the next Tick is due ``delay_s`` from now (<= 0: at the next grid point)."""
        if delay_s is None:
            self._due_s = None
            return
        loop = asyncio.get_running_loop()
        self._slack_s = slack_s(delay_s)
        self._due_s = loop.time() + max(delay_s, 0.0)
        if self._wake is not None:
            point = self._point()
            wake = self._wake_at(point)
            if wake is not None and wake != self._target:
                self._sleep_until(wake)  # earlier: in time; later: no wake-up for nothing

    def poke(self) -> None:
        """Rule 2: a Tick at the next grid point (something outside the core loop changed)."""
        self.due_in(0.0)

    # ------------------------------------------------------------ its own task

    async def run(self) -> NoReturn:
        loop = asyncio.get_running_loop()
        watch = ClockSetWatch.open() if self._use_watch else None
        self._look_at = None if watch is not None else loop.time()
        if watch is not None:
            loop.add_reader(watch.fd, self._on_clock_set, watch)
        try:
            while True:
                now = loop.time()
                back_ms = self._stepped_back_ms()
                point = self._point()
                if back_ms is not None or (point is not None and point <= now + _EPS_S):
                    self._due_s = None  # until the core loop says what is due next
                    self._last_point = now if point is None else max(point, now)
                    self.ticks += 1
                    await self._emit(Tick(wall_stepped_back_ms=back_ms or 0))
                    continue
                self._wake = loop.create_future()
                if self._look_at is not None:  # no clock-set watch: look again a cap later
                    self._look_at = beat_at(now, self._cap_s, self._grid_s)
                wake = self._wake_at(point)
                if wake is not None:
                    self._sleep_until(wake)
                try:
                    await self._wake
                finally:
                    self._wake = None
                    self._target = None
                    if self._handle is not None:
                        self._handle.cancel()
                        self._handle = None
                fired, self._fired = self._fired, None
                if fired is not None and self._woke is not None:
                    self._woke("ticker", fired)
        finally:
            if watch is not None:
                loop.remove_reader(watch.fd)
                watch.close()

    def _wake_at(self, point: float | None) -> float | None:
        """The due point, or the fallback look for clock steps if that comes first (rule 3)."""
        if self._look_at is None or (point is not None and point < self._look_at):
            return point
        return self._look_at

    def _point(self) -> float | None:
        """The grid point of the due Tick (rule 1), None when nothing is due."""
        if self._due_s is None:
            return None
        if self._due_s == float("-inf"):
            return float("-inf")  # rule 4: at once
        return tick_point(self._due_s - self._slack_s, self._last_point, self._grid_s)

    def _stepped_back_ms(self) -> int | None:
        """Rule 3: None when no step since the last look; else the step back in ms (0: ahead)."""
        offset_ms = self._clock.wall_ms() - round(self._clock.monotonic() * 1000)
        last, self._offset_ms = self._offset_ms, offset_ms
        if last is None or abs(offset_ms - last) <= STEP_TOLERANCE_MS:
            return None
        logger.warning("wall clock stepped {} by {} ms", "back" if offset_ms < last else "ahead",
                       abs(offset_ms - last))
        return max(last - offset_ms, 0)

    def _sleep_until(self, when_s: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._target = when_s
        self._handle = asyncio.get_running_loop().call_at(when_s, self._timer_fired, when_s)

    def _timer_fired(self, when_s: float) -> None:
        if self._wake is not None and not self._wake.done():
            self._fired = when_s  # rule 5: the timer, not an event, woke us
        self._wake_up()

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _on_clock_set(self, watch: ClockSetWatch) -> None:
        if watch.fired():
            self._wake_up()
