"""The guard: how long each open position has gone unprotected, the alert, the last-resort stop.

PURE: events and ``now_ms`` (the watchdog's wall clock) in, effects out. Coverage itself is
``protection.py``; this module decides when the answer can be trusted and what follows from it.
Over 400 lines on purpose: its eight rules (freshness, the run, the alert and its lease grace,
the last-resort stop, cost, the lead, a takeover, doubt reads) act on one run per position side;
split apart, each part would need the whole run's state. The cost bookkeeping (rule 5) stays
here too: it is the list of every rule's time conditions and must change with them.

Rules of this module:
1. Orders are *known fresh* for a symbol once an orders read covering it was requested after the
   stream's last gap (the first positions ``SnapshotRequested`` after StreamLost/StreamConnected/
   ListenKeyExpired marks where the new epoch starts, in exchange time). While the stream is
   ``live`` its order events keep them fresh; otherwise the last such read must be younger than
   ``orders_max_age_ms``. A read covers a symbol only with both of its lists (regular and
   algo): the sweep reads them apart (core/orders.py rule 6), and a sweep counts as
   the read of every symbol as of the older of its two lists' latest sweeps. A position whose
   knowledge is not CONFIRMED, or whose orders are not known fresh, is ``unknown``: never
   ``covered`` from stale data, never alerted on.
   1b. With the stream down (not connected), a ``none``/``partial`` run is alerted on (and a
   last-resort stop placed) only once an orders read applied after the run began shows it again.
   1c. ``covered`` needs a read of this lead term: the orders that cover must be of lists read
   for the symbol (or swept) after this instance last took the lead (``take_over``, or its
   first step as leader after a step as standby; the start for one that leads from its start).
   A standby reads no orders and no doubt read bounds its stream's silence (a muted stream is
   ``live`` to it), so what it knows covered it holds as ``unknown`` for a takeover's
   republish, and after a takeover a position the book shows covered is ``unknown`` (its run
   paused, a told alert not ended, nothing of ours removed) until such a read, which rule 8
   asks at once. ``none``/``partial`` are judged as before: a stop seen gone is evidence.
   Until session 9 an instance taking the lead back republished ``covered`` and told
   ``position_protected`` from a book its muted stream had kept since it last led, after the
   other leader had found the stop gone by REST and alerted.
2. ``unprotected_since_ms`` is when the guard first saw the position open and ``none`` or
   ``partial`` in the current run; ``covered`` or a closure ends the run; ``unknown`` pauses it
   (the clock is not restarted: what was unprotected before the doubt is probably still so).
3. ``position_unprotected`` is emitted once the run is ``alert_ms`` old (``[guard]
   unprotected_alert_ms``), or later when a bot's veto lease covers the position: the grace is
   extended to the lease's end (as read, capped at ``lease_cap_ms`` after the run began), never
   beyond. The alert waits for a lease read taken after the run began (the bot may have begun
   just before its cancel), and after the first step since a takeover (``take_over``: leases
   are read only while a judgment needs them, below, so those held may be old), unless leases
   cannot be read at all (then it is not held back). Leases are needed (``needs_leases``) while
   a run is not yet alerted, a stop of ours is placed or seen, or, with the last-resort stop
   on, while any run goes; an alerted run without it reads none (nothing else waits for them).
   ``position_protected`` follows when an alerted run ends (covered, or the position closed).
4. The last-resort stop (``emergency_stop_pct`` > 0): a closePosition STOP_MARKET placed by the
   shell when a fresh, CONFIRMED open position has been unprotected ``emergency_after_ms`` and
   past any lease's end, while leases were read within ``leases_max_age_ms`` and none is held.
   Never a second one on a position side (one placing, placed, or any order of ours in the book
   counts), at most ``max_orders_per_min`` placements + removals. Ours is told apart by its
   client id prefix ``GUARD_CLIENT_ID_PREFIX`` and never counts as the bot's protection: it is
   removed once the bot's own stops cover the position (same freshness and lease conditions).
   4b. A position known closed (CONFIRMED) that still has a stop of ours (in the book, or
   placed: its answer may come after the close, the placement's re-read having preceded the
   fill) has it removed at once (``CancelGuardStop.if_flat``: the shell re-reads the position
   right before and keeps the stop unless still flat), under the same lead, lease and budget
   conditions, never one that is triggering; meanwhile the record is kept, so a reopened
   position gets no second stop. Nothing of ours left (or an id never learned): the record is
   forgotten, and anything left is the reaper's (an orphan like any other).
5. Cost: ``step`` judges a position only when something it depends on may have changed: an
   event naming its symbol (or any symbol: a gap, an all-symbols read, a failed read), an
   outcome of ours, its view replaced by the book with a change a judgment reads (an identity
   check per tracked position, then state, knowledge and amount: a re-verification that moves
   only ``verified_ms`` and ``version``, 300 of them after every positions poll, judges
   nothing), a lease of it (or, for a run not yet alerted or a position with a stop of ours, the lease
   read itself), and time: after each judgment the earliest instant any of its time conditions
   can flip (grace end, freshness expiry, a lease's end, ``emergency_after_ms``, a hold, the
   order budget freeing) is kept per symbol in a heap, and a step judges the symbols whose
   instant passed. Rule 8's doubt reads are no judgment's condition: they have one schedule
   for all symbols (rule 8b), and a step asks them whatever it judges. A stream state or lead
   change, a takeover, or a wall clock stepped back judges every position. The outcomes are
   exactly those of judging every position on every step (a property test compares both, and
   that nothing is due before ``next_due_ms``); a Tick costs a heap look and,
   when the book replaced no view since the last step other than by re-verifications (its
   ``view_generation`` unchanged: a view may then be a newer object alike in everything but
   ``verified_ms`` and ``version``), no per-position check at all, instead of 300 judgments;
   so does the step after a positions poll that only re-verified. ``next_due_ms`` is the
   earlier of that heap's top and rule 8's next doubt read: the shell's ticker wakes for it
   (runtime/ticker.py) instead of every 0.25 s.
6. Only the leader acts (docs/HA.md): a standby (``step(acting=False)``) judges and publishes
   (its writes are dropped by the fenced publisher) but never places or removes a stop, and
   spends none of ``max_orders_per_min``; the shell proves the lead again right before each
   placement or removal (guard_task.py).
7. A takeover (``take_over``) hands the guard what Redis shows an earlier leader told (``Told``:
   its ``unprotected_since_ms``, and whether its last word was ``position_unprotected``). What
   this instance computed as a standby was never written, so an alert counts as told only if
   Redis shows it: a run not told is alerted again (at once when past its grace), a told one is
   not repeated; a run takes the told start (the one bots saw) when Redis shows one. A position
   first judged after the takeover continues the told run (its ``unprotected_since_ms``, its
   alert); ``covered`` or a closure then ends it with ``position_protected`` if the alert was
   told. The last-resort stop still waits ``emergency_after_ms`` from this instance's own first
   sighting (an inherited start may predate a stop the old leader never saw).
8. Doubt costs a read, not an alert: a stream that says nothing may be muted (the incident),
   and then only a REST orders read shows a cancelled stop. The leader asks for a priority
   orders read (``RequestSnapshot``, a *requested* read in the weight budget: routine polls
   yield to it) of an open, CONFIRMED position's symbol when no orders read of it was applied
   for ``doubt_ms`` (since the last gap), at most once per ``doubt_ms`` per symbol, and at most
   ``doubt_reads_per_min`` such reads in any 60 s for all symbols together, the longest unread
   first: with many open positions doubt must not buy more weight than the positions poll (a
   read per symbol every 15 s for 300 symbols is ~8,000 weight/min; it starved the positions
   poll and every position aged to ``unknown``).
   8b. One schedule for all symbols: each candidate's instant (``doubt_ms`` after both its
   last read and its last ask; never read: at once) is kept in a heap of its own, and the next
   doubt read is due at the later of that heap's top and the allowance's next room
   (``next_due_ms``). A step looks over the candidates only then, so at most once per read
   asked, and the reads are those judging every position on every step would ask, at the same
   instants. A routine orders read only moves its own symbol's instant, so it judges and wakes
   nothing else: until session 10 every read set a judgment of its symbol due ``doubt_ms``
   later, though the allowance has room for 4 a minute, and a doubt instant judged every
   symbol then due (300 after a sweep) for nothing.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

from watchdog.core.effects import (
    CancelGuardStop,
    Effect,
    Notify,
    PlaceGuardStop,
    PublishProtection,
    RequestSnapshot,
)
from watchdog.core.events import (
    AccountConfigUpdate,
    AlgoUpdate,
    Event,
    ListenKeyExpired,
    MalformedFrame,
    MarginCall,
    OrdersSnapshot,
    OrderUpdate,
    PositionSnapshot,
    SnapshotRequested,
    StreamConnected,
    StreamLost,
    StreamPositions,
    Tick,
    TradeLite,
)
from watchdog.core.model import (
    ZERO,
    Knowledge,
    OrderId,
    PositionKey,
    PositionSide,
    PositionState,
    PositionView,
    Symbol,
)
from watchdog.core.orders import OrderBook, TrackedOrder, lists_of
from watchdog.core.protection import Protection, closing_side, coverage
from watchdog.core.stream_state import StreamState

__all__ = [
    "GUARD_CLIENT_ID_PREFIX",
    "Guard",
    "GuardOutcome",
    "GuardPolicy",
    "Leases",
    "PositionsView",
    "Told",
]

# Binance client ids match ^[.A-Z:/a-z0-9_-]{1,36}$: prefix (9) + ms (13) + '-' + seq.
GUARD_CLIENT_ID_PREFIX = "wd-guard-"

_AT_ONCE = -(1 << 62)  # rule 8: a doubt read due whenever the allowance has room


class PositionsView(Protocol):
    """The read-only part of ``PositionBook`` the guard needs."""

    @property
    def stream_state(self) -> StreamState: ...

    def views(self) -> list[PositionView]: ...

    def view(self, key: PositionKey) -> PositionView | None: ...

    def key_count(self) -> int:
        """How many keys are held; never decreases (a new one is noticed by this, rule 5)."""
        ...

    def view_generation(self) -> int | None:
        """Changes whenever a view is replaced by one that differs in more than ``verified_ms``
        and ``version`` (a guard is stepped with one book all its life); None: not counted,
        every view is compared."""
        ...


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """The ``[guard]`` section, in ms; see docs/GUARD.md for the defaults' reasons."""

    alert_ms: int = 3000
    emergency_stop_pct: Decimal = ZERO
    emergency_after_ms: int = 10_000
    orders_max_age_ms: int = 15_000
    lease_cap_ms: int = 60_000
    leases_max_age_ms: int = 1000
    max_orders_per_min: int = 6
    retry_ms: int = 5000
    doubt_ms: int = 0  # rule 8: an open position's orders read by REST at least this often; 0 off
    doubt_reads_per_min: int = 4  # rule 8: all symbols together

    def __post_init__(self) -> None:
        if (self.alert_ms < 0 or self.emergency_stop_pct < 0 or self.emergency_after_ms < 0
                or self.orders_max_age_ms <= 0 or self.max_orders_per_min < 1
                or self.doubt_ms < 0 or self.doubt_reads_per_min < 1):
            raise ValueError(f"invalid guard policy: {self!r}")


@dataclass(frozen=True, slots=True)
class Leases:
    """Veto leases as last read: each lease's end on the watchdog's wall clock, and when read."""

    until_ms: Mapping[PositionKey, int]
    read_ms: int


@dataclass(frozen=True, slots=True)
class Told:
    """What Redis shows an earlier leader told about one position's protection (rule 7)."""

    since_ms: int | None  # its unprotected_since_ms (a none/partial run), None if none shown
    alerted: bool  # its last guard event for the position is position_unprotected


@dataclass(frozen=True, slots=True)
class GuardOutcome:
    """What the shell did with a PlaceGuardStop / CancelGuardStop (fed back by ``step``)."""

    key: PositionKey
    action: Literal["placed", "place_failed", "removed", "remove_failed"]
    client_id: str
    order_id: OrderId | None = None


@dataclass(slots=True)
class _Run:
    """One position's unprotected run and what was said about it."""

    since_ms: int | None = None
    alerted: bool = False
    lease_until_ms: int = 0
    own_since_ms: int | None = None  # this instance's first sighting, when inherited (rule 7)
    published: tuple[str, int | None, str] | None = None


@dataclass(slots=True)
class _OwnStop:
    client_id: str
    state: Literal["placing", "placed", "removing"]
    order_id: OrderId | None = None


@dataclass(slots=True)
class _Fresh:
    epoch_from_ms: int | None = None       # exchange ms: orders reads requested since count
    awaiting_epoch: bool = True
    pending: list[OrdersSnapshot] = field(default_factory=list)
    symbol_read_ms: dict[Symbol, int] = field(default_factory=dict)  # wall ms applied
    all_read_ms: int | None = None  # the older of the two lists' latest sweeps (rule 1)
    list_read_ms: dict[bool, int] = field(default_factory=dict)  # each list's latest sweep


class Guard:
    """Per-position protection runs; ``observe`` every event, ``step`` once per batch."""

    def __init__(self, policy: GuardPolicy | None = None, *, incremental: bool = True) -> None:
        """``incremental`` False judges every position on every step (rule 5's reference)."""
        self.policy = policy or GuardPolicy()
        self._incremental = incremental
        self._runs: dict[PositionKey, _Run] = {}
        self._own: dict[PositionKey, _OwnStop] = {}
        self._own_seen: set[PositionKey] = set()  # keys where the book holds a stop of ours
        self._removed: set[OrderId] = set()  # ours, removed; the book may not know yet
        self._hold_until: dict[PositionKey, int] = {}
        self._actions: deque[int] = deque()
        self._fresh = _Fresh()
        self._seq = 0
        self._acting = True  # this step's ``acting`` (rule 6)
        # What the events since the last step may have changed (rule 5): symbols, or all.
        self._touched: set[Symbol] = set()
        self._touched_all = True
        self._told: dict[PositionKey, Told] = {}  # rule 7: not judged since the takeover
        self._doubt_asked: dict[Symbol, int] = {}  # rule 8: when an orders read was asked
        # Rule 5: what the last judgments depended on, and when each symbol is next due.
        self._due: dict[Symbol, int] = {}
        self._due_heap: list[tuple[int, Symbol]] = []
        self._seen_views: dict[PositionKey, PositionView] = {}
        self._seen_generation: int | None = None  # the book's view generation they match
        self._running: set[PositionKey] = set()  # runs with a since_ms (needs_leases)
        self._unalerted: set[PositionKey] = set()  # of those, not alerted yet (needs_leases)
        self._last_inputs: tuple[str, bool, int] | None = None  # stream state, acting, keys
        self._last_leases: Leases | None = None
        self._last_now: int | None = None
        self._doubt_reads: deque[int] = deque()  # rule 8: when each of the last reads was asked
        # Rule 8's one schedule: each open, CONFIRMED symbol's instant its doubt read comes due
        # (its last read's or ask's ``doubt_ms`` elapsed), and a heap of them (stale entries
        # are popped at each step's end, so its top is the earliest).
        self._doubt_at: dict[Symbol, int] = {}
        self._doubt_heap: list[tuple[int, Symbol]] = []
        # Rule 3: alerts wait for a lease read taken at or after this (the first step after a
        # takeover), besides the run's start.
        self._lease_floor_ms = 0
        self._floor_at_step = False
        # Rule 1c: the orders reads applied in this lead term, (symbol, is_algo) and the lists
        # swept; only they can make a position ``covered``.
        self._term_open = True  # False on a standby; True from a lead term's first step
        self._term_from_step = False  # opened by a step as leader since the last take_over
        self._term_pending: list[OrdersSnapshot] = []
        self._term_reads: set[tuple[Symbol, bool]] = set()
        self._term_swept: set[bool] = set()
        self._unverified: set[PositionKey] = set()  # covered by the book, not by a term read

    # ------------------------------------------------------------ reading

    def unprotected(self) -> tuple[tuple[PositionKey, int], ...]:
        """Alerted positions and since when (for the daemon's health problems)."""
        alerted = [(key, run.since_ms) for key, run in self._runs.items()
                   if run.alerted and run.since_ms is not None]
        # By key, compared in C (the dataclass' __lt__ sorting 300 keys was ~2 ms a heartbeat).
        return tuple(sorted(alerted, key=lambda item: (item[0].symbol, item[0].side)))

    def answers(self) -> dict[PositionKey, tuple[str, int | None]]:
        """The published ``protection`` and ``unprotected_since_ms`` per judged position (the
        metrics read them)."""
        return {key: (run.published[0], run.published[1]) for key, run in self._runs.items()
                if run.published is not None and run.published[0]}

    def next_due_ms(self) -> int | None:
        """Rule 5: the earliest ``now_ms`` at which a step acts by time alone: the judgments'
        heap's top (a stale entry only makes it earlier) or rule 8's next doubt read, None while
        no time condition waits. Between steps nothing else moves a judgment but events, leases
        and outcomes, which the shell delivers with a step of their own (runtime/ticker.py)."""
        at = self._due_heap[0][0] if self._due_heap else None
        doubt = self._doubt_due_ms()
        return doubt if at is None else at if doubt is None else min(at, doubt)

    def _doubt_due_ms(self) -> int | None:
        """Rule 8: when the next doubt read can be asked: the earliest instant a symbol's comes
        due and the allowance has room (whichever is later; never before the last step: a
        ``take_over`` may have made one due at once). None: none can be (off, a standby, no
        open CONFIRMED position)."""
        p = self.policy
        if p.doubt_ms <= 0 or not self._acting or not self._doubt_heap:
            return None
        at = self._doubt_heap[0][0]
        reads, k = self._doubt_reads, p.doubt_reads_per_min
        if len(reads) >= k:
            at = max(at, reads[-k] + 60_000)
        return at if self._last_now is None else max(at, self._last_now)

    @property
    def needs_leases(self) -> bool:
        """True while a judgment reads the leases (rule 3): a run not yet alerted, a stop of
        ours, or any run while the last-resort stop is on. The shell then reads them."""
        running = self._running if self.policy.emergency_stop_pct > 0 else self._unalerted
        return bool(self._own or self._own_seen or running)

    # ------------------------------------------------------------ input

    def take_over(self, told: Mapping[PositionKey, Told]) -> None:
        """Rule 7: this instance leads now; ``told`` is what Redis shows an earlier leader told
        (positions without an entry: nothing). A run in progress takes the told start when one
        is shown (bots saw it); its alert counts as told only if Redis shows it."""
        self._told = {}
        for key, run in self._runs.items():
            shown = told.get(key)
            if run.since_ms is None:
                if shown is not None:
                    self._told[key] = shown
            else:
                run.alerted = shown is not None and shown.alerted
                if shown is not None and shown.since_ms is not None:
                    own = run.since_ms if run.own_since_ms is None else run.own_since_ms
                    run.since_ms = shown.since_ms  # the start bots were told
                    run.own_since_ms = own
        self._told.update({k: v for k, v in told.items() if k not in self._runs})
        if not self._term_from_step:  # rule 1c: the lead may have changed hands unseen
            self._new_term()
        self._term_from_step = False
        self._touched_all = True
        self._floor_at_step = True  # rule 3: leases held now may predate the takeover
        self._unalerted = {k for k in self._running
                           if (told_run := self._runs.get(k)) is not None
                           and not told_run.alerted}

    def observe(self, event: Event) -> None:
        """Track the orders' freshness epochs (rule 1); every event, before the books apply it."""
        self._note_scope(event)
        f = self._fresh
        match event:
            case StreamLost() | StreamConnected() | ListenKeyExpired():
                f.epoch_from_ms, f.awaiting_epoch = None, True
                f.pending.clear()
                f.symbol_read_ms.clear()
                f.all_read_ms = None
                f.list_read_ms.clear()
            case SnapshotRequested(requested_time_ms=t) if f.awaiting_epoch:
                f.epoch_from_ms, f.awaiting_epoch = t, False
            case OrdersSnapshot():
                if f.epoch_from_ms is not None and event.requested_time_ms >= f.epoch_from_ms:
                    f.pending.append(event)
                    if self._term_open:
                        self._term_pending.append(event)
            case _:
                return

    def _note_scope(self, event: Event) -> None:
        match event:
            case StreamPositions() | MarginCall() | PositionSnapshot():
                pass  # positions are read through their views: a replaced or new one is seen
            case OrderUpdate() | AlgoUpdate() | TradeLite():
                self._touched.add(event.symbol)
            case OrdersSnapshot(symbols=symbols):
                if symbols is None:
                    self._touched_all = True
                else:
                    self._touched.update(symbols)
            case SnapshotRequested() | AccountConfigUpdate() | MalformedFrame():
                pass  # changes no position's protection
            case Tick():
                pass  # time passed: the due symbols are judged (rule 5)
            case _:  # gaps, failed reads: anything may have changed
                self._touched_all = True

    def _take_scope(self) -> set[Symbol] | None:
        """The symbols events named since the last step; None for all."""
        scope = None if self._touched_all or not self._incremental else self._touched
        self._touched, self._touched_all = set(), False
        return scope

    def _changed(self, positions: PositionsView, leases: Leases | None, now_ms: int,
                 generation: int | None) -> set[Symbol]:
        """Rule 5: the symbols due by time, whose view the book replaced, or whose leases
        changed in a way their judgment reads."""
        out: set[Symbol] = set()
        heap, due = self._due_heap, self._due
        while heap and heap[0][0] <= now_ms:
            at, symbol = heapq.heappop(heap)
            if due.get(symbol) == at:
                del due[symbol]
                out.add(symbol)
        reverified: list[tuple[PositionKey, PositionView]] = []
        # The same generation: the book replaced no view since the last step but by
        # re-verifications, and the last step's end left every seen view alike the book's in
        # all a judgment reads; nothing to compare.
        calm = generation is not None and generation == self._seen_generation
        for key, seen in () if calm else self._seen_views.items():
            current = positions.view(key)
            if current is seen:
                continue
            if current is not None and _judged_alike(seen, current):
                reverified.append((key, current))  # only verified_ms/version moved
            else:
                out.add(key.symbol)
        for key, current in reverified:
            self._seen_views[key] = current
        old = self._last_leases
        if leases != old:
            old_ends = {} if old is None else old.until_ms
            new_ends = {} if leases is None else leases.until_ms
            out.update(k.symbol for k in old_ends.keys() | new_ends.keys()
                       if old_ends.get(k) != new_ends.get(k))
            if old is None or leases is None or old.read_ms != leases.read_ms:
                pct = self.policy.emergency_stop_pct > 0
                out.update(k.symbol for k in (self._running if pct else self._unalerted))
                out.update(k.symbol for k in self._own)
                out.update(k.symbol for k in self._own_seen)
        return out

    def _next_due(self, key: PositionKey, view: PositionView | None, stream_state: str,
                  leases: Leases | None, now_ms: int) -> int | None:
        """Rule 5: the earliest instant after ``now_ms`` at which a time condition of this
        position's judgment can flip (conservative: an early judgment changes nothing)."""
        p, symbol = self.policy, key.symbol
        times: list[int] = []
        if view is None or view.state is not PositionState.OPEN or view.amount == ZERO:
            if view is None or key not in self._own:
                return None  # closed, unknown, gone: no time condition
            # Closed with a stop of ours (rule 4b): its removal waits for these.
            end = leases.until_ms.get(key) if leases is not None else None
            times += [t for t in (end, self._hold_until.get(key)) if t is not None]
            if len(self._actions) >= p.max_orders_per_min:
                times.append(self._actions[0] + 60_000)
            return min((t for t in times if t > now_ms), default=None)
        # Rule 8's doubt reads are not here: no judgment reads them (one schedule for all
        # symbols, ``_doubt_due_ms``).
        fresh_read = self._read_ms(symbol)
        if fresh_read is not None and stream_state != "live":
            # freshness; a change of stream state judges all
            times.append(fresh_read + p.orders_max_age_ms + 1)
        run = self._runs.get(key)
        running = run is not None and run.since_ms is not None
        if run is not None and run.since_ms is not None:
            since = run.since_ms if run.own_since_ms is None else max(run.since_ms,
                                                                       run.own_since_ms)
            times += (run.since_ms + p.alert_ms, run.lease_until_ms)
            if p.emergency_stop_pct > 0:
                times.append(since + p.emergency_after_ms)
        if leases is not None:
            end = leases.until_ms.get(key)
            if end is not None:
                times.append(end)
            if key in self._own or key in self._own_seen or (
                    running and p.emergency_stop_pct > 0):
                times.append(leases.read_ms + p.leases_max_age_ms + 1)
        hold = self._hold_until.get(key)
        if hold is not None:
            times.append(hold)
        if len(self._actions) >= p.max_orders_per_min:
            times.append(self._actions[0] + 60_000)
        return min((t for t in times if t > now_ms), default=None)

    def _read_ms(self, symbol: Symbol) -> int | None:
        """When an orders read covering ``symbol`` was last applied since the gap (rule 1)."""
        f = self._fresh
        return max((t for t in (f.symbol_read_ms.get(symbol), f.all_read_ms) if t is not None),
                   default=None)

    def _doubt_read_ms(self, symbol: Symbol) -> int | None:
        """Rule 8's last read: none while a position of ``symbol`` is covered only by what no
        read of this lead term shows (rule 1c), so the read is asked at once."""
        if self._unverified and any(PositionKey(symbol, side) in self._unverified
                                    for side in PositionSide):
            return None
        return self._read_ms(symbol)

    def _set_due(self, symbol: Symbol, at: int | None) -> None:
        if at is None:
            self._due.pop(symbol, None)
        elif self._due.get(symbol) != at:
            self._due[symbol] = at
            heapq.heappush(self._due_heap, (at, symbol))

    def _evidence(self, symbol: Symbol, stream_state: str, since_ms: int) -> bool:
        """Rule 1b: with the stream down (not connected), a run is acted on (alert, last-resort
        stop) only once an orders read applied after it began still shows it: the read that
        started it may predate an order placed while no stream could report it (a startup).
        A connected stream (``gap``, or ``live``) reports every order placed since it connected,
        and the reads that count were requested after that (rule 1)."""
        if stream_state != "down":
            return True
        f = self._fresh
        times = [t for t in (f.symbol_read_ms.get(symbol), f.all_read_ms) if t is not None]
        return bool(times) and max(times) > since_ms

    def orders_fresh(self, symbol: Symbol, stream_state: str, now_ms: int) -> bool:
        """Rule 1."""
        f = self._fresh
        times = [t for t in (f.symbol_read_ms.get(symbol), f.all_read_ms) if t is not None]
        if not times:
            return False
        return stream_state == "live" or now_ms - max(times) <= self.policy.orders_max_age_ms

    # ------------------------------------------------------------ the step

    def step(self, positions: PositionsView, orders: OrderBook, leases: Leases | None,
             now_ms: int, outcomes: Sequence[GuardOutcome] = (), *,
             acting: bool = True) -> list[Effect]:
        """Judge the positions that may have changed (rule 5; all when ``incremental`` is
        False); returns what to publish, emit, place or remove.
        ``acting`` False (a standby, docs/HA.md): judged and published as usual, but no stop
        is placed or removed and none of the order budget is used (rule 6)."""
        if not acting:  # rule 1c: a standby holds no read of a lead term
            if self._term_open:
                self._new_term()
            self._term_open, self._term_from_step = False, False
        elif not self._term_open:
            self._new_term()
            self._term_from_step = True
        self._acting = acting
        if self._floor_at_step:
            self._lease_floor_ms, self._floor_at_step = now_ms, False
        self._stamp_reads(now_ms)
        scope = self._take_scope()
        for outcome in outcomes:
            self._on_outcome(outcome, now_ms)
            if scope is not None:
                scope.add(outcome.key.symbol)
        # Ours, removed: forgotten once the book no longer holds them (it never resurrects one).
        self._removed = {oid for oid in self._removed if orders.get(oid, is_algo=True) is not None}
        stream_state = positions.stream_state
        inputs = (stream_state, acting, positions.key_count())
        generation = positions.view_generation()
        if scope is not None and (inputs != self._last_inputs or self._last_now is None
                                  or now_ms < self._last_now):
            scope = None  # rule 5: what every judgment reads changed, or the clock went back
        if scope is not None:
            scope |= self._changed(positions, leases, now_ms, generation)
        self._last_inputs, self._last_leases, self._last_now = inputs, leases, now_ms
        # From here every seen view is made the book's current one (compared above, or judged
        # and noted below), so the next step may skip the comparison at this generation.
        self._seen_generation = generation
        if scope is not None and not scope and not self._doubt_now(now_ms):
            return []
        by_key: dict[PositionKey, list[TrackedOrder]] = defaultdict(list)
        for order in orders.unsorted(scope):
            by_key[order.key].append(order)
        if scope is None:
            views = positions.views()
            self._due.clear()
            self._due_heap.clear()
            self._seen_views.clear()
        else:
            views = [v for symbol in sorted(scope) for side in PositionSide
                     if (v := positions.view(PositionKey(symbol, side))) is not None]

        def child_open(order_id: OrderId) -> bool:
            return orders.get(order_id, is_algo=False) is not None

        effects: list[Effect] = []
        seen: set[PositionKey] = set()
        doubted: list[PositionView] = []
        for view in views:
            seen.add(view.key)
            if view.state is PositionState.OPEN and view.amount != ZERO:
                doubted.append(view)
                effects += self._judge_open(view, by_key.get(view.key, ()), child_open, orders,
                                            stream_state, leases, now_ms)
            elif view.state is PositionState.UNKNOWN:
                effects += self._judge_unknown(view.key, now_ms)
            elif view.state is PositionState.CLOSED and view.knowledge is Knowledge.CONFIRMED:
                effects += self._judge_closed(view.key, by_key.get(view.key, ()), orders,
                                              leases, now_ms)
            else:
                effects += self._end(view.key, now_ms, "closed")
        for key in [k for k in self._runs
                    if k not in seen and (scope is None or k.symbol in scope)]:
            effects += self._end(key, now_ms, "closed")
        self._note_doubt(doubted, scope)
        effects += self._doubt(now_ms)
        self._note_judged(views, scope, stream_state, leases, now_ms)
        return effects

    def _note_judged(self, views: list[PositionView], scope: set[Symbol] | None,
                     stream_state: str, leases: Leases | None, now_ms: int) -> None:
        """Rule 5: what the judgments just made depended on, for the next steps."""
        if scope is not None:
            for key in [k for k in self._seen_views if k.symbol in scope]:
                del self._seen_views[key]
        due: dict[Symbol, int | None] = dict.fromkeys(scope or ())
        for view in views:
            key = view.key
            self._seen_views[key] = view
            run = self._runs.get(key)
            if run is not None and run.since_ms is not None:
                self._running.add(key)
                if run.alerted:
                    self._unalerted.discard(key)
                else:
                    self._unalerted.add(key)
            else:
                self._running.discard(key)
                self._unalerted.discard(key)
            at = self._next_due(key, view, stream_state, leases, now_ms)
            held = due.get(key.symbol)
            due[key.symbol] = at if held is None else held if at is None else min(at, held)
        self._running.intersection_update(self._runs)
        self._unalerted.intersection_update(self._runs)
        for symbol, at in due.items():
            self._set_due(symbol, at)

    def _doubt_now(self, now_ms: int) -> bool:
        """Rule 8: a step at ``now_ms`` asks a doubt read (``_doubt_due_ms`` passed)."""
        at = self._doubt_due_ms()
        return at is not None and at <= now_ms

    def _note_doubt(self, opened: Sequence[PositionView], scope: set[Symbol] | None) -> None:
        """Rule 8's schedule, for the symbols just judged (all when ``scope`` is None): whether
        each is a candidate (an open, CONFIRMED position) and when its read comes due. Nothing
        else moves those: a read, a gap, a judgment of ``_unverified`` name the symbol (or
        all), a read asked is noted by ``_doubt``, a new term judges all."""
        if self.policy.doubt_ms <= 0:
            return
        candidates = {v.key.symbol for v in opened if v.knowledge is Knowledge.CONFIRMED}
        if scope is None:
            self._doubt_at.clear()
            self._doubt_heap.clear()
        else:
            for symbol in scope - candidates:
                self._doubt_at.pop(symbol, None)
        for symbol in candidates:
            self._set_doubt(symbol)

    def _set_doubt(self, symbol: Symbol) -> None:
        """Rule 8: when ``symbol``'s doubt read comes due: ``doubt_ms`` after both its last
        read (none: at once) and its last ask."""
        p = self.policy
        read, asked = self._doubt_read_ms(symbol), self._doubt_asked.get(symbol)
        at = max(_AT_ONCE if read is None else read + p.doubt_ms,
                 _AT_ONCE if asked is None else asked + p.doubt_ms)
        if self._doubt_at.get(symbol) != at:
            self._doubt_at[symbol] = at
            heapq.heappush(self._doubt_heap, (at, symbol))

    def _tidy_doubt(self) -> None:
        """Rule 8: the heap's top is a current entry (stale ones are earlier: popped); rebuilt
        when stale entries outnumber the current ones (every routine read pushes one)."""
        heap, at = self._doubt_heap, self._doubt_at
        if len(heap) > 2 * len(at) + 64:
            self._doubt_heap = heap = [(t, s) for s, t in at.items()]
            heapq.heapify(heap)
        while heap and at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)

    def _doubt(self, now_ms: int) -> list[Effect]:
        """Rule 8: the symbols whose orders are due a read, longest unread first, within the
        per-minute allowance. Looks at every candidate only when one is due and the allowance
        has room, so at most as often as a read is asked."""
        p = self.policy
        self._tidy_doubt()
        if p.doubt_ms <= 0 or not self._acting:
            return []
        reads = self._doubt_reads
        while reads and now_ms - reads[0] >= 60_000:
            reads.popleft()
        allowance = p.doubt_reads_per_min - len(reads)
        if allowance <= 0 or not self._doubt_heap or self._doubt_heap[0][0] > now_ms:
            return []
        due = {symbol: self._doubt_read_ms(symbol)
               for symbol, at in self._doubt_at.items() if at <= now_ms}

        def unread_longest(symbol: Symbol) -> tuple[int, int, str]:
            read, asked = due[symbol], self._doubt_asked.get(symbol)
            return (-1 if read is None else read, -1 if asked is None else asked, symbol)

        chosen = sorted(due, key=unread_longest)[:allowance]
        effects: list[Effect] = []
        for symbol in chosen:
            self._doubt_asked[symbol] = now_ms
            self._set_doubt(symbol)
            reads.append(now_ms)
            read = due[symbol]
            age = (f"{now_ms - read} ms ago" if read is not None
                   else "never" if self._read_ms(symbol) is None else "not since taking the lead")
            effects.append(RequestSnapshot(reason=f"guard: orders of {symbol} last read {age}",
                                           symbols=frozenset({symbol})))
        self._tidy_doubt()
        return effects

    def _stamp_reads(self, now_ms: int) -> None:
        f = self._fresh
        for snap in f.pending:
            lists = lists_of(snap)
            if snap.symbols is None:
                for kind in lists:
                    f.list_read_ms[kind] = now_ms
                if len(f.list_read_ms) == 2:  # rule 1: both lists, each since the gap
                    f.all_read_ms = min(f.list_read_ms.values())
            elif len(lists) == 2:
                for symbol in snap.symbols:
                    f.symbol_read_ms[symbol] = now_ms
        f.pending.clear()
        if not self._term_open:
            self._term_pending.clear()
        for snap in self._term_pending:
            if snap.symbols is None:
                self._term_swept.update(lists_of(snap))
            else:
                self._term_reads.update((symbol, kind) for symbol in snap.symbols
                                        for kind in lists_of(snap))
        self._term_pending.clear()

    def _new_term(self) -> None:
        """Rule 1c: a lead term starts; reads applied before it no longer make ``covered``."""
        self._term_open = True
        self._term_pending.clear()
        self._term_reads.clear()
        self._term_swept.clear()
        self._unverified.clear()
        self._doubt_asked.clear()  # rule 8: asked anew for this term (the allowance still holds)
        for symbol in list(self._doubt_at):
            self._set_doubt(symbol)

    def _term_read(self, symbol: Symbol, is_algo: bool) -> bool:
        """Rule 1c: the list holding such an order was read for ``symbol`` in this lead term."""
        return is_algo in self._term_swept or (symbol, is_algo) in self._term_reads

    def _judge_open(self, view: PositionView, key_orders: Iterable[TrackedOrder],
                    child_open: _ChildOpen, orders: OrderBook, stream_state: str,
                    leases: Leases | None, now_ms: int) -> list[Effect]:
        key = view.key
        run = self._runs.setdefault(key, _Run())
        ours = [o for o in key_orders if o.client_id.startswith(GUARD_CLIENT_ID_PREFIX)]
        bot_orders = [o for o in key_orders if not o.client_id.startswith(GUARD_CLIENT_ID_PREFIX)]
        # A stop of ours we removed may still be in the book (its event not here yet): it does
        # not protect, and it is not removed twice.
        own_book = [o for o in ours if o.order_id not in self._removed]
        key_orders = [*bot_orders, *own_book]
        self._forget_gone_own(key, orders)
        if own_book:
            self._own_seen.add(key)
        else:
            self._own_seen.discard(key)
        if view.knowledge is not Knowledge.CONFIRMED or not self.orders_fresh(
                key.symbol, stream_state, now_ms):
            return self._publish(key, run, Protection.UNKNOWN, now_ms, own_book)
        protection = coverage(view.amount, key_orders, child_open)
        # Rule 1c: covered only by orders of lists read in this lead term.
        unverified = protection is Protection.COVERED and coverage(
            view.amount, [o for o in key_orders if self._term_read(key.symbol, o.is_algo)],
            child_open) is not Protection.COVERED
        if unverified and self._acting:
            self._unverified.add(key)
            return self._publish(key, run, Protection.UNKNOWN, now_ms, own_book)
        self._unverified.discard(key)
        bot = coverage(view.amount, bot_orders, child_open) if own_book else protection
        effects: list[Effect] = []
        told = self._told.pop(key, None)
        if told is not None and run.since_ms is None and (told.alerted or (
                told.since_ms is not None and protection is not Protection.COVERED)):
            run.since_ms = now_ms if told.since_ms is None else min(told.since_ms, now_ms)
            run.alerted, run.own_since_ms = told.alerted, now_ms
        if protection is Protection.COVERED:
            if run.alerted:
                effects.append(self._protected(key, run, now_ms,
                                               "guard_stop" if bot is not Protection.COVERED
                                               else "covered"))
            run.since_ms, run.alerted, run.lease_until_ms = None, False, 0
            run.own_since_ms = None
        elif run.since_ms is None:
            run.since_ms = now_ms
        lease_ok = leases is not None and now_ms - leases.read_ms <= self.policy.leases_max_age_ms
        if run.since_ms is not None:
            lease_end = leases.until_ms.get(key) if leases is not None else None
            if lease_end is not None:
                run.lease_until_ms = max(run.lease_until_ms,
                                         min(lease_end, run.since_ms + self.policy.lease_cap_ms))
            deadline = max(run.since_ms + self.policy.alert_ms, run.lease_until_ms)
            leases_seen = leases is None or leases.read_ms >= max(run.since_ms,
                                                                  self._lease_floor_ms)
            if not run.alerted and now_ms >= deadline and leases_seen and self._evidence(
                    key.symbol, stream_state, run.since_ms):
                run.alerted = True
                effects.append(Notify("position_unprotected", key, (
                    ("protection", protection.value), ("amount", f"{view.amount:f}"),
                    ("unprotected_since_ms", str(run.since_ms)),
                    ("unprotected_ms", str(now_ms - run.since_ms)),
                    ("grace_ms", str(deadline - run.since_ms)))))
        effects += self._emergency(view, run, bot, own_book, leases if lease_ok else None,
                                   stream_state, now_ms)
        effects += self._publish(key, run, Protection.UNKNOWN if unverified else protection,
                                 now_ms, own_book)
        return effects

    def _judge_unknown(self, key: PositionKey, now_ms: int) -> list[Effect]:
        self._unverified.discard(key)
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = _Run()
        return self._publish(key, run, Protection.UNKNOWN, now_ms)

    def _judge_closed(self, key: PositionKey, key_orders: Iterable[TrackedOrder],
                      orders: OrderBook, leases: Leases | None, now_ms: int) -> list[Effect]:
        """Rule 4b: the run ends; a stop of ours still there is removed at once."""
        self._unverified.discard(key)
        effects = self._end_run(key, now_ms, "closed")
        self._forget_gone_own(key, orders)
        own_book = [o for o in key_orders if o.client_id.startswith(GUARD_CLIENT_ID_PREFIX)
                    and o.order_id not in self._removed]
        record = self._own.get(key)
        if own_book:
            self._own_seen.add(key)
        else:
            self._own_seen.discard(key)
        if record is not None and record.state != "placed":
            return effects  # placing: its answer comes; removing: its outcome comes
        targets = [(o.client_id, o.order_id) for o in own_book if o.is_algo]
        if not targets and record is not None and record.order_id:
            targets = [(record.client_id, record.order_id)]
        if not targets:
            self._forget_own(key)  # nothing of ours left, or its id never learned: the reaper's
            return effects
        if any(o.in_trigger for o in own_book):
            self._own.setdefault(key, _OwnStop(targets[0][0], "placed", targets[0][1]))
            return effects  # ours is closing the position right now: it ends by itself
        client_id, order_id = targets[0]
        self._own[key] = _OwnStop(client_id, "placed", order_id)
        lease_ok = leases is not None and now_ms - leases.read_ms <= self.policy.leases_max_age_ms
        if (not self._acting or not lease_ok or leases is None  # leases None: for mypy
                or leases.until_ms.get(key, 0) > now_ms or now_ms < self._hold_until.get(key, 0)
                or not self._budget_left(now_ms)):
            return effects  # the record stays: no second stop if the position reopens
        self._own[key] = _OwnStop(client_id, "removing", order_id)
        self._actions.append(now_ms)
        return [*effects, CancelGuardStop(key, order_id, True, client_id,
                                          "the position closed", if_flat=True)]

    def _forget_own(self, key: PositionKey) -> None:
        self._own.pop(key, None)
        self._own_seen.discard(key)
        self._hold_until.pop(key, None)

    def _end(self, key: PositionKey, now_ms: int, why: str) -> list[Effect]:
        """The position is gone from the book (or not known open nor closed): end its run,
        forget our stop."""
        self._unverified.discard(key)
        self._forget_own(key)
        return self._end_run(key, now_ms, why)

    def _end_run(self, key: PositionKey, now_ms: int, why: str) -> list[Effect]:
        run = self._runs.pop(key, None)
        told = self._told.pop(key, None)
        if run is None:
            if told is not None and told.alerted:  # rule 7: the told alert ends with the position
                return [self._protected(key, _Run(since_ms=told.since_ms), now_ms, why)]
            return []
        effects: list[Effect] = []
        if run.alerted:
            effects.append(self._protected(key, run, now_ms, why))
        if run.published is not None and run.published[0] != "":
            effects.append(PublishProtection(key, "", None, ""))
        return effects

    def _protected(self, key: PositionKey, run: _Run, now_ms: int, why: str) -> Notify:
        since = run.since_ms if run.since_ms is not None else now_ms
        return Notify("position_protected", key, (
            ("by", why), ("unprotected_since_ms", str(since)),
            ("unprotected_ms", str(now_ms - since))))

    def _publish(self, key: PositionKey, run: _Run, protection: Protection, now_ms: int,
                 own_book: Sequence[TrackedOrder] = ()) -> list[Effect]:
        own = self._own.get(key)
        guard_order = (own.client_id if own is not None
                       else own_book[0].client_id if own_book else "")
        since = run.since_ms if protection in (Protection.NONE, Protection.PARTIAL) else None
        record = (protection.value, since, guard_order)
        if record == run.published:
            return []
        run.published = record
        return [PublishProtection(key, protection.value, since, guard_order)]

    # ------------------------------------------------------------ the last-resort stop

    def _emergency(self, view: PositionView, run: _Run, bot: Protection,
                   own_book: list[TrackedOrder], leases: Leases | None, stream_state: str,
                   now_ms: int) -> list[Effect]:
        p = self.policy
        key = view.key
        record = self._own.get(key)
        if not self._acting:
            return []  # rule 6: only the leader places or removes a stop
        if not own_book and record is None and p.emergency_stop_pct <= 0:
            return []
        if leases is None or key in {k for k, end in leases.until_ms.items() if end > now_ms}:
            return []  # leases unknown or one held: never touch the stop meanwhile
        if now_ms < self._hold_until.get(key, 0) or not self._budget_left(now_ms):
            return []
        if bot is Protection.COVERED:
            if record is not None and record.state == "removing":
                return []
            # Never one that is triggering: it is closing the position right now.
            targets = [(o.client_id, o.order_id) for o in own_book if o.is_algo and not o.in_trigger]
            if not targets and record is not None and record.state == "placed" \
                    and record.order_id is not None and not own_book:
                targets = [(record.client_id, record.order_id)]
            if not targets:
                return []
            client_id, order_id = targets[0]
            self._own[key] = _OwnStop(client_id, "removing", order_id)
            self._actions.append(now_ms)
            return [CancelGuardStop(key, order_id, True, client_id,
                                    "the bot's own stop covers the position again")]
        if own_book or record is not None or p.emergency_stop_pct <= 0:
            return []  # one per position side, ever at a time
        if run.since_ms is None:
            return []
        since = run.since_ms if run.own_since_ms is None else max(run.since_ms, run.own_since_ms)
        if now_ms - since < p.emergency_after_ms:
            return []
        if now_ms < run.lease_until_ms or not self._evidence(
                key.symbol, stream_state, run.since_ms):
            return []
        side = closing_side(key, view.amount)
        if side is None:
            return []
        self._seq += 1
        client_id = f"{GUARD_CLIENT_ID_PREFIX}{now_ms}-{self._seq}"[:36]
        self._own[key] = _OwnStop(client_id, "placing")
        self._actions.append(now_ms)
        return [PlaceGuardStop(key, side, client_id, p.emergency_stop_pct,
                               f"{bot.value} for {now_ms - run.since_ms} ms "
                               f"(emergency_after_ms {p.emergency_after_ms})")]

    def _forget_gone_own(self, key: PositionKey, orders: OrderBook) -> None:
        record = self._own.get(key)
        if (record is not None and record.order_id is not None and record.state != "placing"
                and orders.is_gone(record.order_id, is_algo=True)):
            del self._own[key]

    def _budget_left(self, now_ms: int) -> bool:
        while self._actions and now_ms - self._actions[0] >= 60_000:
            self._actions.popleft()
        return len(self._actions) < self.policy.max_orders_per_min

    def _on_outcome(self, outcome: GuardOutcome, now_ms: int) -> None:
        record = self._own.get(outcome.key)
        if record is None or record.client_id != outcome.client_id:
            return  # forgotten meanwhile (the position closed): the reaper owns what is left
        match outcome.action:
            case "placed":
                record.state, record.order_id = "placed", outcome.order_id
            case "place_failed":
                del self._own[outcome.key]
                self._hold_until[outcome.key] = now_ms + self.policy.retry_ms
            case "removed":
                del self._own[outcome.key]
                if outcome.order_id is not None:
                    self._removed.add(outcome.order_id)
            case "remove_failed":
                record.state = "placed"
                self._hold_until[outcome.key] = now_ms + self.policy.retry_ms


def _judged_alike(seen: PositionView, current: PositionView) -> bool:
    """Rule 5: the two views agree in all a judgment reads of a view (state, knowledge,
    amount; the key is the same): a re-verification, which moves only ``verified_ms`` and
    ``version``, changes no judgment."""
    return (seen.state is current.state and seen.knowledge is current.knowledge
            and seen.amount == current.amount)


class _ChildOpen(Protocol):
    def __call__(self, order_id: OrderId, /) -> bool: ...
