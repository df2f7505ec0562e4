"""Redis connections with one explicit retry layer (redis-py's own ``Retry``, configured here).

Nothing above these clients retries again. The daemon's store uses :func:`connect` too and
translates redis-py's exceptions at its own seam (``watchdog.store.connection``).
"""

from __future__ import annotations

import redis
import redis.asyncio
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from poswatch.urls import validate_redis_url

__all__ = ["connect", "connect_sync"]


def connect(url: str, *, socket_timeout_s: float, client_name: str,
            retries: int = 3) -> redis.asyncio.Redis:
    """An asyncio client with bounded, jittered retries on connection errors and timeouts."""
    validate_redis_url(url)
    return redis.asyncio.Redis.from_url(
        url, decode_responses=True, socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s, client_name=client_name,
        retry=AsyncRetry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), retries),
    )


def connect_sync(url: str, *, socket_timeout_s: float, client_name: str) -> redis.Redis:
    """A blocking client for bots: one immediate retry on a dropped connection, none on timeout.

    A pooled connection is often dead after a Redis restart; one reconnect fixes that. A timeout
    is not retried because ``begin`` may have executed: the bot gets its answer late or not at all.
    """
    validate_redis_url(url)
    return redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s, client_name=client_name,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis_errors.ConnectionError,)),
    )
