"""Stop trigger crossings (``core/crossing.py``, book rule 12): which read lifts the doubt.

The book's side (a crossing makes a key suspect, a read after it clears it) is tested in
test_triggers.py; these test the rule on its own.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from watchdog.core.crossing import Crossing, crossing_doubt, crossing_read, lifts
from watchdog.core.events import StopCrossed
from watchdog.core.model import OrderId, PositionKey, PositionSide, Symbol

LAG = 2_000
CROSSED = Crossing(seq=10, time_ms=50_000, amount=Decimal("3"))


def _lifts(crossing: Crossing | None, seq: int, requested_ms: int, amount: str) -> bool:
    return lifts(crossing, request_seq=seq, requested_time_ms=requested_ms,
                 amount=Decimal(amount), max_rest_lag_ms=LAG)


def test_a_key_never_crossed_is_lifted_by_any_trusted_read() -> None:
    assert _lifts(None, 1, 0, "3")


def test_a_read_requested_before_or_with_the_crossing_never_lifts_it() -> None:
    assert not _lifts(CROSSED, 9, 99_000, "0")  # in flight: shows the position as it was
    assert not _lifts(CROSSED, 10, 99_000, "0")


def test_a_read_after_it_lifts_it_when_the_amount_changed() -> None:
    assert _lifts(CROSSED, 11, 50_000, "0")


def test_the_same_amount_lifts_it_only_past_the_rest_lag() -> None:
    assert not _lifts(CROSSED, 11, 50_000 + LAG - 1, "3")  # REST may still show the old amount
    assert _lifts(CROSSED, 11, 50_000 + LAG, "3")


@given(st.integers(0, 20), st.integers(0, 100_000), st.sampled_from(["0", "3", "-1"]))
def test_no_read_requested_up_to_the_crossing_lifts_it(seq: int, requested_ms: int,
                                                        amount: str) -> None:
    if seq <= CROSSED.seq:
        assert not _lifts(CROSSED, seq, requested_ms, amount)


def test_the_doubt_names_the_stop_and_the_read_covers_every_symbol() -> None:
    key = PositionKey(Symbol("BASUSDT"), PositionSide.BOTH)
    event = StopCrossed(key=key, order_id=OrderId(7), is_algo=True, trigger_price=Decimal("1.5"),
                        price=Decimal("1.49"), price_time_ms=50_000)
    assert crossing_doubt(event) == ("price 1.49 crossed the trigger 1.5 of algo 7: awaiting a "
                                     "snapshot requested after it")
    read = crossing_read(event)
    assert read.symbols is None
    assert "BASUSDT" in read.reason
