"""The human form of ``position-watchdog status``: the verdict first, then one line per fact."""

from __future__ import annotations

from typing import Any

from watchdog.runtime.status import StatusReport

__all__ = ["render_text"]

_EVENT_KINDS_SHOWN = 8


def render_text(report: StatusReport) -> str:
    """Readable at a glance: verdict and reasons on top, ages in seconds, one position a line."""
    data = report.to_json()
    lines = [f"position-watchdog [{report.account}]: {report.verdict.upper()} (exit {report.exit_code})"]
    lines += [f"  ! {reason}" for reason in report.reasons]
    h = report.health
    if h is not None:
        wd, stream, rest = data["watchdog"], data["stream"], data["rest"]
        lines.append(f"  watchdog   alive: pid {h.pid} on {h.host}, v{h.version}, "
                     f"up {_dur(wd['uptime_ms'])}, heartbeat {_ago(wd['heartbeat_age_ms'])}, "
                     f"reaper {h.reaper}")
        lines.append(f"  stream     {h.stream_state}, last event {_ago(stream['last_event_age_ms'])}")
        lines.append(f"  REST       last snapshot {_ago(rest['last_snapshot_age_ms'])}, weight "
                     f"{h.rest_weight_used_1m}/{h.rest_weight_budget_1m} per min "
                     f"(IP total {h.rest_ip_weight_1m}, bot included)")
        lines.append(f"  orphans    {h.orphans_removed} removed since start")
    elif not report.redis_error:
        lines.append("  watchdog   not running (no heartbeat)")
    lines.append(f"positions ({len(report.positions)})")
    if report.positions:
        lines.append(_table(
            ["SYMBOL", "SIDE", "STATE", "AMOUNT", "ENTRY", "SOURCE", "AGE"],
            [[p["symbol"], p["side"], p["state"], p["amount"] or "-", p["entry_price"] or "-",
              p["source"] or "-", _dur(p["age_ms"])] for p in report.positions]))
    lines.append(f"leases ({len(report.leases)})")
    lines += [f"  {lease['symbol']}:{lease['side']} holder={lease['holder']} token={lease['token']} "
              f"expires in {_dur(lease['expires_in_ms'])}" for lease in report.leases]
    lines.append(f"unprotected windows ({len(report.windows)})")
    lines += [f"  {w['symbol']}:{w['side']} last {_window(w['last'])}, "
              f"max {w['max_window_ms']} ms over {w['count']} update(s)" for w in report.windows]
    notable = [e for e in report.recent_events if e.get("kind", e.get("type")) != "heartbeat"]
    if notable:
        shown = min(len(notable), _EVENT_KINDS_SHOWN)
        lines.append(f"recent events (newest first, {shown} of {len(notable)})")
        lines += ["  " + " ".join(f"{k}={v}" for k, v in event.items())
                  for event in notable[:_EVENT_KINDS_SHOWN]]
    return "\n".join(lines)


def _window(last: dict[str, Any]) -> str:
    if "window_ms" not in last:
        return str(last)
    return (f"{last['window_ms']} ms by {last.get('holder', '?')} "
            f"(outcome {last.get('outcome', '?')})")


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
