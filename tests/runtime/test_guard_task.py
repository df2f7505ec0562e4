"""The guard shell's pure part: where the last-resort stop goes (runtime/guard_task.py rule 2)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from watchdog.runtime.guard_task import stop_price

TICK = Decimal("0.00000010")


def test_below_the_mark_for_a_long_above_for_a_short_rounded_away() -> None:
    mark = Decimal("0.00832684")
    assert stop_price("SELL", mark, Decimal(2), TICK) == Decimal("0.00816030")
    assert stop_price("BUY", mark, Decimal(2), TICK) == Decimal("0.00849340")
    assert stop_price("SELL", Decimal("60000"), Decimal("5"), Decimal("0.1")) == Decimal("57000.0")


@given(mark=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=4),
       pct=st.decimals(min_value=Decimal("0.1"), max_value=Decimal("50"), places=1),
       tick=st.sampled_from([Decimal("0.0001"), Decimal("0.01"), Decimal("0.1"), Decimal(1)]))
def test_never_closer_to_the_mark_than_asked_and_on_the_tick(mark: Decimal, pct: Decimal,
                                                             tick: Decimal) -> None:
    low = stop_price("SELL", mark, pct, tick)
    high = stop_price("BUY", mark, pct, tick)
    assert low % tick == 0
    assert high % tick == 0
    assert high >= mark * (1 + pct / 100)
    assert low > 0
    assert low <= mark * (1 - pct / 100) or low == tick  # never at or below zero
