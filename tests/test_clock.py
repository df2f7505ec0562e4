"""SystemClock satisfies the Clock protocol and reads the real clocks."""

from __future__ import annotations

import time

from watchdog.clock import Clock, SystemClock


def test_system_clock_reads_the_real_clocks() -> None:
    clock: Clock = SystemClock()
    before_ms = time.time_ns() // 1_000_000
    wall_ms = clock.wall_ms()
    assert isinstance(wall_ms, int)
    assert before_ms <= wall_ms <= time.time_ns() // 1_000_000
    first = clock.monotonic()
    assert clock.monotonic() >= first
