"""One stream connection's session, pure: when silence ends it, when its rotation is due, what
ends it, and what its end means for the next connect. The shells (``stream.py`` for the user
stream, ``market_stream.py`` for the market stream) feed it times and what arrived, and do what
it says; nothing here waits, reads a clock or touches a socket (times are the caller's
monotonic seconds).

Rules of this module:
1. Silence: a connection with no frame (data, ping or pong) for ``max_silence_s`` ends as
   ``silent: no frame for …s``; its socket is then aborted, not closed (a peer that does not
   answer would not answer a closing handshake either).
2. Rotation: ``rotate_after_s`` after a connection opened (before Binance's 24 h cut) the
   rotation is due. The user stream makes a successor (make-before-break, probation in
   ``probation.py``), one at a time: no rotation is due again while one is being made. A
   successor that failed leaves the connection serving, the rotation due again ``retry_s``
   later (the caller's backoff); a successor that is ready replaces it (``SWITCH``). The market
   stream ends the connection instead (break-before-make: ``ROTATION``).
3. A connection also ends when its socket ends (``closed``), when we ask (``asked_to_end``: a
   reconnect request, a blind verdict) or when the stream says the listen key expired.
4. After the end (``user_stream_ending``, ``market_stream_ending``): only a connection that lived
   ``reconnect.HEALTHY_AFTER_S`` resets the backoff, whoever ended it; a user connection ended
   because REST proved it blind is replaced at once (its cadence is bounded by
   ``reconnect.BlindReconnects``); a market rotation resets the backoff and reconnects at once.
5. A successor that passed its probation is promoted only while the connection it replaces is
   still the current one; otherwise it is dropped (the reconnect path took over) and only a
   rejection of the current connection's successor is reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from watchdog.binance.protocol.reconnect import backoff_resets

__all__ = ["BLIND", "EXPIRED", "ROTATION", "SILENT", "BlindRequest", "Do", "Ending", "Input",
           "Phase", "Session", "Step", "SuccessorFate", "aborts", "blind_request",
           "market_stream_ending", "successor_fate", "user_stream_ending"]

# Reasons an ending carries (their prefixes are how an ending is recognised, rule 4).
SILENT = "silent"
EXPIRED = "listen_key_expired"
BLIND = "blind: "
ROTATION = "rotation"


class Phase(StrEnum):
    SERVING = "serving"      # delivering; the rotation is due at ``rotate_at``
    ROTATING = "rotating"    # delivering while a successor is made (no rotation due meanwhile)
    SWITCHED = "switched"    # replaced by its successor (the session of the new one goes on)
    ENDED = "ended"          # over: ``reason`` says why


class Input(StrEnum):
    SILENT = "silent"                      # the wait ran out with no frame for max_silence_s
    ROTATION_DUE = "rotation_due"          # the wait ran out at rotate_at
    SUCCESSOR_FAILED = "successor_failed"  # the successor could not be made or failed probation
    SUCCESSOR_READY = "successor_ready"    # the successor passed its probation
    CLOSED = "closed"                      # the socket ended
    ASKED = "asked"                        # we end it on purpose (reconnect request, blind)
    KEY_EXPIRED = "key_expired"            # a delivered frame was listenKeyExpired


class Do(StrEnum):
    SERVE = "serve"                  # keep reading (nothing due yet)
    END = "end"                      # the connection is over: ``Step.reason``
    ROTATE = "rotate"                # the rotation is due (user: make a successor)
    RETRY_ROTATION = "retry_rotation"  # keep serving; the rotation is due again at rotate_at
    SWITCH = "switch"                # continue on the successor


_LIVE = (Phase.SERVING, Phase.ROTATING)
# (phase, input) -> (what the shell does, the next phase). A missing pair cannot happen: the
# shell stops feeding a session once it ended or switched, and a rotation in progress makes none
# due. The SUCCESSOR_* inputs are accepted while SERVING too, as the shell always did.
_TABLE: Mapping[tuple[Phase, Input], tuple[Do, Phase]] = {
    **{(phase, Input.SILENT): (Do.END, Phase.ENDED) for phase in _LIVE},
    (Phase.SERVING, Input.ROTATION_DUE): (Do.ROTATE, Phase.ROTATING),
    **{(phase, Input.SUCCESSOR_FAILED): (Do.RETRY_ROTATION, Phase.SERVING) for phase in _LIVE},
    **{(phase, Input.SUCCESSOR_READY): (Do.SWITCH, Phase.SWITCHED) for phase in _LIVE},
    **{(phase, Input.CLOSED): (Do.END, Phase.ENDED) for phase in _LIVE},
    **{(phase, Input.ASKED): (Do.END, Phase.ENDED) for phase in _LIVE},
    **{(phase, Input.KEY_EXPIRED): (Do.END, Phase.ENDED) for phase in _LIVE},
}


@dataclass(frozen=True, slots=True)
class Step:
    do: Do
    reason: str = ""  # for END: why the connection ended


class Session:
    """Rules 1 to 3 for one connection, opened at ``opened_at``."""

    def __init__(self, *, opened_at: float, rotate_after_s: float, max_silence_s: float) -> None:
        self.opened_at = opened_at
        self.max_silence_s = max_silence_s
        self.rotate_at = opened_at + rotate_after_s
        self.phase = Phase.SERVING
        self.reason = ""
        self.asked = False  # it ended because we asked (rule 3)

    def wait_s(self, now_s: float, silence_left_s: float) -> float:
        """How long the shell may wait for the next frame before something is due (may be
        0 or less: due now). ``silence_left_s`` is what is left of ``max_silence_s``."""
        rotate_in_s = self.rotate_at - now_s if self.phase is Phase.SERVING else math.inf
        return min(silence_left_s, rotate_in_s)

    def timed_out(self, now_s: float, silence_left_s: float) -> Step:
        """The wait ran out with no frame: silent (rule 1), the rotation (rule 2), or neither."""
        if self.phase not in _LIVE:
            raise ValueError(f"session {self.phase}: a wait cannot run out")
        if silence_left_s <= 0:
            return self._apply(Input.SILENT, f"{SILENT}: no frame for {self.max_silence_s:g}s")
        if self.phase is Phase.SERVING and now_s >= self.rotate_at:
            return self._apply(Input.ROTATION_DUE)
        return Step(Do.SERVE)

    def successor_failed(self, now_s: float, retry_s: float) -> Step:
        """Rule 2: keep this connection; the rotation is due again ``retry_s`` from now."""
        step = self._apply(Input.SUCCESSOR_FAILED)
        self.rotate_at = now_s + retry_s
        return step

    def successor_ready(self) -> Step:
        return self._apply(Input.SUCCESSOR_READY)

    def closed(self, reason: str) -> Step:
        return self._apply(Input.CLOSED, reason)

    def asked_to_end(self, reason: str) -> Step:
        step = self._apply(Input.ASKED, reason)
        self.asked = True
        return step

    def key_expired(self) -> Step:
        return self._apply(Input.KEY_EXPIRED, EXPIRED)

    def _apply(self, event: Input, reason: str = "") -> Step:
        try:
            do, self.phase = _TABLE[self.phase, event]
        except KeyError:
            raise ValueError(f"session {self.phase}: {event} cannot happen") from None
        if do is Do.END:
            self.reason = reason
        return Step(do, reason)


def aborts(reason: str) -> bool:
    """Rule 1: a connection that ended for ``reason`` is aborted, not closed (it was silent)."""
    return reason.startswith(SILENT)


@dataclass(frozen=True, slots=True)
class Ending:
    """What an ended connection means for the next one (rule 4), once it is closed."""

    reset_backoff: bool  # the next failure starts from the minimum delay again
    at_once: bool        # reconnect now, without a backoff delay (which then does not grow)


def user_stream_ending(reason: str, *, asked: bool, lived_s: float) -> Ending:
    """Rule 4 for the user stream; ``asked``: it ended because we asked (``Session.asked``);
    ``lived_s``: from its open to now, after its close."""
    return Ending(reset_backoff=backoff_resets(lived_s), at_once=asked and reason.startswith(BLIND))


def market_stream_ending(reason: str, *, lived_s: float) -> Ending:
    """Rule 4 for the market stream: a rotation is no failure."""
    rotated = reason == ROTATION
    return Ending(reset_backoff=rotated or backoff_resets(lived_s), at_once=rotated)


class SuccessorFate(StrEnum):
    PROMOTE = "promote"  # hand it to the connection it replaces
    REJECT = "reject"    # close it, keep the current connection, report the rejection
    DROP = "drop"        # close it quietly: the connection it was for is gone


def successor_fate(*, old_is_current: bool, error: str | None) -> SuccessorFate:
    """Rule 5; ``error`` is why the successor failed (None: it passed its probation)."""
    if not old_is_current:
        return SuccessorFate.DROP
    return SuccessorFate.PROMOTE if error is None else SuccessorFate.REJECT


class BlindRequest(StrEnum):
    """What a "found blind" report does (stream.py rule 6)."""

    RECONNECTING = "reconnecting"  # no connection now: the next one is fresh anyway
    SCHEDULED = "scheduled"        # a replacement is already scheduled
    NOW = "now"                    # replace the connection now
    LATER = "later"                # schedule the replacement (``BlindReconnects.wait_s``)


def blind_request(*, connected: bool, scheduled: bool, wait_s: float) -> BlindRequest:
    """Stream rule 6, for a report while ``wait_s`` remains of the blind-reconnect interval."""
    if not connected:
        return BlindRequest.RECONNECTING
    if scheduled:
        return BlindRequest.SCHEDULED
    return BlindRequest.NOW if wait_s <= 0 else BlindRequest.LATER
