"""Stopping survives lost cancellations (redis-py 8.1 on Python 3.11 swallows some, see
``daemon._stop_when``). ``_swallow_one_cancel`` stands in for that library behaviour."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from watchdog.cancel import raise_if_cancelling
from watchdog.runtime.daemon import _cancel_until_done


async def _swallow_one_cancel(started: asyncio.Event) -> None:
    """What redis-py does to a cancel landing inside a command: it is lost, ``cancelling()`` stays 1."""
    started.set()
    with contextlib.suppress(asyncio.CancelledError):  # the library's bug, reproduced on purpose
        await asyncio.Event().wait()


async def test_a_timeout_expiring_after_a_lost_cancel_is_a_cancellation() -> None:
    async def worker(started: asyncio.Event) -> str:
        await _swallow_one_cancel(started)
        try:
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()
        except TimeoutError as exc:  # 3.11: the lost cancel looks like our own timeout here
            raise_if_cancelling(exc)
            return "carried on as if Redis were slow"
        return "unreachable"

    started = asyncio.Event()
    task = asyncio.create_task(worker(started))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)


async def test_a_timeout_of_our_own_stays_a_timeout() -> None:
    async def wait_briefly() -> None:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()
        except TimeoutError as exc:
            raise_if_cancelling(exc)
            raise

    with pytest.raises(TimeoutError):
        await wait_briefly()


async def test_re_cancelling_goes_on_when_the_canceller_itself_is_cancelled() -> None:
    started = asyncio.Event()

    async def stubborn() -> None:
        await _swallow_one_cancel(started)
        await asyncio.Event().wait()  # ends on the second cancel

    sibling = asyncio.create_task(stubborn(), name="stubborn")
    await started.wait()
    canceller = asyncio.create_task(_cancel_until_done([sibling]))
    await asyncio.sleep(0)  # the canceller sends its first cancel (lost) and waits
    canceller.cancel()  # e.g. the group aborting because another task failed while stopping
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(canceller, timeout=10)
    assert sibling.done(), "the canceller gave up while a sibling was still running"
