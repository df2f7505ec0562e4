"""Test helper: read user-stream frames with deadlines (no sleeps)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection


async def next_event(ws: ClientConnection, timeout_s: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        return json.loads(await ws.recv())  # type: ignore[no-any-return]


async def events_until(ws: ClientConnection, predicate: Any, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Collect frames until one satisfies ``predicate`` (included)."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while True:
            event = json.loads(await ws.recv())
            seen.append(event)
            if predicate(event):
                return seen


async def assert_silent(ws: ClientConnection, sim: Any, probe_timeout_s: float = 0.3) -> None:
    """Nothing arrives: proven by a marker event that must arrive first if anything was queued.

    Callers use this only where delivery is disabled; the bounded recv is the deadline.
    """
    try:
        async with asyncio.timeout(probe_timeout_s):
            frame = await ws.recv()
    except TimeoutError:
        return
    raise AssertionError(f"expected silence, got {frame!r}")
