"""One beat for the daemon's periodic tasks, so that their wake-ups land together.

Why: the ticker (``[service] tick_interval_s``, 0.25 s), the lead renewal (a third of
``[redis] lead_ttl_ms``, 0.5 s; a standby's attempt a sixth) and the heartbeat
(``[redis] heartbeat_interval_s``, 1 s) each slept on a timer of their own, measured from the
end of their last round, so their phases drifted apart and an idle daemon woke about seven
times a second for them alone, each wake-up a trip through ``epoll`` and the event loop's
bookkeeping (docs/BENCHMARKS.md, "the CPU floor", session 7). On one grid they wake together:
four times a second at the defaults. Since session 9 the ticker wakes only at the grid points
where a Tick is due (``ticker.py``), the same points it would have ticked at.

Rules of this module:
1. ``beat_at(start_s, interval_s, grid_s)`` is when a task that wants to run again
   ``interval_s`` after ``start_s`` wakes: the latest grid point (a multiple of ``grid_s`` on
   the event loop's monotonic clock) not after ``start_s + interval_s`` and after ``start_s``;
   when there is none (``interval_s`` shorter than the grid), ``start_s + interval_s`` itself.
   Never later than the unaligned wake-up: no period a bot or a failover relies on grows (a
   period that is not a multiple of the grid shrinks to one; at the defaults all are).
2. Every task computes the grid points the same way (``math.floor`` of the same quotient,
   times ``grid_s``), so tasks due on one point get the very same float and the event loop
   runs them in one iteration.
3. ``sleep_until`` wakes at exactly that loop time (``loop.call_at``; ``asyncio.sleep(delay)``
   would add ``now + delay`` again and lose the equality of rule 2).
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["beat_at", "sleep_until"]


def beat_at(start_s: float, interval_s: float, grid_s: float) -> float:
    """The aligned wake-up time (module rule 1). Pure."""
    due_s = start_s + interval_s
    if grid_s <= 0:
        return due_s
    point_s = math.floor(due_s / grid_s) * grid_s
    return point_s if start_s < point_s <= due_s else due_s


async def sleep_until(when_s: float) -> None:
    """Sleep until the event loop's clock reads ``when_s`` (module rule 3)."""
    loop = asyncio.get_running_loop()
    if when_s <= loop.time():
        await asyncio.sleep(0)
        return
    future: asyncio.Future[None] = loop.create_future()
    handle = loop.call_at(when_s, _wake, future)
    try:
        await future
    finally:
        handle.cancel()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
