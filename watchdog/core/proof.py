"""Stream proof: once found blind, the user stream is *unproven* until REST corroborates it.

Why: a blind verdict (book rule 7, or ``order_blindness``) makes the runtime replace the
connection, and a replacement is reconciled by REST like any reconnect, so ``stream_state``
turns ``live`` again while the new connection may be as mute as the old one (issue 12: after one
blind reconnect the still-muted stream was reported ``live``). A reconnect proves nothing; only
an event the stream delivers and REST then confirms does.

Rules of this module:
1. Two states, ``proven`` and ``unproven``; ``TRANSITIONS`` is the whole machine (one table).
   The stream starts ``proven`` (nothing says otherwise yet; a gap is ``stream_state``'s story).
2. ``BLIND`` (a ``stream_blind`` alert) → ``unproven``, from either state; a new verdict while
   unproven keeps the first one's time (the age an operator sees) and takes its reason.
3. A gap (StreamLost, StreamConnected, ListenKeyExpired) changes no state: it only forgets
   claims, because what an old connection delivered proves nothing about the new one.
4. While ``unproven`` every position row and order event the stream delivers is a *claim*. A
   position row is corroborated by a positions read requested after the claim arrived (all
   symbols, or scoped to its symbol) showing the same amount; an order event with an open
   status (NEW, PARTIALLY_FILLED) by an orders read listing the order; any other status by one
   requested more than ``max_rest_lag_ms`` after the event that no longer lists it.
   ``CORROBORATED`` → ``proven``. A read that says otherwise drops the claim (superseded; rule
   7 judges blindness). One state for the whole stream: a stream still dropping one event type
   is proven by another and found blind again at the next unreported change.
   An orders read judges only claims about orders of the lists it read (core/orders.py rule
   6): a sweep of the algo list neither confirms nor drops a claim about a regular order.
5. Pure: no clock (``now_ms`` injected), no I/O; the shell reads ``state``/``since_ms``/``reason``
   for the heartbeat, ``status`` and ``STATUS=``, and runs the Notify effects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from watchdog.core.blindness import BLIND_CODE
from watchdog.core.effects import Effect, Notify, RaiseAlert
from watchdog.core.events import (
    AlgoUpdate,
    Event,
    ListenKeyExpired,
    MarginCall,
    OrdersSnapshot,
    OrderUpdate,
    PositionSnapshot,
    SnapshotFailed,
    SnapshotRequested,
    StreamConnected,
    StreamLost,
    StreamPositions,
)
from watchdog.core.model import ZERO, OrderId, PositionKey, Symbol
from watchdog.core.orders import lists_of
from watchdog.core.pending import remember_request

__all__ = ["TRANSITIONS", "ProofState", "Signal", "StreamProof", "next_state"]
ProofState = Literal["proven", "unproven"]
_OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})


class Signal(StrEnum):
    """The inputs of the machine."""

    BLIND = "blind"                 # REST saw a change the stream never reported
    GAP = "gap"                     # the connection changed: claims are forgotten
    CORROBORATED = "corroborated"   # REST confirmed an event the stream delivered


TRANSITIONS: dict[ProofState, dict[Signal, ProofState]] = {
    "proven": {Signal.BLIND: "unproven", Signal.GAP: "proven", Signal.CORROBORATED: "proven"},
    "unproven": {Signal.BLIND: "unproven", Signal.GAP: "unproven",
                 Signal.CORROBORATED: "proven"},
}


def next_state(state: ProofState, signal: Signal) -> ProofState:
    """One step of the machine (rule 1)."""
    return TRANSITIONS[state][signal]


@dataclass(frozen=True, slots=True)
class _PositionClaim:
    amount: Decimal
    seq: int  # events applied when it arrived: a read requested later can corroborate it


@dataclass(frozen=True, slots=True)
class _OrderClaim:
    symbol: Symbol
    still_open: bool
    time_ms: int  # the event's exchange time


class StreamProof:
    """Whether the stream has proven itself since it was last found blind (module rules)."""

    def __init__(self, *, max_rest_lag_ms: int = 2000) -> None:
        self._max_rest_lag_ms = max_rest_lag_ms
        self.state: ProofState = "proven"
        self.since_ms = 0  # wall ms of the first blind verdict of this unproven spell
        self.reason = ""
        self._seq = 0
        self._requests: dict[int, int] = {}  # request id → seq when requested
        self._positions: dict[PositionKey, _PositionClaim] = {}
        self._orders: dict[tuple[bool, OrderId], _OrderClaim] = {}

    def apply(self, event: Event, now_ms: int, verdicts: Iterable[Effect] = ()) -> list[Effect]:
        """Fold one event and the alerts the other core parts raised for it."""
        self._seq += 1
        for verdict in verdicts:
            if type(verdict) is RaiseAlert and verdict.code == BLIND_CODE:
                self._blind(verdict.message, now_ms)
        if self.state == "proven":
            return []  # no claims to keep, and a request made now predates any claim (hot path)
        effects: list[Effect] = []
        match event:
            case StreamLost() | StreamConnected() | ListenKeyExpired():
                self._step(Signal.GAP)
            case StreamPositions() | MarginCall():
                for row in event.positions:
                    self._positions[row.key] = _PositionClaim(row.amount, self._seq)
            case OrderUpdate():
                self._orders[(False, event.order_id)] = _OrderClaim(
                    event.symbol, event.status in _OPEN_STATUSES, event.transaction_time_ms)
            case AlgoUpdate():
                self._orders[(True, event.algo_id)] = _OrderClaim(
                    event.symbol, event.status.value == "NEW", event.transaction_time_ms)
            case SnapshotRequested():
                remember_request(self._requests, event.request_id, self._seq)
            case PositionSnapshot():
                requested_seq = self._requests.pop(event.request_id, None)
                if requested_seq is not None and self._positions:
                    effects += self._check_positions(event, requested_seq)
            case SnapshotFailed():
                self._requests.pop(event.request_id, None)
            case OrdersSnapshot() if self._orders:
                effects += self._check_orders(event)
            case _:
                pass  # TradeLite, AccountConfigUpdate, Tick: nothing REST can confirm here
        return effects

    # ------------------------------------------------------------------ transitions

    def _step(self, signal: Signal) -> None:
        self.state = next_state(self.state, signal)
        if signal is not Signal.BLIND:
            self._positions.clear()
            self._orders.clear()
        if self.state == "proven":
            self.since_ms, self.reason = 0, ""

    def _blind(self, message: str, now_ms: int) -> None:
        if self.state == "proven":
            self.since_ms = now_ms
        self._step(Signal.BLIND)
        self.reason = message
        self._positions.clear()  # claims from before the verdict prove nothing new
        self._orders.clear()

    def _proven(self, what: str) -> list[Effect]:
        since_ms = self.since_ms
        self._step(Signal.CORROBORATED)
        return [Notify("stream_proven", detail=(("evidence", what),
                                                ("unproven_since_ms", str(since_ms))))]

    # ------------------------------------------------------------------ corroboration

    def _check_positions(self, snap: PositionSnapshot, requested_seq: int) -> list[Effect]:
        rows = {row.key: row.amount for row in snap.positions}
        for key, claim in list(self._positions.items()):
            if claim.seq >= requested_seq:
                continue  # requested before the claim arrived: cannot confirm it
            if snap.symbols is not None and key.symbol not in snap.symbols:
                continue
            if rows.get(key, ZERO) == claim.amount:
                return self._proven(f"{key} amount {claim.amount} from the stream, "
                                    f"confirmed by REST request {snap.request_id}")
            del self._positions[key]
        return []

    def _check_orders(self, snap: OrdersSnapshot) -> list[Effect]:
        listed = {(False, o.order_id) for o in snap.orders}
        listed |= {(True, o.algo_id) for o in snap.algo_orders}
        floor_ms = snap.requested_time_ms - self._max_rest_lag_ms
        lists = lists_of(snap)
        for ident, claim in list(self._orders.items()):
            if ident[0] not in lists:
                continue  # rule 4: a list this read did not hold says nothing
            if snap.symbols is not None and claim.symbol not in snap.symbols:
                continue
            if claim.still_open and ident in listed:
                confirmed = True  # listed: it exists, whatever the lag
            elif floor_ms <= claim.time_ms:
                continue  # REST may not have caught up with the event yet
            else:
                confirmed = (ident in listed) == claim.still_open
            if confirmed:
                kind = "algo order" if ident[0] else "order"
                return self._proven(f"{kind} {ident[1]} on {claim.symbol} from the stream, "
                                    f"confirmed by REST")
            del self._orders[ident]
        return []

