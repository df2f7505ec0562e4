"""The orphan decision: which open orders protect nothing any more, and why the others stay.

An orphan is an open order that can only reduce a position (an algo/conditional order or a
regular order that is reduce-only, close-position, or a hedge-mode closing order) on a
(symbol, positionSide) that is CONFIRMED flat by REST, continuously since before the grace
began, with no lease held by the bot. Rules of this module:

1. Safety rules are checked first and the first one that fails is the reason: an order is
   never a candidate while its algo is TRIGGERING/TRIGGERED (that may be the order closing the
   position), while it could open a position (an entry), while knowledge of the position is
   anything but CONFIRMED, or while the position is open.
   A reducing order is also kept while an entry order rests on the same key: it may be the stop
   placed together with that entry (a bracket), the protection of the position the entry opens.
   And every order is kept while either order list of its symbol has never been read
   (``LISTS_UNREAD``, core/orders.py rule 7): the sweep reads the two lists apart (half an interval), so
   at a start the algo stops are known before the regular orders, and an entry resting there
   since before the start would be unseen (a bracket's stop reaped 2 s after a start).
2. The grace is measured in exchange ms from ``max(flat_since, create_time_ms, last fill that
   may have opened a position on the symbol)``: the position
   must have been flat, by an unbroken run of REST snapshots, for ``grace_ms`` after the order
   appeared. A REST answer proves flatness only as of its request time minus
   ``max_rest_lag_ms`` (REST may show the state of that long ago), so the grace is over only
   when ``flat_proven_ms - max_rest_lag_ms`` (and ``now_ms``) are ``grace_ms`` past that start.
   The shell's mandatory re-read just before the cancel (``runtime/reaper_task.py``) obeys the
   same bound: requested at least ``grace_ms + max_rest_lag_ms`` after the start.
3. ``decide`` is a pure function of its arguments; it returns every order's verdict so the
   CLI and the logs can say why an order was kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from watchdog.core.canary import is_canary
from watchdog.core.effects import CancelOrder, Effect, RaiseAlert, RequestSnapshot
from watchdog.core.guard import GUARD_CLIENT_ID_PREFIX
from watchdog.core.model import (
    ZERO,
    AlgoStatus,
    Knowledge,
    PositionKey,
    PositionState,
    PositionView,
)
from watchdog.core.orders import OrderBook, TrackedOrder

__all__ = [
    "LEASE_DEPENDENT",
    "RESTORE_CLIENT_ID_PREFIX",
    "Assessment",
    "PositionsReader",
    "ReaperDecision",
    "ReaperPolicy",
    "Why",
    "decide",
]


# Client ids of the stops the reaper re-creates after losing the race (runtime/restore.py): ours,
# so they pass ``client_id_prefix`` and are removed again once they are orphans themselves.
RESTORE_CLIENT_ID_PREFIX = "wd-rs-"


class PositionsReader(Protocol):
    """The read-only part of ``PositionBook`` the reaper needs."""

    def view(self, key: PositionKey) -> PositionView | None:
        """Current view of a position, or None when nothing is known about it."""

    def flat_since(self, key: PositionKey) -> int | None:
        """Exchange ms of the first REST snapshot of the current unbroken flat run, else None."""

    def flat_proven_ms(self, key: PositionKey) -> int | None:
        """Request time (exchange ms) of the run's newest REST snapshot, else None."""


@dataclass(frozen=True, slots=True)
class ReaperPolicy:
    """Tunables of the reaper. Built by ``config.ReaperConfig.policy`` from the ``[reaper]``
    section, where each key is declared once with its default and bounds (checked by the
    loader); ``stuck_triggering_s`` * 1000."""

    grace_ms: int
    client_id_prefix: str
    max_cancels_per_min: int
    stuck_triggering_ms: int
    dry_run: bool
    max_rest_lag_ms: int  # [core] max_rest_lag_ms: how stale a REST answer may be


class Why(StrEnum):
    """The verdict on one open order."""

    ORPHAN = "orphan"
    TRIGGERING = "triggering"                      # algo TRIGGERING/TRIGGERED: never touched
    ENTRY_ORDER = "entry_order"                    # could open or grow a position
    ENTRY_PENDING = "entry_pending"                # an entry rests on the key: may be its stop
    LISTS_UNREAD = "lists_unread"                  # the symbol's other order list never read
    PREFIX_MISMATCH = "prefix_mismatch"            # not the bot's (client_id_prefix)
    CANARY = "canary"                              # the watchdog's own stream canary
    KNOWLEDGE_UNKNOWN = "knowledge_unknown"        # never confirmed, or no fact at all
    KNOWLEDGE_SUSPECT = "knowledge_suspect"        # a gap or a failed read since the last fact
    KNOWLEDGE_EXPIRED = "knowledge_expired"        # too old to be truth
    POSITION_OPEN = "position_open"
    LEASE_HELD = "lease_held"                      # the bot is replacing its stop right now
    NO_REST_CONFIRMATION = "no_rest_confirmation"  # flat, but no REST snapshot in the current run
    NOT_FLAT_LONG_ENOUGH = "not_flat_long_enough"  # grace not over yet (remaining_ms says how long)
    BUDGET_EXHAUSTED = "budget_exhausted"          # max_cancels_per_min reached


# The verdicts reached only past the lease check (``_assess``): every other verdict is the same
# whatever the lease set, so the shell needs fresh leases only while one of these is given.
LEASE_DEPENDENT = frozenset({Why.LEASE_HELD, Why.NO_REST_CONFIRMATION, Why.NOT_FLAT_LONG_ENOUGH,
                             Why.ORPHAN, Why.BUDGET_EXHAUSTED})


@dataclass(frozen=True, slots=True)
class Assessment:
    """One order and the verdict on it; ``remaining_ms`` only for NOT_FLAT_LONG_ENOUGH."""

    order: TrackedOrder
    why: Why
    detail: str
    remaining_ms: int | None = None
    read_due: bool = False  # NOT_FLAT_LONG_ENOUGH only by want of a newer REST read (rule 2)


@dataclass(frozen=True, slots=True)
class ReaperDecision:
    """Everything ``decide`` concluded at one instant."""

    now_ms: int
    cancels: tuple[CancelOrder, ...]
    assessments: tuple[Assessment, ...]   # one per open order, the orphans included
    alerts: tuple[RaiseAlert, ...]
    snapshot_requests: tuple[RequestSnapshot, ...]

    @property
    def effects(self) -> tuple[Effect, ...]:
        """Alerts first (an operator must see them even if a cancel fails), then the rest."""
        return (*self.alerts, *self.snapshot_requests, *self.cancels)

    @property
    def kept(self) -> tuple[Assessment, ...]:
        """The orders that are not orphans, with the reason."""
        return tuple(a for a in self.assessments if a.why is not Why.ORPHAN)

    @property
    def orphans(self) -> tuple[Assessment, ...]:
        """The orders selected for cancellation."""
        return tuple(a for a in self.assessments if a.why is Why.ORPHAN)


def decide(positions: PositionsReader, orders: OrderBook, leased: frozenset[PositionKey],
           reaping_budget_used: int, now_ms: int, policy: ReaperPolicy) -> ReaperDecision:
    """Classify every open order at exchange time ``now_ms``; select orphans within budget."""
    budget_left = max(0, policy.max_cancels_per_min - reaping_budget_used)
    assessments: list[Assessment] = []
    cancels: list[CancelOrder] = []
    alerts: list[RaiseAlert] = []
    confirm: set[PositionKey] = set()
    entries = {o.key: o for o in orders.orders() if not o.reduces_only}
    for order in orders.orders():
        stuck = _stuck_alert(order, orders, now_ms, policy)
        if stuck is not None:
            alerts.append(stuck)
        verdict = _assess(order, positions, leased, now_ms, policy, entries,
                          orders.last_opening_fill_ms(order.key.symbol),
                          orders.lists_read(order.key.symbol))
        if verdict.why is Why.NO_REST_CONFIRMATION or verdict.read_due:
            confirm.add(order.key)
        if verdict.why is Why.ORPHAN:
            if budget_left <= 0:
                verdict = Assessment(order, Why.BUDGET_EXHAUSTED,
                                     f"{policy.max_cancels_per_min} cancels/min used")
            else:
                budget_left -= 1
                cancels.append(CancelOrder(key=order.key, order_id=order.order_id,
                                           is_algo=order.is_algo, client_id=order.client_id,
                                           reason=verdict.detail))
        assessments.append(verdict)
    requests = tuple(
        RequestSnapshot(reason="reaper: confirm flat by REST", symbols=frozenset({symbol}))
        for symbol in sorted({k.symbol for k in confirm}))
    return ReaperDecision(now_ms=now_ms, cancels=tuple(cancels), assessments=tuple(assessments),
                          alerts=tuple(alerts), snapshot_requests=requests)


def _assess(order: TrackedOrder, positions: PositionsReader, leased: frozenset[PositionKey],
            now_ms: int, policy: ReaperPolicy,
            entries: dict[PositionKey, TrackedOrder], fill_ms: int | None,
            lists_read: bool = True) -> Assessment:
    if is_canary(order.client_id):  # core/canary.py: it cancels its own, within its bound
        return Assessment(order, Why.CANARY, "the watchdog's stream canary: never reaped")
    if order.in_trigger:
        return Assessment(order, Why.TRIGGERING,
                          f"algo {order.status} since {order.status_since_ms}: may be closing "
                          f"the position")
    if not order.reduces_only:
        return Assessment(order, Why.ENTRY_ORDER, "not reduce-only/close-position: an entry")
    if (policy.client_id_prefix and not order.client_id.startswith(policy.client_id_prefix)
            and not order.client_id.startswith(RESTORE_CLIENT_ID_PREFIX)
            and not order.client_id.startswith(GUARD_CLIENT_ID_PREFIX)):  # ours: reaped too
        return Assessment(order, Why.PREFIX_MISMATCH,
                          f"client id {order.client_id!r} lacks prefix "
                          f"{policy.client_id_prefix!r}")
    view = positions.view(order.key)
    flat_since = positions.flat_since(order.key)
    if view is None:
        if flat_since is None:
            return Assessment(order, Why.KNOWLEDGE_UNKNOWN, "no position fact for this key")
        # Never held: flat by the unbroken run of all-symbols REST snapshots (book rule).
    elif view.knowledge is Knowledge.SUSPECT:
        return Assessment(order, Why.KNOWLEDGE_SUSPECT, view.reason or "knowledge suspect")
    elif view.knowledge is Knowledge.EXPIRED:
        return Assessment(order, Why.KNOWLEDGE_EXPIRED, view.reason or "knowledge expired")
    elif view.knowledge is not Knowledge.CONFIRMED:
        return Assessment(order, Why.KNOWLEDGE_UNKNOWN, view.reason or "knowledge unknown")
    elif view.state is not PositionState.CLOSED or view.amount != ZERO:
        return Assessment(order, Why.POSITION_OPEN, f"position {view.state} amount {view.amount}")
    entry = entries.get(order.key)
    if entry is not None:
        return Assessment(order, Why.ENTRY_PENDING,
                          f"entry {entry.describe()} rests on this key: this order may be the "
                          f"stop of the position it opens")
    if not lists_read:
        return Assessment(order, Why.LISTS_UNREAD,
                          f"the regular and algo order lists of {order.key.symbol} were not "
                          f"both read yet: an entry may rest there unseen")
    if order.key in leased:
        return Assessment(order, Why.LEASE_HELD, "the bot holds a lease on this position")
    proof_ms = positions.flat_proven_ms(order.key)
    if flat_since is None or proof_ms is None:
        return Assessment(order, Why.NO_REST_CONFIRMATION,
                          "flat, but not by a REST snapshot in the current unbroken run")
    since = max(("flat_since", flat_since), ("creation", order.create_time_ms),
                ("a fill that may have opened a position", fill_ms or 0), key=lambda s: s[1])
    proven_ms = min(now_ms, proof_ms - policy.max_rest_lag_ms)  # rule 2: REST lags
    waited_ms = proven_ms - since[1]
    if waited_ms < policy.grace_ms:
        # ``remaining_ms``: until a read requested then can prove the grace over (0: a read
        # now can). Then ask for that read rather than wait for the next poll (a held key: a
        # per-symbol read covers it; a never-held key needs the all-symbols poll).
        remaining_ms = max(0, since[1] + policy.grace_ms + policy.max_rest_lag_ms - now_ms)
        read_due = remaining_ms == 0 and positions.view(order.key) is not None
        return Assessment(order, Why.NOT_FLAT_LONG_ENOUGH,
                          f"flat by REST as of {max(waited_ms, 0)} ms of {policy.grace_ms} ms "
                          f"after {since[0]} (newest read {proof_ms} less "
                          f"{policy.max_rest_lag_ms} ms of lag)",
                          remaining_ms=remaining_ms, read_due=read_due)
    return Assessment(order, Why.ORPHAN,
                      f"flat by REST since {flat_since}, proven as of {proven_ms} (read "
                      f"{proof_ms} less {policy.max_rest_lag_ms} ms of lag), order created "
                      f"{order.create_time_ms}, grace {policy.grace_ms} ms over at {now_ms}")


def _stuck_alert(order: TrackedOrder, orders: OrderBook, now_ms: int,
                 policy: ReaperPolicy) -> RaiseAlert | None:
    """TRIGGERING too long, or TRIGGERED with no live child: the stop may never execute."""
    if not order.in_trigger:
        return None
    age_ms = now_ms - order.status_since_ms
    if age_ms <= policy.stuck_triggering_ms:
        return None
    if order.status == AlgoStatus.TRIGGERED.value and order.child_order_id is not None \
            and orders.get(order.child_order_id, is_algo=False) is not None:
        return None  # a resting child (e.g. a STOP limit) is working, not stuck
    return RaiseAlert(
        code="algo_stuck_triggering",
        message=(f"algo order {order.order_id} ({order.client_id}) on {order.key} has been "
                 f"{order.status} for {age_ms} ms (limit {policy.stuck_triggering_ms} ms); "
                 f"not cancelled: check the position's protection by hand"),
        key=order.key,
        detail=(("symbol", order.key.symbol), ("side", order.key.side.value),
                ("position_side", order.key.side.value), ("order_id", str(order.order_id)),
                ("client_id", order.client_id), ("algo", "1"), ("order_side", order.side),
                ("order_type", order.order_type), ("status", order.status)))
