"""Time for every layer: the shell reads a ``Clock``; the core receives ``now`` as an argument.

A leaf module (standard library only), so the adapters, the daemon, the operator commands and
the tests all import it without an arrow running back up.

Two kinds of time, never compared with each other (their origins differ, so a difference
between them means nothing):
- ``monotonic()`` seconds, for intervals, deadlines and ages measured locally (``*_at``);
- ``wall_ms()`` epoch milliseconds, for Binance ``timestamp`` parameters and for the
  ``verified_ms``/``now_ms`` values the core and Redis readers compare with exchange times.

``SystemClock`` is what ships; ``ManualClock`` is what tests inject (in the spirit of trio's
``Clock``/``MockClock``): time that moves only when the test says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DEFAULT_WALL_MS", "Clock", "ManualClock", "SystemClock"]

# 2026-12-01T00:00:00Z: a plausible "now" for exchange timestamps in tests.
DEFAULT_WALL_MS = 1_796_083_200_000


class Clock(Protocol):
    """What the shell needs from time; tests inject a ``ManualClock``."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (unrelated to the wall clock)."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch, from the system clock."""
        ...


class SystemClock:
    """The real clocks: ``time.monotonic`` (what asyncio's loop uses) and ``time.time_ns``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


@dataclass
class ManualClock:
    """A ``Clock`` whose readings change only when the test changes them, so ages, deadlines
    and keepalive beats are deterministic and no test waits for real time to pass.

    ``advance`` moves both clocks by the same interval, as real time would. Assign ``now_s``
    or ``now_ms`` directly to set one alone: a wall-clock step (NTP, a VM resume) is a change
    of ``now_ms`` that ``now_s`` does not see.
    """

    now_s: float = 0.0
    now_ms: int = DEFAULT_WALL_MS

    def monotonic(self) -> float:
        return self.now_s

    def wall_ms(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on both clocks; refuses to go back (monotonic time cannot)."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards ({seconds} s)")
        self.now_s += seconds
        self.now_ms += round(seconds * 1000)
