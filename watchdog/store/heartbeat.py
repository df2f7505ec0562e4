"""The health hash ``wd:v1:{A}:health``, every field of it: its one schema (PURE).

Three writers fill one hash on every beat: the daemon's :class:`Health` (what the core loop
sees), the store's :class:`Stamp` (which instance, its settings, the bot scripts' SHAs, added by
the publisher), and ``heartbeat.lua`` (the server's ``beat_ms``, ``clock_offset_ms`` and the
``fence``, read back in :class:`Stamp` too). The store writes it with a TTL (missing key =
watchdog down); ``position-watchdog status`` reads it back with :meth:`Health.parse` and
:meth:`Stamp.read`. Everything is a flat string hash so that a bot reading plain Redis
(``HGETALL``) needs no decoder (:func:`health_value` flattens). Times are the daemon's wall
clock in epoch ms; readers compute ages against their own clock (same host as the daemon, or
NTP-synced).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal

from poswatch.calls import sha_of
from poswatch.keys import SCHEMA
from poswatch.scripts import BOT_SCRIPTS
from watchdog.errors import InvariantViolation

__all__ = ["UNPROVEN_PROBLEM", "Health", "Stamp", "check_no_secrets", "health_value", "summary_line"]

# Health field names that could only carry a secret: refused, whatever the caller meant.
_SECRET_WORDS = ("secret", "api_key", "apikey", "signature", "listenkey", "listen_key", "password")

# The problem listed while the stream is unproven (core/proof.py); ``status`` lists it too.
UNPROVEN_PROBLEM = "stream unproven: found blind, no event since confirmed by REST"


@dataclass(frozen=True, slots=True)
class Health:
    """One heartbeat. ``problems`` lists why the watchdog is degraded (empty when healthy)."""

    pid: int
    host: str
    version: str
    started_ms: int
    updated_ms: int
    ready: bool = False
    healthy: bool = False
    problems: tuple[str, ...] = ()
    stream_state: str = "down"  # PositionBook.stream_state: live | gap | down
    stream_proof: str = "proven"  # StreamProof.state: proven | unproven (found blind)
    stream_unproven_since_ms: int = 0  # when it was found blind (0: proven)
    stream_unproven_reason: str = ""  # the blind verdict's message
    last_event_ms: int = 0
    last_snapshot_ms: int = 0
    rest_weight_used_1m: int = 0
    rest_weight_budget_1m: int = 0
    rest_ip_weight_1m: int = 0
    positions_open: int = 0
    positions_unknown: int = 0
    orphans_removed: int = 0
    reaper: str = "off"
    extra: tuple[tuple[str, str], ...] = field(default=())

    def to_fields(self) -> dict[str, str]:
        """The hash fields, flattened as the store does: booleans "true"/"false", lists as JSON."""
        out: dict[str, str] = {}
        for name in _HEALTH_FIELDS:  # ``fields(self)`` on every beat was a third of this
            value = getattr(self, name)
            if isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif isinstance(value, tuple):
                out[name] = json.dumps(list(value), separators=(",", ":"))
            else:
                out[name] = str(value)
        out.update(self.extra)
        return out

    @classmethod
    def from_fields(cls, raw: Mapping[str, str]) -> Health:
        """Parse a hash read back from Redis; unknown fields land in ``extra``.

        Raises:
            ValueError: a known field does not parse (names the field).
        """
        health, problems = cls.parse(raw)
        if problems:
            raise ValueError(problems[0])
        return health

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> tuple[Health, tuple[str, ...]]:
        """Parse what can be parsed: a field that does not (or a missing identity field) takes
        its default and is named in the returned problems. ``status`` must show a heartbeat
        with one bad field, not crash on it nor call the watchdog down."""
        known = {item.name: item for item in fields(cls) if item.name != "extra"}
        values: dict[str, object] = {}
        problems: list[str] = []
        for name, item in known.items():
            if name not in raw:
                continue
            text = raw[name]
            try:
                values[name] = _parse_field(str(item.type), text)
            except (ValueError, TypeError) as exc:
                problems.append(f"health field {name}={text!r}: {exc}")
        for required, default in (("pid", 0), ("host", "?"), ("version", "?"), ("started_ms", 0),
                                  ("updated_ms", 0)):
            if required not in values:
                if required not in raw:
                    problems.append(f"health field {required} is missing")
                values[required] = default
        extra = tuple(sorted((k, v) for k, v in raw.items() if k not in known))
        return cls(**values, extra=extra), tuple(problems)  # type: ignore[arg-type]


_HEALTH_FIELDS = tuple(item.name for item in fields(Health) if item.name != "extra")  # in order


def _parse_field(kind: str, text: str) -> object:
    if kind == "bool":
        return text in ("true", "1")
    if kind == "int":
        return int(text)
    if kind.startswith("tuple"):
        parts = json.loads(text or "[]")
        if not isinstance(parts, list):
            raise ValueError(f"expected a JSON list, got {type(parts).__name__}")
        return tuple(str(part) for part in parts)
    return text


def summary_line(health: Health, now_ms: int) -> str:
    """``STATUS=`` for ``systemctl status`` and the periodic log line: one short line."""
    event_age = _age_s(now_ms, health.last_event_ms)
    snapshot_age = _age_s(now_ms, health.last_snapshot_ms)
    proof = " stream_proof=unproven" if health.stream_proof == "unproven" else ""
    text = (f"{'healthy' if health.healthy else 'degraded'} stream={health.stream_state}{proof} "
            f"positions={health.positions_open} unknown={health.positions_unknown} "
            f"last_event_age_s={event_age} snapshot_age_s={snapshot_age} "
            f"weight={health.rest_weight_used_1m}/{health.rest_weight_budget_1m} "
            f"orphans_removed={health.orphans_removed}")
    if health.problems:
        text += " problems=" + ",".join(health.problems)
    return text


def _age_s(now_ms: int, then_ms: int) -> str:
    return "-" if then_ms <= 0 else f"{max(0, now_ms - then_ms) / 1000:.1f}"


def health_value(value: object) -> str:
    """Flatten one health (or event) value to the string Redis stores (JSON for containers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")  # as bots parse it: never exponent notation
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, default=str, separators=(",", ":"), sort_keys=True)


def check_no_secrets(names: Iterable[str]) -> None:
    """Raise ``InvariantViolation`` naming the first field name that looks like a secret's:
    secrets never go to Redis. Names found clean are remembered (a name's verdict never
    changes): the heartbeat's ~25 names were 175 substring tests on every beat."""
    if isinstance(names, Mapping | set | frozenset) and _CLEAN.issuperset(names):
        return
    for name in names:
        if name in _CLEAN:
            continue
        if any(word in name.lower() for word in _SECRET_WORDS):
            raise InvariantViolation(
                f"refusing to write health field {name!r} to Redis: looks like a secret")
        if len(_CLEAN) < _CLEAN_MAX:
            _CLEAN.add(name)


_CLEAN: set[str] = set()  # names check_no_secrets found clean
_CLEAN_MAX = 4096  # bounded: the health hash's names are a few dozen


@dataclass(frozen=True, slots=True)
class Stamp:
    """The fields the store adds to every beat, and those ``heartbeat.lua`` adds (``fence``,
    ``beat_ms``, ``clock_offset_ms``: read back only). As read, a missing or unparsable number
    is None: ``status`` shows it as unknown, never as 0."""

    instance: str = ""
    watchdog_version: str = ""
    veto_max_age_ms: int | None = None
    events_maxlen: int | None = None
    health_ttl_ms: int | None = None
    republished_total: int | None = None
    lead_ttl_ms: int | None = None
    fence: int | None = None  # heartbeat.lua: the fencing token of the beat
    beat_ms: int | None = None  # heartbeat.lua: Redis server time of the beat
    clock_offset_ms: int | None = None  # heartbeat.lua: server ms - watchdog wall ms

    def to_fields(self) -> dict[str, str]:
        """What the publisher writes (the Lua-written fields are left to the script)."""
        out = {"schema": SCHEMA, "instance": self.instance, "watchdog_version": self.watchdog_version}
        for name in ("veto_max_age_ms", "events_maxlen", "health_ttl_ms", "republished_total",
                     "lead_ttl_ms"):
            out[name] = health_value(getattr(self, name))
        out.update({f"sha_{name}": sha_of(name) for name in BOT_SCRIPTS})  # memoised: every beat
        return out

    @classmethod
    def read(cls, raw: Mapping[str, str]) -> Stamp:
        def number(name: str) -> int | None:
            text = raw.get(name)
            try:
                return None if text is None else int(text)
            except ValueError:
                return None

        return cls(raw.get("instance", ""), raw.get("watchdog_version", ""),
                   veto_max_age_ms=number("veto_max_age_ms"), events_maxlen=number("events_maxlen"),
                   health_ttl_ms=number("health_ttl_ms"), republished_total=number("republished_total"),
                   lead_ttl_ms=number("lead_ttl_ms"), fence=number("fence"), beat_ms=number("beat_ms"),
                   clock_offset_ms=number("clock_offset_ms"))
