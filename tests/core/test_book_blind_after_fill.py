"""Rule 7 edge: the fill that produced the held fact does not excuse a later unreported change.

Binance sends the opening fill (ORDER_TRADE_UPDATE / TRADE_LITE) and the ACCOUNT_UPDATE with
the same transaction time T. If the stream then goes mute and the position closes unseen, REST
shows flat: that is blindness, even though a fill at T (the open) was streamed.
"""

from __future__ import annotations

from tests.core.facts import BTC, stream, trade_lite
from tests.core.test_book import Harness, alerts, h, state  # noqa: F401  (fixture)
from watchdog.core.model import PositionState


def test_close_unseen_after_streamed_open_fill_is_blindness(h: Harness) -> None:  # noqa: F811
    h.apply(trade_lite("BTCUSDT", 1000), 1000)   # the opening fill, T = 1000
    h.apply(stream(BTC, 1, 1000), 1000)          # its ACCOUNT_UPDATE, same T
    assert state(h.book) is PositionState.OPEN
    h.poll(5000)                                  # closed later; the stream said nothing
    assert state(h.book) is PositionState.CLOSED
    assert alerts(h.poll(6000)) == ["stream_blind"]  # still unreported after blind_after_ms


def test_fill_after_the_held_fact_explains_the_change(h: Harness) -> None:  # noqa: F811
    h.apply(stream(BTC, 1, 1000), 1000)
    h.apply(trade_lite("BTCUSDT", 4000), 4000)    # a later fill was streamed
    effects = h.poll(5000)
    assert state(h.book) is PositionState.CLOSED
    assert alerts(effects) == []
