"""Age deadlines and the wall clock stepped back (``core/ageing.py``, book rule 5)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from watchdog.core.ageing import Ageing

MAX_AGE_MS = 5000


def test_nothing_is_due_until_the_earliest_deadline_passes() -> None:
    ageing = Ageing(max_age_ms=MAX_AGE_MS)
    assert ageing.due(1_000) is None  # nothing watched
    ageing.watch(2_000)
    ageing.watch(1_500)  # the earliest deadline wins
    ageing.watch(3_000)
    assert ageing.due(6_500) is None  # exactly max_age_ms old: still fresh
    assert ageing.due(6_501) == 0
    assert ageing.due(6_502) is None  # a scan forgets the deadline until watched again


def test_a_step_back_is_due_at_once_with_its_size() -> None:
    ageing = Ageing(max_age_ms=MAX_AGE_MS)
    assert ageing.due(10_000) is None
    ageing.watch(10_000)
    assert ageing.due(9_000) == 1_000
    assert ageing.due(9_000) is None  # the same time again is no step


def test_lapsed_is_strict() -> None:
    ageing = Ageing(max_age_ms=MAX_AGE_MS)
    assert not ageing.lapsed(1_000, 6_000)
    assert ageing.lapsed(1_000, 6_001)


@given(st.lists(st.tuples(st.integers(0, 3 * MAX_AGE_MS), st.booleans()), max_size=40))
def test_no_lapse_goes_unnoticed_on_a_clock_that_only_moves_forward(
        steps: list[tuple[int, bool]]) -> None:
    """Whatever is watched and still held is reported due no later than its first lapsed call."""
    ageing = Ageing(max_age_ms=MAX_AGE_MS)
    now_ms = 0
    held: list[int] = []
    for advance_ms, verify in steps:
        now_ms += advance_ms
        if ageing.due(now_ms) is not None:
            held = [v for v in held if not ageing.lapsed(v, now_ms)]
            for verified_ms in held:
                ageing.watch(verified_ms)
        assert not any(ageing.lapsed(v, now_ms) for v in held)
        if verify:
            held.append(now_ms)
            ageing.watch(now_ms)
