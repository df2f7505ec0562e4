"""REST lag and the exchange clock (issue 12): a closure learned from REST does not flap, flat
runs carry the time REST last proved them, and an exchange clock step breaks runs and the read
order (book rules 9, 10; fusion rule 3)."""

from __future__ import annotations

from tests.core.facts import BTC, ETH, amount, key, requested, snapshot, stream
from tests.core.test_book import Harness, kinds, state
from watchdog.core.book import BookPolicy
from watchdog.core.events import StreamConnected
from watchdog.core.model import PositionState


def live() -> Harness:
    h = Harness(BookPolicy(max_age_ms=60_000, max_rest_lag_ms=2000))
    h.apply(StreamConnected(1), 0)
    h.poll(0)
    return h


def test_a_closure_learned_from_rest_is_not_undone_by_a_more_lagged_answer() -> None:
    """Pre-fix: position_closed → position_opened → position_closed within 2 s."""
    h = live()
    h.apply(stream(BTC, 1, 100), 100)  # opened; then the stream goes quiet, the position closes
    notified = kinds(h.poll(5000))  # flat, beyond the lag floor of the open: closed
    assert notified == ["position_closed"]
    for at_ms in (5010, 5020, 5030):  # answers lagging more: the open of t=100 again
        notified += kinds(h.poll(at_ms, amount(BTC, 1, 100)))
        notified += kinds(h.poll(at_ms + 5))
    assert notified == ["position_closed"]
    assert state(h.book) is PositionState.CLOSED


def test_a_genuinely_new_open_after_a_rest_closure_still_counts() -> None:
    h = live()
    h.apply(stream(BTC, 1, 100), 100)
    h.poll(5000)
    assert kinds(h.poll(5200, amount(BTC, 2, 5100))) == ["position_opened"]  # newer updateTime
    assert state(h.book) is PositionState.OPEN
    h.poll(9000)
    assert state(h.book) is PositionState.CLOSED
    assert kinds(h.apply(stream(BTC, 1, 9100), 9100)) == ["position_opened"]  # by the stream


def test_flat_proven_is_the_newest_read_of_the_run() -> None:
    h = live()
    assert h.book.flat_proven_ms(ETH) == 0  # never held: the all-symbols run from t=0
    h.poll(1000)
    assert (h.book.flat_since(ETH), h.book.flat_proven_ms(ETH)) == (0, 1000)
    h.apply(stream(BTC, 1, 1100), 1100)
    assert h.book.flat_proven_ms(BTC) is None
    h.apply(stream(BTC, 0, 1200), 1200)
    h.poll(2000)
    h.poll(3000, symbols=("BTCUSDT",))
    assert (h.book.flat_since(BTC), h.book.flat_proven_ms(BTC)) == (2000, 3000)
    h.poll(3500, symbols=("ETHUSDT",))  # does not speak for BTC
    assert h.book.flat_proven_ms(BTC) == 3000


def test_exchange_clock_15s_behind_breaks_runs_and_reads_on_the_new_clock_apply() -> None:
    """Pre-fix: the reads dated 15 s earlier were skipped as older, for 15 s, while the run of
    never-held keys went on: a fresh open on such a key looked flat to the reaper."""
    h = live()
    for t in range(1000, 20_001, 1000):
        h.poll(t)
    assert h.book.flat_since(ETH) == 0
    # Re-synced: Binance's clock is 15 s behind ours; now_ms (local) keeps going.
    rid = h.next_id
    h.next_id += 1
    h.apply(requested(rid, 21_000 - 15_000), 21_000)
    assert h.book.flat_since(ETH) is None  # a run dated on the old clock proves nothing
    h.apply(snapshot(rid, 6000, amount(ETH, 1, 5900)), 21_050)
    view = h.book.view(ETH)
    assert view is not None
    assert view.state is PositionState.OPEN, view
    assert h.book.flat_since(ETH) is None


def test_exchange_clock_step_ahead_breaks_runs() -> None:
    h = live()
    h.poll(1000)
    assert h.book.flat_since(ETH) == 0
    rid = h.next_id
    h.next_id += 1
    h.apply(requested(rid, 2000 + 15_000), 2000)  # Binance's clock 15 s ahead of ours
    h.apply(snapshot(rid, 17_000), 2050)
    assert h.book.flat_since(ETH) is None  # the read that saw the step starts no run
    h.apply(requested(rid + 1, 18_000), 3000)
    h.apply(snapshot(rid + 1, 18_000), 3050)
    assert h.book.flat_since(ETH) == 18_000


def test_small_offset_jitter_is_no_step() -> None:
    h = live()
    h.poll(1000)
    rid = h.next_id
    h.next_id += 1
    h.apply(requested(rid, 1900), 2000)  # 100 ms of inbox latency / re-sync jitter
    h.apply(snapshot(rid, 1900), 2050)
    assert h.book.flat_since(ETH) == 0


def test_a_read_requested_before_a_clock_step_and_answered_after_it_is_ignored() -> None:
    h = live()
    for t in range(1000, 20_001, 1000):
        h.poll(t)
    h.apply(requested(500, 20_500), 20_500)  # old clock, in flight …
    h.apply(requested(501, 21_000 - 15_000), 21_000)  # … the step (Binance 15 s behind)
    assert h.apply(snapshot(500, 20_500), 21_100) == []  # … answered after: ignored
    h.apply(snapshot(501, 6000, amount(ETH, 1, 5900)), 21_150)  # not skipped as "older"
    view = h.book.view(ETH)
    assert view is not None
    assert view.state is PositionState.OPEN, view
    # a new run on the new clock is dated on it, whatever the old run's proof was
    h.apply(requested(502, 7000), 22_000)
    h.apply(snapshot(502, 7000), 22_050)
    xrp = key("XRPUSDT")  # never held: the all-symbols run, restarted on the new clock
    assert (h.book.flat_since(xrp), h.book.flat_proven_ms(xrp)) == (7000, 7000)
