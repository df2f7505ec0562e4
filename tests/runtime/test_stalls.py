"""The event-loop stall watch (runtime/stalls.py): the pure decisions with times passed in, and
the glue on a real loop fed by the timers that already run (ticker, heartbeat, poller, lead)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loguru import logger

from watchdog.runtime.stalls import (
    LATENESS_BUCKETS,
    STALL_S,
    LoopStalls,
    Stall,
    StallWatch,
    Usage,
    process_usage,
)
from watchdog.runtime.ticker import Ticker

# ------------------------------------------------------------------ StallWatch, pure


def test_wakes_on_time_or_a_little_late_are_no_stall() -> None:
    watch = StallWatch()
    for i in range(100):
        assert not watch.woke("heartbeat", i, i + 0.0003)
    assert not watch.woke("poller", 100.5, 100.5 + STALL_S * 0.99)
    assert watch.close() is None
    assert (watch.stalls, watch.wakes) == (0, 101)
    assert watch.worst_s == pytest.approx(STALL_S * 0.99)


def test_one_stall_is_reported_once_with_its_worst_lateness_and_every_late_timer() -> None:
    watch = StallWatch()
    assert not watch.woke("ticker", 9.5, 9.9, Usage(user_s=1.0, voluntary=10))  # last seen
    # The loop blocked from ~10.0 to 14.5: every timer due meanwhile wakes in the same round.
    assert watch.woke("lead", 10.5, 14.5, Usage(user_s=1.1, voluntary=12, involuntary=3))
    assert not watch.woke("heartbeat", 10.0, 14.5001, Usage(user_s=1.1, voluntary=12))
    assert not watch.woke("poller", 11.2, 14.5002)
    stall = watch.close()
    assert stall is not None
    assert (stall.number, stall.timer, stall.timers) == (1, "heartbeat", ("lead", "heartbeat", "poller"))
    assert stall.late_s == pytest.approx(4.5001)
    assert (stall.asked_s, stall.woke_s) == (10.0, 14.5001)
    assert stall.window_s == pytest.approx(14.5 - 9.9)  # from the last wake seen before it
    assert stall.used == Usage(user_s=pytest.approx(0.1), voluntary=2, involuntary=3)
    assert watch.close() is None  # reported once
    assert watch.stalls == 1


def test_a_timer_on_time_resumed_first_in_the_stall_s_round_hides_nothing() -> None:
    """The first task resumed after a stall may be one whose timer came due just before its
    end: on time itself, it must not make the late ones look like a busy round."""
    watch = StallWatch()
    assert not watch.woke("ticker", 14.45, 14.5)
    assert watch.woke("heartbeat", 10.0, 14.5001)
    stall = watch.close()
    assert stall is not None
    assert stall.late_s == pytest.approx(4.5001)


def test_a_wake_the_reported_stall_explains_is_no_new_one() -> None:
    """A timer due during a stall that resumes after the report (delayed once more, briefly):
    its lateness is that stall's, counted once (rule 2)."""
    watch = StallWatch()
    assert watch.woke("heartbeat", 10.0, 14.5)
    assert watch.close() is not None
    assert not watch.woke("poller", 12.0, 14.7)
    assert watch.close() is None
    assert watch.woke("lead", 12.0, 15.1)  # 0.6 s after the stall's end: a stall of its own
    assert watch.close() is not None
    assert watch.stalls == 2


def test_two_stalls_apart_are_two_warnings() -> None:
    watch = StallWatch()
    assert watch.woke("heartbeat", 1.0, 2.0)
    first = watch.close()
    assert not watch.woke("ticker", 2.25, 2.2501)
    assert watch.woke("heartbeat", 3.0, 5.0)
    second = watch.close()
    assert first is not None
    assert second is not None
    assert (first.number, second.number, watch.stalls) == (1, 2, 2)
    assert second.late_s == pytest.approx(2.0)


def test_the_lateness_histogram_counts_every_wake_in_its_bucket() -> None:
    watch = StallWatch()
    for late in (0.0, 0.001, 0.0011, 0.3, 20.0):
        watch.woke("poller", 0.0, late)
    assert watch.counts[0] == 2  # <= 0.001 (Prometheus' le is inclusive)
    assert watch.counts[1] == 1
    assert watch.counts[LATENESS_BUCKETS.index(0.5)] == 1
    assert watch.counts[-1] == 1  # +Inf
    assert watch.late_sum_s == pytest.approx(20.3021)


def test_an_early_wake_counts_as_zero_late() -> None:
    """asyncio runs a timer up to its clock's resolution early."""
    watch = StallWatch()
    watch.woke("ticker", 5.0, 4.9999999)
    assert (watch.worst_s, watch.late_sum_s, watch.counts[0]) == (0.0, 0.0, 1)


# A round: the loop's clock when it resumed the tasks, and each wake's lateness in it.
rounds = st.lists(st.tuples(st.floats(0.0, 3.0),
                            st.lists(st.floats(0.0, 3.0), min_size=1, max_size=4)),
                  min_size=1, max_size=30)


@given(rounds)
def test_properties_over_random_rounds(history: list[tuple[float, list[float]]]) -> None:
    """Every wake is counted and the worst is the worst; at most one stall a round, reported
    exactly when a wake was late past the threshold against both its own time and the end of
    the last stall reported; it names that round's worst wake and every late timer."""
    watch = StallWatch()
    now_s, ended_s, wakes, reported = 0.0, -math.inf, 0, 0
    lateness: list[float] = []
    for gap_s, lates in history:
        now_s += gap_s
        late = [x for x in lates if x >= STALL_S and now_s - max(now_s - x, ended_s) >= STALL_S]
        found = [watch.woke(f"t{i}", now_s - x, now_s) for i, x in enumerate(lates)]
        assert sum(found) <= 1
        stall = watch.close()
        assert (stall is not None) == bool(late)
        if stall is not None:
            reported += 1
            ended_s = now_s
            assert isinstance(stall, Stall)
            assert stall.number == reported
            assert stall.late_s == pytest.approx(max(late))
            assert stall.timers == tuple(f"t{i}" for i, x in enumerate(lates) if x >= STALL_S)
        wakes += len(lates)
        lateness += lates
    assert (watch.wakes, watch.stalls, sum(watch.counts)) == (wakes, reported, wakes)
    assert watch.worst_s == pytest.approx(max(lateness))


# ------------------------------------------------------------------ LoopStalls, on a real loop


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    yield lines
    logger.remove(sink)


async def test_a_late_wake_is_one_warning_after_its_round(warnings: list[str]) -> None:
    stalls = LoopStalls()
    loop = asyncio.get_running_loop()
    now_s = loop.time()
    stalls.watch.woke("ticker", now_s - 3.0, now_s - 3.0, process_usage())  # a wake before it
    stalls.woke("heartbeat", now_s - 2.0)
    stalls.woke("lead", now_s - 2.5)  # same round: the same stall, the worse lateness
    assert warnings == []  # reported once the round is over
    await asyncio.sleep(0)
    assert len(warnings) == 1, warnings
    line = warnings[0]
    assert line.startswith("event loop stalled: lead woke 2.5"), line
    assert "late: heartbeat, lead" in line
    assert "cpu_user_s=" in line
    assert "ctx_involuntary=" in line
    assert stalls.watch.stalls == 1


async def test_several_accounts_name_their_timers(warnings: list[str]) -> None:
    """Rule 5: one watch for the process, each account's timers named with it."""
    stalls = LoopStalls()
    loop = asyncio.get_running_loop()
    now_s = loop.time()
    stalls.labelled("sub-1")("heartbeat", now_s - 2.0)
    stalls.labelled("sub-2")("heartbeat", now_s - 2.2)
    await asyncio.sleep(0)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("event loop stalled: heartbeat[sub-2] woke 2.2"), warnings[0]
    assert "late: heartbeat[sub-1], heartbeat[sub-2]" in warnings[0]


def test_process_usage_moves_forward() -> None:
    before = process_usage()
    sum(i * i for i in range(200_000))
    used = process_usage().minus(before)
    assert used.user_s + used.system_s >= 0
    assert min(used.voluntary, used.involuntary, used.full_gcs) >= 0


class _Woke:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.heard = asyncio.Event()

    def __call__(self, timer: str, asked_s: float) -> None:
        self.calls.append((timer, asked_s))
        self.heard.set()


async def test_the_ticker_reports_its_timer_s_wakes() -> None:
    """ticker.py rule 5: a wake by its timer tells the loop time (a grid point) it asked for."""
    from watchdog.clock import SystemClock

    woke = _Woke()
    ticked = asyncio.Event()

    async def emit(_event: object) -> None:
        ticked.set()

    ticker = Ticker(emit, SystemClock(), grid_s=0.01, clock_watch=False, woke=woke)
    task = asyncio.create_task(ticker.run())
    try:
        async with asyncio.timeout(10):
            await ticked.wait()  # the first Tick goes at once (rule 4), no timer
            assert woke.calls == []
            ticker.due_in(0.02)  # a timer: its wake is reported
            await woke.heard.wait()
        timer, asked_s = woke.calls[0]
        assert timer == "ticker"
        assert asked_s == pytest.approx(round(asked_s / 0.01) * 0.01)  # a grid point
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
