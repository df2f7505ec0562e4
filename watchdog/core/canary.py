"""The stream's liveness proof for quiet accounts (PURE): place a conditional order nobody
needs, expect its ALGO_UPDATE within a bound, cancel it (issue 12, Deliver 3).

A healthy user-data stream reports every algo order placed on the account; one that stays
connected but silent (the BASUSDT incident) reports nothing, and on a quiet account nothing else
would show it. So, every ``interval_ms`` while the stream is live, the shell places one canary
(a reduce-only BUY STOP_MARKET far above the market, ``binance/canary.py``) whose client id
starts with ``CANARY_CLIENT_ID_PREFIX``, and this machine decides what follows.

Rules of this module:
1. One canary at a time; a new one only ``interval_ms`` after the previous was placed, and only
   while the stream is live (a disconnected or unreconciled stream is known not to be proven:
   the book handles gaps, and a canary then would only say what is known).
2. Its ALGO_UPDATE (any status, matched by client id) within ``bound_ms`` of sending the
   placement proves the stream: cancel. None by then: ``CanaryBlind`` (the shell raises
   ``stream_blind`` through the book, as rule 7 of core/book.py does) and cancel.
3. The canary never rests longer than the bound: the cancel is asked for at the latest when the
   bound ends, and retried every ``retry_ms`` until Binance confirms it or says it is unknown
   (-2011: never placed, or already gone). A placement whose outcome is unknown (timeout after
   sending) is cancelled the same way, by client id.
4. A placement Binance refused is a problem to report (``CanaryProblem``), not blindness.
5. A gap of the stream while a canary is out voids it: cancelled, no verdict.
6. No clock, no I/O: ``now_ms`` is injected (the shell's wall clock in ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CANARY_CLIENT_ID_PREFIX",
    "Canary",
    "CanaryAction",
    "CanaryBlind",
    "CanaryPolicy",
    "CanaryProblem",
    "CancelCanary",
    "PlaceCanary",
    "is_canary",
]

# Binance client ids match ^[.A-Z:/a-z0-9_-]{1,36}$ (docs/BINANCE.md §3.3): prefix + 13-digit ms.
CANARY_CLIENT_ID_PREFIX = "wd-canary-"


def is_canary(client_id: str) -> bool:
    """True for the watchdog's own canary orders: never reaped, never a bot's stop."""
    return client_id.startswith(CANARY_CLIENT_ID_PREFIX)


@dataclass(frozen=True, slots=True)
class CanaryPolicy:
    """``interval_ms``: between placements; ``bound_ms``: how long the update may take and the
    canary may rest; ``retry_ms``: between attempts to cancel it."""

    interval_ms: int
    bound_ms: int
    retry_ms: int = 1000

    def __post_init__(self) -> None:
        if not 0 < self.bound_ms < self.interval_ms or self.retry_ms <= 0:
            raise ValueError(f"invalid canary policy: {self!r} (need 0 < bound < interval)")


@dataclass(frozen=True, slots=True)
class PlaceCanary:
    client_id: str


@dataclass(frozen=True, slots=True)
class CancelCanary:
    client_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class CanaryBlind:
    message: str


@dataclass(frozen=True, slots=True)
class CanaryProblem:
    message: str


CanaryAction = PlaceCanary | CancelCanary | CanaryBlind | CanaryProblem


class Phase(StrEnum):
    IDLE = "idle"        # nothing out; next placement at next_at_ms
    OUT = "out"          # placement sent, its ALGO_UPDATE not seen yet
    CANCEL = "cancel"    # to be cancelled (rule 3); cancel_at_ms: next attempt


class Canary:
    """The canary's state machine; the shell runs the actions it returns, in order."""

    def __init__(self, policy: CanaryPolicy, now_ms: int) -> None:
        self.policy = policy
        self.phase = Phase.IDLE
        self.client_id = ""
        self.sent_ms = 0
        self.next_at_ms = now_ms + policy.interval_ms  # the stream gets one interval to settle
        self._cancel_at_ms = 0
        self._cancel_in_flight = False
        self._overdue_told = False
        self.proven = 0     # canaries whose update came in time
        self.missed = 0     # canaries whose update did not (stream_blind raised)
        self.last_latency_ms: int | None = None

    # ------------------------------------------------------------ inputs

    def tick(self, now_ms: int, *, stream_live: bool) -> list[CanaryAction]:
        """Time passed: place, judge the bound, or retry the cancel."""
        match self.phase:
            case Phase.IDLE:
                if now_ms < self.next_at_ms or not stream_live:
                    return []
                self.phase, self.sent_ms = Phase.OUT, now_ms
                self.client_id = f"{CANARY_CLIENT_ID_PREFIX}{now_ms}"
                return [PlaceCanary(self.client_id)]
            case Phase.OUT:
                if not stream_live:  # rule 5
                    return self._to_cancel(now_ms, "stream gap: canary void")
                if now_ms - self.sent_ms < self.policy.bound_ms:
                    return []
                self.missed += 1
                message = (f"no ALGO_UPDATE for canary {self.client_id} within "
                           f"{self.policy.bound_ms} ms of placing it")
                return [CanaryBlind(message), *self._to_cancel(now_ms, "bound over, no update")]
            case Phase.CANCEL:
                actions: list[CanaryAction] = []
                if (not self._overdue_told
                        and now_ms - self.sent_ms > self.policy.bound_ms + self.policy.retry_ms):
                    self._overdue_told = True
                    actions.append(CanaryProblem(
                        f"canary {self.client_id} not cancelled {now_ms - self.sent_ms} ms after "
                        f"placing it (bound {self.policy.bound_ms} ms): still trying"))
                if not self._cancel_in_flight and now_ms >= self._cancel_at_ms:
                    self._cancel_in_flight = True
                    actions.append(CancelCanary(self.client_id, "retry"))
                return actions
        return []  # pragma: no cover - every phase is handled

    def observe(self, client_id: str, now_ms: int) -> list[CanaryAction]:
        """An ALGO_UPDATE from the stream for ``client_id`` (rule 2)."""
        if self.phase is not Phase.OUT or client_id != self.client_id:
            return []
        self.proven += 1
        self.last_latency_ms = now_ms - self.sent_ms
        return self._to_cancel(now_ms, f"update seen after {self.last_latency_ms} ms")

    def place_failed(self, now_ms: int, message: str, *, maybe_placed: bool) -> list[CanaryAction]:
        """The placement did not succeed; ``maybe_placed``: its outcome is unknown (rule 3/4)."""
        if self.phase is not Phase.OUT:
            return []
        problem = CanaryProblem(f"canary {self.client_id} not placed: {message}")
        if maybe_placed:
            return [problem, *self._to_cancel(now_ms, "placement outcome unknown")]
        self._done(now_ms)
        return [problem]

    def cancel_done(self, now_ms: int) -> None:
        """Binance confirmed the cancel, or answered that the order is unknown (gone)."""
        if self.phase is Phase.CANCEL:
            self._done(now_ms)

    def cancel_failed(self, now_ms: int) -> None:
        """The cancel did not get through: retried after ``retry_ms`` (rule 3)."""
        self._cancel_in_flight = False
        self._cancel_at_ms = now_ms + self.policy.retry_ms

    # ------------------------------------------------------------ helpers

    def _to_cancel(self, now_ms: int, reason: str) -> list[CanaryAction]:
        self.phase = Phase.CANCEL
        self._cancel_in_flight = True
        self._overdue_told = False
        return [CancelCanary(self.client_id, reason)]

    def _done(self, now_ms: int) -> None:
        self.phase = Phase.IDLE
        self._cancel_in_flight = False
        self.next_at_ms = max(now_ms, self.sent_ms + self.policy.interval_ms)
