"""Outputs of the core: what the shell must do. Nothing here performs I/O.

Rules of this module:
1. Effects are data; the runtime runs them in the order returned.
2. ``Publish`` carries the complete view, with its version, so the store can refuse older writes.
   ``refresh_of`` > 0 says the view equals the published view of that version in everything but
   ``verified_ms`` (and ``version``): the store may then move only those fields, and only on a
   record still holding that version; anywhere else it writes the complete view. A refresh's
   ``version`` is always ``refresh_of + 1``.
3. ``Reverified(views, verified_ms)`` is the bulk form of rule 2, for one read that re-verified
   many positions (book rule 13): it stands for ``Publish(view, view.version - 1)`` of each of
   ``views``, in that order, every one with that ``verified_ms``; the store must leave exactly
   what those publishes would.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from watchdog.core.model import OrderId, PositionKey, PositionView, Symbol

__all__ = [
    "CancelGuardStop",
    "CancelOrder",
    "Effect",
    "Firing",
    "MarkFiring",
    "Notify",
    "PlaceGuardStop",
    "PrepareStandby",
    "Publish",
    "PublishProtection",
    "RaiseAlert",
    "ReadNow",
    "Reconnect",
    "RequestSnapshot",
    "Retract",
    "Reverified",
]


@dataclass(frozen=True, slots=True)
class Publish:
    """Write this view of a position to the store (open, closed or unknown).

    ``refresh_of``: the version this view only re-verifies (same facts, later ``verified_ms``),
    0 when it changes anything. Why: every positions poll re-verifies every position; writing
    300 complete views each 0.9 s to move one field was most of the daemon's idle CPU.
    """

    view: PositionView
    refresh_of: int = 0


@dataclass(frozen=True, slots=True)
class Reverified:
    """Many views that only re-verify their published ones (rule 3): each is the published view
    of version ``version - 1`` with ``verified_ms`` moved, and ``version`` + 1.

    Why one effect: an idle account re-verifies every position on every positions poll (300
    each 0.9 s); a ``Publish`` each, handled one by one by the effects runner and the
    publisher, and a script call of seven arguments each, were most of a read's cost after
    parsing (docs/BENCHMARKS.md, session 7). The store moves ``verified_ms`` of all of them in
    one call, with the same checks as a refresh each.
    """

    views: tuple[PositionView, ...]
    verified_ms: int

    def publishes(self) -> list[Publish]:
        """The ``Publish`` refreshes this stands for, in order."""
        return [Publish(view, view.version - 1) for view in self.views]


@dataclass(frozen=True, slots=True)
class Retract:
    """Knowledge of this position is lost: the store must show it as unknown, with the reason."""

    key: PositionKey
    reason: str


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    """Read positions (and orders) from REST; ``symbols`` None means all symbols."""

    reason: str
    symbols: frozenset[Symbol] | None = None


@dataclass(frozen=True, slots=True)
class ReadNow:
    """The stream reported something on ``symbol``: read its orders once more soon, then watch
    it closely for a while (the poller's schedule; a burst of events costs one read)."""

    symbol: Symbol


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Replace the user-stream connection: the core no longer trusts it (a ``stream_blind``
    verdict, core/blindness.py rule 3). The shell paces these (binance/reconnect.py)."""

    reason: str


@dataclass(frozen=True, slots=True)
class PrepareStandby:
    """REST showed a change the live stream has not reported yet (core/blindness.py rule 6):
    open a standby connection on the same listen key now, so that if the verdict is
    ``stream_blind`` its hole ends where the standby started to listen, not at the reconnect.
    One per episode of held-back changes; the shell may refuse (then nothing changes)."""

    reason: str


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """Something an operator must see: logged at WARNING/ERROR and written to the events stream."""

    code: str
    message: str
    key: PositionKey | None = None
    detail: tuple[tuple[str, str], ...] = ()  # extra fields, e.g. the order an alert is about


@dataclass(frozen=True, slots=True)
class Notify:
    """An entry for the bot-facing events stream (position_opened, position_closed, …)."""

    kind: str
    key: PositionKey | None = None
    detail: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """The reaper's decision to cancel one orphaned order (algo or regular)."""

    key: PositionKey
    order_id: OrderId
    is_algo: bool
    client_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Firing:
    """A conditional order of a position that is firing (core/firing.py rule 1).

    ``status``: the algo order's TRIGGERING/TRIGGERED, CROSSED (a public price crossed its trigger,
    core/triggers.py, the exchange has not said anything yet), or CHILD_WORKING when only its child
    order is known open; ``since_ms``: exchange time that status was first seen; ``child_id``:
    the child order while it is open.
    """

    algo_id: OrderId
    status: str
    since_ms: int
    child_id: OrderId | None = None


@dataclass(frozen=True, slots=True)
class MarkFiring:
    """Show on the position's hash that a stop of it is firing (``firing`` None: no longer), so
    ``begin`` vetoes with ``stop_triggered`` (docs/PROTOCOL.md §2)."""

    key: PositionKey
    firing: Firing | None


@dataclass(frozen=True, slots=True)
class PublishProtection:
    """The guard's answer for one position, written as added fields of its hash.

    ``protection`` is ``covered``/``partial``/``none``/``unknown``, or "" when the position is
    not open (the fields are then removed). ``guard_order`` is the client id of the watchdog's
    own last-resort stop on this position, "" when there is none.
    """

    key: PositionKey
    protection: str
    unprotected_since_ms: int | None
    guard_order: str = ""


@dataclass(frozen=True, slots=True)
class PlaceGuardStop:
    """Place the last-resort stop: closePosition STOP_MARKET ``stop_pct`` % from the mark."""

    key: PositionKey
    side: str          # the closing side, BUY or SELL
    client_id: str
    stop_pct: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class CancelGuardStop:
    """Remove the watchdog's own last-resort stop (the bot's protection covers again, or the
    position closed: ``if_flat``, the shell then re-reads the position and keeps the stop
    unless it is still flat)."""

    key: PositionKey
    order_id: OrderId | None   # None: only its client id is known (placement not answered)
    is_algo: bool
    client_id: str
    reason: str
    if_flat: bool = False


Effect = (Publish | Reverified | Retract | RequestSnapshot | RaiseAlert | Notify | Reconnect | ReadNow
          | PrepareStandby | CancelOrder | MarkFiring | PublishProtection | PlaceGuardStop | CancelGuardStop)
