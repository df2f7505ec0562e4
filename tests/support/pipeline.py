"""Run the pipeline ``runtime.build`` wires (what the daemon runs) inside a test or a benchmark.

``running(pipeline)``: its startup, then every daemon task, cancelled on exit until each has
ended; a task that failed fails the test. ``EffectsTap``: an ``Endpoints.effects`` observer that
keeps every effect the pipeline ran, in order. ``built_accounts(config)``: every account of a
configuration built as the daemon builds them, never started (for tests of the wiring).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from watchdog.clock import SystemClock
from watchdog.config import Config, Credentials, account_configs
from watchdog.core.effects import Effect
from watchdog.runtime.build import Endpoints, Pipeline, Shared, build

__all__ = ["Built", "EffectsTap", "built_accounts", "cancel_all", "running"]


@dataclass
class Built:
    """What ``built_accounts`` built: the process's shared parts and each account's pipeline;
    ``alone``: a one-account pipeline of the defaults built beside them, not sharing."""

    shared: Shared
    pipelines: list[Pipeline]
    alone: Pipeline | None = None


def _never_started(pipeline: Pipeline) -> Pipeline:
    for coro in pipeline.tasks().values():
        coro.close()  # built, never started
    return pipeline


async def built_accounts(config: Config, *, alone: bool = False) -> Built:
    """Every account of ``config`` built as the daemon builds them (one ``Shared``, one HTTP
    client; fake credentials), and with ``alone`` a pipeline of ``Config()`` on that client
    without ``Shared``. Nothing starts, so nothing is sent."""
    shared = Shared()
    pipelines: list[Pipeline] = []
    lone: Pipeline | None = None
    async with httpx.AsyncClient(base_url=config.binance.rest_url) as http:
        for one in account_configs(config):
            async with build(one, Credentials("key", "secret"), SystemClock(),
                             Endpoints(http=http), shared) as pipeline:
                pipelines.append(_never_started(pipeline))
        if alone:
            async with build(Config(), Credentials("key", "secret"), SystemClock(),
                             Endpoints(http=http)) as pipeline:
                lone = _never_started(pipeline)
    return Built(shared, pipelines, lone)


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
