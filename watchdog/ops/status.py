"""``position-watchdog status``: what an operator needs at 3 a.m., read from Redis only.

The daemon is not asked anything: everything comes from the keys it publishes (schema in
``watchdog.store.keys``), so ``status`` works from any host that can read Redis and tells the
same story the bot sees. The verdict is computed by the pure :func:`assess`.

Exit codes: 0 healthy, 1 degraded, 2 down (no heartbeat, or Redis unreachable).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis import exceptions as redis_errors

from poswatch.connection import connect_sync
from poswatch.fields import LeaseField, PositionField
from watchdog.clock import SystemClock
from watchdog.core.model import PositionKey
from watchdog.store.heartbeat import UNPROVEN_PROBLEM, Health, Stamp
from watchdog.store.keys import FUTURE_TOLERANCE_MS, SCHEMA, AccountKeys, parse_member

__all__ = [
    "EXIT_DEGRADED",
    "EXIT_DOWN",
    "EXIT_HEALTHY",
    "StatusReport",
    "assess",
    "read_status",
]

EXIT_HEALTHY = 0
EXIT_DEGRADED = 1
EXIT_DOWN = 2
_VERDICT_EXIT = {"healthy": EXIT_HEALTHY, "degraded": EXIT_DEGRADED, "down": EXIT_DOWN}
_RECENT_EVENTS = 50


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Everything ``status`` shows; ``to_json()`` is the stable, documented form (docs/STATUS.md)."""

    account: str
    now_ms: int
    verdict: str
    reasons: tuple[str, ...]
    health: Health | None
    positions: tuple[dict[str, Any], ...] = ()
    leases: tuple[dict[str, Any], ...] = ()
    windows: tuple[dict[str, Any], ...] = ()
    recent_events: tuple[dict[str, Any], ...] = field(default=())
    redis_error: str = ""
    unknown_cause: str = ""  # why positions are unknown, when some are ("" otherwise)
    ha: dict[str, Any] = field(default_factory=dict)  # leader, fence, standbys (docs/HA.md)

    @property
    def exit_code(self) -> int:
        return _VERDICT_EXIT[self.verdict]

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object: field names and meanings are a stable contract (schema 1)."""
        h = self.health
        return {
            "schema": 1,
            "key_schema": SCHEMA,
            "account": self.account,
            "now_ms": self.now_ms,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "reasons": list(self.reasons),
            "alive": h is not None,
            "watchdog": None if h is None else {
                "pid": h.pid, "host": h.host, "version": h.version, "ready": h.ready,
                "healthy": h.healthy, "problems": list(h.problems),
                "uptime_ms": _age(self.now_ms, h.started_ms),
                "heartbeat_age_ms": _age(self.now_ms, h.updated_ms),
                "reaper": h.reaper,
            },
            "stream": None if h is None else {
                "state": h.stream_state,
                "last_event_age_ms": _age(self.now_ms, h.last_event_ms),
                "proof": h.stream_proof,
                "unproven_age_ms": (_age(self.now_ms, h.stream_unproven_since_ms)
                                    if h.stream_proof == "unproven" else None),
                "unproven_reason": h.stream_unproven_reason or None,
            },
            "rest": None if h is None else {
                "last_snapshot_age_ms": _age(self.now_ms, h.last_snapshot_ms),
                "weight_used_1m": h.rest_weight_used_1m,
                "weight_budget_1m": h.rest_weight_budget_1m,
                "ip_weight_used_1m": h.rest_ip_weight_1m,
            },
            "positions": list(self.positions),
            "leases": list(self.leases),
            "orphans_removed": None if h is None else h.orphans_removed,
            "unprotected_windows": list(self.windows),
            "recent_events": list(self.recent_events),
            "redis_error": self.redis_error or None,
            "unknown_cause": self.unknown_cause or None,
            "ha": self.ha or None,
        }


def assess(health: Health | None, positions: tuple[dict[str, Any], ...],
           redis_error: str = "") -> tuple[str, tuple[str, ...]]:
    """The verdict (healthy | degraded | down) and the reasons, from what Redis holds. Pure."""
    if redis_error:
        return "down", (f"redis unreachable: {redis_error}",)
    if health is None:
        return "down", ("no heartbeat: the health key is missing (watchdog stopped, hung, "
                        "or Redis lost its data)",)
    reasons: list[str] = []
    if not health.ready:
        reasons.append("starting: first snapshot not published yet")
    if health.stream_state != "live":
        reasons.append(f"stream {health.stream_state}")
    if health.stream_proof == "unproven":
        reasons.append(UNPROVEN_PROBLEM)
    reasons.extend(problem for problem in health.problems if problem not in reasons)
    used, budget = health.rest_weight_used_1m, health.rest_weight_budget_1m
    if budget > 0 and used > budget:
        reasons.append(f"REST weight over budget: {used}/{budget} per min (the bot shares the "
                       f"IP's 2400)")
    unknown = [p for p in positions if p.get("state") not in ("open", "closed")]
    if unknown:
        names = ", ".join(f"{p['symbol']}:{p['side']}" for p in unknown)
        reasons.append(f"{len(unknown)} position(s) unknown: {names}")
    if not health.healthy and not reasons:
        reasons.append("watchdog reports itself unhealthy")
    return ("degraded" if reasons else "healthy"), tuple(reasons)


# Health problems that make positions unknown, most telling first (Vitals.problems' words).
_CAUSES = ("Binance rejects the credentials", "REST reads failing", "redis writes failing")


def unknown_cause(health: Health | None, positions: tuple[dict[str, Any], ...]) -> str:
    """Why positions are unknown, in one phrase ("" when none is): the watchdog's own problem
    that explains it (REST failing during a 503 burst, …), else the positions' reasons. Pure."""
    unknown = [p for p in positions if p.get("state") not in ("open", "closed")]
    if not unknown:
        return ""
    if health is None:
        return "watchdog down: no heartbeat"
    for prefix in _CAUSES:
        found = next((p for p in health.problems if p.startswith(prefix)), None)
        if found is not None:
            return found
    reasons = list(dict.fromkeys(str(p["reason"]) for p in unknown if p.get("reason")))
    return "; ".join(reasons[:2]) + (f"; +{len(reasons) - 2} more" if len(reasons) > 2 else "")


def read_status(url: str, account: str, *, socket_timeout_s: float,
                now_ms: int | None = None, sentinels: Sequence[str] = (),
                sentinel_master: str = "", cluster: bool = False) -> StatusReport:
    """Read every key ``status`` shows; a Redis failure is a ``down`` report, not an exception."""
    keys = AccountKeys(account)
    now = SystemClock().wall_ms() if now_ms is None else now_ms
    if sentinels or cluster:
        client = connect_sync(url, socket_timeout_s=socket_timeout_s,
                              client_name="position-watchdog-status", sentinels=sentinels,
                              sentinel_master=sentinel_master, cluster=cluster)
    else:
        client = redis.Redis.from_url(url, socket_timeout=socket_timeout_s,
                                      socket_connect_timeout=socket_timeout_s, decode_responses=True)
    try:
        raw_health, positions, leases, windows, events, lead = _read(client, keys)
    except redis_errors.RedisError as exc:
        verdict, reasons = assess(None, (), redis_error=f"{type(exc).__name__}: {exc}")
        return StatusReport(account, now, verdict, reasons, None, redis_error=str(exc))
    finally:
        client.close()
    health: Health | None = None
    stamp = Stamp.read(raw_health)
    problems: list[str] = []
    if raw_health:
        health, unparsed = Health.parse(raw_health)  # a bad field is shown, not fatal
        problems += [f"unreadable heartbeat: {why}" for why in unparsed]
    odd = sorted({m for m, *_ in (*positions, *leases) if _key_of(m) is None}
                 | {m for m in windows if m.count(":") == 1 and _key_of(m) is None})
    if odd:
        problems.append(f"malformed member(s) in Redis, written by a bot's begin/end? "
                        f"{', '.join(map(repr, odd))}")
    rows = tuple(_judged(_position_row(member, fields, now), health, stamp)
                 for member, fields in positions)
    verdict, reasons = assess(health, rows)
    lease_rows = tuple(_lease_row(member, fields, score, now) for member, fields, score in leases)
    problems += [f"lease {row['member']!r}: expiry score {score!r} is not a time (a bot's begin "
                 f"with ttl_ms={fields.get(LeaseField.TTL_MS)!r}?)"
                 for row, (_, fields, score) in zip(lease_rows, leases, strict=True)
                 if row["expires_at_ms"] is None]
    if problems and verdict == "healthy":
        verdict = "degraded"
    return StatusReport(account, now, verdict, tuple(problems) + reasons, health, rows, lease_rows,
                        tuple(_window_rows(windows)), tuple(_event_rows(events)),
                        unknown_cause=unknown_cause(health, rows), ha=_ha(lead, stamp, now))


def _read(client: redis.Redis, keys: AccountKeys) -> tuple[Any, ...]:
    # decode_responses=True: every reply is str (redis-py's stubs cannot express that).
    raw_health = client.hgetall(keys.health)
    members = sorted(str(m) for m in client.smembers(keys.positions))
    positions = [(m, client.hgetall(keys.position(k)) if (k := _key_of(m)) else {})
                 for m in members]
    ranked: Any = client.zrange(keys.leases, 0, -1, withscores=True)
    leases = [(m, client.hgetall(keys.lease(k)) if (k := _key_of(m)) else {}, score)
              for m, score in ranked]
    windows = client.hgetall(keys.windows)
    events = client.xrevrange(keys.events, count=_RECENT_EVENTS)
    lead: Any = (client.get(keys.leader), client.pttl(keys.leader), client.get(keys.fence),
                 client.zrange(keys.instances, 0, -1, withscores=True))
    return raw_health, positions, leases, windows, events, lead


def _ha(lead: tuple[Any, ...], stamp: Stamp, now_ms: int) -> dict[str, Any]:
    """Who leads the account and who stands by (docs/HA.md). ``leader`` is the lease holder
    (null: no live lease); ``instance``/``fence`` of the health hash are who wrote the last
    beat; ``standbys`` are the other registered instances whose registration is live."""
    holder, pttl, fence, registered = lead
    live = [str(name) for name, score in registered if score > now_ms]
    return {"leader": holder or None, "lease_expires_in_ms": pttl if holder else None,
            "fence": _int(fence), "health_instance": stamp.instance or None,
            "health_fence": stamp.fence,
            "standbys": [name for name in live if name != holder]}


def _key_of(member: str) -> PositionKey | None:
    """A member's position; None when malformed (bots write lease and window members)."""
    try:
        return parse_member(member)
    except ValueError:
        return None


def _parts(member: str) -> tuple[str, str]:
    key = _key_of(member)
    return (key.symbol, key.side.value) if key is not None else (member, "?")


def _position_row(member: str, fields: Mapping[str, str], now_ms: int) -> dict[str, Any]:
    f = PositionField
    symbol, side = _parts(member)
    verified_ms = _int(fields.get(f.VERIFIED_MS))
    since_ms = _int(fields.get(f.UNPROTECTED_SINCE_MS))
    return {
        "symbol": symbol,
        "side": side,
        "state": fields.get(f.STATE, "unknown") if fields else "unknown",
        "knowledge": fields.get(f.KNOWLEDGE),
        "amount": fields.get(f.AMOUNT),
        "entry_price": fields.get(f.ENTRY_PRICE),
        "source": fields.get(f.SOURCE),
        "as_of_ms": _int(fields.get(f.AS_OF_MS)),
        "verified_ms": verified_ms,
        "age_ms": _fact_age(now_ms, verified_ms),
        "version": _int(fields.get(f.VERSION)),
        "reason": fields.get(f.REASON) or None,
        "fence": _int(fields.get(f.FENCE)),
        # Added (issue 17): the guard's answer, as the watchdog published it (PROTOCOL.md).
        "protection": fields.get(f.PROTECTION) or None,
        "unprotected_since_ms": since_ms,
        "unprotected_ms": None if since_ms is None else _age(now_ms, since_ms),
        "guard_order": fields.get(f.GUARD_ORDER) or None,
    }


def _judged(row: dict[str, Any], health: Health | None, stamp: Stamp) -> dict[str, Any]:
    """Rule 2, as the verdict scripts judge it: ``open``/``closed`` only while the watchdog is
    alive and the knowledge is not older than its ``veto_max_age_ms``; else ``unknown`` (the
    stored state stays visible as ``stored_state``)."""
    row["stored_state"] = row["state"]
    if row["state"] not in ("open", "closed"):
        return row
    if health is None:
        why = "watchdog down: no heartbeat, the stored state is not verified"
    else:
        max_age_ms = stamp.veto_max_age_ms
        age_ms = row["age_ms"]
        if max_age_ms is not None and age_ms is not None and age_ms <= max_age_ms:
            return row
        if age_ms is None:
            why = (f"stale: stored {row['state']} of unknown age (verified_ms missing, not a "
                   f"number, or more than {FUTURE_TOLERANCE_MS} ms in the future)")
        else:
            why = (f"stale: stored {row['state']} verified {age_ms} ms ago "
                   f"(limit veto_max_age_ms={max_age_ms})")
    row["state"], row["reason"] = "unknown", why
    if row.get("protection"):
        row["protection"] = "unknown"  # as stale as the state it was judged with
    return row


def _lease_row(member: str, fields: Mapping[str, str], score: float, now_ms: int) -> dict[str, Any]:
    """``expires_at_ms``/``expires_in_ms`` are null when the score is no time (inf, NaN)."""
    symbol, side = _parts(member)
    expiry_ms = int(score) if math.isfinite(score) else None
    return {"symbol": symbol, "side": side, "member": member, "holder": fields.get(LeaseField.HOLDER),
            "token": fields.get(LeaseField.TOKEN) or fields.get(LeaseField.FENCE),
            "expires_at_ms": expiry_ms,
            "expires_in_ms": None if expiry_ms is None else expiry_ms - now_ms}


def _window_rows(windows: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per position from the store's windows hash (see store/lua/end.lua): the field
    ``SYMBOL:SIDE`` holds the last window as JSON, ``SYMBOL:SIDE:count`` and
    ``SYMBOL:SIDE:max_window_ms`` the totals."""
    rows: list[dict[str, Any]] = []
    for member, raw in sorted(windows.items()):
        if member.count(":") != 1:
            continue  # a ":count" or ":max_window_ms" companion, read below
        symbol, side = _parts(member)
        row: dict[str, Any] = {"symbol": symbol, "side": side}
        try:
            last = json.loads(raw)
        except ValueError:
            last = None
        row["last"] = last if isinstance(last, dict) else {"raw": raw}
        row["count"] = _int(windows.get(f"{member}:count"))
        row["max_window_ms"] = _int(windows.get(f"{member}:max_window_ms"))
        rows.append(row)
    return rows


def _event_rows(events: list[tuple[str, Mapping[str, str]]]) -> list[dict[str, Any]]:
    return [{"id": event_id, **fields} for event_id, fields in events]


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def _age(now_ms: int, then_ms: int) -> int | None:
    return None if then_ms <= 0 else max(0, now_ms - then_ms)


def _fact_age(now_ms: int, verified_ms: int | None) -> int | None:
    """As the verdicts judge it: a fact from the future has an unknown age, not 0."""
    if verified_ms is None or verified_ms <= 0 or verified_ms - now_ms > FUTURE_TOLERANCE_MS:
        return None
    return max(0, now_ms - verified_ms)
