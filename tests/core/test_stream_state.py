"""The stream state machine (``core/stream_state.py``): down, gap, live, and what REST covered."""

from __future__ import annotations

import itertools

from watchdog.core.model import Symbol
from watchdog.core.stream_state import TRANSITIONS, StreamSignal, StreamTrack, next_state

BTC, ETH = Symbol("BTCUSDT"), Symbol("ETHUSDT")


def test_the_table_is_total_and_only_reconciliation_makes_live() -> None:
    for state, signal in itertools.product(TRANSITIONS, StreamSignal):
        assert next_state(state, signal) in TRANSITIONS
    assert {next_state(s, StreamSignal.LOST) for s in TRANSITIONS} == {"down"}
    assert {next_state(s, StreamSignal.CONNECTED) for s in TRANSITIONS} == {"gap"}
    assert [s for s in TRANSITIONS if next_state(s, StreamSignal.RECONCILED) == "live"] == [
        "gap", "live"]


def test_it_starts_down_and_is_live_only_after_an_all_symbols_read() -> None:
    track = StreamTrack()
    assert (track.state, track.connected) == ("down", False)
    assert track.gap(connected=True) is False
    assert (track.state, track.epoch) == ("gap", 1)
    assert track.reconciled({BTC}) is False  # a scoped read covers its symbol only
    assert (track.state, track.covered(BTC), track.covered(ETH)) == ("gap", True, False)
    assert track.reconciled(None) is True
    assert (track.state, track.covered(ETH)) == ("live", True)
    assert track.reconciled(None) is False  # already live: not "became live" again


def test_a_gap_forgets_coverage_and_a_read_while_down_covers_but_is_not_live() -> None:
    track = StreamTrack()
    track.gap(connected=True)
    track.reconciled(None)
    assert track.gap(connected=False) is True
    assert (track.state, track.covered(BTC), track.epoch) == ("down", False, 2)
    assert track.reconciled(None) is False
    assert (track.state, track.covered(BTC)) == ("down", True)
    assert track.gap(connected=True) is False
    assert (track.state, track.covered(BTC)) == ("gap", False)
