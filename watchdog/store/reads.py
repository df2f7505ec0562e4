"""What the daemon reads back from Redis: registrations, events, leases, what an earlier run
showed, the bots' windows (I/O shell, read-only).

None of it is ever taken as truth about a position: positions come from Binance only. These
are the publisher's reads (:class:`StoreReads` is its base class), apart from its writes so that
each side can be read alone.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio
from loguru import logger

from poswatch.calls import ScriptCall, WatchdogCalls
from watchdog.core.model import PositionKey, PositionState
from watchdog.store.connection import map_redis_errors
from watchdog.store.keys import AccountKeys, member_of, parse_lease_member, parse_member
from watchdog.store.runner import ScriptRunner

__all__ = ["StoreReads"]


class StoreReads:
    """Reads of one account's keys; the publisher sets these attributes up."""

    _redis: redis.asyncio.Redis
    _url: str
    _runner: ScriptRunner
    keys: AccountKeys
    calls: WatchdogCalls
    _odd_members: set[str]  # malformed lease members already reported (once each)

    async def _read(self, call: ScriptCall) -> Any:
        """A call outside the fence (leadership, reads): errors mapped, never a step down."""
        with map_redis_errors(call.script, self._url):
            return await self._runner.one(call)

    async def instances(self) -> list[tuple[str, int]]:
        """Every registered instance (leader and standbys) with its registration expiry ms."""
        with map_redis_errors("instances", self._url):
            # decode_responses=True: (str, float) pairs (redis-py's stubs cannot express that).
            rows: Any = await self._redis.zrange(self.keys.instances, 0, -1, withscores=True)
        return [(str(name), int(score)) for name, score in rows]

    async def last_event_id(self) -> str:
        """Id of the newest entry of the events stream ("0-0" when empty): where a reader
        that wants only what comes next starts."""
        with map_redis_errors("events_last_id", self._url):
            newest = await self._redis.xrevrange(self.keys.events, count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def read_events(self, after_id: str, *, block_ms: int,
                          count: int = 200) -> list[tuple[str, dict[str, str]]]:
        """Entries of the events stream after ``after_id``, waiting up to ``block_ms`` for one
        (keep ``block_ms`` below the socket timeout). Read-only: for the metrics' tail."""
        with map_redis_errors("events_read", self._url):
            reply: Any = await self._redis.xread({self.keys.events: after_id}, block=block_ms,
                                                 count=count)
        return [(str(entry_id), {str(k): str(v) for k, v in fields.items()})
                for _stream, entries in reply or () for entry_id, fields in entries]

    async def guard_told(self, keys: frozenset[PositionKey], *, page: int = 500,
                         limit: int = 10_000) -> dict[PositionKey, tuple[int | None, bool]]:
        """What an earlier leader told about ``keys``' protection (core/guard.py rule 7): the
        ``unprotected_since_ms`` its hash shows (None unless none/partial) and whether its last
        guard event for the position is ``position_unprotected`` (the events stream read newest
        first, at most ``limit`` entries — ``[redis] events_maxlen`` — until every key is
        answered). Unparsable fields count as not told."""
        ordered = sorted(keys, key=str)
        if not ordered:
            return {}
        with map_redis_errors("guard_told", self._url):
            pipe = self._redis.pipeline(transaction=False)
            for key in ordered:
                pipe.hmget(self.keys.position(key), "protection", "unprotected_since_ms")
            replies = await pipe.execute()
        since: dict[PositionKey, int | None] = {}
        for key, (protection, started) in zip(ordered, replies, strict=True):
            text, shown = _text(started), _text(protection)
            since[key] = int(text) if shown in ("none", "partial") and text.isdigit() else None
        members = {member_of(key): key for key in ordered}
        last: dict[PositionKey, tuple[bool, int | None]] = {}
        newest, read = "+", 0
        while len(last) < len(members) and read < limit:
            with map_redis_errors("guard_told", self._url):
                entries: list[Any] = list(await self._redis.xrevrange(
                    self.keys.events, max=newest, min="-", count=page) or [])
            for _, raw in entries:
                fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
                member = members.get(fields.get("position", ""))
                kind = fields.get("kind")
                if member is None or member in last or kind not in ("position_unprotected",
                                                                    "position_protected"):
                    continue
                started = fields.get("unprotected_since_ms", "")
                last[member] = (kind == "position_unprotected",
                                int(started) if started.isdigit() else None)
            read += len(entries)
            if len(entries) < page:
                break
            newest = "(" + _text(entries[-1][0])
        told: dict[PositionKey, tuple[int | None, bool]] = {}
        for key in ordered:
            alerted, alert_since = last.get(key, (False, None))
            started_ms = since[key] if since[key] is not None else alert_since if alerted else None
            if started_ms is not None or alerted:
                told[key] = (started_ms, alerted)
        return told

    async def published_keys(self) -> frozenset[PositionKey]:
        """Every position an earlier run published (the index set), for the core to re-verify
        after a restart. Only keys: their values are never read back as truth."""
        with map_redis_errors("published_keys", self._url):
            members = await self._redis.smembers(self.keys.positions)
        keys: set[PositionKey] = set()
        for member in members:
            text = member.decode() if isinstance(member, bytes) else str(member)
            try:
                keys.add(parse_member(text))
            except ValueError:
                logger.warning("ignoring malformed member {!r} of {}", text, self.keys.positions)
        return frozenset(keys)

    async def last_shown(self, keys: frozenset[PositionKey]
                         ) -> dict[PositionKey, tuple[PositionState, int]]:
        """The OPEN/CLOSED state (with its ``verified_ms``) Redis holds for ``keys``: what an
        earlier run last told bots, so that a change while no watchdog ran is told too
        (core/book.py rule 10). Never truth about the position: REST alone decides that.
        Unknown, missing or unparsable entries are left out (logged)."""
        ordered = sorted(keys, key=str)
        if not ordered:
            return {}
        with map_redis_errors("last_shown", self._url):
            pipe = self._redis.pipeline(transaction=False)
            for key in ordered:
                pipe.hmget(self.keys.position(key), "state", "verified_ms")
            replies = await pipe.execute()
        shown: dict[PositionKey, tuple[PositionState, int]] = {}
        for key, (state, verified) in zip(ordered, replies, strict=True):
            text = state.decode() if isinstance(state, bytes) else state
            if text not in (PositionState.OPEN.value, PositionState.CLOSED.value):
                continue  # unknown or expired: nothing was told that a change could contradict
            try:
                verified_ms = int(verified)
            except (TypeError, ValueError):
                logger.warning("ignoring {} of an earlier run: verified_ms {!r} is not an integer",
                               member_of(key), verified)
                continue
            shown[key] = (PositionState(text), verified_ms)
        return shown

    async def leased_symbols(self) -> frozenset[PositionKey]:
        """Positions under a live lease: the poller polls them fast until the lease ends."""
        members = await self._read(self.calls.leased())
        keys: set[PositionKey] = set()
        for member in map(str, members):
            parsed = parse_lease_member(member)
            keys |= parsed
            exact = len(parsed) == 1 and member_of(next(iter(parsed))) == member
            if not exact and member not in self._odd_members:
                self._odd_members.add(member)  # a bot's malformed member: say so once
                logger.warning("malformed lease member {!r} in {} (from a bot's begin): read as "
                               "{}", member, self.keys.leases, sorted(map(str, parsed)) or "none")
        return frozenset(keys)

    async def lease_ends_in(self) -> dict[PositionKey, int]:
        """Live leases and the ms each has left by Redis' own clock (TIME and the zset read in
        one transaction), so the guard can place their ends on its own clock without skew."""
        # One read-only script, not MULTI/TIME (lease_ends.lua says why).
        secs, micros, flat = await self._read(self.calls.lease_ends())
        now_ms = int(secs) * 1000 + int(micros) // 1000
        left: dict[PositionKey, int] = {}
        pairs = list(flat)
        for member, score in zip(pairs[0::2], pairs[1::2], strict=True):
            text = member.decode() if isinstance(member, bytes) else str(member)
            remaining = int(min(float(score) - now_ms, 2.0**53))
            if remaining <= 0:
                continue
            for key in parse_lease_member(text):  # lenient, as ``leased_symbols``
                left[key] = max(left.get(key, 0), remaining)
        return left

    async def read_windows(self) -> dict[str, str]:
        """The bots' unprotected windows per position (last window JSON, count, max)."""
        with map_redis_errors("read_windows", self._url):
            raw = await self._redis.hgetall(self.keys.windows)
        return {str(name): str(value) for name, value in raw.items()}


def _text(value: object) -> str:
    """A reply field as text (the client may or may not decode responses)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")
