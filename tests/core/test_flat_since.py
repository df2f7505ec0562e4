"""flat_since: the reaper's proof that a position has been flat, and since when."""

from __future__ import annotations

import pytest

from tests.core.facts import BTC, ETH, amount, failed, requested, snapshot, stream
from tests.core.test_book import Harness
from watchdog.core.events import ListenKeyExpired, StreamConnected, StreamLost, Tick


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.apply(StreamConnected(1), 0)
    harness.poll(0, amount(BTC, 1, 0))
    return harness


def test_run_starts_at_first_flat_snapshot_and_continues(h: Harness) -> None:
    assert h.book.flat_since(BTC) is None  # open
    h.apply(stream(BTC, 0, 100), 100)
    assert h.book.flat_since(BTC) is None  # flat by stream only: not yet proven by REST
    h.poll(1000)
    assert h.book.flat_since(BTC) == 1000
    h.poll(2000, amount(BTC, 0, 100))
    h.poll(3000, symbols=("BTCUSDT",))
    assert h.book.flat_since(BTC) == 1000
    h.poll(4000, symbols=("ETHUSDT",))  # does not speak for BTC, does not break the run
    assert h.book.flat_since(BTC) == 1000


@pytest.mark.parametrize("breaker", [
    StreamLost(1, "1006"), StreamConnected(2), ListenKeyExpired(1500), failed(4242),
])
def test_run_is_broken_by_gaps_and_failures(h: Harness, breaker: object) -> None:
    h.apply(stream(BTC, 0, 100), 100)
    h.poll(1000)
    h.apply(breaker, 1500)
    assert h.book.flat_since(BTC) is None
    assert h.book.flat_since(ETH) is None
    h.poll(2000)
    assert h.book.flat_since(BTC) == 2000
    assert h.book.flat_since(ETH) == 2000


def test_run_is_broken_by_an_open_fact(h: Harness) -> None:
    h.apply(stream(BTC, 0, 100), 100)
    h.poll(1000)
    h.apply(stream(BTC, 1, 1100), 1100)
    assert h.book.flat_since(BTC) is None
    h.apply(stream(BTC, 0, 1200), 1200)
    assert h.book.flat_since(BTC) is None  # a new run needs a new REST read
    h.poll(3500)
    assert h.book.flat_since(BTC) == 3500


def test_run_is_broken_by_expiry(h: Harness) -> None:
    h.apply(stream(BTC, 0, 100), 100)
    h.poll(1000)
    h.apply(Tick(), 6001)
    assert h.book.flat_since(BTC) is None
    assert h.book.flat_since(ETH) is None


def test_run_is_broken_by_ambiguous_rest(h: Harness) -> None:
    h.apply(stream(BTC, 0, 100), 100)
    h.poll(1000)
    h.apply(stream(BTC, 1, 1100), 1100)
    h.poll(1200)  # flat within lag of the open: suspect
    assert h.book.flat_since(BTC) is None


def test_unseen_key_follows_all_symbols_run(h: Harness) -> None:
    assert h.book.flat_since(ETH) == 0
    h.poll(1000, symbols=("ETHUSDT",))
    h.poll(2000)
    assert h.book.flat_since(ETH) == 0


def test_never_reconciled_book_has_no_flat_run() -> None:
    harness = Harness()
    assert harness.book.flat_since(ETH) is None
    harness.apply(requested(1, 0), 0)
    harness.apply(snapshot(1, 0), 10)
    assert harness.book.flat_since(ETH) == 0


# A snapshot requested before a run-breaking event cannot start a run, even answered after it.

def _close_then_request(h: Harness) -> None:
    h.apply(stream(BTC, 0, 100), 100)
    h.apply(requested(100, 1000), 1000)  # requested before the break …


@pytest.mark.parametrize("breaker", [
    [failed(4242)],                                                # another read failed
    [stream(BTC, 1, 1100), stream(BTC, 0, 1150)],                  # reopened and closed
])
def test_snapshot_requested_before_a_break_cannot_start_a_run(h: Harness,
                                                              breaker: list[object]) -> None:
    _close_then_request(h)
    for event in breaker:
        h.apply(event, 1150)
    h.apply(snapshot(100, 1000), 1200)  # … answered after it: proves flat, starts no run
    view = h.book.view(BTC)
    assert view is not None
    assert view.state.value == "closed"  # the state change stays
    assert h.book.flat_since(BTC) is None
    h.poll(2000)
    assert h.book.flat_since(BTC) == 2000


def test_snapshot_requested_before_a_failure_cannot_start_the_all_symbols_run(h: Harness) -> None:
    _close_then_request(h)
    h.apply(failed(4242), 1150)
    h.apply(snapshot(100, 1000), 1200)
    assert h.book.flat_since(ETH) is None  # a key the book never held
    h.poll(2000)
    assert h.book.flat_since(ETH) == 2000


def test_snapshot_requested_before_expiry_cannot_start_a_run(h: Harness) -> None:
    _close_then_request(h)
    h.apply(Tick(), 5200)               # nothing verified for more than max_age_ms: expired
    h.apply(snapshot(100, 1000), 5300)
    assert h.book.flat_since(BTC) is None
    assert h.book.flat_since(ETH) is None
    h.poll(6000)
    assert h.book.flat_since(BTC) == 6000
    assert h.book.flat_since(ETH) == 6000


def test_expiry_noticed_as_a_snapshot_is_requested_delays_the_run_by_one_read(h: Harness) -> None:
    h.apply(stream(BTC, 0, 100), 100)
    h.apply(requested(100, 5200), 5200)  # the lapse is noticed on this very event
    h.apply(snapshot(100, 5200), 5300)
    assert h.book.flat_since(BTC) is None  # conservative: counted from the next read
    h.poll(6000)
    assert h.book.flat_since(BTC) == 6000


def test_all_symbols_lapse_breaks_even_without_a_run(h: Harness) -> None:
    _close_then_request(h)
    h.apply(failed(4242), 1100)
    h.apply(snapshot(100, 1000), 1200)  # verifies all symbols but starts no run
    h.apply(requested(101, 6100), 6100)  # requested before that verification lapses …
    h.apply(Tick(), 6300)
    h.apply(snapshot(101, 6100), 6400)  # … answered after: starts no run
    assert h.book.flat_since(ETH) is None
    h.poll(7000)
    assert h.book.flat_since(ETH) == 7000
