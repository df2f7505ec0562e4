"""The veto protocol's answers: reasons, verdicts, and the scripts' replies parsed (PURE: no I/O).

The questions (check, begin, confirm, end on ``SYMBOL:SIDE``) are built by
:class:`poswatch.calls.VetoCalls`; this module turns a script's reply into a typed answer.
docs/PROTOCOL.md §2 lists the rules behind each reason; §4 the raw calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from poswatch.fields import PositionField

__all__ = ["MAX_LEASE_TTL_MS", "RETRY_LATER", "VETO_REASONS", "Ended", "Reason", "Replaced", "Verdict",
           "Vetoed", "WatchdogEvent", "parse_ended", "parse_events", "parse_verdict", "reason_of"]


class Reason(StrEnum):
    """Why a verdict or an ``end`` answered as it did (docs/PROTOCOL.md §2).

    A ``str``: ``verdict.reason == "stale"`` and ``verdict.reason is Reason.STALE`` both hold. A
    reason this version does not know (a newer watchdog) stays a plain ``str``.
    """

    OK = "ok"
    # check / begin vetoes
    WATCHDOG_DOWN = "watchdog_down"
    NO_POSITION = "no_position"
    STALE = "stale"
    POSITION_CLOSED = "position_closed"
    STOP_TRIGGERED = "stop_triggered"
    REAPING = "reaping"
    LEASE_HELD = "lease_held"
    # confirm
    LEASE_REVOKED = "lease_revoked"
    UNVERIFIED = "unverified"
    LEASE_EXPIRED = "lease_expired"
    # end
    LEASE_LOST = "lease_lost"
    ALREADY_RELEASED = "already_released"


_REASONS = {r.value: r for r in Reason}

# Every reason a check/begin veto can carry (docs/PROTOCOL.md §2), and those after which the
# same question may get another answer soon (the others: the position is gone or unknown to
# the watchdog). ``stop_triggered``: a stop of the position is firing; leave it alone and wait
# for ``position_closed`` (or the firing to end: ``firing_*`` fields leave the position hash).
VETO_REASONS = frozenset({"watchdog_down", "no_position", "stale", "position_closed",
                          "stop_triggered", "reaping", "lease_held"})
RETRY_LATER = frozenset({"watchdog_down", "stale", "stop_triggered", "reaping", "lease_held"})
MAX_LEASE_TTL_MS = 600_000  # begin.lua refuses longer leases (MAX_LEASE_TTL_MS in lua/_prelude.lua)


def reason_of(text: str) -> Reason | str:
    """The :class:`Reason` named ``text``, or ``text`` itself when this version does not know it."""
    return _REASONS.get(text, text)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The watchdog's answer. ``lease`` is the fencing token (begin/confirm); ``age_ms`` is the
    age of the watchdog's knowledge of the position, None when unknown (none, not a number, or
    from the future: the verdict is then stale/unverified, docs/PROTOCOL.md §2)."""

    allowed: bool
    reason: Reason | str
    lease: int | None
    position: dict[str, str] = field(default_factory=dict)
    age_ms: int | None = None

    @property
    def firing(self) -> dict[str, str] | None:
        """The stop the watchdog saw firing on this position (``algo_id``, ``status``,
        ``since_ms``, ``child_id``), None when none: the detail of a ``stop_triggered`` veto."""
        get = self.position.get
        algo_id = get(PositionField.FIRING_ALGO_ID, "")
        if not algo_id:
            return None
        return {"algo_id": algo_id, "status": get(PositionField.FIRING_STATUS, ""),
                "since_ms": get(PositionField.FIRING_SINCE_MS, ""),
                "child_id": get(PositionField.FIRING_CHILD_ID, "")}

    @property
    def retry_later(self) -> bool:
        """True for a veto that may turn into an allow by itself (RETRY_LATER)."""
        return not self.allowed and self.reason in RETRY_LATER

    def as_json(self) -> dict[str, object]:
        """The one-line shape of ``position-watchdog check --json``."""
        return {"verdict": "allow" if self.allowed else "veto", "reason": str(self.reason),
                "position": self.position, "age_ms": self.age_ms}


@dataclass(frozen=True, slots=True)
class Ended:
    """Result of ``end``: ``window_ms`` is begin → end as the watchdog measured it."""

    released: bool
    reason: Reason | str
    window_ms: int | None


@dataclass(frozen=True, slots=True)
class Replaced:
    """Result of a zero-gap replacement: the new stop (what ``create`` returned) and what
    ``end`` recorded (``window_ms`` 0: a stop protected the position at every instant)."""

    new_stop: Any
    ended: Ended


@dataclass(frozen=True, slots=True)
class WatchdogEvent:
    """One entry of the events stream (``kind`` is position_closed, lease, veto, …)."""

    id: str
    kind: str
    fields: dict[str, str]


class Vetoed(Exception):
    """The watchdog said no: do not touch (begin) or do not recreate (confirm) the stop."""

    def __init__(self, op: str, verdict: Verdict) -> None:
        self.op = op
        self.verdict = verdict
        firing = verdict.firing if verdict.reason == "stop_triggered" else None
        detail = f", algo {firing['algo_id']} {firing['status']}" if firing else ""
        super().__init__(f"{op} vetoed: {verdict.reason} (age_ms={verdict.age_ms}{detail})")


def parse_verdict(reply: Sequence[Any]) -> Verdict:
    """The reply of ``check``, ``begin`` or ``confirm``."""
    allowed, reason, token, age, flat = reply
    position = dict(zip(flat[::2], flat[1::2], strict=True))
    return Verdict(bool(allowed), reason_of(str(reason)), int(token) or None, position,
                   None if int(age) < 0 else int(age))


def parse_ended(reply: Sequence[Any]) -> Ended:
    """The reply of ``end``."""
    released, reason, window = reply
    return Ended(bool(released), reason_of(str(reason)), None if int(window) < 0 else int(window))


def parse_events(reply: Any) -> list[WatchdogEvent]:
    """An ``XREAD`` reply of the events stream."""
    out: list[WatchdogEvent] = []
    for _stream, entries in reply or []:
        for entry_id, fields in entries:
            out.append(WatchdogEvent(str(entry_id), str(fields.get("kind", "")), dict(fields)))
    return out
