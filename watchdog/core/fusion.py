"""Rule 2 of the book as one pure function: what a REST row means next to the fact we hold.

Rules of this module:
1. REST rows carry ``updateTime``; a row absent from a read (flat) or with ``updateTime`` 0 has
   no time of its own. REST may lag the stream by up to ``max_rest_lag_ms``: what it shows is
   true at some instant in ``[requested_time_ms - max_rest_lag_ms, requested_time_ms]``.
2. A row never overwrites a newer held fact unless even the most lagging REST answer must
   already include that fact (``requested_time_ms - max_rest_lag_ms > held time``): then REST,
   the authority, wins, dated at that lower bound.
3. A fact REST itself gave (a closure learned from REST is dated at its read's lag floor) is
   never undone by a timed row that is not newer: that row shows the state from before the
   fact, i.e. an answer more lagged than the one already taken (REST-lag bursts made a closure
   flap closed → open → closed). A genuinely new open carries a newer ``updateTime``: a later
   read still shows it (NEWER), and so does the stream.
4. Pure and total: every input gets exactly one verdict; the book decides what to do with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

__all__ = ["Held", "RowVerdict", "Verdict", "judge_rest_row"]


class Verdict(StrEnum):
    """What a REST row is, compared with the held fact."""

    SAME = "same"            # REST agrees with the held amount and price
    NEWER = "newer"          # the row is newer than the held fact: take it
    OVERRIDE = "override"    # older or untimed, but beyond max_rest_lag_ms: REST wins
    LAGGING = "lagging"      # a timed row older than the held fact, within lag: ignore it
    AMBIGUOUS = "ambiguous"  # untimed and different, within lag: cannot tell; ask again


@dataclass(frozen=True, slots=True)
class Held:
    """The fact the book holds for a key (exchange time ``time_ms``)."""

    amount: Decimal
    entry_price: Decimal
    time_ms: int
    from_rest: bool = False  # the held fact came from a REST read (rule 3)


@dataclass(frozen=True, slots=True)
class RowVerdict:
    """The verdict and, when the row is taken, the exchange time to date it with."""

    verdict: Verdict
    time_ms: int


def judge_rest_row(held: Held, amount: Decimal, entry_price: Decimal, row_time_ms: int,
                   requested_time_ms: int, max_rest_lag_ms: int) -> RowVerdict:
    """Judge one REST row (``amount`` 0 and ``row_time_ms`` 0 for a key absent from the read).

    Returns:
        SAME (dated ``max(row, held)``), NEWER (dated by the row), OVERRIDE (dated
        ``requested_time_ms - max_rest_lag_ms``), LAGGING or AMBIGUOUS (dated by the held fact).
    """
    if amount == held.amount and entry_price == held.entry_price:
        return RowVerdict(Verdict.SAME, max(row_time_ms, held.time_ms))
    if row_time_ms > held.time_ms:
        return RowVerdict(Verdict.NEWER, row_time_ms)
    if held.from_rest and row_time_ms:
        return RowVerdict(Verdict.LAGGING, held.time_ms)  # rule 3
    lag_floor_ms = requested_time_ms - max_rest_lag_ms
    if lag_floor_ms > held.time_ms:
        return RowVerdict(Verdict.OVERRIDE, lag_floor_ms)
    if row_time_ms:
        return RowVerdict(Verdict.LAGGING, held.time_ms)
    return RowVerdict(Verdict.AMBIGUOUS, held.time_ms)
