"""Fair share: with several accounts and several instances, each instance leads at most
ceil(accounts / live instances) of them (docs/HA.md, Many accounts per process).

Why: adding a host must add IP weight and capacity, so leads spread; and when an instance dies
its accounts move, by the same per-account leases (store/lead.py), nothing new in Redis.

How live instances are counted: every pipeline of a process registers the same instance id
(``Shared.instance``) in its account's ``instances`` zset at each acquire or renew, with an
expiry score (Redis time + 3 TTLs). The union over the accounts is read; an instance is live
while its newest score is within one lease TTL of the freshest score seen (a live instance
re-registers every third of a TTL; comparing scores with scores needs no clock of ours).

An instance under its share tries to acquire every account it does not lead (a standby round,
as with one account); at its share it only renews its leads and registers as the standby of
the others (so each account's set lists every instance watching it); over it (an instance
joined) it hands on its most recently listed leads (``resign``) until it is at its share
again. Acquisitions are serialised in the process so two of its pipelines never both take the
last free slot.

``LeadersBudget``: the one weight budget of an IP, whose routine pacing counts the accounts
this instance leads there (not its standbys). ``SweepSlots``: when each account's orders sweep
(weight 80) may go, spread so the sweeps of one IP take at most ``SWEEP_SHARE`` of its budget in
any minute: N accounts starting (or taken over) together otherwise all sweep in the same
second, and their 80 * N fill the shared window the positions polls of every account pace from.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from loguru import logger

from watchdog.binance.protocol.budget import WeightBudget
from watchdog.binance.protocol.weights import SWEEP_WEIGHT
from watchdog.clock import Clock
from watchdog.errors import StoreError

__all__ = ["SWEEP_SHARE", "Acquirer", "FairShare", "LeadersBudget", "ShareStore", "SweepSlots",
           "fair_share", "live_instances"]

# The orders sweeps of the accounts on one IP take at most this part of its budget in any
# minute (SweepSlots): the rest stays with the positions polls.
SWEEP_SHARE = 1 / 6


class Acquirer(Protocol):
    """What taking a lead needs (the lead task's store)."""

    async def acquire(self, *, announce: bool = False) -> bool: ...

    async def register(self) -> None: ...


class ShareStore(Protocol):
    """What the fair share needs of ``RedisPublisher``."""

    lead_ttl_ms: int

    @property
    def leading(self) -> bool: ...

    @property
    def instance(self) -> str: ...

    async def instances(self) -> list[tuple[str, int]]: ...

    async def acquire(self, *, announce: bool = False) -> bool: ...

    async def register(self) -> None: ...


def live_instances(rows: Iterable[tuple[str, int]], me: str, ttl_ms: int) -> frozenset[str]:
    """Instances whose newest registration is within ``ttl_ms`` of the freshest one; always
    ``me`` (pure)."""
    newest: dict[str, int] = {}
    for name, score in rows:
        newest[name] = max(score, newest.get(name, score))
    if not newest:
        return frozenset({me})
    freshest = max(newest.values())
    return frozenset({name for name, score in newest.items() if score >= freshest - ttl_ms} | {me})


def fair_share(accounts: int, live: int) -> int:
    """The most accounts one instance leads: ceil(accounts / live), at least 1 (pure)."""
    return max(1, math.ceil(accounts / max(1, live)))


class FairShare:
    """The leads of one process's pipelines (one store per account, in config order)."""

    def __init__(self, stores: Sequence[ShareStore], clock: Clock) -> None:
        self._stores = tuple(stores)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._live: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        ttl_ms = max(s.lead_ttl_ms for s in self._stores) if self._stores else 1500
        self._ttl_ms = ttl_ms
        self._cache_s = ttl_ms / 6000  # a standby round: fresh enough, 1 read per account per round

    @property
    def leading(self) -> int:
        return sum(1 for s in self._stores if s.leading)

    async def allowed(self) -> int:
        """This instance's share now (the instances sets read at most once per standby round;
        unreadable ones are skipped, and with none readable the last count stands)."""
        now = self._clock.monotonic()
        if now - self._read_at >= self._cache_s and self._stores:
            self._read_at = now
            rows: list[tuple[str, int]] = []
            read = await asyncio.gather(*(s.instances() for s in self._stores),
                                        return_exceptions=True)
            for store, got in zip(self._stores, read, strict=True):
                if isinstance(got, StoreError):
                    logger.debug("instances of {} unreadable: {}", store.instance, got)
                elif isinstance(got, BaseException):
                    raise got
                else:
                    rows += got
            if rows:
                live = live_instances(rows, self._stores[0].instance, self._ttl_ms)
                if live != self._live and self._live:
                    logger.info("{} live instance(s): this one leads at most {} of {} accounts",
                                len(live), fair_share(len(self._stores), len(live)),
                                len(self._stores))
                self._live = live
        return fair_share(len(self._stores), len(self._live) or 1)

    async def acquire(self, store: Acquirer, *, announce: bool) -> bool:
        """Acquire ``store``'s account if this instance is under its share (serialised); at
        its share, only register as the account's standby (``status`` lists it)."""
        async with self._lock:
            if self.leading >= await self.allowed():
                await store.register()
                return False
            return await store.acquire(announce=announce)

    async def over(self, store: object) -> bool:
        """True when ``store`` leads one account too many: this instance is over its share and
        ``store`` is the last leading one in config order (one hand-on per round, decided the
        same way by every pipeline, so they never all resign at once)."""
        allowed = await self.allowed()
        leading = [s for s in self._stores if s.leading]
        return len(leading) > allowed and leading[-1] is store


class LeadersBudget(WeightBudget):
    """One IP's weight budget shared by the accounts of one process (runtime/build.py rule 4):
    each routine poller paces itself ``sharers`` times wider, and ``sharers`` counts the
    accounts this instance LEADS on the IP, now. A standby's positions read is fixed and slow
    (binance/poller.py ``STANDBY_POSITIONS_S``) and never paced, and its weight is in the
    window anyway: counting the standby pipelines too made 5 leaders of 10 accounts pace
    themselves 10 times wider, polling at half the rate the IP had room for."""

    def __init__(self, budget_per_min: int, leading: Callable[[], int]) -> None:
        self._leading = leading
        super().__init__(budget_per_min)

    @property
    def sharers(self) -> int:
        return max(1, self._leading())

    @sharers.setter
    def sharers(self, value: int) -> None:
        """The base class's fixed count is not used: the count above is live."""


class SweepSlots:
    """When the orders sweeps of the accounts on one IP may go (pure: ``now_s`` passed in).

    Each sweep claims a slot: the first at once, each later one ``gap_s`` after the previous
    slot, ``gap_s`` = 60 s / k, k = the sweeps of 80 that ``SWEEP_SHARE`` of the budget holds
    (at least 1): at the whole IP's 2400/min, a sweep every 12 s (400 of its 2400 a minute, the
    steady rate of 50 accounts' sweeps every 10 min; ten accounts' first sweeps take two
    minutes instead of one second); at the default 15 % (360/min), one a minute. A slot
    is kept once claimed, whatever becomes of the sweep (held back by the budget, failed): the
    next account's slot does not move earlier. ``planned``: the slots still ahead, which every
    account's positions poll leaves room for (binance/poller.py rule 7).
    Only a process with several accounts has slots (runtime/build.py rule 4); one account alone
    sweeps exactly as before."""

    def __init__(self, budget_per_min: int, share: float = SWEEP_SHARE) -> None:
        per_min = max(1, math.floor(budget_per_min * share / SWEEP_WEIGHT))
        self.gap_s = 60.0 / per_min * (1 + 1e-9)  # a hair more: never per_min + 1 in 60 s
        self._last_at = -math.inf
        self._last_weight = SWEEP_WEIGHT
        self._slots: deque[tuple[float, int]] = deque()  # claimed, in order

    def claim(self, now_s: float, weight: int = SWEEP_WEIGHT) -> float:
        """The time at or after ``now_s`` a sweep of ``weight`` may go; its slot is taken. The
        poller sweeps one list (40) at a time (poller.py rule 4): a slot is as long as its
        weight needs (``gap_s`` is a sweep of both lists')."""
        at_s = max(now_s, self._last_at + self.gap_s * self._last_weight / SWEEP_WEIGHT)
        self._last_at, self._last_weight = at_s, weight
        self._slots.append((at_s, weight))
        return at_s

    def planned(self, now_s: float) -> list[tuple[float, int]]:
        """Every slot still ahead (``(at_s, weight)``): each account's positions poll paces
        leaving room for all of them (budget.py ``pace_s``), not only for its own."""
        while self._slots and self._slots[0][0] <= now_s:
            self._slots.popleft()
        return list(self._slots)

