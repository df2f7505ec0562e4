"""Who may write: this instance's lead of the account and its fencing token (docs/HA.md).

Every write of the publisher is fenced: it carries the token this instance got when it became
the account's leader, and Lua refuses it when the token is not the account's any more. A
refused write (``Fenced``) makes the instance a standby at once (:meth:`Leadership._fenced`).
:class:`Leadership` is the publisher's base class: the state its writes check, apart from them.

Rules of this module:
1. Only a refusal of the current token steps this instance down. After Redis lost its data the
   refused-heartbeat path and the lead task may each take the lease again (this instance's own
   live lease is taken again with a new token, ``acquire_lead.lua``): a write, a renewal or
   an acquisition's reply carrying the older of the two tokens is refused, or answered, while
   the newer one already leads. Without this rule that refusal stepped the newer, valid lead
   down for a round (250 ms, then a third token and a second republish).
2. The token only grows locally: an acquisition's reply older than the token held is ignored
   (the later reply of two concurrent acquisitions may carry the earlier token).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger

from watchdog.errors import Fenced, StoreError
from watchdog.store.connection import map_redis_errors
from watchdog.store.reads import StoreReads

__all__ = ["Leadership", "new_instance_id"]


def new_instance_id() -> str:
    """host:pid:random, unique even when a PID is reused (containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


class Leadership(StoreReads):
    """The lead of one account as this instance knows it."""

    def _init_lead(self, lead_ttl_ms: int, instance: str = "") -> None:
        # ``instance``: one id for every account of a process (runtime/share.py counts them).
        self._instance = instance or new_instance_id()
        self.lead_ttl_ms = lead_ttl_ms
        self._fence = 0  # the fencing token while this instance leads; 0: standby
        # After a takeover, the health hash naming this instance goes first: until the first
        # beat under the new fence, every other write waits (held and marked dirty), so a bot
        # never reads a new leader's position beside the dead leader's health.
        self._announced = True
        self.lead_changed = asyncio.Event()  # set on every step down (the lead task reacts)
        self.leader = ""  # the leader as last seen by acquire/renew ("" unknown)

    @property
    def instance(self) -> str:
        """This process's id (host:pid:random), as the health hash and the leader key name it."""
        return self._instance

    @property
    def leading(self) -> bool:
        """True while this instance believes it holds the account's fence (a local belief:
        the reaper proves it with :meth:`confirm_lead` right before each cancel)."""
        return self._fence != 0

    @property
    def fence(self) -> int:
        return self._fence

    @property
    def writable(self) -> bool:
        """Leading, and a takeover's first beat written: the publisher writes now. Otherwise it
        holds views for a takeover and writes no event (runtime/effects_runner.py rule 5)."""
        return self._fence != 0 and self._announced

    def step_down(self, why: str) -> None:
        if self._fence:
            logger.error("stepping down as leader of account {} (fence {}): {}; no write and no "
                         "cancel until it leads again", self.keys.account, self._fence, why)
        self._fence = 0
        self.lead_changed.set()

    @contextmanager
    def _fenced(self, operation: str, token: int) -> Iterator[None]:
        """``map_redis_errors`` for a fenced write of ``token``: a refusal makes this instance a
        standby if ``token`` is still its own (rule 1). ``Fenced`` is raised either way: the
        write did not land."""
        try:
            with map_redis_errors(operation, self._url):
                yield
        except Fenced as exc:
            if token == self._fence:
                self.step_down(str(exc))
            else:
                logger.info("a write under this instance's older token {} was refused; it leads "
                            "with fence {} now (not stepping down): {}", token, self._fence, exc)
            raise

    async def acquire(self, *, announce: bool = False) -> bool:
        """Take the lead if nobody holds a live lease (SET NX PX, a new fencing token).
        ``announce``: a takeover; nothing but the heartbeat is written until it has been."""
        ok, token, holder = await self._read(self.calls.acquire_lead(self._instance, self.lead_ttl_ms))
        self.leader = self._instance if ok else str(holder)
        if ok:
            if int(token) < self._fence:  # rule 2: a concurrent acquisition's newer token holds
                logger.info("acquired fence {} of account {} after its newer fence {}: kept the "
                            "newer", token, self.keys.account, self._fence)
                return True
            self._fence = int(token)
            self._announced = not announce
        return bool(ok)

    async def renew(self) -> bool:
        """Extend the lease while the fence is still ours; False (and a standby now) if not."""
        token = self._fence
        if not token:
            return False
        ok, holder = await self._read(self.calls.renew_lead(self._instance, token,
                                                            self.lead_ttl_ms))
        if not ok:
            if token != self._fence:  # rule 1: a newer token of ours took the lease meanwhile
                logger.info("renewal of this instance's older fence {} refused; it leads with "
                            "fence {} now (not stepping down)", token, self._fence)
                return False  # not proven by this call (confirm_lead: no cancel on a doubt)
            self.leader = str(holder)
            self.step_down(f"the lease is {holder or 'nobody'}'s and the fence moved on")
            return False
        self.leader = self._instance
        return True

    async def confirm_lead(self) -> bool:
        """Right before an irreversible act (a cancel): prove in Redis that we still lead, and
        extend the lease so no standby can take over for a whole TTL. False on any doubt."""
        try:
            return await self.renew()
        except StoreError as exc:
            logger.warning("cannot prove the lead in Redis: {}", exc)
            return False

    async def resign(self, why: str) -> None:
        """Hand the lease on on purpose (fair share, runtime/share.py): a standby at once, then
        the lease removed so another instance takes it within its next round. If Redis cannot
        be told, the lease lapses by its TTL (it is not renewed any more)."""
        if not self._fence:
            return
        logger.info("handing on the lead of account {} (fence {}): {}", self.keys.account,
                    self._fence, why)
        self._fence = 0
        self.lead_changed.set()
        await self._read(self.calls.resign_lead(self._instance))

    async def register(self) -> None:
        """A standby's round that does not try to lead (at its fair share, runtime/share.py):
        registration only, so ``status`` lists it as this account's standby. Without it, an
        instance at its share dropped out of the instances set of every account it did not
        lead three TTLs after its last acquire attempt (and at once after a hand-on)."""
        self.leader = str(await self._read(self.calls.register_instance(self._instance,
                                                                        self.lead_ttl_ms)))
