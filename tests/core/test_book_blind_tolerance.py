"""Rule 7 timing: a stream a few ms behind REST is late, not blind; one past blind_after_ms is.

The fixture's stream is live and reconciled at t=0; BTC was opened by the stream at 1000.
``blind_after_ms`` is the default 1000 ms. No test sends fills unless it says so: a fill on the
symbol is another way for the stream to report a change.
"""

from __future__ import annotations

import pytest

from tests.core.facts import BTC, ETH, amount, requested, snapshot, stream, trade_lite
from tests.core.test_book import Harness, alerts, kinds, state
from watchdog.core.book import BookPolicy
from watchdog.core.events import StreamConnected, StreamLost
from watchdog.core.model import PositionState


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.apply(StreamConnected(1), 0)
    harness.poll(0)
    harness.apply(stream(BTC, 1, 1000), 1000)
    return harness


def test_policy_default_tolerance() -> None:
    assert BookPolicy().blind_after_ms == 1000


def test_rest_beating_a_healthy_stream_to_a_close_is_not_blind(h: Harness) -> None:
    effects = h.poll(5000)  # closed at 4990; REST (no time: absent row) answers first
    assert state(h.book) is PositionState.CLOSED  # the state change is not held back
    assert kinds(effects) == ["position_closed"]
    h.apply(stream(BTC, 0, 4990), 5010)  # the stream's own ACCOUNT_UPDATE, 20 ms later
    for now in (6000, 7000, 9000):
        assert alerts(h.poll(now)) == []


def test_rest_beating_a_healthy_stream_to_a_change_is_not_blind(h: Harness) -> None:
    effects = h.poll(5000, amount(BTC, 2, 4995))  # REST shows the add 5 ms after it happened
    assert alerts(effects) == []
    view = h.book.view(BTC)
    assert view is not None
    assert view.amount == 2
    h.apply(stream(BTC, 2, 4995), 5010)  # the same fact from the stream: reported after all
    for now in (6000, 7000):
        assert alerts(h.poll(now, amount(BTC, 2, 4995))) == []


def test_rest_beating_a_healthy_stream_to_an_open_is_not_blind(h: Harness) -> None:
    assert alerts(h.poll(1200, amount(ETH, 2, 1195))) == []
    h.apply(stream(ETH, 2, 1195), 1210)
    assert alerts(h.poll(3000, amount(ETH, 2, 1195))) == []


def test_young_timed_change_left_unreported_is_blind_at_the_tolerance(h: Harness) -> None:
    assert alerts(h.poll(5000, amount(BTC, 2, 4800))) == []
    assert alerts(h.poll(5799, amount(BTC, 2, 4800))) == []
    effects = h.poll(5800, amount(BTC, 2, 4800))  # 1000 ms after the change, still unreported
    assert alerts(effects) == ["stream_blind"]
    assert kinds(effects) == ["stream_blind"]
    assert alerts(h.poll(7000, amount(BTC, 2, 4800))) == []  # raised once


def test_old_timed_change_is_blind_at_once(h: Harness) -> None:
    effects = h.poll(5000, amount(BTC, 2, 3000))
    assert alerts(effects) == ["stream_blind"]
    assert kinds(effects) == ["stream_blind"]


def test_restating_the_fact_held_before_does_not_report_the_change(h: Harness) -> None:
    h.poll(5000, amount(BTC, 2, 4800))
    h.apply(stream(BTC, 1, 1000), 5100)  # the stream re-sends the old fact: not the change
    assert alerts(h.poll(5800, amount(BTC, 2, 4800))) == ["stream_blind"]


def test_a_fill_after_the_held_fact_reports_the_change(h: Harness) -> None:
    h.poll(5000)
    h.apply(trade_lite("ETHUSDT", 4990), 5005)  # another symbol: says nothing about BTC
    h.apply(trade_lite("BTCUSDT", 900), 5006)   # older than the held fact: not this change
    h.apply(trade_lite("BTCUSDT", 4990), 5010)
    assert alerts(h.poll(7000)) == []


def test_an_older_unreported_change_keeps_its_date(h: Harness) -> None:
    h.poll(5000)                                   # closed, unreported since 5000 at the latest
    assert alerts(h.poll(5500, amount(BTC, 3, 5400))) == []  # and reopened, also unreported
    assert alerts(h.poll(6000, amount(BTC, 3, 5400))) == ["stream_blind"]


def test_a_gap_forgets_unreported_changes(h: Harness) -> None:
    h.poll(5000)
    h.apply(StreamConnected(2), 5100)
    assert alerts(h.poll(7000)) == []  # post-gap: the new connection starts clean
    assert alerts(h.poll(9000)) == []


def test_a_change_made_while_disconnected_is_not_blamed_on_the_new_connection() -> None:
    """The shrunk case of the flaky property test (issue 12): ETH opened while the stream was
    down; the first read after the connect lags (flat), the next one shows the open. Only a
    change made after the first post-connect request counts against the stream."""
    h = Harness()
    h.apply(StreamConnected(1), 0)
    h.poll(0)
    h.apply(StreamLost(1, "1006"), 1000)
    h.apply(StreamConnected(2), 3000)
    h.poll(3100)  # the first request after the connect; REST still shows the old state
    assert alerts(h.poll(3200, amount(ETH, 2, 2000))) == []  # opened at 2000, while down
    assert alerts(h.poll(5000, amount(ETH, 2, 2000))) == []
    eth = amount(ETH, 2, 2000)
    assert alerts(h.poll(5100, eth, amount(BTC, 1, 4900))) == []  # opened after: young yet
    assert alerts(h.poll(5900, eth, amount(BTC, 1, 4900))) == ["stream_blind"]


def test_a_position_opened_long_ago_is_still_watched_once_a_read_shows_it_after_the_connect(
        ) -> None:
    """The held fact's own time (the open, long before the connect) is not when it was last
    known true: a read whose lag floor is after the watch start still showed it open."""
    h = Harness()
    h.apply(StreamConnected(1), 100_000)
    h.poll(101_000, amount(BTC, 1, 50_000))  # the watch starts at 101_000
    h.poll(103_500, amount(BTC, 1, 50_000))  # still open as of 101_500 at the latest
    assert alerts(h.poll(105_000)) == []      # closed, REST alone saw it
    assert alerts(h.poll(106_000)) == ["stream_blind"]


def test_a_close_within_the_rest_lag_of_the_connect_is_not_judged() -> None:
    h = Harness()
    h.apply(StreamConnected(1), 100_000)
    h.poll(101_000, amount(BTC, 1, 50_000))  # open as of 99_000 at the latest: before the watch
    assert alerts(h.poll(102_500)) == []
    assert alerts(h.poll(106_000)) == []  # it may have closed before the connect


def test_a_position_first_read_before_the_connect_is_watched_too() -> None:
    """At startup the poller's first read may be requested before the stream connects and
    answered after: its fact is untrusted, and later reads only agree with it (SAME). The close
    REST then sees is still judged (today's main never did: the fact was from another epoch)."""
    h = Harness()
    h.apply(requested(1, 100_000), 100_000)
    h.apply(StreamConnected(1), 100_005)
    h.apply(snapshot(1, 100_000, amount(BTC, 1, 50_000)), 100_010)
    h.next_id = 2
    h.poll(100_020, amount(BTC, 1, 50_000))  # trusted, the same fact: live, the watch starts
    h.poll(103_000, amount(BTC, 1, 50_000))  # open as of 101_000 at the latest
    assert alerts(h.poll(105_000)) == []
    assert alerts(h.poll(106_000)) == ["stream_blind"]
