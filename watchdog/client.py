"""Bot-side client of the veto protocol: ask the watchdog before touching a stop.

Usage (sync; ``AsyncWatchdogClient`` has the same methods as coroutines)::

    wd = WatchdogClient.from_url("redis://127.0.0.1:6379/0", account="main")
    with wd.guard_stop_update("BTCUSDT", "BOTH", holder="bot-1") as guard:   # begin
        exchange.cancel_order(old_stop_id, "BTC/USDT:USDT")
        guard.confirm()                                   # raises Vetoed if the position closed
        exchange.create_order("BTC/USDT:USDT", "STOP_MARKET", "sell", amount, None, params)
    # end(outcome) ran; a veto raised Vetoed(op, verdict) before anything was touched

Failure policy (docs/PROTOCOL.md): if Redis cannot be reached, ``check``/``begin`` answer VETO
``watchdog_down`` (do not touch the stop) and ``confirm`` answers ALLOW ``unverified`` (you
already cancelled: put a stop back; an orphaned stop is cheaper than a naked position).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
from redis import exceptions as redis_errors

from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.errors import WatchdogError
from watchdog.store.connection import connect, connect_sync
from watchdog.store.keys import AccountKeys, PositionKeys
from watchdog.store.scripts import BOT_SCRIPTS, script_sha, script_source

__all__ = [
    "RETRY_LATER",
    "VETO_REASONS",
    "AsyncGuard",
    "AsyncWatchdogClient",
    "Ended",
    "Guard",
    "Verdict",
    "Vetoed",
    "WatchdogClient",
    "WatchdogEvent",
    "check_position",
]

_log = logging.getLogger("watchdog.client")

# Every reason a check/begin veto can carry (docs/PROTOCOL.md §2), and those after which the
# same question may get another answer soon (the others: the position is gone or unknown to
# the watchdog). ``stop_triggered``: a stop of the position is firing; leave it alone and wait
# for ``position_closed`` (or the firing to end: ``firing_*`` fields leave the position hash).
VETO_REASONS = frozenset({"watchdog_down", "no_position", "stale", "position_closed",
                          "stop_triggered", "reaping", "lease_held"})
RETRY_LATER = frozenset({"watchdog_down", "stale", "stop_triggered", "reaping", "lease_held"})
DEFAULT_LEASE_TTL_MS = 5_000  # [veto] default_lease_ttl_ms
MAX_LEASE_TTL_MS = 600_000  # begin.lua refuses longer leases (MAX_LEASE_TTL_MS in lua/_prelude.lua)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The watchdog's answer. ``lease`` is the fencing token (begin/confirm); ``age_ms`` is the
    age of the watchdog's knowledge of the position, None when unknown (none, not a number, or
    from the future: the verdict is then stale/unverified, docs/PROTOCOL.md §2)."""

    allowed: bool
    reason: str
    lease: int | None
    position: dict[str, str] = field(default_factory=dict)
    age_ms: int | None = None

    @property
    def firing(self) -> dict[str, str] | None:
        """The stop the watchdog saw firing on this position (``algo_id``, ``status``,
        ``since_ms``, ``child_id``), None when none: the detail of a ``stop_triggered`` veto."""
        algo_id = self.position.get("firing_algo_id", "")
        if not algo_id:
            return None
        return {name: self.position.get(f"firing_{name}", "")
                for name in ("algo_id", "status", "since_ms", "child_id")}

    @property
    def retry_later(self) -> bool:
        """True for a veto that may turn into an allow by itself (RETRY_LATER)."""
        return not self.allowed and self.reason in RETRY_LATER

    def as_json(self) -> dict[str, object]:
        """The one-line shape of ``position-watchdog check --json``."""
        return {"verdict": "allow" if self.allowed else "veto", "reason": self.reason,
                "position": self.position, "age_ms": self.age_ms}


@dataclass(frozen=True, slots=True)
class Ended:
    """Result of ``end``: ``window_ms`` is begin → end as the watchdog measured it."""

    released: bool
    reason: str
    window_ms: int | None


@dataclass(frozen=True, slots=True)
class WatchdogEvent:
    """One entry of the events stream (``kind`` is position_closed, lease, veto, …)."""

    id: str
    kind: str
    fields: dict[str, str]


class Vetoed(WatchdogError):
    """The watchdog said no: do not touch (begin) or do not recreate (confirm) the stop."""

    def __init__(self, op: str, verdict: Verdict) -> None:
        self.op = op
        self.verdict = verdict
        firing = verdict.firing if verdict.reason == "stop_triggered" else None
        detail = f", algo {firing['algo_id']} {firing['status']}" if firing else ""
        super().__init__(f"{op} vetoed: {verdict.reason} (age_ms={verdict.age_ms}{detail})")


# check.lua is flagged no-writes: EVALSHA_RO lets an ACL keep its KEYS read-only (and runs on replicas).
_READ_ONLY = frozenset({"check"})
_Call = tuple[list[str], list[str | int]]
_DOWN = Verdict(False, "watchdog_down", None)
_ERRORS = (redis_errors.RedisError, WatchdogError, OSError)


class _Protocol:
    """PURE: key and argument lists of the four bot scripts, and reply parsing."""

    def __init__(self, account: str, max_age_ms: int | None) -> None:
        self.keys = AccountKeys(account)
        self.max_age = "" if max_age_ms is None else str(max_age_ms)
        self._cache: dict[tuple[str, str], PositionKeys] = {}

    def _keys(self, symbol: str, side: str) -> PositionKeys:
        """Validated key names of one position, cached: bots ask about a handful of symbols."""
        cached = self._cache.get((symbol, side))
        if cached is None:
            cached = self.keys.of(PositionKey(Symbol(symbol), PositionSide(side)))
            if len(self._cache) < 4096:
                self._cache[(symbol, side)] = cached
        return cached

    def check(self, symbol: str, side: str) -> _Call:
        p = self._keys(symbol, side)
        return [self.keys.health, p.position, p.reaping, p.lease], [self.max_age]

    def begin(self, symbol: str, side: str, holder: str, ttl_ms: int) -> _Call:
        _check_begin_args(holder, ttl_ms)
        k, p = self.keys, self._keys(symbol, side)
        return ([p.lease, k.lease_seq, k.leases, k.events],
                [p.member, holder, ttl_ms, self.max_age, k.channel, k.health, p.position, p.reaping])

    def confirm(self, symbol: str, side: str, lease: int) -> _Call:
        k, p = self.keys, self._keys(symbol, side)
        return [p.lease, k.events], [p.member, lease, self.max_age, k.channel, k.health, p.position]

    def end(self, symbol: str, side: str, lease: int, outcome: str) -> _Call:
        k, p = self.keys, self._keys(symbol, side)
        return [p.lease, k.leases, k.windows, k.events], [p.member, lease, outcome, k.channel, k.health]

    @staticmethod
    def verdict(reply: Sequence[Any]) -> Verdict:
        allowed, reason, token, age, flat = reply
        position = dict(zip(flat[::2], flat[1::2], strict=True))
        return Verdict(bool(allowed), str(reason), int(token) or None, position,
                       None if int(age) < 0 else int(age))

    @staticmethod
    def ended(reply: Sequence[Any]) -> Ended:
        released, reason, window = reply
        return Ended(bool(released), str(reason), None if int(window) < 0 else int(window))

    @staticmethod
    def events(reply: Any) -> list[WatchdogEvent]:
        out: list[WatchdogEvent] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                out.append(WatchdogEvent(str(entry_id), str(fields.get("kind", "")), dict(fields)))
        return out


def _check_begin_args(holder: str, ttl_ms: int) -> None:
    """What begin.lua refuses, refused here with a ValueError (a bug in the caller, not an outage
    to be answered with watchdog_down)."""
    if not (isinstance(ttl_ms, int) and not isinstance(ttl_ms, bool)
            and 1 <= ttl_ms <= MAX_LEASE_TTL_MS):
        raise ValueError(f"ttl_ms must be an integer from 1 to {MAX_LEASE_TTL_MS}, got {ttl_ms!r}")
    if not (isinstance(holder, str) and 1 <= len(holder) <= 128 and holder.isascii()
            and holder.isprintable()):
        raise ValueError(f"holder must be 1-128 printable ASCII characters, got {holder!r}")


class Guard:
    """Handle inside ``guard_stop_update``: call ``confirm()`` between cancel and create."""

    def __init__(self, client: WatchdogClient, symbol: str, side: str, begun: Verdict) -> None:
        self._client, self.symbol, self.side, self.begun = client, symbol, side, begun
        self.lease: int = begun.lease or 0
        self.outcome = "ok"
        self.ended: Ended | None = None  # set on leaving the block: the recorded window

    def confirm(self) -> Verdict:
        """Raises ``Vetoed`` only if the watchdog positively knows the position closed."""
        verdict = self._client.confirm(self.symbol, self.side, self.lease)
        if not verdict.allowed:
            raise Vetoed("confirm", verdict)
        return verdict


class WatchdogClient:
    """Blocking client (redis-py). Cheap calls: one EVALSHA round trip per verdict."""

    def __init__(self, client: redis.Redis, account: str, *, max_age_ms: int | None = None,
                 default_lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS) -> None:
        self.redis = client
        self._p = _Protocol(account, max_age_ms)
        self._ttl_ms = default_lease_ttl_ms
        self._sha = {name: script_sha(name) for name in BOT_SCRIPTS}

    @classmethod
    def from_url(cls, url: str, account: str, *, max_age_ms: int | None = None,
                 socket_timeout_s: float = 0.5, default_lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS,
                 client_name: str = "watchdog-client") -> WatchdogClient:
        client = connect_sync(url, socket_timeout_s=socket_timeout_s, client_name=client_name)
        return cls(client, account, max_age_ms=max_age_ms, default_lease_ttl_ms=default_lease_ttl_ms)

    def close(self) -> None:
        self.redis.close()

    def _call(self, name: str, call: _Call) -> Any:
        keys, args = call
        run = self.redis.evalsha_ro if name in _READ_ONLY else self.redis.evalsha
        try:
            return run(self._sha[name], len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            # Redis restarted or SCRIPT FLUSH: load it (a bot ACL without SCRIPT LOAD gets
            # NOPERM here, i.e. watchdog_down until the watchdog's next heartbeat reloads it).
            self.redis.script_load(script_source(name))
            return run(self._sha[name], len(keys), *keys, *args)

    def check(self, symbol: str, side: str = "BOTH") -> Verdict:
        """Read-only verdict; an unreachable Redis is VETO ``watchdog_down``."""
        try:
            return self._p.verdict(self._call("check", self._p.check(symbol, side)))
        except _ERRORS as exc:
            _log.warning("watchdog check %s:%s failed, answering watchdog_down: %r", symbol, side, exc)
            return _DOWN

    def begin(self, symbol: str, side: str = "BOTH", *, holder: str, ttl_ms: int | None = None) -> Verdict:
        """Before cancelling a stop: ALLOW with a lease, or VETO with a reason.

        Raises:
            ValueError: ``holder`` is not 1-128 printable ASCII characters, ``ttl_ms`` not an
                integer from 1 to 600,000, or ``symbol``/``side`` cannot be part of a key.
        """
        try:
            call = self._p.begin(symbol, side, holder, ttl_ms or self._ttl_ms)
            return self._p.verdict(self._call("begin", call))
        except _ERRORS as exc:
            _log.warning("watchdog begin %s:%s failed, answering watchdog_down: %r", symbol, side, exc)
            return _DOWN

    def confirm(self, symbol: str, side: str, lease: int) -> Verdict:
        """After the cancel, before the create: VETO only on a known closure."""
        try:
            return self._p.verdict(self._call("confirm", self._p.confirm(symbol, side, lease)))
        except _ERRORS as exc:
            _log.warning("watchdog confirm %s:%s failed, answering unverified: %r", symbol, side, exc)
            return Verdict(True, "unverified", lease)

    def end(self, symbol: str, side: str, lease: int, outcome: str = "ok") -> Ended:
        """Release the lease and record the unprotected window."""
        try:
            return self._p.ended(self._call("end", self._p.end(symbol, side, lease, outcome)))
        except _ERRORS as exc:
            _log.warning("watchdog end %s:%s lease %s failed (the lease expires by itself): %r",
                         symbol, side, lease, exc)
            return Ended(False, "watchdog_down", None)

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
            for event in self._p.events(reply):
                last_id = event.id
                yield event


class AsyncGuard:
    """Async twin of :class:`Guard`."""

    def __init__(self, client: AsyncWatchdogClient, symbol: str, side: str, begun: Verdict) -> None:
        self._client, self.symbol, self.side, self.begun = client, symbol, side, begun
        self.lease: int = begun.lease or 0
        self.outcome = "ok"
        self.ended: Ended | None = None  # set on leaving the block: the recorded window

    async def confirm(self) -> Verdict:
        verdict = await self._client.confirm(self.symbol, self.side, self.lease)
        if not verdict.allowed:
            raise Vetoed("confirm", verdict)
        return verdict


class AsyncWatchdogClient:
    """asyncio client (redis.asyncio); same contract as :class:`WatchdogClient`."""

    def __init__(self, client: redis.asyncio.Redis, account: str, *, max_age_ms: int | None = None,
                 default_lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS) -> None:
        self.redis = client
        self._p = _Protocol(account, max_age_ms)
        self._ttl_ms = default_lease_ttl_ms
        self._sha = {name: script_sha(name) for name in BOT_SCRIPTS}

    @classmethod
    def from_url(cls, url: str, account: str, *, max_age_ms: int | None = None,
                 socket_timeout_s: float = 0.5, default_lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS,
                 client_name: str = "watchdog-client") -> AsyncWatchdogClient:
        client = connect(url, socket_timeout_s=socket_timeout_s, client_name=client_name, retries=1)
        return cls(client, account, max_age_ms=max_age_ms, default_lease_ttl_ms=default_lease_ttl_ms)

    async def close(self) -> None:
        await self.redis.aclose()

    async def _call(self, name: str, call: _Call) -> Any:
        keys, args = call
        run = self.redis.evalsha_ro if name in _READ_ONLY else self.redis.evalsha
        try:
            return await run(self._sha[name], len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            await self.redis.script_load(script_source(name))
            return await run(self._sha[name], len(keys), *keys, *args)

    async def check(self, symbol: str, side: str = "BOTH") -> Verdict:
        try:
            return self._p.verdict(await self._call("check", self._p.check(symbol, side)))
        except _ERRORS as exc:
            _log.warning("watchdog check %s:%s failed, answering watchdog_down: %r", symbol, side, exc)
            return _DOWN

    async def begin(self, symbol: str, side: str = "BOTH", *, holder: str,
                    ttl_ms: int | None = None) -> Verdict:
        try:
            call = self._p.begin(symbol, side, holder, ttl_ms or self._ttl_ms)
            return self._p.verdict(await self._call("begin", call))
        except _ERRORS as exc:
            _log.warning("watchdog begin %s:%s failed, answering watchdog_down: %r", symbol, side, exc)
            return _DOWN

    async def confirm(self, symbol: str, side: str, lease: int) -> Verdict:
        try:
            return self._p.verdict(await self._call("confirm", self._p.confirm(symbol, side, lease)))
        except _ERRORS as exc:
            _log.warning("watchdog confirm %s:%s failed, answering unverified: %r", symbol, side, exc)
            return Verdict(True, "unverified", lease)

    async def end(self, symbol: str, side: str, lease: int, outcome: str = "ok") -> Ended:
        try:
            return self._p.ended(await self._call("end", self._p.end(symbol, side, lease, outcome)))
        except _ERRORS as exc:
            _log.warning("watchdog end %s:%s lease %s failed (the lease expires by itself): %r",
                         symbol, side, lease, exc)
            return Ended(False, "watchdog_down", None)

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

    async def last_event_id(self) -> str:
        newest = await self.redis.xrevrange(self._p.keys.events, count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def subscribe(self, *, last_id: str = "$", block_ms: int = 1000) -> AsyncIterator[WatchdogEvent]:
        """Async twin of :meth:`WatchdogClient.subscribe`."""
        if last_id == "$":
            last_id = await self.last_event_id()
        while True:
            reply = await self.redis.xread({self._p.keys.events: last_id}, block=block_ms, count=100)
            for event in self._p.events(reply):
                last_id = event.id
                yield event


def check_position(url: str, account: str, symbol: str, side: str = "BOTH", *,
                   max_age_ms: int | None = None, socket_timeout_s: float = 2.0) -> Verdict:
    """One-shot read-only verdict (``position-watchdog check``); unreachable Redis → ``watchdog_down``.

    Raises:
        ValueError: ``symbol``, ``side`` or ``account`` cannot be part of a key (a usage error).
    """
    protocol = _Protocol(account, max_age_ms)
    protocol.check(symbol, side)  # validates before connecting
    client = WatchdogClient.from_url(url, account, max_age_ms=max_age_ms, socket_timeout_s=socket_timeout_s,
                                     client_name="position-watchdog-check")
    try:
        return client.check(symbol, side)
    finally:
        client.close()
