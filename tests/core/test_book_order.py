"""The book's outputs keep PositionKey order (symbol, then side), whatever order rows arrive in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.core.facts import amount, key, requested, snapshot
from watchdog.core.book import PositionBook
from watchdog.core.effects import Publish
from watchdog.core.events import StreamConnected
from watchdog.core.model import PositionKey, PositionSide

_keys = st.builds(key, st.sampled_from(["BTCUSDT", "ETHUSDT", "A1USDT", "ZUSDT", "BTCUSDC"]),
                  st.sampled_from(list(PositionSide)))


@given(st.lists(_keys, unique=True, max_size=12))
def test_publishes_and_views_in_key_order(keys: list[PositionKey]) -> None:
    book = PositionBook()
    book.apply(StreamConnected(1), 0)
    book.apply(requested(1, 0), 0)
    effects = book.apply(snapshot(1, 0, *(amount(k, 1, 0) for k in keys)), 0)
    assert [e.view.key for e in effects if isinstance(e, Publish)] == sorted(keys)
    assert [v.key for v in book.views()] == sorted(keys)
