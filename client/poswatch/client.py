"""Bot-side client of the veto protocol: ask the watchdog before touching a stop.

Usage (sync; ``AsyncWatchdogClient`` has the same methods as coroutines)::

    wd = WatchdogClient.from_url("redis://127.0.0.1:6379/0", account="main")
    with wd.guard_stop_update("BTC/USDT:USDT", "BOTH", holder="bot-1") as guard:   # begin
        exchange.cancel_order(old_stop_id, "BTC/USDT:USDT")
        verdict = guard.confirm()                         # raises Vetoed if the position closed
        exchange.create_order("BTC/USDT:USDT", "STOP_MARKET", "sell", amount, None, params)
    # end(outcome) ran; a veto raised Vetoed(op, verdict) before anything was touched

The README of this distribution shows the full pattern, -2011 on the cancel included.
Just over 400 lines: the sync and async clients side by side, method for method, so a change
to one is seen next to the other.

Failure policy (docs/PROTOCOL.md): if Redis cannot be reached, ``check``/``begin`` answer VETO
``watchdog_down`` (do not touch the stop) and ``confirm`` answers ALLOW ``unverified`` (you
already cancelled: put a stop back; an orphaned stop is cheaper than a naked position).

Over 400 lines on purpose: ``WatchdogClient`` and ``AsyncWatchdogClient`` mirror each other
method for method (a bot uses one or the other), so this is one small API written for both;
the calls themselves are ``poswatch.calls``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio
from redis import exceptions as redis_errors

from poswatch.calls import ScriptCall, VetoCalls, sha_of
from poswatch.connection import connect, connect_sync
from poswatch.protocol import (
    RETRY_LATER,
    VETO_REASONS,
    Ended,
    Reason,
    Replaced,
    Verdict,
    Vetoed,
    WatchdogEvent,
    parse_ended,
    parse_events,
    parse_verdict,
)
from poswatch.scripts import script_source

__all__ = [
    "RETRY_LATER",
    "VETO_REASONS",
    "AsyncGuard",
    "AsyncWatchdogClient",
    "Ended",
    "Guard",
    "Reason",
    "Replaced",
    "Verdict",
    "Vetoed",
    "WatchdogClient",
    "WatchdogEvent",
    "check_position",
]

_log = logging.getLogger("poswatch")
_T = TypeVar("_T")
_REPLACE = "replace"  # end's mode for a zero-gap replacement (window recorded as 0)

DEFAULT_LEASE_TTL_MS = 5_000  # [veto] default_lease_ttl_ms


# check.lua is flagged no-writes: EVALSHA_RO lets an ACL keep its KEYS read-only (and runs on replicas).
_READ_ONLY = frozenset({"check"})
_DOWN = Verdict(False, Reason.WATCHDOG_DOWN, None)
_ERRORS = (redis_errors.RedisError, OSError)
_C = TypeVar("_C")
_R = TypeVar("_R", redis.Redis, redis.asyncio.Redis)


def _down(op: str, symbol: str, side: str, exc: BaseException) -> Verdict:
    """``check``/``begin`` could not reach Redis: VETO ``watchdog_down`` (do not touch the stop)."""
    _log.warning("watchdog %s %s:%s failed, answering watchdog_down: %r", op, symbol, side, exc)
    return _DOWN


def _unverified(symbol: str, side: str, lease: int, exc: BaseException) -> Verdict:
    """``confirm`` could not reach Redis: ALLOW ``unverified`` (the old stop is already gone)."""
    _log.warning("watchdog confirm %s:%s failed, answering unverified: %r", symbol, side, exc)
    return Verdict(True, Reason.UNVERIFIED, lease)


def _not_ended(symbol: str, side: str, lease: int, exc: BaseException) -> Ended:
    """``end`` could not reach Redis: the lease expires by itself."""
    _log.warning("watchdog end %s:%s lease %s failed (the lease expires by itself): %r",
                 symbol, side, lease, exc)
    return Ended(False, Reason.WATCHDOG_DOWN, None)


class _GuardState(Generic[_C]):
    """What ``Guard`` and ``AsyncGuard`` hold: the begun verdict, its lease, the outcome."""

    def __init__(self, client: _C, symbol: str, side: str, begun: Verdict) -> None:
        self._client, self.symbol, self.side, self.begun = client, symbol, side, begun
        self.lease: int = begun.lease or 0
        self.outcome = "ok"
        self.ended: Ended | None = None  # set on leaving the block: the recorded window


class _ClientState(Generic[_R]):
    """What both clients hold: the Redis connection and the protocol calls."""

    def __init__(self, client: _R, account: str, *, max_age_ms: int | None = None,
                 default_lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS) -> None:
        self.redis: _R = client
        self._p = VetoCalls(account, max_age_ms)
        self._ttl_ms = default_lease_ttl_ms


class Guard(_GuardState["WatchdogClient"]):
    """Handle inside ``guard_stop_update``: call ``confirm()`` between cancel and create."""

    def confirm(self) -> Verdict:
        """Raises ``Vetoed`` only if the watchdog positively knows the position closed."""
        verdict = self._client.confirm(self.symbol, self.side, self.lease)
        if not verdict.allowed:
            raise Vetoed("confirm", verdict)
        return verdict


class WatchdogClient(_ClientState[redis.Redis]):
    """Blocking client (redis-py). Cheap calls: one EVALSHA round trip per verdict."""

    @classmethod
    def from_url(cls, url: str, account: str, *, max_age_ms: int | None = None,
                 socket_timeout_s: float = 0.5, default_lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS,
                 client_name: str = "watchdog-client", sentinels: Sequence[str] = (),
                 sentinel_master: str = "", cluster: bool = False) -> WatchdogClient:
        """``sentinels`` (``["host:port", …]``) and ``sentinel_master``: follow the master
        Redis Sentinel names (the URL then gives credentials and db only)."""
        client = connect_sync(url, socket_timeout_s=socket_timeout_s, client_name=client_name,
                              sentinels=sentinels, sentinel_master=sentinel_master, cluster=cluster)
        return cls(client, account, max_age_ms=max_age_ms, default_lease_ttl_ms=default_lease_ttl_ms)

    def close(self) -> None:
        self.redis.close()

    def _call(self, call: ScriptCall) -> Any:
        run = self.redis.evalsha_ro if call.script in _READ_ONLY else self.redis.evalsha
        try:
            return run(sha_of(call.script), len(call.keys), *call.keys, *call.args)
        except redis_errors.NoScriptError:
            # Redis restarted or SCRIPT FLUSH: load it (a bot ACL without SCRIPT LOAD gets
            # NOPERM here, i.e. watchdog_down until the watchdog's next heartbeat reloads it).
            self.redis.script_load(script_source(call.script))
            return run(sha_of(call.script), len(call.keys), *call.keys, *call.args)

    def check(self, symbol: str, side: str = "BOTH") -> Verdict:
        """Read-only verdict; an unreachable Redis is VETO ``watchdog_down``."""
        try:
            return parse_verdict(self._call(self._p.check(symbol, side)))
        except _ERRORS as exc:
            return _down("check", symbol, side, exc)

    def begin(self, symbol: str, side: str = "BOTH", *, holder: str, ttl_ms: int | None = None) -> Verdict:
        """Before cancelling a stop: ALLOW with a lease, or VETO with a reason.

        Raises:
            ValueError: ``holder`` is not 1-128 printable ASCII characters, ``ttl_ms`` not an
                integer from 1 to 600,000, or ``symbol``/``side`` cannot be part of a key.
        """
        try:
            call = self._p.begin(symbol, side, holder, ttl_ms or self._ttl_ms)
            return parse_verdict(self._call(call))
        except _ERRORS as exc:
            return _down("begin", symbol, side, exc)

    def confirm(self, symbol: str, side: str, lease: int) -> Verdict:
        """After the cancel, before the create: VETO only on a known closure."""
        try:
            return parse_verdict(self._call(self._p.confirm(symbol, side, lease)))
        except _ERRORS as exc:
            return _unverified(symbol, side, lease, exc)

    def end(self, symbol: str, side: str, lease: int, outcome: str = "ok", *, mode: str = "") -> Ended:
        """Release the lease and record the unprotected window (``mode="replace"``: 0, see
        :meth:`replace_stop`)."""
        try:
            return parse_ended(self._call(self._p.end(symbol, side, lease, outcome, mode)))
        except _ERRORS as exc:
            return _not_ended(symbol, side, lease, exc)

    @contextlib.contextmanager
    def guard_stop_update(self, symbol: str, side: str = "BOTH", *, holder: str,
                          ttl_ms: int | None = None) -> Iterator[Guard]:
        """begin → (cancel) → ``guard.confirm()`` → (create) → end; raises ``Vetoed`` on a veto."""
        begun = self.begin(symbol, side, holder=holder, ttl_ms=ttl_ms)
        if not begun.allowed:
            raise Vetoed("begin", begun)
        guard = Guard(self, symbol, side, begun)
        try:
            yield guard
        except Vetoed:
            guard.ended = self.end(symbol, side, guard.lease, "vetoed")
            raise
        except BaseException as exc:
            guard.ended = self.end(symbol, side, guard.lease, f"error:{type(exc).__name__}")
            raise
        guard.ended = self.end(symbol, side, guard.lease, guard.outcome)

    def replace_stop(self, symbol: str, side: str = "BOTH", *, holder: str, create: Callable[[], _T],
                     cancel_new: Callable[[_T], object], cancel_old: Callable[[], object],
                     ttl_ms: int | None = None) -> Replaced:
        """Move a stop with no unprotected instant: begin → ``create()`` the new stop →
        confirm → ``cancel_old()`` → end (recorded window 0).

        Binance cannot amend a stop in place, so the new one is placed *before* the old one is
        cancelled. Make both reduce-only or closePosition: whichever triggers second finds
        nothing to reduce and Binance rejects it. Raises ``Vetoed`` at ``begin`` (nothing was
        touched) or at ``confirm`` (the position closed meanwhile: the NEW stop was cancelled
        with ``cancel_new(new)``, so nothing of this move is left on a flat position; the old
        one, if it did not fire, is the exchange's and the reaper's). An exception from a
        callback is re-raised after ``end`` recorded it; if ``cancel_old`` fails, both stops
        stay (still reduce-only: safe) and the caller decides.
        """
        begun = self.begin(symbol, side, holder=holder, ttl_ms=ttl_ms)
        if not begun.allowed:
            raise Vetoed("begin", begun)
        lease = begun.lease or 0
        try:
            new = create()
        except BaseException as exc:
            self.end(symbol, side, lease, f"error:{type(exc).__name__}", mode=_REPLACE)
            raise
        verdict = self.confirm(symbol, side, lease)
        if not verdict.allowed:
            try:
                cancel_new(new)
            except BaseException as exc:
                self.end(symbol, side, lease, f"vetoed_cancel_failed:{type(exc).__name__}",
                         mode=_REPLACE)
                raise
            self.end(symbol, side, lease, "vetoed", mode=_REPLACE)
            raise Vetoed("confirm", verdict)
        try:
            cancel_old()
        except BaseException as exc:
            self.end(symbol, side, lease, f"old_cancel_failed:{type(exc).__name__}", mode=_REPLACE)
            raise
        return Replaced(new, self.end(symbol, side, lease, "ok", mode=_REPLACE))

    def last_event_id(self) -> str:
        """Id of the newest event ("0-0" if none): pass it to ``subscribe`` to miss nothing after now."""
        newest = self.redis.xrevrange(self._p.keys.events, count=1)
        return str(newest[0][0]) if newest else "0-0"

    def subscribe(self, *, last_id: str = "$", block_ms: int = 1000) -> Iterator[WatchdogEvent]:
        """Events after ``last_id``, oldest first, forever; resume from ``event.id`` after a crash.

        ``"$"`` means after the newest event *when iteration starts* (generators are lazy); call
        :meth:`last_event_id` first to pin the start. Redis errors propagate: losing the feed is
        the bot's signal to re-check its positions with :meth:`check`.
        """
        if last_id == "$":
            last_id = self.last_event_id()
        while True:
            reply = self.redis.xread({self._p.keys.events: last_id}, block=block_ms, count=100)
            for event in parse_events(reply):
                last_id = event.id
                yield event


class AsyncGuard(_GuardState["AsyncWatchdogClient"]):
    """Async twin of :class:`Guard`."""

    async def confirm(self) -> Verdict:
        verdict = await self._client.confirm(self.symbol, self.side, self.lease)
        if not verdict.allowed:
            raise Vetoed("confirm", verdict)
        return verdict


class AsyncWatchdogClient(_ClientState[redis.asyncio.Redis]):
    """asyncio client (redis.asyncio); same contract as :class:`WatchdogClient`."""

    @classmethod
    def from_url(cls, url: str, account: str, *, max_age_ms: int | None = None,
                 socket_timeout_s: float = 0.5, default_lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS,
                 client_name: str = "watchdog-client", sentinels: Sequence[str] = (),
                 sentinel_master: str = "", cluster: bool = False) -> AsyncWatchdogClient:
        """As :meth:`WatchdogClient.from_url` (Sentinel included)."""
        client = connect(url, socket_timeout_s=socket_timeout_s, client_name=client_name, retries=1,
                         sentinels=sentinels, sentinel_master=sentinel_master, cluster=cluster)
        return cls(client, account, max_age_ms=max_age_ms, default_lease_ttl_ms=default_lease_ttl_ms)

    async def close(self) -> None:
        await self.redis.aclose()

    async def _call(self, call: ScriptCall) -> Any:
        run = self.redis.evalsha_ro if call.script in _READ_ONLY else self.redis.evalsha
        try:
            return await run(sha_of(call.script), len(call.keys), *call.keys, *call.args)
        except redis_errors.NoScriptError:
            await self.redis.script_load(script_source(call.script))
            return await run(sha_of(call.script), len(call.keys), *call.keys, *call.args)

    async def check(self, symbol: str, side: str = "BOTH") -> Verdict:
        try:
            return parse_verdict(await self._call(self._p.check(symbol, side)))
        except _ERRORS as exc:
            return _down("check", symbol, side, exc)

    async def begin(self, symbol: str, side: str = "BOTH", *, holder: str,
                    ttl_ms: int | None = None) -> Verdict:
        try:
            call = self._p.begin(symbol, side, holder, ttl_ms or self._ttl_ms)
            return parse_verdict(await self._call(call))
        except _ERRORS as exc:
            return _down("begin", symbol, side, exc)

    async def confirm(self, symbol: str, side: str, lease: int) -> Verdict:
        try:
            return parse_verdict(await self._call(self._p.confirm(symbol, side, lease)))
        except _ERRORS as exc:
            return _unverified(symbol, side, lease, exc)

    async def end(self, symbol: str, side: str, lease: int, outcome: str = "ok", *,
                  mode: str = "") -> Ended:
        try:
            return parse_ended(await self._call(self._p.end(symbol, side, lease, outcome,
                                                                     mode)))
        except _ERRORS as exc:
            return _not_ended(symbol, side, lease, exc)

    @contextlib.asynccontextmanager
    async def guard_stop_update(self, symbol: str, side: str = "BOTH", *, holder: str,
                                ttl_ms: int | None = None) -> AsyncIterator[AsyncGuard]:
        begun = await self.begin(symbol, side, holder=holder, ttl_ms=ttl_ms)
        if not begun.allowed:
            raise Vetoed("begin", begun)
        guard = AsyncGuard(self, symbol, side, begun)
        try:
            yield guard
        except Vetoed:
            guard.ended = await self.end(symbol, side, guard.lease, "vetoed")
            raise
        except BaseException as exc:
            guard.ended = await self.end(symbol, side, guard.lease, f"error:{type(exc).__name__}")
            raise
        guard.ended = await self.end(symbol, side, guard.lease, guard.outcome)

    async def replace_stop(self, symbol: str, side: str = "BOTH", *, holder: str,
                           create: Callable[[], Awaitable[_T]],
                           cancel_new: Callable[[_T], Awaitable[object]],
                           cancel_old: Callable[[], Awaitable[object]],
                           ttl_ms: int | None = None) -> Replaced:
        """Async twin of :meth:`WatchdogClient.replace_stop` (the callbacks are coroutines)."""
        begun = await self.begin(symbol, side, holder=holder, ttl_ms=ttl_ms)
        if not begun.allowed:
            raise Vetoed("begin", begun)
        lease = begun.lease or 0
        try:
            new = await create()
        except BaseException as exc:
            await self.end(symbol, side, lease, f"error:{type(exc).__name__}", mode=_REPLACE)
            raise
        verdict = await self.confirm(symbol, side, lease)
        if not verdict.allowed:
            try:
                await cancel_new(new)
            except BaseException as exc:
                await self.end(symbol, side, lease, f"vetoed_cancel_failed:{type(exc).__name__}",
                               mode=_REPLACE)
                raise
            await self.end(symbol, side, lease, "vetoed", mode=_REPLACE)
            raise Vetoed("confirm", verdict)
        try:
            await cancel_old()
        except BaseException as exc:
            await self.end(symbol, side, lease, f"old_cancel_failed:{type(exc).__name__}",
                           mode=_REPLACE)
            raise
        return Replaced(new, await self.end(symbol, side, lease, "ok", mode=_REPLACE))

    async def last_event_id(self) -> str:
        newest = await self.redis.xrevrange(self._p.keys.events, count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def subscribe(self, *, last_id: str = "$", block_ms: int = 1000) -> AsyncIterator[WatchdogEvent]:
        """Async twin of :meth:`WatchdogClient.subscribe`."""
        if last_id == "$":
            last_id = await self.last_event_id()
        while True:
            reply = await self.redis.xread({self._p.keys.events: last_id}, block=block_ms, count=100)
            for event in parse_events(reply):
                last_id = event.id
                yield event


def check_position(url: str, account: str, symbol: str, side: str = "BOTH", *,
                   max_age_ms: int | None = None, socket_timeout_s: float = 2.0,
                   sentinels: Sequence[str] = (), sentinel_master: str = "",
                   cluster: bool = False) -> Verdict:
    """One-shot read-only verdict (``position-watchdog check``); unreachable Redis → ``watchdog_down``.

    Raises:
        ValueError: ``symbol``, ``side`` or ``account`` cannot be part of a key (a usage error).
    """
    protocol = VetoCalls(account, max_age_ms)
    protocol.check(symbol, side)  # validates before connecting
    client = WatchdogClient.from_url(url, account, max_age_ms=max_age_ms, socket_timeout_s=socket_timeout_s,
                                     client_name="position-watchdog-check", sentinels=sentinels,
                                     sentinel_master=sentinel_master, cluster=cluster)
    try:
        return client.check(symbol, side)
    finally:
        client.close()
