"""Vitals over a real PositionBook: degraded reasons; the keepalive gate on loop progress."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.test_book_properties import World, _scripts
from watchdog.core.book import PositionBook
from watchdog.core.events import (
    PositionAmount,
    PositionSnapshot,
    SnapshotFailed,
    SnapshotRequested,
    StreamConnected,
    StreamLost,
)
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.runtime.vitals import Identity, Vitals

KEY = PositionKey(Symbol("BASUSDT"), PositionSide.BOTH)
T0 = 1_764_000_000_000


def vitals(book: PositionBook) -> Vitals:
    return Vitals(Identity(pid=1, host="h", version="0", started_ms=1), book, weight_budget_1m=360,
                  progress_limit_s=10.0, weight_used=lambda: 42, orphans_removed=lambda: 3)


def reconciled(book: PositionBook, amount: str = "1216") -> None:
    book.apply(StreamConnected(1), T0)
    book.apply(SnapshotRequested(1, T0 + 1), T0 + 1)
    row = PositionAmount(KEY, Decimal(amount), Decimal("0.00832684"), T0)
    book.apply(PositionSnapshot(1, T0 + 1, T0 + 2, (row,)), T0 + 2)


def test_healthy_once_ready_live_and_reads_succeed() -> None:
    book = PositionBook()
    v = vitals(book)
    assert "starting: first snapshot not published yet" in v.problems()
    assert "stream down" in v.problems()
    reconciled(book)
    v.ready = True
    health = v.health(now_ms=T0 + 3)
    assert health.healthy, health.problems
    assert health.stream_state == "live"
    assert (health.last_snapshot_ms, health.positions_open, health.orphans_removed) == (T0 + 2, 1, 3)
    assert (health.rest_weight_used_1m, health.rest_weight_budget_1m) == (42, 360)


def test_degraded_reasons() -> None:
    book = PositionBook()
    v = vitals(book)
    reconciled(book)
    v.ready = True
    book.apply(StreamLost(1, "muted"), T0 + 10)
    failed = SnapshotFailed(2, "HTTP 503")
    book.apply(failed, T0 + 11)
    v.observe_event(failed)
    v.store_result("StoreUnavailable: timeout")
    assert v.problems() == ("stream down", "REST reads failing (1 in a row: HTTP 503)",
                            "redis writes failing: StoreUnavailable: timeout",
                            "1 position(s) unknown")
    health = v.health(T0 + 12)
    assert not health.healthy
    assert (health.positions_open, health.positions_unknown) == (0, 1)


def test_keepalive_needs_progress_from_every_loop() -> None:
    v = vitals(PositionBook())
    assert not v.keepalive_due(100.0, ("poller", "heartbeat"))
    v.progressed("poller", 95.0)
    v.progressed("heartbeat", 99.0)
    assert v.keepalive_due(100.0, ("poller", "heartbeat"))
    assert not v.keepalive_due(106.0, ("poller", "heartbeat"))


def test_unproven_after_a_blind_verdict_until_rest_corroborates_the_stream() -> None:
    """The heartbeat says ``stream_proof=unproven`` while ``stream_state`` is live again."""
    from watchdog.core.effects import RaiseAlert
    from watchdog.core.events import StreamPositions
    from watchdog.store.heartbeat import summary_line

    book = PositionBook()
    v = vitals(book)
    reconciled(book)
    v.ready = True
    blind = RaiseAlert("stream_blind", "BASUSDT:BOTH: REST shows amount 0", KEY)
    v.proof.apply(SnapshotRequested(2, T0 + 5), T0 + 5, [blind])
    health = v.health(now_ms=T0 + 1005)
    assert health.stream_state == "live"
    assert health.stream_proof == "unproven"
    assert (health.stream_unproven_since_ms, health.stream_unproven_reason) == (T0 + 5,
                                                                                blind.message)
    assert health.problems == ("stream unproven: found blind, no event since confirmed by REST",)
    line = summary_line(health, T0 + 1005)
    assert line.startswith("degraded stream=live stream_proof=unproven ")
    assert line.endswith("problems=stream unproven: found blind, no event since confirmed by REST")
    row = PositionAmount(KEY, Decimal(0), Decimal(0), T0 + 6)
    v.proof.apply(StreamPositions(T0 + 6, T0 + 6, "ORDER", (row,)), T0 + 6)
    v.proof.apply(SnapshotRequested(3, T0 + 7), T0 + 7)
    v.proof.apply(PositionSnapshot(3, T0 + 7, T0 + 8, ()), T0 + 8)
    assert v.health(now_ms=T0 + 9).healthy


@settings(max_examples=100, deadline=None)
@given(beats=st.lists(st.lists(st.sampled_from(["AUSDT", "BUSDT", "CUSDT", "DUSDT"]),
                               unique=True, max_size=4), max_size=8),
       fresh=st.booleans())
def test_the_unprotected_problem_line_names_the_guards_alerted_keys_at_every_beat(
        beats: list[list[str]], fresh: bool) -> None:
    """The line kept from beat to beat (``_unprotected_problem``) is the one built afresh,
    whether the guard hands the very same key objects again or equal new ones."""
    keys = {s: PositionKey(Symbol(s), PositionSide.BOTH) for s in ["AUSDT", "BUSDT", "CUSDT",
                                                                    "DUSDT"]}
    alerted: list[tuple[PositionKey, int]] = []
    v = Vitals(Identity(pid=1, host="h", version="0", started_ms=1), PositionBook(),
               weight_budget_1m=360, progress_limit_s=10.0, unprotected=lambda: tuple(alerted))
    for beat in beats:
        alerted[:] = [(PositionKey(Symbol(s), PositionSide.BOTH) if fresh else keys[s], 7)
                      for s in beat]
        expected = ([f"{len(beat)} position(s) unprotected (no covering stop): "
                     + ", ".join(f"{s}:BOTH" for s in beat)] if beat else [])
        assert [p for p in v.problems() if "unprotected (no covering" in p] == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_scripts)
def test_the_kept_state_counts_are_the_books_after_every_step(ops: list[tuple[object, ...]]) -> None:
    """Rule 1: the counts kept while the view generation stays are the book's own counts after
    every step of random histories (facts, reads, failures, gaps, ageing), and so is every
    heartbeat field that uses them."""
    world = World()
    v = vitals(world.book)
    fresh = vitals(world.book)
    fresh._states = world.book.state_counts  # type: ignore[method-assign]  # the old path
    for op in ops:
        name, *args = op
        if name == "mute":
            world.muted = bool(args[0])
        elif name == "late":
            world.late = bool(args[0])
        else:
            getattr(world, str(name))(*args)
        for _ in range(2):  # a beat that computes, and one that keeps
            assert v._states() == world.book.state_counts(), op
            assert v.health(world.now_ms) == fresh.health(world.now_ms), op
