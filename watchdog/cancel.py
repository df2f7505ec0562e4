"""Telling our own ``asyncio.timeout`` from a real cancellation (Python 3.11).

redis-py 8.1 on Python 3.11 loses a cancellation that lands inside a command (see
``daemon._stop_when``): the task goes on with ``cancelling() > 0`` and, when one of our timeouts
then expires, ``asyncio.timeout`` reports a ``TimeoutError`` (it only sees its own cancel). A
caller that turns that TimeoutError into "Redis is slow, carry on" would lose the stop for good.
"""

from __future__ import annotations

import asyncio

__all__ = ["raise_if_cancelling"]


def raise_if_cancelling(timeout: TimeoutError) -> None:
    """Call in ``except TimeoutError``: raise CancelledError if this task was asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError("cancelled while a timeout expired") from timeout
