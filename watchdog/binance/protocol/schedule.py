"""The pure half of polling (``poller.py`` rule 1): ``PollSchedule`` says what to read now and
when to wake next, and the weight arithmetic of rules 3 and 4 (``orders_share_per_min``,
``sweep_hold_s``). The rules are stated once, in ``poller.py``; ``now_s`` is always passed in.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from watchdog.binance.protocol.budget import PRIORITY_RESERVE, Priority, WeightBudget
from watchdog.binance.protocol.weights import (
    ORDERS_WEIGHT,
    POSITIONS_WEIGHT,
    SWEEP_LIST_WEIGHT,
    SWEEP_WEIGHT,
)
from watchdog.core.events import OrdersSnapshot, PositionAmount, PositionSnapshot
from watchdog.core.model import ZERO, Symbol
from watchdog.core.orders import lists_of

__all__ = ["CALM_AFTER_S", "SWEEP_APART_S", "SWEEP_LISTS", "SWEEP_RETRY_S", "PollPlan",
           "PollSchedule", "SweepList", "orders_share_per_min", "request_priority",
           "request_wants_positions", "sweep_hold_s"]


class SweepList(StrEnum):
    """The two lists the sweep reads, each on its own (poller.py rule 4)."""

    ALGO = "algo"        # conditional stops since Binance's 2025 migration: the incident's kind
    REGULAR = "regular"  # limits, reduce-only take-profits, entries

    @property
    def is_algo(self) -> bool:
        return self is SweepList.ALGO


# In this order when both are due (a start, a take-over): the algo list first.
SWEEP_LISTS = (SweepList.ALGO, SweepList.REGULAR)
# Rule 4: one list's sweep waits until the other's has left our 60 s window, which counts a
# request until 60 s after its answer (budget.py rule 6), and a second more: the two 40s never
# share a window, where together they slowed the positions poll to ~1.2 s.
SWEEP_APART_S = 61.0

# A sweep held back (IP near its limit) or failed is tried again this much later, not at once.
SWEEP_RETRY_S = 30.0
# Rule 5 (poller.py): the positions poll stays at poll_interval_s for this long after the last
# sign of doubt or activity (ten routine reads at the default 0.9 s), so a burst of trading or
# a reconnect is followed at full pace before the poll may slow down.
CALM_AFTER_S = 10.0


@dataclass(frozen=True, slots=True)
class PollPlan:
    """What to read now; ``wake_in_s`` is when the schedule next has something to do, and
    ``positions_wake_in_s`` the same without per-symbol order timers (the positions read or the
    sweep): while due order reads are held back by the budget, a symbol whose timer runs out
    next could not go either, so the poller need not wake for it."""

    read_positions: bool
    positions_urgent: bool
    positions_reason: str
    order_symbols: tuple[Symbol, ...]
    orders_urgent: tuple[Symbol, ...]
    wake_in_s: float
    sweep: bool = False
    positions_wake_in_s: float = math.inf
    positions_priority: bool = False  # a priority request is among those pending
    sweep_list: SweepList | None = None  # the list to sweep now (``sweep``: one is due)


# RequestSnapshot reasons that only refresh what the live stream already said (core/book.py
# asks after every fill the stream reports): routine. Every other request is a priority read:
# a decision waits on it (the reaper's "confirm flat by REST", a gap, an ambiguous REST row,
# a malformed frame, a margin call).
_ROUTINE_REQUEST_PREFIXES = ("fill on ",)


# RequestSnapshot reasons that ask for a symbol's orders and nothing else (core/guard.py rule 8:
# doubt costs an *orders* read): the positions poll answers them not, so no positions read is
# made for them (poller rule 3; it cost 5 weight besides the 2 it asked for).
_ORDERS_ONLY_REQUEST_PREFIXES = ("guard: orders of ",)


def request_wants_positions(reason: str, symbols: Collection[Symbol] | None) -> bool:
    """Rule 3: does a read the core asked for need a positions read, or only its symbols'
    orders (the guard's doubt read)?"""
    return not (symbols and reason.startswith(_ORDERS_ONLY_REQUEST_PREFIXES))


# RequestSnapshot reasons of a stream gap (core/book.py: a loss asks for a read after it). A
# reconnect brings its own read right after the connect (stream.py rule 2), usually a few ms
# later (a blind reconnect is immediate), which serves them: they wait up to
# ``fast_poll_interval_s`` for it (rule 3; both were read, 5 weight each, 13 ms apart).
_GAP_REQUEST_PREFIXES = ("stream lost: ", "listen key expired")


def request_priority(reason: str) -> Priority:
    """Rule 3: the priority of a read the core asked for, by its reason."""
    if reason.startswith(_ROUTINE_REQUEST_PREFIXES):
        return Priority.ROUTINE
    return Priority.REQUESTED


def orders_share_per_min(budget_per_min: int, poll_interval_s: float,
                         orders_sweep_interval_s: float) -> int:
    """What our share leaves periodic per-symbol order reads once the reserve for priority
    calls, the positions poll and the sweep (both fixed by configuration) are paid: at least
    one read a minute (rule 4). Priority calls (blind reconnects, requested reads, the reaper)
    are not planned here: routine polls yield to them when they come."""
    positions_per_min = math.ceil(POSITIONS_WEIGHT * 60 / poll_interval_s)
    # Each list every orders_sweep_interval_s: both lists' weight over that interval.
    sweep_per_min = math.ceil(SWEEP_WEIGHT * 60 / orders_sweep_interval_s)
    reserve = min(PRIORITY_RESERVE, budget_per_min // 2)  # as WeightBudget's
    return max(ORDERS_WEIGHT,
               budget_per_min - reserve - positions_per_min - sweep_per_min)


def sweep_hold_s(budget: WeightBudget, now_s: float) -> float:
    """How long one list's sweep must wait (0: go): a routine call like any other (never
    during ``Retry-After``, only while the IP is under its 90% line and our share has room)."""
    return budget.wait_for_s(SWEEP_LIST_WEIGHT, priority=Priority.ROUTINE, now_s=now_s)


class PollSchedule:
    """Pure timing of REST reads (rule 1 and 2)."""

    def __init__(self, *, poll_interval_s: float, orders_poll_interval_s: float,
                 fast_poll_interval_s: float, recent_window_s: float = 300.0,
                 orders_sweep_interval_s: float = 600.0,
                 idle_poll_interval_s: float | None = None) -> None:
        self.poll_interval_s = poll_interval_s
        # Rule 5: the positions poll's spacing while calm (None: never slower than usual).
        self.idle_poll_interval_s = max(poll_interval_s, idle_poll_interval_s or poll_interval_s)
        self._doubt_at = -1e18  # the last sign of doubt or activity (rule 5)
        self._gap_at = -1e18  # the last user-stream gap (rule 6)
        # Per list (rule 4): a due sweep waits for a trusted stream (rule 6) since then...
        self._sweep_held_since: dict[SweepList, float | None] = dict.fromkeys(SWEEP_LISTS)
        # ... unless it is the first after a start or a take-over (never held, rule 6).
        self._sweep_at_once: dict[SweepList, bool] = dict.fromkeys(SWEEP_LISTS, True)
        # Until when each list's last sweep is in our window (inf: under way): the other waits.
        self._sweep_in_window_until: dict[SweepList, float] = dict.fromkeys(SWEEP_LISTS, -1e18)
        self.orders_sweep_interval_s = orders_sweep_interval_s
        self.orders_poll_interval_s = orders_poll_interval_s
        self.fast_poll_interval_s = fast_poll_interval_s
        self.recent_window_s = recent_window_s
        self._next_positions_at = 0.0
        self._last_positions_at = -1e18
        self._requested: list[str] = []  # reasons of priority requests (rule 3)
        self._routine_requests: list[str] = []  # reasons of routine ones
        self._requested_symbols: set[Symbol] = set()
        self._open: set[Symbol] = set()
        self._closed_at: dict[Symbol, float] = {}
        self._active_at: dict[Symbol, float] = {}
        self._orders_at: dict[Symbol, float] = {}
        self._orders_after_event: set[Symbol] = set()
        self._with_orders: set[Symbol] = set()  # symbols the last read of them listed orders in
        self._with_by_list: dict[bool, set[Symbol]] = {False: set(), True: set()}  # ... per list
        self._reread: set[Symbol] = set()  # read once as soon as the budget allows (after a gap)
        self._positions_known = False  # the first sweep waits for the first positions answer
        self._last_seen: PositionSnapshot | None = None
        self._last_rows: tuple[PositionAmount, ...] | None = None  # its rows: _open came of them
        self._next_sweep_at: dict[SweepList, float] = dict.fromkeys(SWEEP_LISTS, 0.0)
        self._gap_hold_until = -1e18  # a gap's read waits for the reconnect's until then
        self._lost_at = math.inf  # the last stream loss (a read started since serves its request)

    # -------------------------------------------------------------- facts

    def stream_lost(self, now_s: float) -> None:
        """The user stream was lost: the read the core asks for because of it waits up to
        ``fast_poll_interval_s`` for the reconnect's own read, which serves it (rule 3)."""
        self._gap_hold_until = now_s + self.fast_poll_interval_s
        self._lost_at = now_s

    def _gap_requests_only(self) -> bool:
        return (not self._routine_requests and bool(self._requested)
                and all(r.startswith(_GAP_REQUEST_PREFIXES) for r in self._requested))

    def snapshot_requested(self, reason: str, symbols: Collection[Symbol] | None) -> None:
        """The core asked for a snapshot: read positions (and those symbols' orders) now,
        as a priority read unless ``request_priority`` calls it routine; only those symbols'
        orders when ``request_wants_positions`` says so (the guard's doubt read)."""
        if not request_wants_positions(reason, symbols):
            self._requested_symbols.update(symbols or ())
            return
        if (not symbols and reason.startswith(_GAP_REQUEST_PREFIXES)
                and self._last_positions_at >= self._lost_at):
            # Rule 3: a read started since the loss (the reconnect's post-connect read) already
            # serves it. The core's request is carried out after its whole batch, so it can
            # come after that read's SnapshotRequested (loss, connect and read in one batch at
            # a blind promotion): it was read again 250 ms later, 5 weight for nothing.
            return
        if request_priority(reason) is Priority.ROUTINE:
            # A freshness read (the stream just reported a fill): at once if routine polls
            # have room, else with the next scheduled read; its orders like after an event.
            self._routine_requests.append(reason)
            self._orders_after_event.update(symbols or ())
            return
        self._requested.append(reason)
        self._requested_symbols.update(symbols or ())

    def positions_started(self, now_s: float) -> str:
        """A positions read starts now; returns the reason(s) it serves."""
        self._next_positions_at = now_s + self.poll_interval_s
        self._last_positions_at = now_s
        if self._requested:  # a decision waits on this read: something is in doubt (rule 5)
            self._doubt_at = now_s
        reason = ", ".join(dict.fromkeys(self._requested + self._routine_requests)) or "scheduled"
        self._requested.clear()
        self._routine_requests.clear()
        return reason

    def positions_seen(self, snapshot: PositionSnapshot, now_s: float) -> bool:
        """A complete positions answer: which symbols hold a position, which just closed.
        Returns True when that changed what the schedule holds (False: nothing new to plan)."""
        if snapshot is self._last_seen:
            return False  # the poller's own read, seen again when the core applies it
        self._last_seen = snapshot
        if self._positions_known and snapshot.positions is self._last_rows:
            # The very rows of the last answer (wire_rest keeps an unchanged read's tuple, the
            # usual case every 0.9 s): the same holders, already ``_open``; no 300-row pass.
            return False
        self._last_rows = snapshot.positions
        held = {p.key.symbol for p in snapshot.positions if p.amount != ZERO}  # already Symbols
        if self._positions_known and held == self._open:
            return False
        if self._positions_known:  # a position opened or closed: not calm (rule 5)
            self._doubt_at = now_s
        for symbol in self._open - held:
            self._closed_at[symbol] = now_s
            # Its stops are what the reaper must judge now, and with a blind stream an order
            # read is the only way to see one the bot placed after the close: read at once.
            self._requested_symbols.add(symbol)
        self._open = held
        self._positions_known = True
        return True

    def activity(self, symbol: Symbol, now_s: float) -> None:
        """An event on ``symbol`` arrived: read its orders once more, soon (a burst of events
        on one fill costs one read), then watch it for ``recent_window_s``."""
        self._active_at[symbol] = now_s
        self._doubt_at = now_s  # trading on the account: closures are likely (rule 5)
        self._orders_after_event.add(symbol)

    def doubt(self, now_s: float, *, gap: bool = False) -> None:
        """Rule 5: something is in doubt now (a stream gap, a failed read, a crossed trigger):
        the positions poll keeps ``poll_interval_s`` for ``CALM_AFTER_S`` at least. ``gap``:
        it is a user-stream gap, which also holds the sweep back (rule 6)."""
        self._doubt_at = now_s
        if gap:
            self._gap_at = now_s

    def sweep_may_go(self, now_s: float, stream_trusted: bool | None,
                     which: SweepList = SweepList.ALGO) -> bool:
        """Rule 6: a due sweep of list ``which`` goes while the user stream is trusted and has
        had no gap for ``CALM_AFTER_S``, or once it has waited ``orders_sweep_interval_s`` for
        that. ``stream_trusted`` None (no probe), or the first sweep of the list after a start
        or a take-over (it finds what was left while no watchdog ran; a restart must not wait
        for it): at once."""
        if stream_trusted is None or self._sweep_at_once[which]:
            return True
        if stream_trusted and now_s - self._gap_at >= CALM_AFTER_S:
            return True
        held_since = self._sweep_held_since[which]
        if held_since is None:
            held_since = self._sweep_held_since[which] = now_s
        return now_s >= held_since + self.orders_sweep_interval_s

    def sweep_goes(self, now_s: float, stream_trusted: bool | None,
                   which: SweepList = SweepList.ALGO) -> bool:
        """``sweep_may_go`` asked ahead of time (the poller's projection, poller.py rule 8):
        the same answer, but a sweep not held yet is not recorded as held from ``now_s``."""
        if stream_trusted is None or self._sweep_at_once[which]:
            return True
        if stream_trusted and now_s - self._gap_at >= CALM_AFTER_S:
            return True
        held_since = self._sweep_held_since[which]
        return now_s >= (now_s if held_since is None else held_since) + self.orders_sweep_interval_s

    def sweep_forced_at(self, which: SweepList) -> float | None:
        """When a sweep of ``which`` held back by rule 6 goes whatever the stream (None: none
        held)."""
        held_since = self._sweep_held_since[which]
        if held_since is None:
            return None
        return held_since + self.orders_sweep_interval_s

    def calm(self, now_s: float, *, stream_trusted: bool, stops_far: bool) -> bool:
        """Rule 5: may the routine positions poll slow to ``idle_poll_interval_s``? Only while
        the user stream is live and proven (``stream_trusted``), no watched stop is near its
        trigger or of unknown distance (``stops_far``), no read is pending, and nothing was in
        doubt and nothing traded for ``CALM_AFTER_S``."""
        return (stream_trusted and stops_far and self._positions_known
                and not (self._requested or self._routine_requests)
                and now_s - self._doubt_at >= CALM_AFTER_S)

    def orders_read(self, symbol: Symbol, now_s: float) -> None:
        self._orders_at[symbol] = now_s
        self._orders_after_event.discard(symbol)
        self._requested_symbols.discard(symbol)
        self._reread.discard(symbol)

    def reread_orders(self, symbols: Collection[Symbol]) -> None:
        """A stream gap closed: read these symbols' orders once more, first in line but within
        the order reads' share (an order placed during the gap has no event to announce it)."""
        for symbol in symbols:
            self._orders_at.pop(symbol, None)  # never read: due now, longest unread first
            self._reread.add(symbol)

    def orders_read_by_other(self, symbols: Collection[Symbol], now_s: float) -> None:
        """Someone else (the stream's resync) just read these symbols' orders: the periodic read
        can wait its interval. Requests and after-event reads stay: they may postdate it."""
        for symbol in symbols:
            self._orders_at[symbol] = max(self._orders_at.get(symbol, -1e18), now_s)

    def orders_seen(self, snapshot: OrdersSnapshot) -> None:
        """An orders answer: the symbols it covers that hold orders stay watched (rule 2), per
        list (one list's sweep says nothing about the other's, core/orders.py rule 6)."""
        lists = lists_of(snapshot)
        for is_algo, rows in ((False, snapshot.orders), (True, snapshot.algo_orders)):
            if is_algo not in lists:
                continue
            listed = {Symbol(row.symbol) for row in rows}
            before = self._with_by_list[is_algo]
            self._with_by_list[is_algo] = (listed if snapshot.symbols is None
                                           else (before - snapshot.symbols) | listed)
        self._with_orders = self._with_by_list[False] | self._with_by_list[True]

    def sweep_started(self, now_s: float, which: SweepList | None = None) -> None:
        """A sweep of ``which`` starts now: the next one of that list is a full interval away,
        and until its answer (``sweep_answered``) is out of our window the other list's waits
        (rule 4). The first algo sweep after a start or a take-over puts the regular list's
        first half an interval later (the two lists offset by half). None: both lists were
        read at once by someone else (the stream's read), answered now."""
        if which is SweepList.ALGO and self._sweep_at_once[SweepList.REGULAR]:
            self._next_sweep_at[SweepList.REGULAR] = max(
                self._next_sweep_at[SweepList.REGULAR], now_s + self._half_interval_s)
        for lst in SWEEP_LISTS if which is None else (which,):
            self._next_sweep_at[lst] = now_s + self.orders_sweep_interval_s
            self._sweep_held_since[lst] = None
            self._sweep_at_once[lst] = False
            self._sweep_in_window_until[lst] = math.inf if which else now_s + SWEEP_APART_S

    @property
    def _half_interval_s(self) -> float:
        """Rule 4: how far apart the two lists' sweeps are kept (never less than a window)."""
        return max(SWEEP_APART_S, self.orders_sweep_interval_s / 2)

    def sweep_answered(self, now_s: float, which: SweepList) -> None:
        """The sweep of ``which`` got its answer, or failed, at ``now_s``: it counts in our
        window until ``SWEEP_APART_S`` from now (rule 4)."""
        self._sweep_in_window_until[which] = now_s + SWEEP_APART_S

    def sweep_read(self, started_s: float, now_s: float) -> None:
        """A sweep that started at ``started_s`` succeeded: it was every watched symbol's order
        read too (events after its start still get their own read)."""
        for symbol in self.tracked(now_s, ()):
            if self._active_at.get(symbol, -1e18) <= started_s:
                self._orders_at[symbol] = max(self._orders_at.get(symbol, -1e18), started_s)
                self._orders_after_event.discard(symbol)
                self._reread.discard(symbol)

    def defer_sweep(self, until_s: float, which: SweepList) -> None:
        """The sweep of ``which`` could not go (budget, or a failed read): try again at
        ``until_s``."""
        self._next_sweep_at[which] = until_s

    def sweep_soon(self, now_s: float) -> None:
        """A take-over: sweep both lists from ``now_s`` like at a start (the algo list first,
        the regular one once it left the window), never held by rule 6."""
        for lst in SWEEP_LISTS:
            self._next_sweep_at[lst] = now_s
            self._sweep_at_once[lst] = True

    def sweep_at(self, which: SweepList) -> float:
        """When the sweep of ``which`` is due: its own interval, and not before the other
        list's last sweep has left our window (rule 4). After a start or a take-over the
        regular list waits for the algo list's sweep (the algo list first, even while its
        sweep is held back for a slot or the budget), and goes half an interval after it."""
        other = SweepList.REGULAR if which is SweepList.ALGO else SweepList.ALGO
        if which is SweepList.REGULAR and self._sweep_at_once[SweepList.ALGO]:
            return max(self._next_sweep_at[which],
                       self._next_sweep_at[other] + self._half_interval_s)
        return max(self._next_sweep_at[which], self._sweep_in_window_until[other])

    @property
    def next_sweep_at(self) -> float:
        """When the next sweep of either list is due."""
        return min(self.sweep_at(lst) for lst in SWEEP_LISTS)

    def due_sweep(self, now_s: float) -> SweepList | None:
        """The list to sweep now (the algo list first when both are due), or None."""
        if not self._positions_known:
            return None
        return next((lst for lst in SWEEP_LISTS if now_s >= self.sweep_at(lst)), None)

    def positions_read_by_other(self, now_s: float) -> None:
        """Someone (the stream's post-connect resync) just asked for all positions: that
        serves every pending request and the next scheduled read can wait a full interval."""
        self.positions_started(now_s)

    @property
    def open_symbols(self) -> frozenset[Symbol]:
        """Symbols the last complete positions answer showed a position on."""
        return frozenset(self._open)

    @property
    def last_positions_at(self) -> float:
        """When the last positions read (ours or someone else's) started."""
        return self._last_positions_at

    @property
    def requests_pending(self) -> bool:
        """A positions read was asked for (priority or routine) and has not started yet."""
        return bool(self._requested or self._routine_requests)

    @property
    def next_positions_at(self) -> float:
        """When the next scheduled positions read is due (monotonic seconds)."""
        return self._next_positions_at

    def defer_positions(self, until_s: float) -> None:
        """Our budget cannot pay for the scheduled read yet."""
        self._next_positions_at = max(self._next_positions_at, until_s)

    # -------------------------------------------------------------- decision

    def orders_interval_s(self, symbol: Symbol, now_s: float, leased: Collection[str]) -> float:
        fast = symbol in leased or symbol in self._orders_after_event
        return self.fast_poll_interval_s if fast else self.orders_poll_interval_s

    def tracked(self, now_s: float, leased: Collection[str]) -> set[Symbol]:
        """Symbols whose orders we watch: open, recently closed, leased, recently active,
        holding orders when last read, or to be read once more after a gap."""
        for symbol, closed_at in list(self._closed_at.items()):
            if now_s - closed_at > self.recent_window_s:
                del self._closed_at[symbol]
        recent = {s for s, t in self._active_at.items() if now_s - t < self.recent_window_s}
        return (self._open | set(self._closed_at) | {Symbol(s) for s in leased} | recent
                | self._requested_symbols | self._with_orders | self._reread)

    def positions_due_at(self, calm: bool) -> float:
        """When the routine positions read is due: ``poll_interval_s`` after the last one (or
        later, when the budget deferred it), ``idle_poll_interval_s`` while ``calm`` (rule 5)."""
        if calm:
            return max(self._next_positions_at, self._last_positions_at + self.idle_poll_interval_s)
        return self._next_positions_at

    def plan(self, now_s: float, leased: Collection[str] = (), calm: bool = False, *,
             ordered: bool = True, paced_at: float = -math.inf) -> PollPlan:
        """What to read at ``now_s``. ``ordered=False``: the same plan, its order reads in no
        particular order, for a caller that only asks whether any is due and when to wake (the
        poller's ``_next_wake_s``): sorting 300 held-back reads was a third of the planning on
        an idle 300-symbol account (docs/BENCHMARKS.md, "#13 item 2: the floor with reads").
        ``paced_at``: the routine positions read, due later, is woken for no earlier than this
        (the time its pace allows, poller.py rule 8); only the wake-up moves, never what is
        read now, and never a requested read's wake-up."""
        # A requested read goes at once, but never closer than fast_poll_interval_s to the
        # previous read: the core asks again after every fill and every ambiguous answer.
        requested_at = self._last_positions_at + self.fast_poll_interval_s
        urgent = bool(self._requested or self._routine_requests)
        if urgent and now_s < self._gap_hold_until and self._gap_requests_only():
            requested_at = max(requested_at, self._gap_hold_until)
        due_at = self.positions_due_at(calm)
        read_positions = now_s >= due_at or (urgent and now_s >= requested_at)
        wake_at = min(due_at, requested_at) if urgent else max(due_at, paced_at)
        sweep_list = self.due_sweep(now_s)
        if self._positions_known and sweep_list is None:
            wake_at = min(wake_at, self.next_sweep_at)
        positions_wake_at = wake_at
        # Inlined ``orders_interval_s``: this runs on every wake-up over every tracked symbol
        # (300+), and on an idle account with its order reads held by the budget all are due.
        requested = self._requested_symbols
        orders_at = self._orders_at
        after_event = self._orders_after_event
        fast_s, slow_s = self.fast_poll_interval_s, self.orders_poll_interval_s
        due: list[Symbol] = []
        due_urgent: list[Symbol] = []
        for symbol in self.tracked(now_s, leased):
            if symbol in requested:
                due.append(symbol)
                due_urgent.append(symbol)
                continue
            next_at = orders_at.get(symbol, -1e18) + (
                fast_s if symbol in leased or symbol in after_event else slow_s)
            if next_at <= now_s:
                due.append(symbol)
            elif next_at < wake_at:
                wake_at = next_at
        # Requested first, then the longest unread, then by name: when the budget cuts the list
        # short, every symbol still gets its turn (the sweep can add many symbols that hold
        # orders). The order of (not requested, last read, symbol) tuples, as stable sorts from
        # the last key to the first: each key alone compares in C's fast paths (str, float),
        # where 300 tuples whose first items all tie compared item by item (half the plan).
        if ordered:
            last_read = {symbol: orders_at.get(symbol, -1e18) for symbol in due}
            due.sort()
            due.sort(key=last_read.__getitem__)
            if due_urgent:
                due.sort(key=requested.__contains__, reverse=True)  # stable under reverse too
                due_urgent = due[:len(due_urgent)]
        return PollPlan(read_positions, urgent,
                        ", ".join(self._requested + self._routine_requests) or "scheduled",
                        tuple(due), tuple(due_urgent),
                        max(0.0, wake_at - now_s), sweep_list is not None,
                        max(0.0, positions_wake_at - now_s), bool(self._requested), sweep_list)
