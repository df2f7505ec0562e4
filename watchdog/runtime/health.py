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

__all__ = ["Health", "summary_line"]


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
        known = {item.name: item for item in fields(cls) if item.name != "extra"}
        values: dict[str, object] = {}
        for name, item in known.items():
            if name not in raw:
                continue
            text = raw[name]
            try:
                if item.type == "bool":
                    values[name] = text in ("true", "1")
                elif item.type == "int":
                    values[name] = int(text)
                elif item.type.startswith("tuple"):
                    values[name] = tuple(str(part) for part in json.loads(text or "[]"))
                else:
                    values[name] = text
            except ValueError as exc:
                raise ValueError(f"health field {name}={text!r}: {exc}") from exc
        for required in ("pid", "host", "version", "started_ms", "updated_ms"):
            if required not in values:
                raise ValueError(f"health field {required} is missing")
        extra = tuple(sorted((k, v) for k, v in raw.items() if k not in known))
        return cls(**values, extra=extra)  # type: ignore[arg-type]


def summary_line(health: Health, now_ms: int) -> str:
    """``STATUS=`` for ``systemctl status`` and the periodic log line: one short line."""
    event_age = _age_s(now_ms, health.last_event_ms)
    snapshot_age = _age_s(now_ms, health.last_snapshot_ms)
    text = (f"{'healthy' if health.healthy else 'degraded'} stream={health.stream_state} "
            f"positions={health.positions_open} unknown={health.positions_unknown} "
            f"last_event_age_s={event_age} snapshot_age_s={snapshot_age} "
            f"weight={health.rest_weight_used_1m}/{health.rest_weight_budget_1m} "
            f"orphans_removed={health.orphans_removed}")
    if health.problems:
        text += " problems=" + ",".join(health.problems)
    return text


def _age_s(now_ms: int, then_ms: int) -> str:
    return "-" if then_ms <= 0 else f"{max(0, now_ms - then_ms) / 1000:.1f}"
