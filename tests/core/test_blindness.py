"""Stream blindness, the rules shared by positions and orders (``core/blindness.py``)."""

from __future__ import annotations

from tests.core.facts import BTC, ETH
from watchdog.core.blindness import (
    BLIND_CODE,
    ConnectionWatch,
    PositionBlindness,
    blind_verdict,
    overdue,
)
from watchdog.core.effects import Notify, RaiseAlert, Reconnect

TOLERANCE_MS = 1000


def watched(from_ms: int = 10_000) -> PositionBlindness:
    blind = PositionBlindness(blind_after_ms=TOLERANCE_MS)
    blind.gap(connected=True)
    blind.watch.requested(from_ms)
    return blind


def test_the_watch_starts_at_the_first_request_after_a_connect() -> None:
    watch = ConnectionWatch()
    watch.requested(5_000)
    assert watch.from_ms is None  # not connected: nothing to watch
    watch.gap(connected=True)
    watch.requested(6_000)
    watch.requested(7_000)
    assert watch.from_ms == 6_000
    assert watch.covers(6_000)
    assert not watch.covers(5_999)  # may predate the connection
    watch.gap(connected=False)
    assert watch.from_ms is None
    assert not watch.covers(10**12)


def test_the_tolerance_is_inclusive() -> None:
    assert overdue(1_000, 1_999, TOLERANCE_MS) is None
    assert overdue(1_000, 2_000, TOLERANCE_MS) == "(unreported for at least 1000 ms)"


def test_a_verdict_is_an_alert_a_notification_and_a_reconnect() -> None:
    assert blind_verdict("gone", BTC) == [
        RaiseAlert(BLIND_CODE, f"{BTC}: gone", BTC), Notify(BLIND_CODE, BTC, (("message", "gone"),)),
        Reconnect(f"{BTC}: gone")]
    assert blind_verdict("canary") == [
        RaiseAlert(BLIND_CODE, "canary"), Notify(BLIND_CODE, None, (("message", "canary"),)),
        Reconnect("canary")]


def test_a_change_is_raised_once_past_the_tolerance() -> None:
    blind = watched()
    blind.note(BTC, 11_000, 9_000, "REST shows amount 0", earliest_ms=11_000)
    assert blind.pending
    assert blind.check(BTC, 11_999) == []
    effects = blind.check(BTC, 12_000)
    assert effects == blind_verdict("REST shows amount 0 (unreported for at least 1000 ms)", BTC)
    assert not blind.pending
    assert blind.check(BTC, 20_000) == []


def test_a_change_that_may_predate_the_watch_is_not_noted() -> None:
    blind = watched(from_ms=10_000)
    blind.note(BTC, 11_000, 9_000, "m", earliest_ms=9_999)
    assert not blind.pending
    unwatched = PositionBlindness(blind_after_ms=TOLERANCE_MS)
    unwatched.note(BTC, 11_000, 9_000, "m", earliest_ms=11_000)
    assert not unwatched.pending


def test_the_oldest_change_is_kept() -> None:
    blind = watched()
    blind.note(BTC, 11_000, 9_000, "first", earliest_ms=11_000)
    blind.note(BTC, 12_500, 11_000, "second", earliest_ms=12_500)
    assert blind.check(BTC, 12_000)[0].message.startswith(f"{BTC}: first")


def test_a_newer_stream_fact_or_a_later_fill_reports_it() -> None:
    blind = watched()
    blind.note(BTC, 11_000, 9_000, "m", earliest_ms=11_000)
    blind.stream_fact(BTC, 9_000)  # the held fact again: not a report of the change
    assert blind.pending
    blind.stream_fact(BTC, 9_001)
    assert not blind.pending
    blind.note(BTC, 11_000, 9_000, "m", earliest_ms=11_000)
    blind.note(ETH, 11_000, 9_000, "m", earliest_ms=11_000)
    blind.filled(BTC.symbol, 9_000)  # not after the held fact
    assert blind.check(BTC, 13_000) != []
    blind.note(BTC, 11_000, 9_000, "m", earliest_ms=11_000)
    blind.filled(BTC.symbol, 9_500)
    assert blind.check(BTC, 13_000) == []
    assert blind.check(ETH, 13_000) != []  # another symbol's fill reports nothing here
    assert blind.last_fill_ms(BTC.symbol) == 9_500
    assert blind.last_fill_ms(ETH.symbol) is None


def test_a_gap_forgets_everything() -> None:
    blind = watched()
    blind.filled(BTC.symbol, 10_500)
    blind.note(ETH, 11_000, 9_000, "m", earliest_ms=11_000)
    blind.gap(connected=True)
    assert not blind.pending
    assert blind.last_fill_ms(BTC.symbol) is None
    assert blind.watch.from_ms is None
