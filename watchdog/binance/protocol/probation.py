"""A rotation's new connection on probation: it replaces the old one only once it delivers.

Why: a make-before-break rotation used to trust the new connection once it answered a ping, so
a new socket that delivers nothing silently replaced a working one (issue 12, "rotation onto a
mute socket"): no gap, no resync, positions still confirmed. Both connections listen to the same
listen key, so every event the exchange sends after the new one is up reaches both: the new one
proves itself by delivering one the old one delivers too.

Rules of this module (pure: times are the caller's monotonic seconds, identities are
``reconnect.event_identity``):
1. ``PROMOTE`` as soon as one event arrived on both connections (the new one delivers).
2. ``REJECT`` once an event the old connection received after the new one was ready has not
   arrived on the new one within ``tolerance_s`` (the new one is mute or behind): the caller
   keeps the old connection and tries again later.
3. ``PROMOTE`` too once an event only the new connection delivered is ``tolerance_s`` old: the
   old one is the one missing events, the new one delivers.
4. Otherwise ``WAIT`` (a quiet account: both stay open; Binance's 24 h cut of the old one ends
   the probation as a reconnect, with its gap and resync). ``wake_at`` says when a verdict may
   change without a new frame.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["PROBATION_TOLERANCE_S", "Decision", "Probation", "Verdict"]

PROBATION_TOLERANCE_S = 2.0  # one event reaches every connection of a key within milliseconds


class Verdict(StrEnum):
    WAIT = "wait"
    PROMOTE = "promote"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    wake_at: float | None = None  # WAIT: decide again then, even if no frame comes


@dataclass
class Probation:
    """What each connection delivered since the new one answered its ping at ``ready_at``."""

    ready_at: float
    tolerance_s: float = PROBATION_TOLERANCE_S
    _old: dict[Hashable, float] = field(default_factory=dict)  # identity → first seen at
    _new: dict[Hashable, float] = field(default_factory=dict)

    def old_frame(self, identity: Hashable, at: float) -> None:
        self._old.setdefault(identity, at)

    def new_frame(self, identity: Hashable, at: float) -> None:
        self._new.setdefault(identity, at)

    def decide(self, now: float) -> Decision:
        """The rules above, in order."""
        if any(identity in self._old for identity in self._new):
            return Decision(Verdict.PROMOTE, "the new connection delivered an event the old "
                            "one delivered too")
        owed = [at for identity, at in self._old.items()
                if at >= self.ready_at and identity not in self._new]
        missed = [at for at in owed if now - at >= self.tolerance_s]
        if missed:
            return Decision(Verdict.REJECT, f"the new connection missed {len(missed)} event(s) "
                            f"the old one delivered within {self.tolerance_s:g}s")
        extra = list(self._new.values())
        if any(now - at >= self.tolerance_s for at in extra):
            return Decision(Verdict.PROMOTE, "the new connection delivered events the old one "
                            "did not")
        pending = [at + self.tolerance_s for at in owed + extra]
        return Decision(Verdict.WAIT, wake_at=min(pending) if pending else None)
