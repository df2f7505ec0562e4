"""The shell's clocks, behind one small Protocol so tests can drive time.

Rules of this module:
1. ``monotonic()`` (seconds, float) is for intervals, deadlines and ages inside this process.
2. ``wall_ms()`` (epoch ms, int) is only for Binance ``timestamp`` parameters and for the
   ``now_ms`` the core is given; it is never compared with ``monotonic()``.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Where the shell reads time; the core never does."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...

    def wall_ms(self) -> int:
        """Epoch milliseconds of this machine (may be skewed from Binance's)."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000
