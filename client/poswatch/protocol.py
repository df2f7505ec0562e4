"""The veto protocol's typed calls and replies (PURE: no I/O).

One place turns a question (check, begin, confirm, end on ``SYMBOL:SIDE``) into the KEYS and
ARGV of its Lua script, and a script's reply into a typed answer. docs/PROTOCOL.md §2 lists the
rules behind each reason; §4 the raw calls built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from poswatch.keys import AccountKeys, PositionKeys, binance_symbol

__all__ = ["MAX_LEASE_TTL_MS", "RETRY_LATER", "VETO_REASONS", "Call", "Ended", "Reason", "Replaced",
           "Verdict", "VetoCalls", "Vetoed", "WatchdogEvent", "reason_of"]

# KEYS and ARGV of one EVALSHA.
Call = tuple[list[str], list[str | int]]


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
        algo_id = self.position.get("firing_algo_id", "")
        if not algo_id:
            return None
        return {name: self.position.get(f"firing_{name}", "")
                for name in ("algo_id", "status", "since_ms", "child_id")}

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


class VetoCalls:
    """KEYS/ARGV of the four bot scripts for one account, and their replies parsed.

    Symbols are Binance's (``BTCUSDT``) or ccxt's (``BTC/USDT:USDT``); sides BOTH, LONG, SHORT.
    Raises ``ValueError`` on a symbol, side or account that cannot be part of a key.
    """

    def __init__(self, account: str, max_age_ms: int | None = None) -> None:
        self.keys = AccountKeys(account)
        self.max_age = "" if max_age_ms is None else str(max_age_ms)
        self._cache: dict[tuple[str, str], PositionKeys] = {}

    def position(self, symbol: str, side: str) -> PositionKeys:
        """Validated key names of one position, cached: bots ask about a handful of symbols."""
        cached = self._cache.get((symbol, side))
        if cached is None:
            cached = self.keys.of_member(f"{binance_symbol(symbol)}:{side}")
            if len(self._cache) < 4096:
                self._cache[(symbol, side)] = cached
        return cached

    def check(self, symbol: str, side: str) -> Call:
        p = self.position(symbol, side)
        return [self.keys.health, p.position, p.reaping, p.lease], [self.max_age]

    def begin(self, symbol: str, side: str, holder: str, ttl_ms: int) -> Call:
        _check_begin_args(holder, ttl_ms)
        k, p = self.keys, self.position(symbol, side)
        return ([p.lease, k.lease_seq, k.leases, k.events],
                [p.member, holder, ttl_ms, self.max_age, k.channel, k.health, p.position, p.reaping])

    def confirm(self, symbol: str, side: str, lease: int) -> Call:
        k, p = self.keys, self.position(symbol, side)
        return [p.lease, k.events], [p.member, lease, self.max_age, k.channel, k.health, p.position]

    def end(self, symbol: str, side: str, lease: int, outcome: str, mode: str = "") -> Call:
        """``mode`` "replace": a zero-gap replacement (the window is recorded as 0)."""
        if mode not in ("", "replace"):
            raise ValueError(f"mode must be '' or 'replace', got {mode!r}")
        k, p = self.keys, self.position(symbol, side)
        args: list[str | int] = [p.member, lease, outcome, k.channel, k.health]
        if mode:
            args.append(mode)
        return [p.lease, k.leases, k.windows, k.events], args

    @staticmethod
    def verdict(reply: Sequence[Any]) -> Verdict:
        allowed, reason, token, age, flat = reply
        position = dict(zip(flat[::2], flat[1::2], strict=True))
        return Verdict(bool(allowed), reason_of(str(reason)), int(token) or None, position,
                       None if int(age) < 0 else int(age))

    @staticmethod
    def ended(reply: Sequence[Any]) -> Ended:
        released, reason, window = reply
        return Ended(bool(released), reason_of(str(reason)), None if int(window) < 0 else int(window))

    @staticmethod
    def events(reply: Any) -> list[WatchdogEvent]:
        out: list[WatchdogEvent] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                out.append(WatchdogEvent(str(entry_id), str(fields.get("kind", "")), dict(fields)))
        return out


def _check_begin_args(holder: str, ttl_ms: int) -> None:
    """What begin.lua refuses, refused here with a ValueError (a bug in the caller, not an outage
    to be answered with watchdog_down)."""
    if not (isinstance(ttl_ms, int) and not isinstance(ttl_ms, bool)
            and 1 <= ttl_ms <= MAX_LEASE_TTL_MS):
        raise ValueError(f"ttl_ms must be an integer from 1 to {MAX_LEASE_TTL_MS}, got {ttl_ms!r}")
    if not (isinstance(holder, str) and 1 <= len(holder) <= 128 and holder.isascii()
            and holder.isprintable()):
        raise ValueError(f"holder must be 1-128 printable ASCII characters, got {holder!r}")
