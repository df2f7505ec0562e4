"""Both clocks satisfy the Clock protocol: SystemClock reads the real clocks, ManualClock moves
only when told to."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.clock import DEFAULT_WALL_MS, Clock, ManualClock, SystemClock


def test_system_clock_reads_the_real_clocks() -> None:
    clock: Clock = SystemClock()
    before_ms = time.time_ns() // 1_000_000
    wall_ms = clock.wall_ms()
    assert isinstance(wall_ms, int)
    assert before_ms <= wall_ms <= time.time_ns() // 1_000_000
    first = clock.monotonic()
    assert clock.monotonic() >= first


def test_manual_clock_stands_still_until_told() -> None:
    clock: Clock = ManualClock()
    assert (clock.monotonic(), clock.wall_ms()) == (0.0, DEFAULT_WALL_MS)
    assert (clock.monotonic(), clock.wall_ms()) == (0.0, DEFAULT_WALL_MS)


def test_advance_moves_both_clocks_by_the_same_interval() -> None:
    clock = ManualClock(now_s=10.0, now_ms=1_000)
    clock.advance(1.5)
    assert (clock.monotonic(), clock.wall_ms()) == (11.5, 2_500)
    clock.advance(0)
    assert (clock.monotonic(), clock.wall_ms()) == (11.5, 2_500)


def test_a_wall_clock_step_leaves_the_monotonic_clock_alone() -> None:
    clock = ManualClock(now_s=10.0, now_ms=1_000)
    clock.now_ms -= 30_000  # NTP steps the wall clock back
    assert (clock.monotonic(), clock.wall_ms()) == (10.0, -29_000)


def test_advance_refuses_to_go_back() -> None:
    clock = ManualClock(now_s=5.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-0.001)
    assert clock.monotonic() == 5.0


@given(st.lists(st.integers(min_value=0, max_value=10_000_000), max_size=50))
def test_advancing_in_whole_milliseconds_keeps_the_clocks_in_step(steps_ms: list[int]) -> None:
    clock = ManualClock()
    for step in steps_ms:
        clock.advance(step / 1000)
    assert clock.wall_ms() - DEFAULT_WALL_MS == sum(steps_ms)
    assert clock.monotonic() == pytest.approx(sum(steps_ms) / 1000)
