"""The poller's sleep never outlives a stop: when a cancellation was lost earlier (redis-py on
Python 3.11 can swallow one that lands inside a command; watchdog/cancel.py), the task still has
``cancelling() > 0`` and its next timed sleep must end the task, not report a plain timeout and
poll on. Seen as "tasks ignore cancellation: ['poller']" in an integration teardown under load."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from watchdog.binance.poller import Poller


async def test_a_lost_cancellation_ends_the_poller_at_its_next_sleep() -> None:
    started = asyncio.Event()
    poller = SimpleNamespace(_wake=asyncio.Event())

    async def loop() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # what a swallowing library does: the task goes on with cancelling() == 1
        while True:
            await Poller._sleep_unless_woken(poller, 0.01)  # type: ignore[arg-type]

    task = asyncio.create_task(loop())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
