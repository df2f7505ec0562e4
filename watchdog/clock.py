"""The shell's only source of time; the core receives ``now`` as an argument instead.

Two kinds of time, never compared with each other (their origins differ, so a difference
between them means nothing):
- ``monotonic()`` seconds, for intervals, deadlines and ages measured locally (``*_at``);
- ``wall_ms()`` epoch milliseconds, for Binance ``timestamp`` parameters and for the
  ``verified_ms``/``now_ms`` values the core and Redis readers compare with exchange times.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """What the shell needs from time; tests inject a fake one."""

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
