"""Redis connections: URL validation, one explicit retry layer, and error translation.

STYLE §8.7 rule 3: redis-py's own ``Retry`` is the only retry layer for Redis. It is configured
here, explicitly, and nothing above it retries again. Every redis-py exception is translated
once, by :func:`map_redis_errors`, into the ``watchdog.errors`` tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import redis
import redis.asyncio
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from watchdog.config import redact_url  # stdlib-only module: no cycle, one redaction rule
from watchdog.errors import StoreError, StoreUnavailable

__all__ = [
    "connect",
    "connect_sync",
    "map_redis_errors",
    "validate_redis_url",
]

_SCHEMES = ("redis", "rediss", "unix")
# Transient by nature: the server is unreachable, slow, or still loading its data set.
_TRANSIENT = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError)


def validate_redis_url(url: str) -> str:
    """Return ``url`` if redis-py can use it, else raise ``ValueError`` with a one-line reason.

    Accepted: ``redis://[user:pass@]host[:port][/db]``, ``rediss://…`` (TLS) and
    ``unix:///path/to/redis.sock[?db=N]``. Config wraps the ``ValueError`` in a ``ConfigError``.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ValueError(f"malformed URL {redact_url(url)!r}: {exc}") from exc
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {redact_url(url)!r}")
    if parts.scheme == "unix" and not parts.path:
        raise ValueError(f"unix:// URL needs a socket path (unix:///run/redis.sock), got {redact_url(url)!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"{parts.scheme}:// URL needs a host, got {redact_url(url)!r}")
    return url


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


@contextmanager
def map_redis_errors(operation: str, url: str = "") -> Iterator[None]:
    """Translate redis-py exceptions raised inside the block; names the operation and server."""
    where = f" ({redact_url(url)})" if url else ""
    try:
        yield
    except _TRANSIENT as exc:
        raise StoreUnavailable(f"redis {operation}{where}: {type(exc).__name__}: {exc}") from exc
    except redis_errors.RedisError as exc:
        raise StoreError(f"redis {operation}{where}: {type(exc).__name__}: {exc}") from exc
