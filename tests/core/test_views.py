"""Published views (``core/views.py``, book rules 6 and 10): view, publish or no-op, Notify.

The book's side is tested in test_book.py and test_book_refresh.py; these test the rules alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from watchdog.core.model import (
    Knowledge,
    PositionKey,
    PositionSide,
    PositionState,
    PositionView,
    Source,
    Symbol,
)
from watchdog.core.views import change_notify, publish_of, view_of

KEY = PositionKey(Symbol("BASUSDT"), PositionSide.BOTH)


@dataclass
class _Held:
    key: PositionKey = KEY
    amount: Decimal = Decimal("3")
    entry_price: Decimal = Decimal("1.5")
    source: Source = Source.REST
    as_of_time_ms: int = 1_000
    knowledge: Knowledge = Knowledge.CONFIRMED
    verified_ms: int = 2_000
    reason: str = "kept for later"


def test_only_confirmed_knowledge_shows_a_state_and_only_unknown_a_reason() -> None:
    confirmed = view_of(_Held(), version=7)
    assert (confirmed.state, confirmed.reason, confirmed.version) == (PositionState.OPEN, "", 7)
    assert view_of(_Held(amount=Decimal(0)), 1).state is PositionState.CLOSED
    suspect = view_of(_Held(knowledge=Knowledge.SUSPECT), 1)
    assert (suspect.state, suspect.reason, suspect.amount) == (
        PositionState.UNKNOWN, "kept for later", Decimal("3"))


def test_a_no_op_publishes_nothing_and_a_re_verification_is_a_refresh() -> None:
    old = view_of(_Held(), 7)
    assert publish_of(old, replace(old, version=8)) is None
    refresh = publish_of(old, replace(old, version=8, verified_ms=3_000))
    assert refresh is not None
    assert refresh.refresh_of == 7
    changed = publish_of(old, replace(old, version=8, verified_ms=3_000, amount=Decimal(1)))
    assert changed is not None
    assert changed.refresh_of == 0
    first = publish_of(None, old)
    assert first is not None
    assert first.refresh_of == 0


def test_a_change_of_confirmed_state_is_told_with_while_down_when_an_earlier_run_showed_it() -> None:
    closed: PositionView = view_of(_Held(amount=Decimal(0)), 2)
    assert change_notify(None, closed, None) is None
    assert change_notify(PositionState.CLOSED, closed, None) is None
    live = change_notify(PositionState.OPEN, closed, None)
    assert live is not None
    assert (live.kind, live.key, live.detail) == ("position_closed", KEY, (("amount", "0"),))
    down = change_notify(PositionState.OPEN, closed, 900)
    assert down is not None
    assert down.detail == (("amount", "0"), ("while_down", "true"), ("last_seen_ms", "900"))
