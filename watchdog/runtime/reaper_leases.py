"""The reaper's view of the bots' leases (``reaper_task`` rule 1, the lease part).

Rules of this module:
1. Leases are read from Redis at most every ``refresh_s``, and only while they are needed: while
   unknown, while some verdict depends on them (``core.reaper.LEASE_DEPENDENT``), or while the
   guard says it needs their ends (one lease read loop for both).
2. A decision that depends on leases is taken only on leases read since that need began, or
   within the last ``refresh_s`` (``fresh_for``).
3. Leases unreadable: the lease set becomes unknown (``leased`` is None), so nothing is decided
   until they are readable again; logged once per change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from watchdog.core.model import PositionKey
from watchdog.core.reaper import ReaperPolicy
from watchdog.errors import StoreError

if TYPE_CHECKING:
    from watchdog.clock import Clock

__all__ = ["LeaseSource", "LeaseWatch", "ReadLeaseEnds"]

ReadLeaseEnds = Callable[[], Awaitable[dict[PositionKey, int]]]
"""The ms left of each lease (``RedisPublisher.lease_ends_in``)."""


class LeaseSource(Protocol):
    """The lease read the reaper makes on ``store.publisher.RedisPublisher``."""

    async def leased_symbols(self) -> frozenset[PositionKey]: ...


class LeaseWatch:
    """The leased positions as last read, when they were read, and whether they are needed."""

    def __init__(self, store: LeaseSource, clock: Clock, *, refresh_s: float,
                 read_lease_ends: ReadLeaseEnds | None = None,
                 also_needs_leases: Callable[[], bool] = lambda: False) -> None:
        self._store = store
        self._clock = clock
        self._refresh_s = refresh_s
        # The guard (guard_task.py) needs the leases' ends too, while it says so: one read loop.
        self._read_lease_ends = read_lease_ends
        self._also_needs_leases = also_needs_leases
        self.lease_ends: dict[PositionKey, int] | None = None  # wall ms each lease ends
        self.leases_read_ms = 0
        self.leased: frozenset[PositionKey] | None = None  # None: not read yet (or unreadable)
        self._read_at = float("-inf")
        self._needed_since: float | None = None  # an order reaches the lease check

    @property
    def refresh_s(self) -> float:
        return self._refresh_s

    def needed(self) -> bool:
        """Rule 1: read them now (unknown, a verdict depends on them, or the guard asks)."""
        return self.leased is None or self._needed_since is not None or self._also_needs_leases()

    def fresh_for(self, depends: bool, now_s: float) -> bool:
        """Rule 2: may a decision be taken on the lease set as it is? ``depends``: some verdict
        of that decision depends on leases."""
        if not depends:
            self._needed_since = None  # no verdict depends on leases: stop reading
            return True
        if self._needed_since is None:
            self._needed_since = now_s  # ``refresh`` reads them within refresh_s
        return not (self._read_at < self._needed_since and now_s - self._read_at >= self._refresh_s)

    async def refresh(self, policy: ReaperPolicy) -> None:
        """Read the leased positions from Redis (at most every ``refresh_s``)."""
        if self._clock.monotonic() - self._read_at < self._refresh_s:
            return
        try:
            if self._read_lease_ends is None:
                leased = await self._store.leased_symbols()
            else:
                left = await self._read_lease_ends()
                now_ms = self._clock.wall_ms()
                self.lease_ends = {key: now_ms + ms for key, ms in left.items()}
                self.leases_read_ms = now_ms
                leased = frozenset(left)
        except StoreError as exc:
            if self.leased is not None:
                logger.warning("reaper paused: cannot read leases from Redis: {}", exc)
            self.leased = None
            self.lease_ends = None
        else:
            if self.leased is None:
                logger.info("reaper active: leases readable (policy {})", policy)
            self.leased = leased
        self._read_at = self._clock.monotonic()
