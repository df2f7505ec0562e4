"""Redis connections of the daemon: the client's (one retry layer, URL checks) and error translation.

redis-py's own ``Retry`` is the only retry layer for Redis; it is configured once, in
:mod:`poswatch.connection`, shared with the bots' client, and nothing above it retries
again. Every redis-py exception is translated once, by :func:`map_redis_errors`, into the
``watchdog.errors`` tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis import exceptions as redis_errors

from poswatch.connection import connect, connect_sync
from poswatch.urls import redact_url, validate_redis_url
from watchdog.errors import Fenced, StoreError, StoreUnavailable

__all__ = [
    "connect",
    "connect_sync",
    "map_redis_errors",
    "validate_redis_url",
]

# Transient by nature: the server is unreachable, slow, or still loading its data set.
# A replica answering READONLY is a failover in progress (Sentinel: the client finds the new master).
_TRANSIENT = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError,
              redis_errors.ReadOnlyError)


@contextmanager
def map_redis_errors(operation: str, url: str = "") -> Iterator[None]:
    """Translate redis-py exceptions raised inside the block; names the operation and server."""
    where = f" ({redact_url(url)})" if url else ""
    try:
        yield
    except _TRANSIENT as exc:
        raise StoreUnavailable(f"redis {operation}{where}: {type(exc).__name__}: {exc}") from exc
    except redis_errors.ResponseError as exc:
        if str(exc).startswith("FENCED"):
            raise Fenced(f"redis {operation}{where}: {exc}") from exc
        raise StoreError(f"redis {operation}{where}: {type(exc).__name__}: {exc}") from exc
    except redis_errors.RedisError as exc:
        raise StoreError(f"redis {operation}{where}: {type(exc).__name__}: {exc}") from exc
