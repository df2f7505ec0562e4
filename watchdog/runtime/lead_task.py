"""The lead task: hold the account's leader lease, or wait as a hot standby to take it over.

Why a task of its own: the lease must be renewed well inside its TTL (every third of it), on a
pace the heartbeat (``[redis] heartbeat_interval_s``) does not have. The leader renews; a
standby tries to acquire every sixth of the TTL, so a dead leader is replaced about one TTL
after its last renewal (docs/HA.md has the measured figures). When a renewal cannot be proven
for a whole TTL the instance steps down locally: its lease has lapsed in Redis, another may
lead, and the reaper must not decide on a belief (it proves the lead before each cancel anyway).
That step-down is told to ``on_lapse`` (the effects runner defers what the core produces from
then on: until it leads again or sees another leader, nothing it was told is lost).
Each wait ends on a point of the daemon's tick grid (``beat.py``), never later than the third
(or sixth) of the TTL after the round: the renewal wakes with the ticker and the heartbeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn, Protocol

from loguru import logger

from watchdog.cancel import raise_if_cancelling
from watchdog.clock import Clock
from watchdog.errors import StoreError
from watchdog.runtime.beat import beat_at
from watchdog.runtime.stalls import Woke

if TYPE_CHECKING:
    from watchdog.runtime.share import FairShare

__all__ = ["LeadStore", "run_lead"]


class LeadStore(Protocol):
    """What the lead task needs of ``RedisPublisher``."""

    lead_ttl_ms: int
    lead_changed: asyncio.Event

    @property
    def leading(self) -> bool: ...

    @property
    def fence(self) -> int: ...

    @property
    def leader(self) -> str: ...

    async def acquire(self, *, announce: bool = False) -> bool: ...

    async def register(self) -> None: ...  # the fair share's (runtime/share.py ``Acquirer``)

    async def renew(self) -> bool: ...

    def step_down(self, why: str) -> None: ...

    async def resign(self, why: str) -> None: ...


async def run_lead(store: LeadStore, on_takeover: Callable[[], Awaitable[object]], clock: Clock,
                   *, timeout_s: float,
                   on_other_leader: Callable[[str], None] | None = None,
                   on_lapse: Callable[[str], None] | None = None,
                   share: FairShare | None = None, grid_s: float = 0.0,
                   woke: Woke | None = None) -> NoReturn:
    """Renew while leading, try to acquire while not; ``on_takeover`` runs after each acquisition
    (it republishes fresh state; a refused beat that takes the lead runs the same one, through
    the store's ``on_take_over``: build.py rule 6; one at a time, the later joining the running
    one: build.py rule 7); ``on_other_leader`` whenever another
    instance is seen leading; ``on_lapse`` when it steps down because the lease could not be
    renewed for a whole TTL.
    ``share``: several accounts in this process (runtime/share.py): acquire only under the
    fair share, hand the lead on when over it. ``grid_s``: the beat shared with the ticker
    and the heartbeat (runtime/beat.py: a round never later than unaligned); ``woke``: told
    when a round's timer woke it (runtime/stalls.py rule 1). Never returns;
    Redis errors are logged and retried."""
    loop = asyncio.get_running_loop()
    ttl_s = store.lead_ttl_ms / 1000
    renew_s, standby_s = ttl_s / 3, ttl_s / 6
    proven_at = clock.monotonic()
    last_leader = ""
    while True:
        store.lead_changed.clear()
        try:
            took = False
            async with asyncio.timeout(min(timeout_s, renew_s)):
                if store.leading:
                    if await store.renew():
                        proven_at = clock.monotonic()
                        # After the renewal: a slow read of the instances never costs the lease.
                        if share is not None and await share.over(store):
                            await store.resign("over this instance's fair share of the accounts")
                elif took := (await store.acquire(announce=True) if share is None
                              else await share.acquire(store, announce=True)):
                    proven_at = clock.monotonic()
            if took:
                logger.info("leading now (fence {}): republishing fresh state", store.fence)
                async with asyncio.timeout(timeout_s):
                    await on_takeover()
            elif not store.leading and store.leader != last_leader:
                logger.info("standby: {} leads; stream and a slow positions read kept hot",
                            store.leader or "nobody")
                if store.leader and on_other_leader is not None:
                    on_other_leader(store.leader)
            last_leader = store.leader
        except (StoreError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                raise_if_cancelling(exc)
            logger.warning("lead lease round failed: {}", str(exc) or "timed out")
        if store.leading and clock.monotonic() - proven_at >= ttl_s:
            why = f"lease not renewed for {ttl_s:.1f}s (it has lapsed in Redis)"
            store.step_down(why)
            if on_lapse is not None:
                on_lapse(why)
        try:
            wait_s = renew_s if store.leading else standby_s
            when_s = beat_at(loop.time(), wait_s, grid_s)
            async with asyncio.timeout_at(when_s):
                await store.lead_changed.wait()
        except TimeoutError as exc:
            raise_if_cancelling(exc)
            if woke is not None:
                woke("lead", when_s)
