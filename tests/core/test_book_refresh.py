"""``Publish.refresh_of``: the book marks a publish that only re-verifies the last published view
(same facts and state, later ``verified_ms``), and nothing else (effects rule 2)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.facts import BTC, ETH, amount, stream
from tests.core.test_book import Harness, publishes
from tests.core.test_book_properties import _blind_scripts, _run_scripts, run
from watchdog.core.book import BookPolicy, PositionBook
from watchdog.core.effects import Effect, Publish
from watchdog.core.events import Event, StreamConnected, StreamLost, Tick
from watchdog.core.model import Knowledge, PositionKey, PositionView


@pytest.fixture
def h() -> Harness:
    """A live book: connected, reconciled by an empty all-symbols snapshot at t=0."""
    harness = Harness()
    harness.apply(StreamConnected(1), 0)
    harness.poll(0)
    return harness


def only(effects: list[Effect]) -> Publish:
    (publish,) = publishes(effects)
    return publish


def test_steady_polls_only_refresh(h: Harness) -> None:
    first = only(h.poll(1000, amount(BTC, 1, 900)))
    assert first.refresh_of == 0
    second = only(h.poll(1900, amount(BTC, 1, 900)))
    assert second.refresh_of == first.view.version
    assert second.view == dataclasses.replace(first.view, verified_ms=1900,
                                              version=first.view.version + 1)
    third = only(h.poll(2800, amount(BTC, 1, 900)))
    assert third.refresh_of == second.view.version


def test_closed_positions_refresh_too(h: Harness) -> None:
    h.poll(1000, amount(BTC, 1, 900))
    closed = only(h.poll(1900, amount(BTC, 0, 1800)))
    assert closed.refresh_of == 0
    again = only(h.poll(2800))  # flat: absent from the read
    assert again.refresh_of == closed.view.version


def test_any_other_change_is_a_complete_publish(h: Harness) -> None:
    h.poll(1000, amount(BTC, 1, 900))
    assert only(h.poll(1500, amount(BTC, 1, 1400))).refresh_of == 0        # as_of_time_ms alone
    assert only(h.apply(stream(BTC, 2, 1450), 1450)).refresh_of == 0       # amount
    assert only(h.poll(1900, amount(BTC, 2, 1500))).refresh_of == 0        # as_of_time_ms, source
    assert only(h.poll(2800, amount(BTC, 2, 1600, price="101"))).refresh_of == 0  # entry price


def test_confirmed_again_after_expiry_or_a_gap_is_complete(h: Harness) -> None:
    h.poll(1000, amount(BTC, 1, 900))
    assert only(h.apply(Tick(), 6001)).view.knowledge is Knowledge.EXPIRED
    assert only(h.poll(6100, amount(BTC, 1, 900))).refresh_of == 0
    h.apply(StreamLost(1, "1006"), 6200)
    assert only(h.poll(6300, amount(BTC, 1, 900))).refresh_of == 0


def test_refresh_of_each_key_its_own_version(h: Harness) -> None:
    h.poll(1000, amount(BTC, 1, 900))
    h.apply(stream(BTC, 2, 1000), 1000)
    h.poll(1000, amount(BTC, 2, 1000), amount(ETH, 3, 950))
    effects = publishes(h.poll(1900, amount(BTC, 2, 1000), amount(ETH, 3, 950)))
    assert [(p.view.key, p.refresh_of) for p in effects] == [
        (BTC, h.book.view(BTC).version - 1), (ETH, h.book.view(ETH).version - 1)]  # type: ignore[union-attr]


class _WatchedBook(PositionBook):
    """Checks every publish against the previous one of its key."""

    def __init__(self, policy: BookPolicy) -> None:
        super().__init__(policy)
        self.last: dict[PositionKey, PositionView] = {}

    def apply(self, event: Event, now_ms: int) -> list[Effect]:
        effects = super().apply(event, now_ms)
        for publish in publishes(effects):
            view, old = publish.view, self.last.get(publish.view.key)
            only_verified = (old is not None and view.knowledge is Knowledge.CONFIRMED
                             and view.verified_ms > old.verified_ms
                             and dataclasses.replace(old, verified_ms=view.verified_ms,
                                                     version=view.version) == view)
            if only_verified:
                assert old is not None
                assert publish.refresh_of == old.version, (old, publish)
            else:
                assert publish.refresh_of == 0, (old, publish)
            self.last[view.key] = view
        return effects


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_blind_scripts, _run_scripts))
def test_refresh_of_exactly_when_only_verified_ms_moved(ops: list[tuple[object, ...]]) -> None:
    """Any interleaving: refresh_of is the previous version iff nothing but freshness moved."""
    world = run([], replay=False)
    world.book = _WatchedBook(world.book.policy)
    for op in ops:
        name, *args = op
        if name in ("mute", "late"):
            setattr(world, "muted" if name == "mute" else "late", bool(args[0]))
        else:
            getattr(world, str(name))(*args)
