"""The REST request ledger (``core/requests.py``): bracketing, read order, exchange clock steps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.core.facts import BTC, ETH, requested, snapshot
from watchdog.core.pending import MAX_PENDING_REQUESTS
from watchdog.core.requests import Request, RequestLedger

LAG_MS = 2000


def ledger() -> RequestLedger:
    return RequestLedger(max_rest_lag_ms=LAG_MS)


def test_an_answer_takes_its_request_back_once() -> None:
    led = ledger()
    assert led.requested(requested(1, 10_000, "BTCUSDT"), 10_000, epoch=3, seq=7) is False
    assert led.answered(1) == Request(3, frozenset({BTC.symbol}), 7, 0)
    assert led.answered(1) is None  # a second answer proves nothing
    assert led.answered(99) is None  # never asked


def test_pending_requests_are_bounded() -> None:
    led = ledger()
    for request_id in range(MAX_PENDING_REQUESTS + 1):
        led.requested(requested(request_id, 10_000), 10_000, epoch=0, seq=0)
    assert led.answered(0) is None  # the oldest went first
    assert led.answered(MAX_PENDING_REQUESTS) is not None


def test_a_read_requested_before_an_applied_one_is_superseded_for_its_symbols() -> None:
    led = ledger()
    newer = snapshot(2, 20_000, symbols=("BTCUSDT",))
    led.applied(newer, ())
    older = snapshot(1, 19_000)
    assert led.superseded(older, BTC.symbol)
    assert not led.superseded(older, ETH.symbol)  # the scoped read did not cover ETH
    assert not led.superseded(newer, BTC.symbol)  # the same read again is not older than itself
    assert led.last_read_ms(BTC.symbol) == 20_000
    assert led.last_read_ms(ETH.symbol) == -1


def test_equal_times_are_ordered_by_request_id_and_rows_order_their_symbol() -> None:
    led = ledger()
    led.applied(snapshot(5, 20_000), (ETH.symbol,))
    assert led.superseded(snapshot(4, 20_000), BTC.symbol)  # all symbols, same time, lower id
    assert not led.superseded(snapshot(6, 20_000), BTC.symbol)
    assert led.last_read_ms(ETH.symbol) == 20_000


def test_a_clock_step_back_starts_a_new_epoch_forgets_the_order_and_stales_old_requests() -> None:
    led = ledger()
    led.requested(requested(1, 100_000), 1_000, epoch=0, seq=1)
    led.applied(snapshot(1, 100_000), ())
    led.requested(requested(2, 100_500), 1_500, epoch=0, seq=2)
    assert led.requested(requested(3, 90_000), 2_000, epoch=0, seq=3) is True
    assert led.clock_epoch == 1
    before, fresh = led.answered(2), led.answered(3)
    assert before is not None
    assert led.stale(before)  # requested before the step, answered after it
    assert fresh is not None
    assert not led.stale(fresh)
    assert not led.superseded(snapshot(3, 90_000), BTC.symbol)  # the old order is forgotten


def test_an_offset_jump_is_a_step_and_lag_within_the_tolerance_is_not() -> None:
    led = ledger()
    led.requested(requested(1, 100_000), 1_000, epoch=0, seq=1)
    # Earlier than the newest request but within max_rest_lag_ms, same offset: no step.
    assert led.requested(requested(2, 98_500), 2_000 - 500, epoch=0, seq=2) is False
    # The offset moved by more than max_rest_lag_ms (the shell re-synced to a stepped clock).
    assert led.requested(requested(3, 110_000), 3_000, epoch=0, seq=3) is True


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 1000)), max_size=30))
def test_a_steady_clock_never_steps(gaps: list[tuple[int, int]]) -> None:
    led = ledger()
    now_ms, offset_ms = 1_000, 50_000
    for request_id, (advance_ms, jitter_ms) in enumerate(gaps):
        now_ms += advance_ms
        assert led.requested(requested(request_id, now_ms + offset_ms + jitter_ms), now_ms,
                             epoch=0, seq=request_id) is False


class _PlainOrder:
    """The read order of rule 2 as first written: every applied read's order per symbol."""

    def __init__(self) -> None:
        self.all = (-1, -1)
        self.by_symbol: dict[object, tuple[int, int]] = {}

    def applied(self, snap, row_symbols) -> None:  # type: ignore[no-untyped-def]
        order = (snap.requested_time_ms, snap.request_id)
        if snap.symbols is None:
            self.all = max(self.all, order)
        for symbol in {*(snap.symbols or ()), *row_symbols}:
            self.by_symbol[symbol] = max(self.by_symbol.get(symbol, (-1, -1)), order)

    def newest(self, symbol: object) -> tuple[int, int]:
        return max(self.all, self.by_symbol.get(symbol, (-1, -1)))


_SYMBOLS = ("BTCUSDT", "ETHUSDT", "XRPUSDT")
_reads = st.lists(st.tuples(st.integers(0, 50), st.sampled_from([(), ("BTCUSDT",), ("ETHUSDT",)]),
                            st.lists(st.sampled_from(_SYMBOLS), max_size=3)), max_size=30)


@given(_reads)
def test_the_read_order_is_the_plain_one_and_after_every_applied_implies_none_superseded(
        reads: list[tuple[int, tuple[str, ...], list[str]]]) -> None:
    """An all-symbols read keeps no per-symbol order for its rows (the all-symbols order covers
    them), and ``after_every_applied`` skips the per-row check only when no row could be
    superseded: both against the order kept for every symbol of every read."""
    from tests.core.facts import amount, key

    led, plain = ledger(), _PlainOrder()
    for request_id, (at, scope, row_symbols) in enumerate(reads, start=1):
        snap = snapshot(request_id, 10_000 + at * 100,
                        *(amount(key(s), 1, 1) for s in dict.fromkeys(row_symbols)), symbols=scope)
        if led.after_every_applied(snap):
            assert all(not led.superseded(snap, key(s).symbol) for s in _SYMBOLS)
        for s in _SYMBOLS:
            symbol = key(s).symbol
            newest = plain.newest(symbol)
            assert led.superseded(snap, symbol) == ((snap.requested_time_ms, request_id) < newest)
            assert led.last_read_ms(symbol) == newest[0]
        led.applied(snap, {key(s).symbol for s in row_symbols})
        plain.applied(snap, {key(s).symbol for s in row_symbols})
