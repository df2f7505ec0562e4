"""How the daemon's script calls travel to Redis: one EVALSHA, or a batch in one round trip.

The publisher decides what to write and fences it; this module only carries
:class:`poswatch.calls.ScriptCall` values (imperative shell, no decisions). Errors are redis-py's:
the caller maps them once (``watchdog.store.connection.map_redis_errors``).

Redis losing the scripts (SCRIPT FLUSH, a restart, a failover to a replica that never
loaded them) shows as a NOSCRIPT reply to the next call, whichever it is: the heartbeat's
own EVALSHA finds it within a beat. Every script is then loaded again at once, the bots' too
(they call them by the SHAs the health hash names), logged, and the calls retried once.
Scripts cannot be removed one by one in Redis, so any of ours answering means the bots' are
there too: no ``SCRIPT EXISTS`` round trip per beat (it was one of the idle daemon's four
Redis round trips a second, docs/BENCHMARKS.md, session 7).

A single call goes under the client's retry policy (``poswatch.connection``): packed by hiredis
and carried on a pooled connection by :meth:`ScriptRunner.one`, or, without hiredis, by the
client's own ``evalsha``. (redis-py's command path encodes every argument in Python: a
``touch_verified`` of 300 positions has 2,100 of them, ~3 ms per positions poll, a tenth of the
idle daemon's CPU; hiredis packs the same in ~0.5 ms.) A batch is packed at once and read
with one socket timeout for all its replies, never retried
(a retried batch could apply twice), and its connection is dropped on any failure: replies may
be left unread. Without hiredis (the ``fast`` extra), or with a client made with a pure-Python
parser, redis-py packs the batch and the same timed loop reads it
(tests/store/test_pure_python.py).

Rules of this module:
1. The bytes sent are ``pack_command(call.command())``'s, exactly. A call's KEYS of
   ``_KEPT_KEYS`` names or more are packed once per list object and kept while the next call
   brings the very same list (``touch_verified``'s, kept by store/refresh.py while a read's run
   of positions is the same: 305 names a read at 300 positions, ≈ a third of its packing).
   Such a list is never changed in place (refresh.py), so the same list is the same bytes.
   A ``TouchArgs`` ARGV (refresh.py rule 2) whose ``pairs`` are packed already is sent as its
   head packed here and those bytes: the same bytes again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio
from loguru import logger
from redis import exceptions as redis_errors
from redis._parsers import _AsyncHiredisParser
from redis.asyncio.connection import DefaultParser

from poswatch.calls import ScriptCall, sha_of
from poswatch.scripts import BOT_SCRIPTS, WATCHDOG_SCRIPTS, script_source
from watchdog.store.refresh import TouchArgs

__all__ = ["ScriptRunner"]

_pack: Callable[..., bytes] | None
try:
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - the fast extra is optional
    _pack = None

_KEPT_KEYS = 32  # KEYS this long are packed once per list (rule 1): below, not worth the look


def _packs_with_hiredis(client: redis.asyncio.Redis) -> bool:
    """hiredis packs the batches only when the client also reads with hiredis: a client made
    with a pure-Python parser runs the path of a venv without hiredis, end to end."""
    if _pack is None:
        return False
    pool = getattr(client, "connection_pool", None)
    parser = DefaultParser if pool is None else pool.connection_kwargs.get("parser_class", DefaultParser)
    return parser is _AsyncHiredisParser


def _elements(packed: bytes) -> bytes:
    """A packed command without its array header (``*N\\r\\n``): its elements only."""
    return packed[packed.index(b"\r\n") + 2:]


class ScriptRunner:
    """Runs script calls on one asyncio client (plain, Sentinel or Cluster)."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client
        self.hiredis_packs = _packs_with_hiredis(client)
        self.reloads = 0  # NOSCRIPT replies answered by loading every script again
        self._kept_keys: list[str] | None = None  # rule 1: the last long KEYS list packed
        self._kept_packed = b""  # and its elements packed (no array header)

    def _packed(self, call: ScriptCall) -> list[bytes]:
        """``call.command()`` packed by hiredis, as chunks to send in order (rule 1)."""
        keys = call.keys
        if len(keys) < _KEPT_KEYS:
            return [_pack(call.command())]  # type: ignore[misc]
        if keys is not self._kept_keys:
            self._kept_keys, self._kept_packed = keys, _elements(_pack(tuple(keys)))  # type: ignore[misc]
        args = call.args
        head = [b"*%d\r\n" % (3 + len(keys) + len(args)),
                _elements(_pack(("EVALSHA", sha_of(call.script), len(keys)))),  # type: ignore[misc]
                self._kept_packed]
        pairs = getattr(args, "pairs", None)  # refresh.py rule 2: the entries packed already
        if pairs is not None:
            return [*head, _elements(_pack(tuple(args[:TouchArgs.HEAD]))), pairs]  # type: ignore[misc]
        return [*head, _elements(_pack(tuple(args)))]  # type: ignore[misc]

    async def _reload(self, where: str) -> None:
        self.reloads += 1
        logger.warning("Redis lost the scripts (SCRIPT FLUSH, restart or failover; seen by {}): "
                       "loading every script again, the bots' too", where)
        await self.load()

    async def load(self) -> None:
        """Load every script (bots may call them by SHA only)."""
        for name in BOT_SCRIPTS + WATCHDOG_SCRIPTS:
            await self.client.script_load(script_source(name))

    async def run(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Every call's reply, in order; scripts loaded again once when Redis lost them (SCRIPT
        FLUSH, a restart); the first error reply raised after all were read."""
        if len(calls) == 1:
            return [await self.one(calls[0])]
        replies = await self._pipeline(calls)
        if any(isinstance(r, redis_errors.NoScriptError) for r in replies):
            await self._reload(f"a pipeline of {len(calls)}")
            redo = [i for i, r in enumerate(replies) if isinstance(r, redis_errors.NoScriptError)]
            again = await self._pipeline([calls[i] for i in redo])
            for i, reply in zip(redo, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def one(self, call: ScriptCall) -> Any:
        """One EVALSHA under the client's retry policy; a script Redis lost is loaded again."""
        try:
            return await self._one(call)
        except redis_errors.NoScriptError:
            await self._reload(call.script)
            return await self._one(call)

    async def _one(self, call: ScriptCall) -> Any:
        if not self.hiredis_packs or isinstance(self.client, redis.asyncio.RedisCluster):
            return await self.client.evalsha(sha_of(call.script), len(call.keys), *call.keys,
                                             *call.args)
        packed = self._packed(call)
        pool = self.client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]

        async def send() -> Any:
            await conn.send_packed_command(packed)
            return await conn.read_response()

        async def fail(_error: Exception) -> None:
            await conn.disconnect()  # as the client does before it retries

        try:
            # The client's own Retry (connection errors and timeouts, bounded, jittered):
            # what ``evalsha`` would do, without redis-py's per-argument encoding.
            return await conn.retry.call_with_retry(send, fail)
        finally:
            await pool.release(conn)

    async def _pipeline(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """EVALSHA each call in one round trip; error replies come back as exceptions, in place."""
        if isinstance(self.client, redis.asyncio.RedisCluster):
            # Every call of a batch is in the account's slot: the cluster pipeline sends them to
            # that slot's primary in one round trip (and follows MOVED/ASK after a failover).
            cpipe = self.client.pipeline()
            for call in calls:
                cpipe.evalsha(sha_of(call.script), len(call.keys), *call.keys, *call.args)
            return list(await cpipe.execute(raise_on_error=False))
        pool = self.client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            if self.hiredis_packs:
                # hiredis packs a command in ~3 µs where redis-py's pure-Python packer takes ~17 µs.
                packed = [chunk for call in calls for chunk in self._packed(call)]
            else:
                packed = conn.pack_commands(call.command() for call in calls)
            await conn.send_packed_command(packed)
            replies: list[Any] = []
            try:
                # One socket timeout for the whole batch: a timer per reply cost more than
                # reading the reply (docs/BENCHMARKS.md).
                async with asyncio.timeout(conn.socket_timeout):
                    for _ in calls:
                        try:
                            replies.append(await conn.read_response(timeout=math.inf))
                        except redis_errors.ResponseError as exc:  # one script failed: keep reading
                            replies.append(exc)
            except TimeoutError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # a stop, not a slow Redis (cancel.py)
                    raise asyncio.CancelledError("cancelled while a timeout expired") from exc
                raise redis_errors.TimeoutError(
                    f"no reply to a pipeline of {len(calls)} within {conn.socket_timeout}s") from exc
            return replies
        except BaseException:
            await conn.disconnect()  # replies may be left unread: never reuse this connection
            raise
        finally:
            await pool.release(conn)
