"""Wait for a condition with a deadline, never for a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], predicate: Callable[[T], bool], *,
                     timeout_s: float = 10.0, interval_s: float = 0.02, what: str = "condition") -> T:
    """Poll ``probe`` until ``predicate`` holds; fail with the last value seen."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        last = await probe()
        if predicate(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s}s; last value: {last!r}")
        await asyncio.sleep(interval_s)


def eventually_sync(probe: Callable[[], T], predicate: Callable[[T], bool], *,
                    timeout_s: float = 10.0, interval_s: float = 0.02, what: str = "condition") -> T:
    """Blocking twin of :func:`eventually` for tests without an event loop."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = probe()
        if predicate(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s}s; last value: {last!r}")
        time.sleep(interval_s)
