"""Redis connections with one explicit retry layer (redis-py's own ``Retry``, configured here).

Nothing above these clients retries again. The daemon's store uses :func:`connect` too and
translates redis-py's exceptions at its own seam (``watchdog.store.connection``).

Redis Sentinel: give ``sentinels`` (``["host:port", …]``) and ``sentinel_master`` and the client
asks the sentinels for the current master and follows it after a failover (redis-py's
``Sentinel.master_for``). The URL then only supplies the master's credentials, database and TLS
(its host and port are not used).

Redis Cluster: ``cluster=True`` and the URL of one node; every key of an account carries the
``{ACCOUNT}`` hash tag, so each script call goes to the one node owning that slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

from poswatch.urls import validate_redis_url

__all__ = ["connect", "connect_sync", "parse_sentinels"]


def parse_sentinels(sentinels: Sequence[str]) -> list[tuple[str, int]]:
    """``["host:port", …]`` → ``[(host, port), …]``; ``[::1]:26379`` for IPv6. Raises
    ``ValueError`` naming the bad entry."""
    out: list[tuple[str, int]] = []
    for entry in sentinels:
        host, sep, port = entry.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected a sentinel as host:port, got {entry!r}")
        out.append((host, int(port)))
    return out


def _master_kwargs(url: str) -> dict[str, Any]:
    """What the URL says about the master besides where it is (user, password, db, TLS)."""
    kwargs: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    for where in ("host", "port", "path"):
        kwargs.pop(where, None)
    return kwargs


def connect(url: str, *, socket_timeout_s: float, client_name: str, retries: int = 3,
            sentinels: Sequence[str] = (), sentinel_master: str = "",
            cluster: bool = False) -> redis.asyncio.Redis:
    """An asyncio client with bounded, jittered retries on connection errors and timeouts."""
    validate_redis_url(url)
    options: dict[str, Any] = {
        "decode_responses": True, "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": socket_timeout_s, "client_name": client_name,
        "retry": AsyncRetry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), retries)}
    if sentinels:
        sentinel = redis.asyncio.sentinel.Sentinel(
            parse_sentinels(sentinels), socket_timeout=socket_timeout_s,
            sentinel_kwargs={"socket_timeout": socket_timeout_s,
                             "socket_connect_timeout": socket_timeout_s})
        master: redis.asyncio.Redis = sentinel.master_for(sentinel_master, **_master_kwargs(url),
                                                          **options)
        return master
    if cluster:
        return redis.asyncio.RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(url, **options)
    return client


def connect_sync(url: str, *, socket_timeout_s: float, client_name: str,
                 sentinels: Sequence[str] = (), sentinel_master: str = "",
                 cluster: bool = False) -> redis.Redis:
    """A blocking client for bots: one immediate retry on a dropped connection, none on timeout.

    A pooled connection is often dead after a Redis restart; one reconnect fixes that. A timeout
    is not retried because ``begin`` may have executed: the bot gets its answer late or not at all.
    """
    validate_redis_url(url)
    options: dict[str, Any] = {
        "decode_responses": True, "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": socket_timeout_s, "client_name": client_name,
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis_errors.ConnectionError,))}
    if sentinels:
        sentinel = redis.sentinel.Sentinel(
            parse_sentinels(sentinels), socket_timeout=socket_timeout_s,
            sentinel_kwargs={"socket_timeout": socket_timeout_s,
                             "socket_connect_timeout": socket_timeout_s})
        master: redis.Redis = sentinel.master_for(sentinel_master, **_master_kwargs(url), **options)
        return master
    if cluster:
        return redis.RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    client: redis.Redis = redis.Redis.from_url(url, **options)
    return client
