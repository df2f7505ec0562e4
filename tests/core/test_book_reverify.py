"""Book rule 13: a REST row that only re-verifies the confirmed, published fact takes a short
path (no fusion verdict, no view rebuilt from the entry). It must leave exactly what the
complete path leaves: the same effects, views, flat runs and bookkeeping, on any history.

The reference is the same book with the short path switched off; both are fed the random
histories of ``test_book_properties`` (plus stop crossings), and compared after every event.
The short path's replay (a read with the rows of the last read that only re-verified, nothing
changed since) is part of the short path: the reference takes neither.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.facts import BTC, amount, key, requested, snapshot, stream
from tests.core.test_book import Harness, expanded, publishes
from tests.core.test_book_properties import (
    _FLOOR_TIE,
    _OPENED_WHILE_DOWN,
    KEYS,
    POLICY,
    SYMBOLS,
    World,
    _advance,
    _answer,
    _blind_scripts,
    _change,
    _reconnect_scripts,
    _request,
    _run_scripts,
    _scripts,
    _standby_scripts,
)
from watchdog.core.book import PositionBook
from watchdog.core.effects import Effect, Publish, Reverified
from watchdog.core.events import (
    Event,
    PositionAmount,
    PositionSnapshot,
    SnapshotRequested,
    StopCrossed,
    StreamConnected,
    StreamLost,
)
from watchdog.core.model import Knowledge, OrderId, Source


class CompleteBook(PositionBook):
    """The book without rule 13's short path: every row through fusion and ``view_of``."""

    def _reverified(self, *args: Any, **kwargs: Any) -> bool:
        return False


def _state(book: PositionBook) -> dict[str, object]:
    """Everything the book keeps that a later event or a query can read."""
    return {
        "entries": {k: dataclasses.asdict(e) for k, e in book._entries.items()},
        "dirty": set(book._dirty),
        "ageing": vars(book._ageing),
        "all_flat": dataclasses.asdict(book._all_flat),
        "stream": book.stream_state,
        "flat": {k: (book.flat_since(k), book.flat_proven_ms(k)) for k in KEYS},
        "views": book.views(),
    }


class Twin(PositionBook):
    """Applies every event to itself and to a ``CompleteBook``, and fails on any difference."""

    def __init__(self) -> None:
        super().__init__(POLICY)
        self.reference = CompleteBook(POLICY)
        self.short_paths = 0
        self.replays = 0
        self.replayed: list[tuple[int, int, int]] = []  # (flat, crossed, all) keys of each

    def _reverified(self, *args: Any, **kwargs: Any) -> bool:
        taken = super()._reverified(*args, **kwargs)
        self.short_paths += taken
        return taken

    def _replay_calm(self, calm: Any, *args: Any, **kwargs: Any) -> bool:
        taken = super()._replay_calm(calm, *args, **kwargs)
        self.replays += taken
        if taken:
            self.replayed.append((len(calm.flat), len(calm.crossed), len(calm.entries)))
        return taken

    def apply(self, event: Event, now_ms: int) -> list[Effect]:
        generation = self.view_generation()
        effects = super().apply(event, now_ms)
        expected = self.reference.apply(event, now_ms)
        # effects rule 3: a Reverified is the refreshes it stands for, one verified_ms for all
        assert expanded(effects) == expected, (event, effects, expected)
        for bulk in (e for e in effects if isinstance(e, Reverified)):
            assert bulk.views
            assert all(v.verified_ms == bulk.verified_ms for v in bulk.views)
        if any(isinstance(e, Reverified) for e in effects):  # a read that changed no key
            assert not any(isinstance(e, Publish) and e.refresh_of for e in effects), effects
        assert _state(self) == _state(self.reference), event
        if self.view_generation() == generation:  # only re-verifications, if anything
            assert all(e.refresh_of for e in expanded(effects) if isinstance(e, Publish)), effects
        return effects


class CrossingWorld(World):
    """The property tests' world, plus stop crossings (book rule 12) on any key."""

    def cross(self, index: int) -> None:
        self.now_ms += 1
        self.apply(StopCrossed(KEYS[index % len(KEYS)], OrderId(7), True, Decimal(1), Decimal(1),
                               self.now_ms))


def _run(ops: list[tuple[object, ...]]) -> Twin:
    twin = Twin()
    world = CrossingWorld(book=twin)
    for op in ops:
        name, *args = op
        if name in ("mute", "late"):
            setattr(world, str(name), bool(args[0]))
        else:
            getattr(world, str(name))(*args)
    return twin


_cross = st.tuples(st.just("cross"), st.integers(0, len(KEYS) - 1))
_steady = [("request", len(SYMBOLS), 0, 0), ("answer", 0, False), ("advance", 900)]
_crossing_scripts = st.lists(st.one_of(_cross, st.sampled_from(_steady), st.sampled_from(_steady)),
                             max_size=40).map(lambda ops: [("gap", 1), *_steady, *ops])
# Random operations between bursts of alike all-symbols reads (v3 style, v2's flat rows, or
# timed flat rows): where a read may replay the last one (rule 13's replay), or must not.
# A burst's reads are answered at once (the newest pending); a crossing is lifted by a read
# requested max_rest_lag_ms after it: the fourth of a burst.
_burst = st.tuples(st.integers(0, 2), st.integers(3, 8)).map(
    lambda t: [("request", len(SYMBOLS), 0, t[0]), ("answer", -1, False), ("advance", 900)] * t[1])
_replay_operations = st.one_of(_advance, _change, _change, _request, _answer, _cross,
                               st.tuples(st.sampled_from(["mute", "late"]), st.booleans()),
                               st.tuples(st.just("deliver")),
                               st.tuples(st.just("gap"), st.integers(0, 2)))
_replay_scripts = st.tuples(
    st.lists(_change, min_size=1, max_size=8),  # positions first, so that reads have keys
    st.lists(st.one_of(_replay_operations.map(lambda op: [op]), _burst, _burst), min_size=2,
             max_size=12)).map(
    lambda t: [("gap", 1), *t[0], *[op for part in t[1] for op in part]])
_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_scripts)
def test_the_short_path_equals_the_complete_one(ops: list[tuple[object, ...]]) -> None:
    _run(ops)


@_SETTINGS
@given(st.one_of(_blind_scripts, _run_scripts, _reconnect_scripts, _standby_scripts))
def test_the_short_path_equals_the_complete_one_around_gaps_runs_and_standbys(
        ops: list[tuple[object, ...]]) -> None:
    _run(ops)


@_SETTINGS
@given(_crossing_scripts)
def test_the_short_path_equals_the_complete_one_around_crossings(
        ops: list[tuple[object, ...]]) -> None:
    _run(ops)


@_SETTINGS
@given(_replay_scripts)
def test_the_replay_equals_the_complete_path(ops: list[tuple[object, ...]]) -> None:
    _run(ops)


def test_the_examples_take_the_short_path() -> None:
    """The comparison means something only if the short path is taken: steady polls of an open
    and of a flat key, after the property tests' own examples."""
    ops = [("gap", 1), ("change", KEYS[0], 1, False), *(_steady * 4),
           ("change", KEYS[0], 0, False), *(_steady * 4), ("cross", 0), *(_steady * 4)]
    for script in (_FLOOR_TIE, _OPENED_WHILE_DOWN, ops):
        twin = _run([*script, *(_steady * 3)])
        assert twin.short_paths > 0
        assert twin.replays > 0


def test_the_replay_histories_replay_flat_crossed_and_many_keys() -> None:
    """The replay's random histories reach what it must get right: scripts of their kind
    replay reads with a flat key (its run grows), a crossed key (asked anew) and many keys."""
    reads = [("request", len(SYMBOLS), 0, 1), ("answer", -1, False), ("advance", 900)]
    opened = [("gap", 1), ("change", KEYS[0], 1, False), ("change", KEYS[1], 2, False)]
    flat = _run([*opened, ("change", KEYS[1], 0, False), *reads * 3]).replayed
    crossed = _run([*opened, ("cross", 0), *reads * 6]).replayed
    assert any(f and n > 1 for f, _, n in flat)
    assert any(c for _, c, _ in crossed)


# ---------------------------------------------------------------- what a re-verification is


def _live(book: PositionBook | None = None) -> Harness:
    """A book whose reads are trusted; no stream yet (so REST alone opens positions without a
    blindness verdict)."""
    h = Harness()
    if book is not None:
        h.book = book
    h.poll(0)
    return h


def test_a_reverification_moves_verified_ms_and_is_a_refresh() -> None:
    h = _live()
    (old,) = publishes(h.poll(1000, amount(BTC, 1, 900)))
    (bulk,) = h.poll(1900, amount(BTC, 1, 900))
    assert isinstance(bulk, Reverified)
    (new,) = bulk.publishes()
    assert (new.refresh_of, bulk.verified_ms) == (old.view.version, 1900)
    assert new.view == dataclasses.replace(old.view, verified_ms=1900, version=old.view.version + 1)
    assert h.book.view(BTC) is new.view


def test_a_reverified_flat_key_moves_its_flat_proof() -> None:
    """Rule 9: every trusted flat read moves ``flat_proven_ms``, a re-verification too."""
    h = _live()
    h.poll(1000, amount(BTC, 1, 900))
    h.poll(2000, amount(BTC, 0, 1800))
    assert h.book.flat_since(BTC) == 2000
    h.poll(3000)
    h.poll(4000, amount(BTC, 0, 1800))
    assert (h.book.flat_since(BTC), h.book.flat_proven_ms(BTC)) == (2000, 4000)


def test_a_same_amount_with_a_newer_update_time_is_a_new_fact() -> None:
    """Not a re-verification: the fact's time and source move, so the complete view is
    published (rule 2's SAME dated by the newer row)."""
    h = _live()
    h.apply(StreamLost(1, "x"), 500)
    h.apply(StreamConnected(2), 600)
    h.poll(1000, amount(BTC, 1, 900))
    (publish,) = h.poll(1900, amount(BTC, 1, 1800))
    assert isinstance(publish, Publish)
    assert publish.refresh_of == 0
    assert (publish.view.as_of_time_ms, publish.view.source) == (1800, Source.REST)


def test_a_stream_fact_reverified_by_rest_keeps_its_source_and_time() -> None:
    h = Harness()
    h.apply(StreamConnected(1), 0)
    h.poll(0)  # live
    h.apply(stream(BTC, 2, 1500), 1500)
    (publish,) = publishes(h.poll(1900, amount(BTC, 2, 1500)))
    assert publish.refresh_of > 0
    assert (publish.view.source, publish.view.as_of_time_ms, publish.view.verified_ms) == (
        Source.STREAM, 1500, 1900)


def test_a_read_requested_before_a_connect_verifies_nothing() -> None:
    """Rule 3: a read requested before the last gap is not trusted. A connect after a loss keeps
    a key confirmed by a read requested during the loss; a second read requested during the
    loss, answered after the connect, does not re-verify it (``verified_ms`` stays)."""
    h = _live()
    h.apply(StreamConnected(1), 0)
    h.poll(100, amount(BTC, 1, 50))
    h.apply(StreamLost(1, "x"), 1100)
    h.poll(1200, amount(BTC, 1, 50))             # during the loss: trusted, confirms at 1200
    h.apply(requested(10, 1250), 1250)           # during the loss, answered after the connect
    h.apply(StreamConnected(2), 1300)
    view = h.book.view(BTC)
    assert view is not None
    assert (view.knowledge, view.verified_ms) == (Knowledge.CONFIRMED, 1200)
    assert h.apply(snapshot(10, 1250, amount(BTC, 1, 50)), 1400) == []
    assert h.book.view(BTC) is view


def test_a_read_requested_before_a_crossing_does_not_reverify() -> None:
    """Rule 12: only a read requested after a crossing lifts its doubt, so an earlier read never
    re-verifies the key, even one a trusted stream fact confirmed after the crossing (a key
    never confirmed before: the crossing left it unknown, the stream fact confirmed it)."""
    h = Harness()
    h.apply(StreamConnected(1), 0)
    h.apply(stream(BTC, 1, 100), 100)            # before any read: not trusted, unknown
    h.poll(150)                                   # flat, untimed, within lag: ambiguous; live
    assert h.book.stream_state == "live"
    h.apply(requested(20, 400), 400)             # requested before the crossing
    h.apply(StopCrossed(BTC, OrderId(7), True, Decimal(1), Decimal(1), 350), 410)
    h.apply(stream(BTC, 2, 300), 420)            # trusted stream fact: confirmed
    view = h.book.view(BTC)
    assert view is not None
    assert (view.knowledge, view.verified_ms) == (Knowledge.CONFIRMED, 420)
    h.apply(snapshot(20, 400, amount(BTC, 2, 300)), 500)
    assert h.book.view(BTC) is view


def test_a_fact_the_book_took_without_publishing_is_published_in_full() -> None:
    """The short path copies the published view; it must not when the held fact moved without
    a publish: a row requested before a crossing, alike but newer, dates the held fact (rule
    2's SAME) without lifting the doubt (rule 12), so nothing is published then. The next read,
    which lifts it, publishes the new time and source in full, not as a refresh."""
    h = Harness()
    h.apply(StreamConnected(1), 0)
    h.apply(stream(BTC, 1, 100), 100)
    h.poll(150)
    h.apply(requested(20, 400), 400)
    h.apply(StopCrossed(BTC, OrderId(7), True, Decimal(1), Decimal(1), 350), 410)
    h.apply(stream(BTC, 2, 300), 420)
    h.apply(snapshot(20, 400, amount(BTC, 2, 350)), 500)   # newer time, same amount
    view = h.book.view(BTC)
    assert view is not None
    assert (view.as_of_time_ms, view.source) == (300, Source.STREAM)  # not published
    (publish,) = h.poll(2600, amount(BTC, 2, 350))
    assert isinstance(publish, Publish)
    assert publish.refresh_of == 0
    assert (publish.view.as_of_time_ms, publish.view.source, publish.view.verified_ms) == (
        350, Source.REST, 2600)


def test_an_unchanged_read_in_the_same_millisecond_publishes_nothing() -> None:
    h = _live()
    h.poll(1000, amount(BTC, 1, 900))
    rid = 99
    h.apply(SnapshotRequested(rid, 1000), 1000)
    assert h.apply(PositionSnapshot(rid, 1000, 1000, (PositionAmount(BTC, Decimal(1), Decimal(100),
                                                                     900),)), 1000) == []


def test_three_hundred_steady_rows_take_the_short_path() -> None:
    """What the rule is for: an idle account's poll re-verifies every row."""
    twin = Twin()
    h = _live(twin)
    rows = [amount(key(f"S{i:03d}USDT"), 10, 900) for i in range(300)]
    h.poll(1000, *rows)
    before, generation = twin.short_paths, twin.view_generation()
    effects = h.poll(1900, *rows)
    assert twin.short_paths - before == 300
    assert twin.view_generation() == generation  # the guard's next step compares no view
    (bulk,) = effects  # one effect for the read (effects rule 3), not 300
    assert isinstance(bulk, Reverified)
    assert [v.key for v in bulk.views] == [r.key for r in rows]
    assert bulk.verified_ms == 1900
    # The next reads with these rows replay it (the twin compares each with the complete path)
    for at_ms in (2800, 3700):
        (bulk,) = h.poll(at_ms, *rows)
        assert isinstance(bulk, Reverified)
        assert [v.key for v in bulk.views] == [r.key for r in rows]
    assert (twin.replays, twin.short_paths - before) == (2, 300)


def test_a_change_between_alike_reads_is_not_replayed() -> None:
    """Red team for the replay: the same rows again, but the book moved between the reads (a
    stream fact, a crossing, a gap, an aged key): each goes the complete way (the twin checks
    the result), and the read after it may replay again."""
    twin = Twin()
    h = Harness()
    h.book = twin
    h.apply(StreamConnected(1), 0)
    rows = [amount(key(f"S{i:03d}USDT"), 10, 900) for i in range(3)]
    h.poll(1000, *rows)
    h.poll(1900, *rows)           # re-verifies: the calm read
    h.poll(2800, *rows)           # replayed
    assert twin.replays == 1
    h.apply(StopCrossed(rows[1].key, OrderId(7), True, Decimal(1), Decimal(1), 2850), 2850)
    for at_ms in (3700, 4600, 5500):  # the last one lifts the crossing, the complete way
        h.poll(at_ms, *rows)
    h.poll(6400, *rows)           # re-verifies: a calm read again, with a crossed key
    h.poll(7300, *rows)           # replayed, whether the crossing is lifted asked anew
    assert twin.replays == 2
    h.apply(stream(rows[0].key, 11, 7400), 7400)
    h.poll(8200, *rows)           # REST lags the stream fact: not a re-verification
    h.apply(StreamLost(1, "x"), 8300)
    h.apply(StreamConnected(2), 8400)
    h.poll(9100, *rows)
    h.poll(16000, *rows)          # every key aged out before this read
    assert twin.replays == 2
    view = twin.view(rows[2].key)
    assert view is not None
    assert view.knowledge is Knowledge.CONFIRMED
