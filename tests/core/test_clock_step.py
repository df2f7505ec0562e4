"""docs/RULES.md rule 2: a wall-clock step must not keep knowledge fresh past ``max_age_ms``.
Pure: the real PositionBook with injected times."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.core.facts import BTC, ETH, amount, requested, snapshot
from tests.core.test_book import Harness, publishes
from watchdog.core.book import BookPolicy
from watchdog.core.events import StreamConnected, Tick
from watchdog.core.model import Knowledge, PositionState

MAX_AGE_MS = 5_000


def confirmed_at(now_ms: int) -> Harness:
    h = Harness(BookPolicy(max_age_ms=MAX_AGE_MS, max_rest_lag_ms=500))
    h.apply(StreamConnected(1), now_ms)
    h.poll(now_ms, amount(BTC, 1, now_ms - 10))
    view = h.book.view(BTC)
    assert view is not None
    assert view.state is PositionState.OPEN
    return h


def test_forward_step_expires_at_once() -> None:
    h = confirmed_at(100_000)
    h.apply(Tick(), 100_000 + 3_600_000)
    assert h.book.view(BTC).knowledge is Knowledge.EXPIRED  # type: ignore[union-attr]


def test_backward_step_does_not_extend_confirmed_knowledge() -> None:
    h = confirmed_at(100_000)
    h.apply(Tick(), 40_000)                     # NTP steps the clock back by 60 s
    h.apply(Tick(), 40_000 + MAX_AGE_MS + 1)    # more than max_age_ms later, no new fact
    assert h.book.view(BTC).knowledge is not Knowledge.CONFIRMED  # type: ignore[union-attr]


def test_any_backward_step_publishes_unknown_at_once_with_the_reason() -> None:
    """Even 1 ms back, and even for knowledge verified before the step: its age is unknown."""
    h = confirmed_at(100_000)
    h.apply(Tick(), 103_000)
    [published] = publishes(h.apply(Tick(), 102_999))
    assert published.view.state is PositionState.UNKNOWN
    assert published.view.knowledge is Knowledge.EXPIRED
    assert "clock went back 1 ms" in published.view.reason


def test_a_step_back_breaks_the_flat_runs_the_reaper_relies_on() -> None:
    h = Harness(BookPolicy(max_age_ms=MAX_AGE_MS, max_rest_lag_ms=500))
    h.apply(StreamConnected(1), 100_000)
    h.poll(100_000, amount(BTC, 0, 99_000))
    assert h.book.flat_since(BTC) == 100_000
    assert h.book.flat_since(ETH) == 100_000   # never seen: the all-symbols run
    h.apply(Tick(), 99_000)
    assert h.book.flat_since(BTC) is None
    assert h.book.flat_since(ETH) is None


def test_a_fresh_read_after_the_step_confirms_again_and_ages_on_the_new_clock() -> None:
    h = confirmed_at(100_000)
    h.apply(Tick(), 40_000)
    # requested_time_ms is exchange time: the exchange's clock did not step with ours
    h.apply(requested(2, 100_150), 40_100)
    h.apply(snapshot(2, 100_150, amount(BTC, 1, 99_990)), 40_100)
    view = h.book.view(BTC)
    assert view is not None
    assert (view.knowledge, view.verified_ms) == (Knowledge.CONFIRMED, 40_100)
    h.apply(Tick(), 40_100 + MAX_AGE_MS)
    assert h.book.view(BTC).knowledge is Knowledge.CONFIRMED  # type: ignore[union-attr]
    h.apply(Tick(), 40_100 + MAX_AGE_MS + 1)
    assert h.book.view(BTC).knowledge is Knowledge.EXPIRED  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3_000), st.integers(-20_000, 20_000)), max_size=30))
@example([(1, 0), (1, 0), (1999, 0), (3000, -1)])
def test_confirmed_outlives_max_age_only_by_steps_hidden_between_two_readings(
        steps: list[tuple[int, int]]) -> None:
    """True time only moves forward; the wall clock the book is given also jumps by a random
    step (either way) at each tick. A step back is seen when a reading is smaller than the one
    before; one smaller than the time elapsed between the two readings cannot be told from the
    wall clock alone (the shell ticks every tick_interval_s, so each hides at most that much).
    CONFIRMED never outlives max_age_ms of true time by more than those hidden steps."""
    true_ms, wall_ms, hidden_ms = 100_000, 100_000, 0
    h = confirmed_at(true_ms)
    for elapsed_ms, jump_ms in steps:
        true_ms += elapsed_ms
        previous_ms, wall_ms = wall_ms, wall_ms + elapsed_ms + jump_ms
        if jump_ms < 0 and wall_ms >= previous_ms:
            hidden_ms -= jump_ms
        h.apply(Tick(), wall_ms)
        if h.book.view(BTC).knowledge is Knowledge.CONFIRMED:  # type: ignore[union-attr]
            assert true_ms - 100_000 <= MAX_AGE_MS + hidden_ms
