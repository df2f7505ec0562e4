"""The shared beat (runtime/beat.py): never later than unaligned, one float per grid point."""

from __future__ import annotations

import asyncio
import itertools
import math

from hypothesis import example, given
from hypothesis import strategies as st

from watchdog.runtime.beat import beat_at, sleep_until

starts = st.floats(min_value=0.0, max_value=1e7, allow_nan=False, allow_infinity=False)
intervals = st.sampled_from([0.01, 0.05, 0.25, 0.3, 0.5, 1.0, 1.5, 2.0, 10.0])
grids = st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.3, 1.0])


@example(0.2, 1.5, 0.1)  # found by hypothesis in a helper's run (session 8)
@example(2.0, 0.01, 0.01)  # found in the fresh-clone CI (session 7)
@given(starts, intervals, grids)
def test_rule_1_never_later_than_unaligned_and_after_the_start(start: float, interval: float,
                                                              grid: float) -> None:
    at = beat_at(start, interval, grid)
    assert start < at <= start + interval
    if grid > 0 and interval >= grid:
        assert at > start + interval - grid - 1e-6 * max(1.0, start)  # loses less than a grid
        point = math.floor((start + interval) / grid) * grid
        # On the grid; or, when rounding put the point at the start (2.0 + 0.01 floors to 2.0)
        # or past the due time ((0.2 + 1.5) / 0.1 floors to 17, and 17 * 0.1 > 1.7),
        # unaligned: rule 1's fallback, never later.
        assert at == point or (not start < point <= start + interval
                               and at == start + interval)


@given(starts, st.floats(min_value=0.0, max_value=0.2499), st.sampled_from([0.25, 0.5, 1.0]))
def test_rule_2_tasks_due_on_one_point_get_the_same_float(start: float, shift: float,
                                                          interval: float) -> None:
    """The ticker (0.25 s), the renewal (0.5 s) and the heartbeat (1 s), started at other phases
    of one grid period, wake on the very same loop times."""
    grid = 0.25
    base = math.floor(start / grid) * grid
    a = beat_at(base + shift / 2, interval, grid)
    b = beat_at(base + shift, interval, grid)
    if a > base + shift:  # both still ahead of the later start
        assert a == b
    tick = beat_at(base + shift, grid, grid)  # the ticker's next wake-up
    ticks = {math.floor(tick / grid + k) * grid for k in range(8)}
    assert beat_at(base + shift, interval, grid) in ticks


def test_the_default_periods_keep_their_length_on_the_grid() -> None:
    """A round that takes a little time still comes back every period exactly, not later."""
    for interval in (0.25, 0.5, 1.0):
        at, seen = 100.0, []
        for _ in range(20):
            start = at + 0.003  # the round's own duration
            at = beat_at(start, interval, 0.25)
            seen.append(at)
        gaps = {round(b - a, 9) for a, b in itertools.pairwise(seen)}
        assert gaps == {interval}


async def test_rule_3_tasks_sleeping_until_one_point_wake_in_one_loop_iteration() -> None:
    loop = asyncio.get_running_loop()
    when = beat_at(loop.time(), 0.05, 0.05)
    woke: list[float] = []
    iterations = 0

    def count() -> None:
        nonlocal iterations
        iterations += 1
        if len(woke) < 3:
            loop.call_soon(count)

    async def sleeper() -> None:
        await sleep_until(when)
        woke.append(iterations)

    loop.call_soon(count)
    async with asyncio.timeout(5):
        await asyncio.gather(sleeper(), sleeper(), sleeper())
    assert loop.time() >= when
    assert len(set(woke)) == 1


async def test_sleep_until_a_past_time_returns_at_once() -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(1):
        await sleep_until(loop.time() - 1.0)
