"""Stop trigger crossings (book rule 12): a public price crossed a key's stop trigger.

Why apart from the book: the exchange may be closing the position while the user stream says
nothing (the BASUSDT incident), so a crossing doubts a key at once; which later REST read may
lift that doubt is a rule of its own, small enough to test alone. Where prices are followed and
what the watch does after a crossing: core/triggers.py.

Rules of this module:
1. ``StopCrossed`` makes a confirmed key SUSPECT at once and asks a positions snapshot of every
   symbol: the positions read is the one that matters, and scoping it to the symbol would put
   that symbol's order reads in front of it under a tight budget.
2. The crossing is remembered per key: the book's event count when it arrived, the exchange
   time of the crossing price print and the amount held then. A later crossing replaces it; a
   key the book does not hold remembers none.
3. Only a trusted snapshot *requested after* the crossing (by event count) lifts the doubt: one
   already in flight shows the position as it was before. It lifts it only if it shows the
   amount changed or was requested more than ``max_rest_lag_ms`` after the crossing: a lagging
   REST may still show the old amount (book rule 2). A key never crossed is lifted by any
   trusted read.
4. Losing the price feed is no event here: it removes a way to doubt, never confirms anything.
   Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from watchdog.core.effects import RequestSnapshot
from watchdog.core.events import StopCrossed

__all__ = ["Crossing", "crossing_doubt", "crossing_read", "lifts"]


@dataclass(frozen=True, slots=True)
class Crossing:
    """The last crossing of one key's stop trigger (rule 2)."""

    seq: int  # the book's event count when the crossing arrived
    time_ms: int  # exchange time of the crossing price print
    amount: Decimal  # the amount held when the price crossed


def lifts(crossing: Crossing | None, *, request_seq: int, requested_time_ms: int,
          amount: Decimal, max_rest_lag_ms: int) -> bool:
    """Whether a trusted read (requested at event count ``request_seq``, exchange time
    ``requested_time_ms``, showing ``amount``) lifts the crossing's doubt (rule 3)."""
    if crossing is None:
        return True
    if request_seq <= crossing.seq:
        return False
    return amount != crossing.amount or requested_time_ms - max_rest_lag_ms >= crossing.time_ms


def crossing_doubt(event: StopCrossed) -> str:
    """Why a crossed key is SUSPECT (rule 1)."""
    return (f"price {event.price} crossed the trigger {event.trigger_price} of "
            f"{'algo' if event.is_algo else 'order'} {event.order_id}: awaiting a "
            "snapshot requested after it")


def crossing_read(event: StopCrossed) -> RequestSnapshot:
    """The positions read a crossing asks for, of every symbol (rule 1)."""
    return RequestSnapshot(reason=f"stop trigger crossed on {event.key}")
