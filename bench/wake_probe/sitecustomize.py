"""Wake-up probe: labels every event-loop ``select`` of the daemon that slept (not a product file).

Usage: put this directory on the bench's ``PYTHONPATH`` (the daemon inherits it; only a process
run as ``python -m watchdog ... run`` is probed), e.g.

    cd bench && flock /work/bench.lock env WAKEPROBE_OUT=/tmp/wakes \\
        PYTHONPATH=..:../client:wake_probe /work/venv/bin/python floor.py --daemon-root <tree> \\
        --default-reads --after-s 70 --window-s 60

Every 5 s it appends the cumulative counts, as one JSON line ``{"t": seconds since the start,
"c": {label: count}}``, to ``$WAKEPROBE_OUT-<pid>.jsonl``; two lines apart give a window's
rates. A ``select`` with a timeout other than 0 that returned after more than 0.5 ms is a long
wake-up (``wakes``): each ready socket is labelled ``sock:<protocol>:<peer port>``; with none
ready, each due timer by what it wakes (``timeout:<task>@<file:line>`` for an expiring
``asyncio.timeout``, else the callback and the task waiting on its future). One that blocked
for less (a reply from a local Redis) is counted apart (``short``, by socket). Counts include
the probe's own cost: take CPU figures from runs without it (docs/BENCHMARKS.md, session 11).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import selectors
import sys
import time
from typing import Any

_LONG_S = 0.0005
_SHORT_S = 0.00002  # a select that returns at once takes a few µs; one that blocked, more


def _frame_of(task: asyncio.Task[Any]) -> str:
    coro: Any = task.get_coro()
    where = []
    for _ in range(40):
        if coro is None:
            break
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None and "watchdog" in frame.f_code.co_filename:
            where.append(f"{frame.f_code.co_filename.split('watchdog/', 1)[-1]}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where[-1] if where else "?"


def _timer(handle: asyncio.TimerHandle) -> str:
    callback = handle._callback
    owner = getattr(callback, "__self__", None)
    name = getattr(callback, "__qualname__", repr(callback))
    if isinstance(owner, asyncio.Timeout):
        task = owner._task  # type: ignore[attr-defined]
        return f"timeout:{task.get_name()}@{_frame_of(task)}"
    for arg in handle._args or ():
        if isinstance(arg, asyncio.Future):
            waiting = [f"{t.get_name()}@{_frame_of(t)}"
                       for cb in (getattr(arg, "_callbacks", None) or [])
                       for t in [getattr(cb[0] if isinstance(cb, tuple) else cb, "__self__", None)]
                       if isinstance(t, asyncio.Task)]
            return f"{name}:{','.join(waiting) or '?'}"
    return f"{getattr(callback, '__module__', '')}.{name}"


def _socket(key: selectors.SelectorKey) -> str:
    reader = key.data[0] if isinstance(key.data, tuple) else None
    if reader is None:
        return "fd-writer"
    owner = getattr(reader._callback, "__self__", None)
    protocol = getattr(owner, "_protocol", None)
    try:
        peer = owner.get_extra_info("peername") if owner is not None else None
    except Exception:  # noqa: BLE001 - a probe: any transport
        peer = None
    port = peer[1] if isinstance(peer, tuple) and len(peer) > 1 else peer
    kind = type(protocol).__name__ if protocol is not None else reader._callback.__qualname__
    return f"sock:{kind}:{port}"


def _install() -> None:
    out = os.environ.get("WAKEPROBE_OUT", "/tmp/wakeprobe") + f"-{os.getpid()}.jsonl"
    counts: collections.Counter[str] = collections.Counter()
    started = last = time.monotonic()
    original = selectors.EpollSelector.select

    def select(self: selectors.EpollSelector, timeout: float | None = None) -> Any:
        nonlocal last
        begun = time.monotonic()
        ready = original(self, timeout)
        now = time.monotonic()
        loop = asyncio.events._get_running_loop()
        if loop is not None and (timeout is None or timeout > 0) and now - begun > _SHORT_S:
            if now - begun > _LONG_S:
                counts["wakes"] += 1
                if ready:
                    counts.update(_socket(key) for key, _ in ready)
                else:
                    due = loop.time() + loop._clock_resolution
                    counts.update([_timer(h) for h in loop._scheduled  # type: ignore[attr-defined]
                                   if h.when() <= due and not h.cancelled()] or ["timer:?"])
            else:
                counts["short"] += 1
                counts.update("short " + _socket(key) for key, _ in ready)
        if now - last >= 5:
            last = now
            with open(out, "a") as f:
                f.write(json.dumps({"t": round(now - started, 1), "c": counts}) + "\n")
        return ready

    selectors.EpollSelector.select = select  # type: ignore[method-assign]


if "watchdog" in sys.orig_argv and "run" in sys.orig_argv:
    _install()
