"""WeightBudget keeps a running sum of its 60 s window: always the sum of what is still in it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from watchdog.binance.budget import WeightBudget


@given(st.lists(st.tuples(st.floats(0.0, 40.0), st.integers(1, 40)), max_size=60))
def test_own_use_is_the_weight_sent_in_the_last_minute(steps: list[tuple[float, int]]) -> None:
    budget = WeightBudget(360)
    sent: list[tuple[float, int]] = []
    now_s = 0.0
    for dt_s, weight in steps:
        now_s += dt_s
        budget.record(weight, now_s)
        sent.append((now_s, weight))
        assert budget.own_used_1m(now_s) == sum(w for t, w in sent if t > now_s - 60.0)
        room = budget.wait_for_s(weight, urgent=False, now_s=now_s) == 0
        assert room == (sum(w for t, w in sent if t > now_s - 60.0) + weight <= 360)
