"""Run the pipeline ``runtime.build`` wires (what the daemon runs) inside a test or a benchmark.

``running(pipeline)``: its startup, then every daemon task, cancelled on exit until each has
ended; a task that failed fails the test. ``EffectsTap``: an ``Endpoints.effects`` observer that
keeps every effect the pipeline ran, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from watchdog.core.effects import Effect
from watchdog.runtime.build import Pipeline

__all__ = ["EffectsTap", "cancel_all", "running"]


class EffectsTap:
    """Sees every batch of effects the pipeline ran (``Endpoints.effects``)."""

    def __init__(self, effects: list[Effect] | None = None) -> None:
        self.effects: list[Effect] = [] if effects is None else effects

    def effects_run(self, effects: Sequence[Effect], *, written: bool) -> None:
        self.effects.extend(effects)

    def store_written(self, seconds: float) -> None:
        pass


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel until every task has ended.

    redis-py 8.1 on Python 3.11 can swallow a cancellation that lands while a command with a
    ``socket_timeout`` is in flight (seen here: the task keeps running), so cancel again.
    """
    pending = {t for t in tasks if not t.done()}
    for _ in range(20):
        if not pending:
            return
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.25)
    if pending:
        raise AssertionError(f"tasks ignore cancellation: {[t.get_name() for t in pending]}")


@contextlib.asynccontextmanager
async def running(pipeline: Pipeline) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """``pipeline.start()``, then its tasks (named as in the daemon) until the block ends."""
    await pipeline.start()
    tasks = [asyncio.create_task(coro, name=name) for name, coro in pipeline.tasks().items()]
    try:
        yield tasks
    finally:
        await cancel_all(tasks)
    failed = [(t.get_name(), t.exception()) for t in tasks
              if not t.cancelled() and t.exception() is not None]
    assert not failed, f"pipeline tasks failed: {failed}"
