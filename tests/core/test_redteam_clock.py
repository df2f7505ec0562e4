"""Red-team: a wall-clock step must not keep knowledge fresh past ``max_age_ms`` (rule 2).
Pure: the real PositionBook with injected times."""

from __future__ import annotations

import pytest

from tests.core.facts import BTC, amount
from tests.core.test_book import Harness
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


@pytest.mark.xfail(strict=True, reason=(
    "core/book.py: age is now_ms - verified_ms on the wall clock; after the clock steps back "
    "by X, knowledge verified before the step reads as younger than it is (negative age) and "
    "stays CONFIRMED (published open) for max_age_ms + X without any new fact. The Lua "
    "verdicts clamp the same negative age to 0 (store/lua/_prelude.lua age_of)"))
def test_backward_step_does_not_extend_confirmed_knowledge() -> None:
    h = confirmed_at(100_000)
    h.apply(Tick(), 40_000)                     # NTP steps the clock back by 60 s
    h.apply(Tick(), 40_000 + MAX_AGE_MS + 1)    # more than max_age_ms later, no new fact
    assert h.book.view(BTC).knowledge is not Knowledge.CONFIRMED  # type: ignore[union-attr]
