"""The heartbeat's content: what the daemon says about itself, written to ``wd:v1:{A}:health``.

The daemon fills a :class:`Health` from the core loop's view and the store writes it with a TTL
(missing key = watchdog down). ``position-watchdog status`` reads it back with
:func:`Health.from_fields`. Everything is a flat string hash so that a bot reading plain Redis
(``HGETALL``) needs no decoder. Times are the daemon's wall clock in epoch ms; readers compute
ages against their own clock (same host as the daemon, or NTP-synced).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

__all__ = ["UNPROVEN_PROBLEM", "Health", "summary_line"]

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
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "extra":
                continue
            if isinstance(value, bool):
                out[item.name] = "true" if value else "false"
            elif isinstance(value, tuple):
                out[item.name] = json.dumps(list(value), separators=(",", ":"))
            else:
                out[item.name] = str(value)
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
