"""What leaves the book for one key: its PositionView, the Publish and the open/closed Notify.

Why apart from the book: the book decides what it knows; how that knowledge is shown (an
UNKNOWN state with a reason, a refresh the store may apply cheaply, a no-op that publishes
nothing, a change told to bots) is the contract with the store and the bots (book rules 6 and
10), and reads best in one place.

Rules of this module:
1. ``state`` is OPEN/CLOSED only while knowledge is CONFIRMED, else UNKNOWN with the held
   reason (the last amount is kept for diagnosis); a CONFIRMED view carries no reason.
2. A view alike in every fact and in ``verified_ms`` to the one last published is a no-op:
   nothing is published. A view that only re-verifies the last one (CONFIRMED, a later
   ``verified_ms``, every fact alike) is published as a refresh of its version, which the store
   may apply by moving ``verified_ms`` alone (effects rule 2).
3. A confirmed view whose state differs from the last confirmed one shown is told as
   ``position_opened``/``position_closed`` with its amount; when the last state shown was an
   earlier run's, read back by REST, also with ``while_down=true`` and ``last_seen_ms``.
4. Pure: no clock, no I/O.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from watchdog.core.effects import Notify, Publish
from watchdog.core.model import ZERO, Knowledge, PositionKey, PositionState, PositionView, Source

__all__ = ["Shown", "change_notify", "publish_of", "view_of"]


class Shown(Protocol):
    """What the book holds for one key, as far as its view shows it."""

    key: PositionKey
    amount: Decimal
    entry_price: Decimal
    source: Source
    as_of_time_ms: int
    knowledge: Knowledge
    verified_ms: int
    reason: str


def view_of(entry: Shown, version: int) -> PositionView:
    """The view of an entry (rule 1)."""
    if entry.knowledge is Knowledge.CONFIRMED:
        state = PositionState.OPEN if entry.amount != ZERO else PositionState.CLOSED
    else:
        state = PositionState.UNKNOWN
    return PositionView(
        key=entry.key,
        state=state,
        knowledge=entry.knowledge,
        amount=entry.amount,
        entry_price=entry.entry_price,
        source=entry.source,
        as_of_time_ms=entry.as_of_time_ms,
        verified_ms=entry.verified_ms,
        version=version,
        reason="" if entry.knowledge is Knowledge.CONFIRMED else entry.reason,
    )


def publish_of(old: PositionView | None, new: PositionView) -> Publish | None:
    """The Publish of ``new`` after ``old`` was last published; None for a no-op (rule 2)."""
    if old is not None and old.verified_ms == new.verified_ms and _same_facts(old, new):
        return None
    return Publish(new, _refresh_of(old, new))


def change_notify(confirmed_state: PositionState | None, view: PositionView,
                  while_down_from_ms: int | None) -> Notify | None:
    """The Notify of a confirmed ``view`` after ``confirmed_state`` was last shown, or None
    (rule 3). ``while_down_from_ms``: the ``verified_ms`` of an earlier run's state."""
    if confirmed_state is None or confirmed_state is view.state:
        return None
    kind = "position_opened" if view.state is PositionState.OPEN else "position_closed"
    detail: tuple[tuple[str, str], ...] = (("amount", str(view.amount)),)
    if while_down_from_ms is not None:
        detail += (("while_down", "true"), ("last_seen_ms", str(while_down_from_ms)))
    return Notify(kind, view.key, detail)


def _refresh_of(old: PositionView | None, new: PositionView) -> int:
    """``old.version`` when ``new`` only re-verifies ``old`` (a later ``verified_ms``, every fact
    and the state alike), else 0: the store may then move ``verified_ms`` alone (effects rule 2)."""
    if (old is None or new.knowledge is not Knowledge.CONFIRMED
            or new.verified_ms <= old.verified_ms or not _same_facts(old, new)):
        return 0
    return old.version


def _same_facts(old: PositionView, new: PositionView) -> bool:
    """Two views of one key alike in everything but ``verified_ms`` and ``version``."""
    return (old.state is new.state and old.knowledge is new.knowledge and old.amount == new.amount
            and old.entry_price == new.entry_price and old.source is new.source
            and old.as_of_time_ms == new.as_of_time_ms and old.reason == new.reason)
