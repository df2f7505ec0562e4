"""The human form of ``position-watchdog status``: the verdict first, then one line per fact.

Times are shown as UTC with their age (``2026-11-25 00:05:36.078Z (4.0s ago)``), never as raw
epoch ms; what Redis could not tell is shown as unknown, never as an empty list. Values come
from the report as they are (a new stream state or a new field shows as itself).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from watchdog.ops.status import StatusReport

__all__ = ["render_text", "utc"]

_EVENT_KINDS_SHOWN = 8
_EPOCH_MS_FROM = 10**12  # an int ``*_ms`` value at least this large is a time (after 2001), not a duration


def render_text(report: StatusReport) -> str:
    """Readable at a glance: verdict and reasons on top, ages in seconds, one position a line."""
    data = report.to_json()
    now = report.now_ms
    lines = [f"position-watchdog [{report.account}]: {report.verdict.upper()} (exit {report.exit_code})"]
    for reason in report.reasons:
        if report.unknown_cause and "position(s) unknown:" in reason:
            reason += f" (cause: {report.unknown_cause})"
        lines.append(f"  ! {reason}")
    h = report.health
    if h is not None:
        wd, stream, rest = data["watchdog"], data["stream"], data["rest"]
        started = f"since {utc(h.started_ms)}" if h.started_ms > 0 else "start time unknown"
        lines.append(f"  watchdog   alive: pid {h.pid} on {h.host}, v{h.version}, "
                     f"up {_dur(wd['uptime_ms'])} ({started}), heartbeat "
                     f"{_ago(wd['heartbeat_age_ms'])}, reaper {h.reaper}")
        proof = ""
        if stream["proof"] == "unproven":
            proof = (f", unproven for {_dur(stream['unproven_age_ms'])} "
                     f"({h.stream_unproven_reason or 'found blind'})")
        lines.append(f"  stream     {h.stream_state}{proof}, last event "
                     f"{_ago(stream['last_event_age_ms'])}")
        over = (" OVER BUDGET" if 0 < h.rest_weight_budget_1m < h.rest_weight_used_1m else "")
        lines.append(f"  REST       last snapshot {_ago(rest['last_snapshot_age_ms'])}, weight "
                     f"{h.rest_weight_used_1m}/{h.rest_weight_budget_1m} per min{over} "
                     f"(IP total {h.rest_ip_weight_1m}, bot included)")
        lines.append(f"  orphans    {h.orphans_removed} removed since start")
    elif not report.redis_error:
        lines.append("  watchdog   not running (no heartbeat)")
    ha = report.ha
    if ha:
        leader = (f"{ha['leader']} (fence {_or_unknown(ha['fence'])})" if ha["leader"]
                  else "none (no live lease)")
        standbys = ", ".join(ha["standbys"]) or "none"
        lines.append(f"  leader     {leader}; standbys: {standbys}")
    if report.redis_error:
        # Nothing was read: unknown, not "none".
        lines += ["positions  unknown (Redis unreachable)", "leases     unknown (Redis unreachable)",
                  "unprotected windows unknown (Redis unreachable)"]
        return "\n".join(lines)
    lines.append(f"positions ({len(report.positions)})")
    if report.positions:
        lines.append(_table(
            ["SYMBOL", "SIDE", "STATE", "AMOUNT", "ENTRY", "SOURCE", "AGE", "PROTECTION"],
            [[p["symbol"], p["side"], p["state"], p["amount"] or "-", p["entry_price"] or "-",
              p["source"] or "-", _dur(p["age_ms"]), _protection(p)] for p in report.positions]))
    lines.append(f"leases ({len(report.leases)})")
    lines += [f"  {lease['symbol']}:{lease['side']} holder={lease['holder']} token={lease['token']} "
              f"{_expiry(lease['expires_in_ms'])}" for lease in report.leases]
    lines.append(f"unprotected windows ({len(report.windows)})")
    lines += [f"  {w['symbol']}:{w['side']} last {_window(w['last'])}, "
              f"max {_or_unknown(w['max_window_ms'])} ms over {_or_unknown(w['count'])} update(s)"
              f"{_ended(w['last'], now)}" for w in report.windows]
    notable = [e for e in report.recent_events if e.get("kind", e.get("type")) != "heartbeat"]
    if notable:
        shown = min(len(notable), _EVENT_KINDS_SHOWN)
        lines.append(f"recent events (newest first, {shown} of {len(notable)})")
        lines += ["  " + _event(event, now) for event in notable[:_EVENT_KINDS_SHOWN]]
    return "\n".join(lines)


def _protection(p: dict[str, Any]) -> str:
    """``covered``, ``none for 4.2s``, ``partial for 1.0s``, plus the watchdog's own stop."""
    text = p.get("protection") or "-"
    if p.get("unprotected_ms") is not None and text in ("none", "partial"):
        text += f" for {_dur(p['unprotected_ms'])}"
    if p.get("guard_order"):
        text += f" (watchdog stop {p['guard_order']})"
    return text


def utc(ms: int) -> str:
    """Epoch ms as ``2026-11-25 00:05:36.078Z``."""
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    except (OverflowError, OSError, ValueError):
        return f"? ({ms} ms is no time)"


def _when(ms: int, now_ms: int) -> str:
    age = now_ms - ms
    return f"{utc(ms)} ({_dur(age)} ago)" if age >= 0 else f"{utc(ms)} (in {_dur(-age)})"


def _epoch_ms(key: str, value: Any) -> int | None:
    """A field that holds a time: named ``*_ms`` and an epoch-ms integer."""
    if not key.endswith("_ms"):
        return None
    try:
        ms = int(value)
    except (TypeError, ValueError):
        return None
    return ms if ms >= _EPOCH_MS_FROM else None


def _event(event: dict[str, Any], now_ms: int) -> str:
    fields = {k: v for k, v in event.items() if k != "id"}
    at = _epoch_ms("at_ms", fields.pop("at_ms", None))
    if at is None:
        at = _epoch_ms("id_ms", str(event.get("id", "")).partition("-")[0])
    parts = [_when(at, now_ms) if at is not None else "(time unknown)"]
    for key, value in fields.items():
        ms = _epoch_ms(key, value)
        parts.append(f"{key[:-3]}={utc(ms)}" if ms is not None else f"{key}={value}")
    return " ".join(parts)


def _window(last: dict[str, Any]) -> str:
    if "window_ms" not in last:
        return " ".join(f"{k}={v}" for k, v in last.items())
    return (f"{last['window_ms']} ms by {last.get('holder', '?')} "
            f"(outcome {last.get('outcome', '?')})")


def _ended(last: dict[str, Any], now_ms: int) -> str:
    ended = _epoch_ms("end_ms", last.get("end_ms"))
    return f", the last ended {_when(ended, now_ms)}" if ended is not None else ""


def _expiry(ms: int | None) -> str:
    if ms is None:
        return "expires ? (no valid expiry time)"
    return f"expires in {_dur(ms)}" if ms >= 0 else f"expired {_dur(-ms)} ago"


def _or_unknown(value: Any) -> str:
    return "?" if value is None else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def _dur(ms: int | None) -> str:
    if ms is None:
        return "-"
    seconds = ms / 1000
    if abs(seconds) < 120:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _ago(ms: int | None) -> str:
    return "never" if ms is None else f"{_dur(ms)} ago"
