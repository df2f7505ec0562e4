"""Rule 2 as a table: one REST row against the held fact (lag 2000 ms, requested at 10_000)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from watchdog.core.fusion import Held, RowVerdict, Verdict, judge_rest_row

D = Decimal
OPEN_AT_9000 = Held(D(1), D(100), 9000)   # fresher than the lag floor (8000)
OPEN_AT_7000 = Held(D(1), D(100), 7000)   # older than the lag floor


@pytest.mark.parametrize(("held", "amount", "price", "row_time_ms", "expected"), [
    # same amount and price: agreement, dated by the newer of the two
    (OPEN_AT_9000, D(1), D(100), 5000, RowVerdict(Verdict.SAME, 9000)),
    (OPEN_AT_9000, D(1), D(100), 9500, RowVerdict(Verdict.SAME, 9500)),
    # a newer timed row wins
    (OPEN_AT_9000, D(2), D(101), 9500, RowVerdict(Verdict.NEWER, 9500)),
    (OPEN_AT_9000, D(0), D(0), 9500, RowVerdict(Verdict.NEWER, 9500)),
    # equal time, different value: not newer; within lag a timed row is lag
    (OPEN_AT_9000, D(2), D(101), 9000, RowVerdict(Verdict.LAGGING, 9000)),
    # an older timed row within lag: REST has not caught up
    (OPEN_AT_9000, D(2), D(101), 4000, RowVerdict(Verdict.LAGGING, 9000)),
    # untimed flat (absent, or updateTime 0) within lag: a fresh open may be hidden
    (OPEN_AT_9000, D(0), D(0), 0, RowVerdict(Verdict.AMBIGUOUS, 9000)),
    # beyond the lag floor REST must include the held fact: REST, the authority, wins
    (OPEN_AT_7000, D(0), D(0), 0, RowVerdict(Verdict.OVERRIDE, 8000)),
    (OPEN_AT_7000, D(2), D(101), 4000, RowVerdict(Verdict.OVERRIDE, 8000)),
    # exactly at the floor is still within lag
    (Held(D(1), D(100), 8000), D(0), D(0), 0, RowVerdict(Verdict.AMBIGUOUS, 8000)),
])
def test_judge_rest_row(held: Held, amount: Decimal, price: Decimal, row_time_ms: int,
                        expected: RowVerdict) -> None:
    assert judge_rest_row(held, amount, price, row_time_ms, 10_000, 2000) == expected


# Rule 3: a fact REST gave is not undone by a timed row that is not newer (a more lagged answer).
CLOSED_BY_REST_AT_8000 = Held(D(0), D(0), 8000, from_rest=True)


@pytest.mark.parametrize(("held", "amount", "price", "row_time_ms", "expected"), [
    # the open row of before the closure, from an answer lagging more than the one taken
    (CLOSED_BY_REST_AT_8000, D(1), D(100), 7000, RowVerdict(Verdict.LAGGING, 8000)),
    (CLOSED_BY_REST_AT_8000, D(1), D(100), 8000, RowVerdict(Verdict.LAGGING, 8000)),
    # a genuinely new open carries a newer updateTime
    (CLOSED_BY_REST_AT_8000, D(1), D(100), 8500, RowVerdict(Verdict.NEWER, 8500)),
    # the same held fact from the stream: REST, the authority, still overrides (rule 2)
    (Held(D(0), D(0), 7000), D(1), D(100), 6000, RowVerdict(Verdict.OVERRIDE, 8000)),
    # an untimed row against a REST-held open: rule 2 as before
    (Held(D(1), D(100), 7000, from_rest=True), D(0), D(0), 0, RowVerdict(Verdict.OVERRIDE, 8000)),
])
def test_a_fact_from_rest_is_not_undone_by_an_older_row(
        held: Held, amount: Decimal, price: Decimal, row_time_ms: int,
        expected: RowVerdict) -> None:
    assert judge_rest_row(held, amount, price, row_time_ms, 10_000, 2000) == expected
