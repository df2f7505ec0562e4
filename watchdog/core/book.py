"""PositionBook: authoritative per-position state fused from stream and REST facts.

The book holds fusion only; its small machines live beside it, each with its own rules and
tests: the stream's down/gap/live (``stream_state.py``), the REST request ledger and exchange
clock steps (``requests.py``), blindness (``blindness.py``), flat runs (``flat_run.py``), age
deadlines and wall clock steps (``ageing.py``), stop trigger crossings (``crossing.py``), the
knowledge machine (``freshness.py``), the judgment of one REST row (``fusion.py``), how a
key's state is shown (``views.py``) and what an event asks for beside fusion
(``reactions.py``). Over 400 lines on purpose: the thirteen rules below are one statement of
what a published view means (a hundred lines that docs/CORE.md renders), and the code left is
their one implementation over one table of entries: the stream side, the REST side and the
knowledge moves all write the same entries, so splitting further would cut a rule in two.

Rules of this module:
1. Per key, facts are ordered by exchange time. A fact older than the one held is ignored;
   re-applying the same fact changes nothing (idempotent). Equal time with other values: a
   stream fact wins (the stream is ordered per event type), a REST row goes through rule 2.
2. A late REST snapshot never overwrites a newer stream fact (``fusion.judge_rest_row``). A
   REST row older than the held fact, or a row without time (absent from an all-symbols read,
   or ``updateTime`` 0), may override it only if ``requested_time_ms - max_rest_lag_ms`` is
   after the held fact's time. Otherwise: a timed older row is REST lag and is ignored; an
   untimed row is ambiguous (REST lag can hide a fresh open), so the key becomes SUSPECT and
   a RequestSnapshot for its symbol is emitted. A fact REST itself gave (a closure learned from
   REST, dated at its read's lag floor) is never undone by a timed row that is not newer: that
   row is a more lagged answer (``fusion`` rule 3), so a closure cannot flap back open.
   REST reads are ordered by (requested_time_ms, request_id): a read answered after a newer one
   was applied is ignored for the symbols the newer one covered (request ids increase; the
   ledger of requests and their order: core/requests.py).
3. After StreamLost, StreamConnected or ListenKeyExpired (a *gap*) no key is CONFIRMED (the
   confirmed ones turn SUSPECT) until a PositionSnapshot whose SnapshotRequested was seen after
   the gap is applied (request ids map to a gap epoch). Stream facts during the gap are applied
   by rule 1 but do not confirm. A key is trusted to the stream again once a post-gap snapshot
   covered it; the stream is ``live`` again once a post-gap all-symbols snapshot was applied
   (the down/gap/live table and the coverage: core/stream_state.py).
   The gap begins when the stream is lost: a StreamConnected that ends a disconnection (after
   StreamLost or ListenKeyExpired, or at startup) leaves CONFIRMED the keys a snapshot requested
   after that loss confirmed meanwhile (nothing else can confirm a key while disconnected), so
   a reconnect costs no doubt REST already lifted; their stream trust, the flat run (rule 9)
   and ``live`` still wait for a snapshot requested after the connect. A loss asks for a
   snapshot (RequestSnapshot); a connect does not: the stream reads one right after every
   connect (its gap protocol), and a second request would only read the same again.
4. A failed or partial read never means flat: SnapshotFailed makes the keys it covered SUSPECT;
   a snapshot scoped to some symbols only speaks for keys of those symbols.
5. Knowledge whose ``verified_ms`` is older than ``max_age_ms`` becomes EXPIRED (checked first on
   every apply, Tick included) and is published as UNKNOWN, never as the old value. Views are
   as of the last ``apply``: the shell sends Tick so that age is noticed without traffic, at
   the latest at the first point of its grid at or after ``next_due_ms()`` (runtime/ticker.py).
   A ``now_ms`` earlier than the previous one, or a Tick whose ``wall_stepped_back_ms`` says the
   shell saw one, is a wall clock stepped back by an unknown amount:
   every age is unknown, so all CONFIRMED/SUSPECT knowledge becomes EXPIRED at once, never
   younger than it is (the deadlines and the step back: core/ageing.py).
6. ``state`` is OPEN/CLOSED only while knowledge is CONFIRMED. ``version`` strictly increases
   per key on every published change, from above ``version_base`` (so it also increases across
   daemon restarts); a no-op publishes nothing. ``verified_ms`` is the
   ``now_ms`` at which an authoritative fact (post-gap REST, or a trusted stream fact)
   confirmed the state. Notify ``position_opened``/``position_closed`` follows open↔closed
   changes of confirmed state; ``stream_lost``/``stream_recovered`` follow the stream.
7. Stream blindness (the watch, the tolerance and the verdict: core/blindness.py): when a
   trusted REST snapshot shows a change the live stream never reported (no position fact and
   no fill on that symbol since the held fact), the book raises ``stream_blind`` (RaiseAlert,
   Notify, Reconnect) once the change is ``blind_after_ms`` old: dated by the REST row's
   ``updateTime``, else (absent or untimed row) by the ``requested_time_ms`` of the first
   snapshot that showed it. A younger change is held back (a healthy stream may be a
   few ms behind REST) until a later snapshot shows it old enough (the next routine poll:
   a read asked for at the tolerance's end was tried and cost the crossing reads their weight,
   docs/RELIABILITY.md); a
   stream fact or fill that reports it clears it, a later trusted snapshot past the
   tolerance raises it, a gap forgets it. The state change itself is applied
   at once either way. The runtime replaces the connection (the BASUSDT incident).
   Only a change provably made while this connection was up counts: its earliest possible
   time (a timed row's ``updateTime``, else the latest time the held amount is known to have
   held: its own time or the lag floor of a later read that still showed it; for a key never
   held, the lag floor of the last read) must not be before the ``requested_time_ms`` of the
   first snapshot requested after the connect. A change made while disconnected and shown by
   a lagging first post-connect read is no blindness (the stream never had a chance).
   What an event asks for beside fusion (a fill's snapshot, ``ReadNow``, ``margin_call``, a
   malformed frame's snapshot, the canary's verdict) follows from the event alone, after the
   book's own effects: core/reactions.py.
8. No clock, no I/O, no logging: ``now_ms`` is injected and everything leaves as an Effect.
   The book never emits Retract: an UNKNOWN view is published with its reason instead.
9. ``flat_since`` is the ``requested_time_ms`` of the first trusted snapshot of the current
   unbroken run that showed the key flat. A gap, a failed read covering the key, an open fact
   or expiry (ambiguous REST, any loss of CONFIRMED) breaks the run; a snapshot requested
   before the latest break cannot start a new one, even if it is answered after it.
   ``flat_proven_ms`` is the ``requested_time_ms`` of the run's newest trusted read: REST lags,
   so it proves flatness only as of that time minus ``max_rest_lag_ms`` (the reaper's grace).
   (How a run starts, grows and breaks: core/flat_run.py; the book says when it breaks.)
   Make-before-break at suspicion: when REST first shows a change the live stream has not
   reported (rule 7's held-back change), the book asks for a standby connection
   (``PrepareStandby``). ``StandbyListening(id)`` marks the book's event count S (the shell
   reads positions right after it: a read requested after S). A gap whose
   ``StreamConnected(id, standby=True)`` promotes that standby breaks every run *as of S*: the
   first trusted flat read requested after the gap (the post-gap read that rule 3 waits for,
   as ever) continues the run from the first trusted flat read requested after S, unbroken by
   anything since, instead of starting a new one; everything else a gap does (rule 3) stays.
   Why this is safe: a fill after S reaches the standby, which delivers it right after the
   gap, before the post-gap read (an open fact breaks the run; a fill restarts the reaper's
   grace); a fill before S that the blind stream missed is before the run's start, so
   lag-honest REST shows it to the read that proves the grace (requested ``grace_ms`` +
   ``max_rest_lag_ms`` after the start), as it does after today's post-connect read. A mute
   standby misses fills after S as the mute stream did: REST alone shows them, as between
   two blind reconnects (which keep the run). Any other gap (a fresh connection,
   ListenKeyExpired, a newer standby's mark) forgets the mark.
10. A change while no watchdog ran is told too: ``expect`` takes the OPEN/CLOSED state an
   earlier run last published per key; the first confirmed view of that key that differs from
   it emits ``position_opened``/``position_closed`` with ``while_down=true`` and
   ``last_seen_ms`` (the ``verified_ms`` of the old state: the change happened between it and
   the event's ``at_ms``) when a REST read brought the first fact, plainly when the stream did
   (then the change was seen live).
11. Exchange clock steps (a request dated on a stepped Binance clock: core/requests.py rule 3)
   break every flat run and forget the read order of rule 2: runs and proofs dated on the old
   clock say nothing on the new one, and a read on the new clock must not be skipped as older;
   a read requested before the step and answered after it is ignored. Facts dated ahead of the
   new clock make newer rows look lagging until it catches up: their knowledge ages out
   (rule 5) and is published unknown meanwhile, never as a stale value.
12. ``StopCrossed`` (a public price crossed one of the key's stop triggers) makes a confirmed
   key SUSPECT at once and asks a positions snapshot; only a trusted snapshot *requested after*
   the crossing, showing the amount changed or past ``max_rest_lag_ms``, lifts that doubt (the
   crossing and what lifts it: core/crossing.py).
13. A trusted row that only re-verifies the confirmed fact the book published (the same amount
   and entry price, no newer ``updateTime``: rule 2's SAME, not re-dated; no crossing doubt it
   may not lift) takes a short path: ``true_ms`` and ``verified_ms`` move, a flat key's run
   grows (rule 9), and the published view is re-issued with the new ``verified_ms`` as a
   refresh (core/views.py rule 2), without a fusion verdict or a view rebuilt from the entry;
   the refreshes of one read leave as one ``Reverified`` (effects rule 3), not a ``Publish`` each.
   It is the complete path's result, field for field (a test compares both on random
   histories): a re-verification is the fresh REST fact it is. Anything else, and any key
   whose held fact moved since it was published, goes the complete way. Why: an idle account
   re-verifies every position on every poll (300 rows each 0.9 s), and that path was most of
   the daemon's idle CPU (docs/BENCHMARKS.md, session 6).
   A read with the same rows (equal, in order, same scope) as the last read, in which every
   key took this path, is *replayed* when nothing a re-verification depends on changed since
   (any fact, knowledge move, crossing, gap, clock step, expected key or complete publish
   forgets that read): each of its keys re-verifies again without asking what cannot have
   moved, with the same result as the short path key by key (whether a crossing is lifted is
   asked anew; a test compares the replay with the complete path on random histories).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter
from typing import assert_never

from watchdog.core.ageing import Ageing
from watchdog.core.blindness import PositionBlindness
from watchdog.core.crossing import Crossing, crossing_doubt, crossing_read, lifts
from watchdog.core.effects import (
    Effect,
    Notify,
    PrepareStandby,
    Publish,
    RequestSnapshot,
    Reverified,
)
from watchdog.core.events import (
    AccountConfigUpdate,
    AlgoUpdate,
    CanaryAlert,
    Event,
    ListenKeyExpired,
    MalformedFrame,
    MarginCall,
    OrdersSnapshot,
    OrderUpdate,
    PositionAmount,
    PositionSnapshot,
    SnapshotFailed,
    SnapshotRequested,
    StandbyListening,
    StopCrossed,
    StreamConnected,
    StreamLost,
    StreamPositions,
    Tick,
    TradeLite,
)
from watchdog.core.flat_run import FlatRun
from watchdog.core.freshness import Evidence, transition
from watchdog.core.fusion import Held, Verdict, judge_rest_row
from watchdog.core.model import (
    ZERO,
    Knowledge,
    PositionKey,
    PositionState,
    PositionView,
    Source,
    Symbol,
)
from watchdog.core.reactions import asks
from watchdog.core.requests import Request, RequestLedger
from watchdog.core.stream_state import StreamState, StreamTrack
from watchdog.core.views import change_notify, publish_of, view_of

__all__ = ["BookPolicy", "PositionBook"]

# PositionKey's own order (symbol, then side), compared in C: sorting 300 keys with the
# dataclass' __lt__ was a tenth of every 300-row snapshot.
_KEY_ORDER = attrgetter("symbol", "side")
_ENTRY_ORDER = attrgetter("key.symbol", "key.side")
# Events read from a user-stream frame: they date ``last_event_ms`` (the health hash).
_USER_STREAM_EVENTS = (StreamPositions, OrderUpdate, TradeLite, AlgoUpdate, AccountConfigUpdate,
                       MarginCall, ListenKeyExpired)


@dataclass(frozen=True, slots=True, kw_only=True)
class BookPolicy:
    """Limits of trust. ``max_age_ms``: knowledge older than this is unknown.
    ``max_rest_lag_ms``: how far behind the stream a REST answer may legitimately be.
    ``blind_after_ms``: how far behind REST the stream may be before it counts as blind.
    Keywords only: three ints in a row are too easy to swap."""

    max_age_ms: int = 5000
    max_rest_lag_ms: int = 2000
    blind_after_ms: int = 1000


@dataclass(slots=True)
class _Entry:
    """Mutable bookkeeping for one key; only ``PositionView`` leaves the book."""

    key: PositionKey
    amount: Decimal
    entry_price: Decimal
    source: Source
    as_of_time_ms: int
    knowledge: Knowledge = Knowledge.UNKNOWN
    verified_ms: int = 0
    reason: str = "never confirmed by an authoritative fact"
    confirmed_state: PositionState | None = None  # last published OPEN/CLOSED, for Notify
    flat: FlatRun = field(default_factory=FlatRun)  # rule 9
    # Latest exchange time the held amount is known to have held (its own time, or a REST
    # read's lag floor that still showed it): a change REST shows later was made after it.
    true_ms: int = 0
    crossing: Crossing | None = None  # the last StopCrossed (rule 12)
    published: PositionView | None = None
    # expect(): the state an earlier run last showed (confirmed_state) was not seen to change
    # by this run; verified_ms of that state, until the first confirmed publish (rule 10)
    while_down_from_ms: int | None = None


@dataclass(slots=True)
class _Calm:
    """Rule 13's replay: the last read whose every row re-verified its key (the loop's keys in
    order), valid until anything a re-verification depends on changes (``_calm = None``)."""

    positions: tuple[PositionAmount, ...]
    symbols: frozenset[Symbol] | None
    entries: list[_Entry]
    flat: list[_Entry]     # those held flat: their runs grow (rule 9)
    crossed: list[_Entry]  # those with a crossing: whether a read lifts it is asked anew


class PositionBook:
    """Fuses position facts into published views. Single writer: call ``apply`` from one task."""

    def __init__(self, policy: BookPolicy | None = None, *, version_base: int = 0) -> None:
        """Args:
            policy: the ageing and trust limits.
            version_base: versions start above it. The store refuses a write whose version is
                not greater than the stored one, so a restarted daemon must not count from 1
                again: the runtime passes a base that grows across restarts (start wall ms
                x 1000, exact in Redis' Lua doubles until the year 2255).
        """
        self._policy = policy or BookPolicy()
        self._version_base = version_base
        self._expected: set[PositionKey] = set()  # published by an earlier run, not yet re-read
        self._last_shown: dict[PositionKey, tuple[PositionState, int]] = {}  # rule 10
        self._entries: dict[PositionKey, _Entry] = {}
        self._stream = StreamTrack()     # down/gap/live, the gap epoch, what REST covered
        self._requests = RequestLedger(max_rest_lag_ms=self._policy.max_rest_lag_ms)
        self._blindness = PositionBlindness(blind_after_ms=self._policy.blind_after_ms)  # rule 7
        self._all_flat = FlatRun()  # the flat run of keys never seen (all-symbols reads)
        self._standby: int | None = None  # the marked standby connection's id (rule 9)
        self._all_verified_ms = 0
        self._all_watched = False  # _all_verified_ms has not lapsed yet
        self._ageing = Ageing(max_age_ms=self._policy.max_age_ms)  # rule 5
        self._dirty: set[PositionKey] = set()
        self._reverifying: list[_Entry] = []  # rule 13: published after the apply, in order
        self._calm: _Calm | None = None  # rule 13: the last read that only re-verified
        self._view_generation = 0  # counts views replaced or first published (not refreshes)
        # Vitals, read by runtime/vitals.py for the health hash. Kept here: the book is the one
        # writer that sees every event with its now_ms, and events_applied is also the book's
        # own sequence (a read is requested before or after a flat run broke, rules 9 and 12).
        self.last_event_ms: int | None = None
        self.last_snapshot_ms: int | None = None
        self.snapshots_failed = 0
        self.events_applied = 0

    # ------------------------------------------------------------------ queries

    @property
    def policy(self) -> BookPolicy:
        return self._policy

    @property
    def stream_state(self) -> StreamState:
        """``down``: not connected; ``gap``: connected, not yet reconciled by REST; ``live``
        (core/stream_state.py)."""
        return self._stream.state

    def view(self, key: PositionKey) -> PositionView | None:
        """The last published view of ``key``, or None if the book never held a fact for it."""
        entry = self._entries.get(key)
        return entry.published if entry is not None else None

    def views(self) -> list[PositionView]:
        """Every published view, sorted by key."""
        return [e.published for e in sorted(self._entries.values(), key=_ENTRY_ORDER)
                if e.published is not None]

    def state_counts(self) -> Counter[PositionState]:
        """How many published views are in each state: ``views()`` counted, without its sort
        (the heartbeat asks every second; sorting 300 keys for a count was a tenth of an idle
        daemon's beat, docs/BENCHMARKS.md "the CPU floor")."""
        return Counter(e.published.state for e in self._entries.values()
                       if e.published is not None)

    def key_count(self) -> int:
        """How many keys the book holds; never decreases (no key is ever forgotten)."""
        return len(self._entries)

    def view_generation(self) -> int:
        """Changes whenever a published view is replaced by one that differs in more than
        ``verified_ms`` and ``version`` (rule 13's re-verifications leave it): while it stays
        the same, every ``view(key)`` agrees in everything else with the view it returned
        before (the guard's calm step, core/guard.py rule 5)."""
        return self._view_generation

    def next_due_ms(self) -> int | None:
        """The earliest ``now_ms`` at which an apply may age knowledge (rule 5; None: nothing
        can lapse). Before it, a Tick changes nothing in the book but its event count."""
        return self._ageing.next_due_ms()

    def flat_since(self, key: PositionKey) -> int | None:
        """``requested_time_ms`` of the first REST snapshot of the current unbroken run that
        showed ``key`` flat while confirmed; None unless the key is flat and confirmed by REST.

        A key the book never held is covered by the run of all-symbols snapshots.
        """
        entry = self._entries.get(key)
        if entry is None:
            return self._all_flat.since_ms
        if entry.knowledge is not Knowledge.CONFIRMED or entry.amount != ZERO:
            return None
        return entry.flat.since_ms

    def unseen_flat_since(self) -> int | None:
        """``flat_since`` of every key the book never held (the all-symbols run, rule 9)."""
        return self._all_flat.since_ms

    def flat_proven_ms(self, key: PositionKey) -> int | None:
        """``requested_time_ms`` of the newest trusted REST read of the current flat run
        (rule 9) that showed ``key`` flat; None when ``flat_since(key)`` is None. REST lags:
        that read proves flatness only as of this time minus ``max_rest_lag_ms``."""
        entry = self._entries.get(key)
        if entry is None:
            return self._all_flat.proven_ms
        if self.flat_since(key) is None:
            return None
        return entry.flat.proof_ms

    # ------------------------------------------------------------------ apply

    def apply(self, event: Event, now_ms: int) -> list[Effect]:
        """Fold one event into the book.

        Returns:
            Effects to run in order: Publish/Notify for every changed view (sorted by key), then
            alerts, stream notifications and snapshot requests.
        """
        self.events_applied += 1
        extra: list[Effect] = []
        self._age(now_ms, event.wall_stepped_back_ms if type(event) is Tick else 0)
        if isinstance(event, _USER_STREAM_EVENTS):
            self.last_event_ms = now_ms
        match event:
            case StreamPositions():
                for row in event.positions:
                    self._apply_stream_row(row, now_ms)
            case OrderUpdate() | TradeLite():
                if isinstance(event, TradeLite) or event.last_filled_quantity != ZERO:
                    self._blindness.filled(event.symbol, event.transaction_time_ms)  # rule 7
            case ListenKeyExpired():
                extra.extend(self._on_gap(connected=False, reason="listen key expired",
                                          keep_standby=False))
            case StreamLost():
                extra.extend(self._on_gap(connected=False, reason=f"stream lost: {event.reason}",
                                          keep_standby=True))
            case StreamConnected():
                promoted = event.standby and event.connection_id == self._standby
                extra.extend(self._on_gap(connected=True, reason="stream (re)connected",
                                          keep_standby=promoted))
            case StandbyListening():
                self._on_standby(event.connection_id)
            case SnapshotRequested():
                if self._requests.requested(event, now_ms, epoch=self._stream.epoch,
                                            seq=self.events_applied):
                    self._exchange_clock_stepped()
                self._blindness.watch.requested(event.requested_time_ms)
            case PositionSnapshot():
                extra.extend(self._apply_snapshot(event, now_ms))
            case SnapshotFailed():
                self._on_snapshot_failed(event)
            case StopCrossed():
                extra.append(self._on_stop_crossed(event, now_ms))
            case (AlgoUpdate() | AccountConfigUpdate() | MarginCall() | CanaryAlert()
                  | MalformedFrame() | OrdersSnapshot() | Tick()):
                pass  # nothing to fuse: what they ask for is core/reactions.py's
            case _:  # pragma: no cover - unreachable while every event type is handled
                assert_never(event)
        return self._publish_dirty() + extra + asks(event)

    # ------------------------------------------------------------------ stream

    def _apply_stream_row(self, row: PositionAmount, now_ms: int) -> None:
        key = row.key
        self._blindness.stream_fact(key, row.update_time_ms)
        entry = self._entries.get(key)
        if entry is not None:
            if row.update_time_ms < entry.as_of_time_ms:
                return  # rule 1: older than held
            if (row.update_time_ms == entry.as_of_time_ms and row.amount == entry.amount
                    and row.entry_price == entry.entry_price):
                return  # rule 1: the same fact again
        entry = self._store_fact(key, row.amount, row.entry_price, Source.STREAM,
                                 row.update_time_ms)
        trusted = self._stream.connected and self._stream.covered(key.symbol)
        if trusted:
            self._move(entry, Evidence.STREAM_FACT, now_ms, "")
        else:
            self._move(entry, Evidence.UNCONFIRMED_FACT, now_ms,
                       "stream fact during a gap: awaiting a snapshot requested after it")

    def _on_stop_crossed(self, event: StopCrossed, now_ms: int) -> RequestSnapshot:
        """Rule 12: doubt the key now; only a read requested after this lifts the doubt."""
        self._calm = None
        entry = self._entries.get(event.key)
        if entry is not None:
            entry.crossing = Crossing(self.events_applied, event.price_time_ms, entry.amount)
            self._move(entry, Evidence.TRIGGER_CROSSED, now_ms, crossing_doubt(event))
        return crossing_read(event)

    def _on_standby(self, connection_id: int) -> None:
        """Rule 9: a standby listens from this event on; a read requested after it may start
        the run a promotion of that standby keeps."""
        if not self._stream.connected:
            return  # nothing to replace: the next connection comes with its own snapshot
        self._standby = connection_id
        self._all_flat.mark(self.events_applied)
        for entry in self._entries.values():
            entry.flat.mark(self.events_applied)

    def _on_gap(self, *, connected: bool, reason: str, keep_standby: bool) -> list[Effect]:
        # Rule 9: the shadow runs since the standby's mark are not broken by this gap.
        self._calm = None
        shadows = {key: entry.flat.take_standby() for key, entry in self._entries.items()}
        all_shadow = self._all_flat.take_standby()
        was_connected = self._stream.gap(connected=connected)
        self._blindness.gap(connected=connected)
        self._break_all_run()
        # Rule 3: connecting after a loss adds no doubt to keys proven since that loss.
        keep_confirmed = connected and not was_connected
        for entry in self._entries.values():
            if keep_confirmed and entry.knowledge is Knowledge.CONFIRMED:
                entry.flat.broken(self.events_applied)
                continue
            self._move(entry, Evidence.STREAM_GAP, 0,
                       f"{reason}: awaiting a snapshot requested after it")
        if not keep_standby or self._standby is None:
            self._standby = None  # forgotten: a later promotion of it is an ordinary gap
        else:
            # Promoted (connected): every run broke as of the mark, and the post-gap read
            # resumes it from there. Lost: the standby may replace this connection next.
            if connected:
                self._standby = None
            for key, shadow in shadows.items():
                self._entries[key].flat.promoted(shadow, resume=connected)
            self._all_flat.promoted(all_shadow, resume=connected)
        effects: list[Effect] = []
        if was_connected:
            effects.append(Notify("stream_lost", detail=(("reason", reason),)))
        if not connected:
            effects.append(RequestSnapshot(reason=reason))  # a connect brings its own (rule 3)
        return effects

    # ------------------------------------------------------------------ REST

    def _exchange_clock_stepped(self) -> None:
        """Rule 11: the ledger saw a request dated on a stepped exchange clock (and forgot the
        read order): every flat run breaks."""
        self._calm = None
        self._break_all_run()
        for entry in self._entries.values():
            entry.flat.broken(self.events_applied)

    def _on_snapshot_failed(self, event: SnapshotFailed) -> None:
        self.snapshots_failed += 1
        request = self._requests.answered(event.request_id)
        scope = request.symbols if request is not None else None
        self._break_all_run()
        for entry in self._entries.values():
            if scope is None or entry.key.symbol in scope:
                self._move(entry, Evidence.READ_FAILED, 0, f"snapshot failed: {event.reason}")

    def _apply_snapshot(self, snap: PositionSnapshot, now_ms: int) -> list[Effect]:
        request = self._requests.answered(snap.request_id)
        if request is not None and self._requests.stale(request):
            self.last_snapshot_ms = now_ms
            return []  # rule 11: dated on the clock before a step; the next reads speak
        trusted = request is not None and request.epoch == self._stream.epoch
        blind_watch = trusted and self.stream_state == "live"
        self.last_snapshot_ms = now_ms
        effects: list[Effect] = []
        ordered = self._requests.after_every_applied(snap)  # rule 2 skips nothing: not asked
        # Rule 13's replay: the same rows as the last read, which only re-verified, and nothing
        # changed since (any change forgets ``_calm``): each key re-verifies again, in order.
        calm = self._calm
        short = request is not None and trusted and ordered and not self._blindness.pending
        if (short and calm is not None and request is not None and snap.symbols == calm.symbols
                and snap.positions == calm.positions  # one read parses to one tuple: `is`, mostly
                and self._replay_calm(calm, snap, request.seq, now_ms)):
            self._requests.applied(snap, (row.key.symbol for row in snap.positions))
            return self._reconciled(snap, request, now_ms)
        self._calm = None
        rows = {row.key: row for row in snap.positions}
        in_scope = {k for k in (*self._entries, *self._expected)
                    if snap.symbols is None or k.symbol in snap.symbols}
        entries = self._entries
        reverified: list[_Entry] = []
        for key in sorted(in_scope | set(rows), key=_KEY_ORDER):
            if not ordered and self._requests.superseded(snap, key.symbol):
                continue  # rule 2: requested before a read already applied for this symbol
            row = rows.get(key)
            entry = entries.get(key)
            if entry is None and row is not None and row.amount == ZERO \
                    and key not in self._expected:
                pass  # flat and never held: covered by the all-symbols flat run (nothing to do)
            elif (entry is None or request is None or not trusted
                    or not self._reverified(entry, row, snap, request.seq, now_ms)):
                short = False
                effects.extend(self._apply_rest_row(key, row, snap, request, trusted,
                                                    blind_watch, now_ms))
            elif short:
                reverified.append(entry)
            if blind_watch and self._blindness.pending:  # nothing pending: the hot loop
                effects.extend(self._blindness.check(key, snap.requested_time_ms))
        if short and reverified:
            self._calm = _Calm(snap.positions, snap.symbols, reverified,
                               [e for e in reverified if e.amount == ZERO],
                               [e for e in reverified if e.crossing is not None])
        if not self._blindness.pending:  # judged in this read already: too late for a standby
            effects = [e for e in effects if not isinstance(e, PrepareStandby)]
        self._requests.applied(snap, (k.symbol for k in rows))
        if request is not None and trusted:
            effects += self._reconciled(snap, request, now_ms)
        return effects

    def _reconciled(self, snap: PositionSnapshot, request: Request, now_ms: int) -> list[Effect]:
        """After a trusted read's rows: the stream's reconciliation and the all-symbols run."""
        became_live = self._stream.reconciled(snap.symbols)
        if snap.symbols is None:
            self._all_flat.shown_flat(snap.requested_time_ms, request.seq)
            self._all_verified_ms, self._all_watched = now_ms, True
            self._ageing.watch(now_ms)
            if became_live:
                return [Notify("stream_recovered")]
        return []

    def _replay_calm(self, calm: _Calm, snap: PositionSnapshot, request_seq: int,
                     now_ms: int) -> bool:
        """Rule 13 for a read with the rows of ``calm``'s, nothing changed since: what
        ``_reverified`` does for each of its keys, without asking again what cannot have
        changed. False (nothing done) when a crossing is not lifted by this read."""
        max_rest_lag_ms = self._policy.max_rest_lag_ms
        requested_time_ms = snap.requested_time_ms
        for entry in calm.crossed:
            if not lifts(entry.crossing, request_seq=request_seq,
                         requested_time_ms=requested_time_ms, amount=entry.amount,
                         max_rest_lag_ms=max_rest_lag_ms):
                return False
        lag_floor_ms = requested_time_ms - max_rest_lag_ms
        for entry in calm.entries:
            # max(true_ms, as_of_time_ms, lag_floor_ms), without a builtin call per key
            true_ms = entry.true_ms
            if entry.as_of_time_ms > true_ms:
                true_ms = entry.as_of_time_ms
            entry.true_ms = lag_floor_ms if lag_floor_ms > true_ms else true_ms
            entry.verified_ms = now_ms
        for entry in calm.flat:
            entry.flat.shown_flat(requested_time_ms, request_seq)  # rule 9
        self._reverifying.extend(calm.entries)
        return True

    def _reverified(self, entry: _Entry, row: PositionAmount | None, snap: PositionSnapshot,
                    request_seq: int, now_ms: int) -> bool:
        """Rule 13: a trusted row that only re-verifies the confirmed, published fact. Does
        what ``_apply_rest_row`` does for it (rule 2's SAME, not newer, then the authoritative
        fact) and returns True; False (nothing done) for anything else."""
        if entry.knowledge is not Knowledge.CONFIRMED:
            return False
        if row is None:
            if entry.amount != ZERO or entry.entry_price != ZERO:
                return False
        elif (row.amount != entry.amount or row.entry_price != entry.entry_price
              or row.update_time_ms > entry.as_of_time_ms):
            return False
        old = entry.published
        if (old is None or old.knowledge is not Knowledge.CONFIRMED or old.amount != entry.amount
                or old.entry_price != entry.entry_price or old.source is not entry.source
                or old.as_of_time_ms != entry.as_of_time_ms):
            return False  # the published view is not this fact: the complete path
        lag_floor_ms = snap.requested_time_ms - self._policy.max_rest_lag_ms
        if entry.crossing is not None and not lifts(
                entry.crossing, request_seq=request_seq, requested_time_ms=snap.requested_time_ms,
                amount=entry.amount, max_rest_lag_ms=self._policy.max_rest_lag_ms):
            return False
        entry.true_ms = max(entry.true_ms, entry.as_of_time_ms, lag_floor_ms)
        entry.verified_ms = now_ms
        if entry.amount == ZERO:
            entry.flat.shown_flat(snap.requested_time_ms, request_seq)  # rule 9
        self._reverifying.append(entry)
        return True

    def _apply_rest_row(self, key: PositionKey, row: PositionAmount | None, snap: PositionSnapshot,
                        request: Request | None, trusted: bool, blind_watch: bool,
                        now_ms: int) -> list[Effect]:
        self._calm = None
        amount = row.amount if row is not None else ZERO
        price = row.entry_price if row is not None else ZERO
        row_time_ms = row.update_time_ms if row is not None else 0
        entry = self._entries.get(key)
        effects: list[Effect] = []
        if entry is None:
            if amount == ZERO and key not in self._expected:
                return effects  # flat and never held: covered by the all-symbols flat run
            # A key covered by an earlier trusted read was flat then: this open is news.
            if (blind_watch and self._stream.covered(key.symbol)
                    and self._blindness.last_fill_ms(key.symbol) is None):
                # Flat in every read so far: it opened after the last one's lag floor.
                last_read_ms = self._requests.last_read_ms(key.symbol)
                if self._blindness.note(key, row_time_ms or snap.requested_time_ms, -1,
                                        "REST shows an open the stream never reported",
                                        row_time_ms or last_read_ms - self._policy.max_rest_lag_ms):
                    effects.append(PrepareStandby(f"{key}: REST shows an open the stream has "
                                                  "not reported"))
            lag_floor_ms = snap.requested_time_ms - self._policy.max_rest_lag_ms
            entry = self._store_fact(key, amount, price, Source.REST, row_time_ms or lag_floor_ms)
            entry.true_ms = max(entry.true_ms, lag_floor_ms)
            self._expected.discard(key)
        else:
            held = Held(entry.amount, entry.entry_price, entry.as_of_time_ms,
                        from_rest=entry.source is Source.REST)
            judged = judge_rest_row(held, amount, price, row_time_ms, snap.requested_time_ms,
                                    self._policy.max_rest_lag_ms)
            match judged.verdict:
                case Verdict.SAME:
                    if judged.time_ms > entry.as_of_time_ms:
                        entry.as_of_time_ms, entry.source = judged.time_ms, Source.REST
                    entry.true_ms = max(entry.true_ms, judged.time_ms,
                                        snap.requested_time_ms - self._policy.max_rest_lag_ms)
                case Verdict.NEWER | Verdict.OVERRIDE:
                    # Made while this connection was up? the blindness note judges by the time
                    # the held amount was last known true (a fact of any epoch may prove it).
                    last_fill_ms = self._blindness.last_fill_ms(key.symbol)
                    if blind_watch and (last_fill_ms is None
                                        or last_fill_ms <= entry.as_of_time_ms):
                        since_ms = (judged.time_ms if judged.verdict is Verdict.NEWER
                                    else snap.requested_time_ms)
                        if self._blindness.note(key, since_ms, entry.as_of_time_ms,
                                                f"REST shows amount {amount} but the stream "
                                                f"last reported {entry.amount}",
                                                since_ms if judged.verdict is Verdict.NEWER
                                                else entry.true_ms):
                            effects.append(PrepareStandby(f"{key}: REST shows amount {amount}, "
                                                          "not reported by the stream yet"))
                    self._store_fact(key, amount, price, Source.REST, judged.time_ms)
                    entry.true_ms = max(entry.true_ms,
                                        snap.requested_time_ms - self._policy.max_rest_lag_ms)
                    if not trusted:
                        self._move(entry, Evidence.UNCONFIRMED_FACT, now_ms,
                                   "snapshot requested before the last stream gap")
                case Verdict.LAGGING:
                    return effects  # REST has not caught up with the newer held fact
                case Verdict.AMBIGUOUS:
                    if trusted:
                        self._move(entry, Evidence.REST_AMBIGUOUS, now_ms,
                                   f"REST shows {amount} without time within max_rest_lag_ms "
                                   "of a newer fact")
                        effects.append(RequestSnapshot(reason=f"REST ambiguous on {key}",
                                                       symbols=frozenset({key.symbol})))
                    return effects
                case _:  # pragma: no cover - unreachable while every verdict is handled
                    assert_never(judged.verdict)
        if request is not None and trusted and lifts(
                entry.crossing, request_seq=request.seq, requested_time_ms=snap.requested_time_ms,
                amount=entry.amount, max_rest_lag_ms=self._policy.max_rest_lag_ms):
            self._move(entry, Evidence.AUTHORITATIVE_FACT, now_ms, "")
            if entry.amount == ZERO:
                entry.flat.shown_flat(snap.requested_time_ms, request.seq)  # rule 9
        return effects

    # ------------------------------------------------------------------ knowledge

    def _store_fact(self, key: PositionKey, amount: Decimal, price: Decimal, source: Source,
                    time_ms: int) -> _Entry:
        self._calm = None  # what rule 13 compares may have moved: no replay (also below)
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(key, amount, price, source, time_ms, true_ms=time_ms,
                           flat=self._all_flat.fork())  # was in the all run
            shown = self._last_shown.pop(key, None)
            if shown is not None:  # rule 10
                entry.confirmed_state = shown[0]
                entry.while_down_from_ms = shown[1] if source is Source.REST else None
            elif self._stream.covered(key.symbol):
                entry.confirmed_state = PositionState.CLOSED
            self._entries[key] = entry
        else:
            entry.amount, entry.entry_price, entry.source = amount, price, source
            entry.as_of_time_ms, entry.true_ms = time_ms, time_ms
        if amount != ZERO:
            entry.flat.broken(self.events_applied)
        self._dirty.add(key)
        return entry

    def _move(self, entry: _Entry, evidence: Evidence, now_ms: int, reason: str) -> None:
        """Run the knowledge machine; ``reason`` explains a non-confirmed result."""
        self._calm = None
        before = entry.knowledge
        entry.knowledge = transition(before, evidence)
        if entry.knowledge is Knowledge.CONFIRMED:
            entry.verified_ms = now_ms  # only AUTHORITATIVE_FACT/STREAM_FACT lead here
            entry.reason = ""
            self._ageing.watch(now_ms)
        else:
            entry.flat.broken(self.events_applied)
            if entry.knowledge is not before or before is not Knowledge.EXPIRED:
                entry.reason = reason  # an expired key keeps saying why it expired
        self._dirty.add(entry.key)

    def _age(self, now_ms: int, stepped_back_ms: int = 0) -> None:
        """Rule 5. Scans only when some knowledge may have lapsed (core/ageing.py)."""
        back_ms = self._ageing.due(now_ms, stepped_back_ms)
        if back_ms is None:
            return
        limit_ms = self._policy.max_age_ms
        for entry in self._entries.values():
            if entry.knowledge in (Knowledge.CONFIRMED, Knowledge.SUSPECT):
                if back_ms > 0:
                    # Measured on a clock that went back, any age reads younger than it is.
                    self._move(entry, Evidence.AGED, now_ms,
                               f"expired: the wall clock went back {back_ms} ms, age unknown")
                elif self._ageing.lapsed(entry.verified_ms, now_ms):
                    self._move(entry, Evidence.AGED, now_ms,
                               f"expired: not verified for more than {limit_ms} ms")
                else:
                    self._ageing.watch(entry.verified_ms)
        if self._all_watched:
            if back_ms > 0 or self._ageing.lapsed(self._all_verified_ms, now_ms):
                self._all_watched = False
                self._break_all_run()  # even when no run is going: older requests cannot start one
            else:
                self._ageing.watch(self._all_verified_ms)

    def _break_all_run(self) -> None:
        self._all_flat.broken(self.events_applied)

    def expect(self, keys: Iterable[PositionKey],
               last_shown: Mapping[PositionKey, tuple[PositionState, int]] | None = None) -> None:
        """Keys an earlier run published (the store's index), so that a REST read covering one
        publishes its state even when it is flat: otherwise a position that closed while no
        watchdog ran would keep the old run's ``open`` in Redis (shown stale, never closed).
        Only the keys are taken over, never their old values: REST alone decides.
        ``last_shown``: the OPEN/CLOSED state (and its ``verified_ms``) the earlier run last
        published, only to tell bots of a change that happened meanwhile (rule 10)."""
        self._calm = None
        self._expected.update(k for k in keys if k not in self._entries)
        for key, (state, verified_ms) in (last_shown or {}).items():
            if key not in self._entries and state is not PositionState.UNKNOWN:
                self._last_shown[key] = (state, verified_ms)

    # ------------------------------------------------------------------ publishing

    def _publish_dirty(self) -> list[Effect]:
        effects: list[Effect] = []
        reverifying = self._reverifying
        if reverifying:
            self._reverifying = []
            if not self._dirty:  # the snapshot's loop went in key order
                return self._publish_reverified(reverifying)
            self._dirty.update(entry.key for entry in reverifying)
        if self._dirty:
            self._calm = None
        for key in sorted(self._dirty, key=_KEY_ORDER):
            entry = self._entries[key]
            old = entry.published
            view = view_of(entry, (old.version if old else self._version_base) + 1)
            publish = publish_of(old, view)
            if publish is None:
                continue  # no-op: nothing the store would see changed
            entry.published = view
            self._view_generation += 1
            effects.append(publish)
            if view.state is not PositionState.UNKNOWN:
                notify = change_notify(entry.confirmed_state, view, entry.while_down_from_ms)
                if notify is not None:  # rules 6 and 10
                    effects.append(notify)
                entry.confirmed_state = view.state
                entry.while_down_from_ms = None
        self._dirty.clear()
        return effects

    def _publish_reverified(self, entries: list[_Entry]) -> list[Effect]:
        """Rule 13: what ``view_of`` and ``publish_of`` give for these entries, whose published
        views differ only in ``verified_ms``: a refresh of that view, or a no-op when
        ``verified_ms`` did not move (the same ``now_ms``). The refreshes leave as one
        ``Reverified`` per run of equal ``verified_ms`` (effects rule 3; one ``now_ms`` per
        apply: one effect), a view whose ``verified_ms`` went back as a complete ``Publish``."""
        effects: list[Effect] = []
        views: list[PositionView] = []
        append = views.append
        reissue = PositionView.reverified
        run_ms = 0
        for entry in entries:
            old = entry.published  # not None: checked by _reverified
            verified_ms = entry.verified_ms
            old_ms = old.verified_ms  # type: ignore[union-attr]
            if verified_ms > old_ms:  # the hot case: one run, every key of the read
                if views and verified_ms != run_ms:
                    effects.append(Reverified(tuple(views), run_ms))
                    views = []
                    append = views.append
                view = entry.published = reissue(old, verified_ms, old.version + 1)  # type: ignore[arg-type,union-attr]
                append(view)
                run_ms = verified_ms
            elif verified_ms < old_ms:
                view = entry.published = reissue(old, verified_ms, old.version + 1)  # type: ignore[arg-type,union-attr]
                if views:
                    effects.append(Reverified(tuple(views), run_ms))
                    views = []
                    append = views.append
                effects.append(Publish(view))
        if views:
            effects.append(Reverified(tuple(views), run_ms))
        return effects  # view_generation stays: only verified_ms and version moved
