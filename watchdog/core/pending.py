"""Pending REST reads, remembered from ``SnapshotRequested`` until their answer (PURE).

The book and the stream proof both keep what each request was; an answer that never arrives
(a shell bug, not a leak) must not grow that memory, so beyond ``MAX_PENDING_REQUESTS`` the
oldest request is forgotten.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["MAX_PENDING_REQUESTS", "remember_request"]

MAX_PENDING_REQUESTS = 1024

V = TypeVar("V")


def remember_request(requests: dict[int, V], request_id: int, value: V) -> None:
    """``requests[request_id] = value``, the oldest pending request dropped first when full."""
    if len(requests) >= MAX_PENDING_REQUESTS:
        del requests[next(iter(requests))]
    requests[request_id] = value
