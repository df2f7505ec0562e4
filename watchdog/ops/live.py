"""Live views for an operator's terminal: ``status --watch`` and ``events [--follow]``.

``status --watch`` is a loop around the one-shot status (read, render) that redraws in place:
cursor home, each line erased to its end, the rest of the screen erased; nothing scrolls.
``events`` prints the events stream (docs/PROTOCOL.md §1) one line per event with its UTC time,
and ``--follow`` keeps reading (``XREAD BLOCK``) from the last id shown, so nothing is missed or
shown twice, across a Redis outage too (the stream is persistent, up to ``events_maxlen``).
The formatting is pure; the loops take their clock, sleep and output as arguments.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
from redis import exceptions as redis_errors

from watchdog.store.keys import AccountKeys

__all__ = ["event_json", "event_line", "follow_events", "recent_events", "screen", "status_frames",
           "utc", "watch"]

# ANSI: cursor home, erase to end of line, erase below, clear screen, hide/show the cursor.
HOME, ERASE_LINE, ERASE_BELOW, CLEAR = "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[2J"
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"

Render = Callable[[], tuple[str, int]]  # one frame's text and the exit code it stands for


def utc(ms: int) -> str:
    """``2026-12-06 23:05:35.926 UTC``: milliseconds matter when two events race."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{ms % 1000:03d} UTC"


def screen(text: str, *, first: bool) -> str:
    """One frame drawn over the previous one in place (the first also clears the screen)."""
    body = "".join(f"{line}{ERASE_LINE}\n" for line in text.split("\n"))
    return f"{CLEAR if first else ''}{HOME}{body}{ERASE_BELOW}"


def watch(render: Render, *, interval_s: float = 1.0, ansi: bool = True,
          write: Callable[[str], Any] = sys.stdout.write, flush: Callable[[], Any] = sys.stdout.flush,
          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = time.sleep,
          frames: int | None = None) -> int:
    """Draw ``render()`` every ``interval_s`` (on a fixed beat: a slow read does not drift it)
    until Ctrl-C or ``frames`` frames; returns the exit code of the last frame drawn.

    ``ansi=False`` writes each frame as it is, one after the other (``status --json --watch``:
    one JSON line per beat).
    """
    code, drawn, start = 0, 0, clock()
    if ansi:
        write(HIDE_CURSOR)
    try:
        while frames is None or drawn < frames:
            text, code = render()
            write(screen(text, first=drawn == 0) if ansi else f"{text}\n")
            flush()
            drawn += 1
            if frames is not None and drawn >= frames:
                break
            next_beat = start + drawn * interval_s
            sleep(max(0.0, next_beat - clock()))
    except KeyboardInterrupt:
        pass
    finally:
        if ansi:
            write(SHOW_CURSOR + "\n")
            flush()
    return code


def status_frames(url: str, account: str, *, socket_timeout_s: float, as_json: bool,
                  interval_s: float = 1.0, sentinels: Sequence[str] = (),
                  sentinel_master: str = "", cluster: bool = False) -> Render:
    """One ``status`` per call, as the one-shot command prints it, under a line with the time."""
    from watchdog.ops.status import read_status
    from watchdog.ops.status_view import render_text

    def render() -> tuple[str, int]:
        report = read_status(url, account, socket_timeout_s=socket_timeout_s,
                             sentinels=sentinels, sentinel_master=sentinel_master,
                             cluster=cluster)
        if as_json:
            return json.dumps(report.to_json(), separators=(",", ":")), report.exit_code
        header = f"{utc(report.now_ms)[:-8]} UTC, every {interval_s:g} s (Ctrl-C to stop)"
        return f"{header}\n{render_text(report)}", report.exit_code

    return render


def _at_ms(entry_id: str, fields: Mapping[str, str]) -> int:
    """The event's server time: its ``at_ms`` field, else the stream id's time part."""
    for text in (fields.get("at_ms", ""), entry_id.partition("-")[0]):
        if text.isdigit():
            return int(text)
    return 0


def event_line(entry_id: str, fields: Mapping[str, str]) -> str:
    """``2026-12-06 23:05:35.926 UTC  position_closed  position=BASUSDT:BOTH …``"""
    rest = " ".join(f"{k}={v}" for k, v in fields.items() if k not in ("kind", "at_ms"))
    return f"{utc(_at_ms(entry_id, fields))}  {fields.get('kind', '?'):<22} {rest}".rstrip()


def event_json(entry_id: str, fields: Mapping[str, str]) -> str:
    """One JSON object a line: the stream id, the UTC time, then the fields as written."""
    return json.dumps({"id": entry_id, "at": utc(_at_ms(entry_id, fields)), **fields},
                      separators=(",", ":"))


Entry = tuple[str, dict[str, str]]


def recent_events(client: redis.Redis, keys: AccountKeys, count: int) -> list[Entry]:
    """The newest ``count`` events, oldest first (decode_responses=True clients)."""
    newest: Any = client.xrevrange(keys.events, count=count)
    return [(str(i), dict(f)) for i, f in reversed(newest)]


def follow_events(client: redis.Redis, keys: AccountKeys, last_id: str, *, block_ms: int = 1000,
                  on_outage: Callable[[Exception | None], Any], retry_s: float = 1.0,
                  sleep: Callable[[float], Any] = time.sleep) -> Iterator[Entry]:
    """Events after ``last_id``, forever. An outage is reported to ``on_outage`` once when it
    starts (the error) and once when it ends (None), retried every ``retry_s`` meanwhile;
    reading resumes after the last event yielded."""
    failing = False
    while True:
        try:
            reply: Any = client.xread({keys.events: last_id}, block=block_ms, count=100)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            if not failing:
                on_outage(exc)
            failing = True
            sleep(retry_s)
            continue
        if failing:
            on_outage(None)
        failing = False
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                last_id = str(entry_id)
                yield last_id, dict(fields)
