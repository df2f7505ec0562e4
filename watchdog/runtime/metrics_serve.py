"""Where the metrics go: an HTTP ``/metrics`` endpoint and/or a node_exporter textfile, and the
tail of the events stream that feeds the bots' unprotected windows.

Why an asyncio server of our own instead of ``prometheus_client.start_http_server``: that one
serves from a thread, which would read the book while the core loop changes it. Served on the
loop, a scrape reads a consistent state, and a hung loop fails the scrape (Prometheus ``up``
goes 0) instead of serving numbers that stopped moving.

Metrics never stop the watchdog: a port in use or an unwritable textfile directory is logged
as an ERROR and retried; the safety job goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn

from loguru import logger
from prometheus_client import generate_latest

from watchdog.cancel import raise_if_cancelling
from watchdog.config import MetricsConfig, parse_listen
from watchdog.errors import StoreError
from watchdog.runtime.metrics import Metrics
from watchdog.store.publisher import RedisPublisher

__all__ = ["serve_metrics", "tail_events", "write_textfile"]

_BIND_RETRY_S = 30.0
_REQUEST_TIMEOUT_S = 5.0
_MAX_REQUEST = 16 * 1024
_TAIL_RETRY_S = 2.0
# The classic text format, read by every Prometheus (2.x included); our names are plain ASCII,
# so the body is the same whatever newer format prometheus_client calls "latest".
_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def serve_metrics(metrics: Metrics, config: MetricsConfig) -> NoReturn:
    """Serve ``config.listen`` and write ``config.textfile_path`` until cancelled; on the way out
    the textfile is written once more with ``running`` 0."""
    server: asyncio.Server | None = None
    next_bind = 0.0
    next_write = 0.0
    loop = asyncio.get_running_loop()
    try:
        while True:
            now = loop.time()
            if config.listen and server is None and now >= next_bind:
                server = await _bind(metrics, config.listen)
                next_bind = now + _BIND_RETRY_S
            if config.textfile_path and now >= next_write:
                write_textfile(metrics, config.textfile_path)
                next_write = now + config.textfile_interval_s
            waits = [t for t, on in ((next_bind, config.listen and server is None),
                                     (next_write, config.textfile_path)) if on]
            await asyncio.sleep(max(0.0, min(waits) - loop.time()) if waits else 3600.0)
    finally:
        if server is not None:
            server.close()  # no wait: the task is being cancelled
        metrics.stopped()
        if config.textfile_path:
            write_textfile(metrics, config.textfile_path)


async def _bind(metrics: Metrics, listen: str) -> asyncio.Server | None:
    host, port = parse_listen(listen)
    try:
        server = await asyncio.start_server(_handler(metrics), host, port, limit=_MAX_REQUEST)
    except OSError as exc:
        logger.error("metrics endpoint http://{}/metrics not served ({}); the watchdog runs on and "
                     "retries every {:.0f}s: check [metrics] listen", listen,
                     exc.strerror or exc, _BIND_RETRY_S)
        return None
    logger.info("metrics served on http://{}/metrics", listen)
    return server


def _handler(metrics: Metrics) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                           Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, body, kind = _answer(metrics, head)
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}"
                         "\r\nConnection: close\r\n\r\n".encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError) as exc:
            if isinstance(exc, TimeoutError):
                raise_if_cancelling(exc)
            logger.debug("metrics request dropped: {}: {}", type(exc).__name__, exc)
        finally:
            writer.close()
    return handle


def _answer(metrics: Metrics, head: bytes) -> tuple[str, bytes, str]:
    """Status line, body and content type for one request head."""
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(parts) != 3:
        return "400 Bad Request", b"bad request line\n", "text/plain"
    method, target, _version = parts
    path = target.split("?", 1)[0]
    if method not in ("GET", "HEAD"):
        return "405 Method Not Allowed", b"GET only\n", "text/plain"
    if path == "/metrics":
        body = generate_latest(metrics.registry)
        return "200 OK", body if method == "GET" else b"", _CONTENT_TYPE
    if path == "/":
        return "200 OK", b"position-watchdog: metrics at /metrics\n", "text/plain"
    return "404 Not Found", b"not found; metrics at /metrics\n", "text/plain"


_textfile_error: dict[str, str] = {}


def write_textfile(metrics: Metrics, path: str) -> bool:
    """Write the metrics for node_exporter's textfile collector atomically (a temporary file in
    the same directory, then rename: the collector never reads half a file). The temporary name
    does not end in .prom, so the collector skips it. A failure is logged (ERROR once, then
    DEBUG until it works again) and returns False."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(generate_latest(metrics.registry))
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        problem = f"{type(exc).__name__}: {exc.strerror or exc}"
        if _textfile_error.get(path) != problem:
            logger.error("metrics textfile {} not written ({}); retrying every write interval: "
                         "check [metrics] textfile_path and the directory's permissions",
                         path, problem)
        else:
            logger.debug("metrics textfile {} still not written: {}", path, problem)
        _textfile_error[path] = problem
        return False
    if _textfile_error.pop(path, None) is not None:
        logger.info("metrics textfile {} written again", path)
    return True


async def tail_events(store: RedisPublisher, metrics: Metrics, *, block_ms: int) -> NoReturn:
    """Feed each new events-stream entry to ``metrics`` (bots' ``end`` windows, the reaper's
    events). Starts at the newest entry; after a Redis error, starts again at the newest (the
    stream may have been lost with Redis; nothing can be written to it meanwhile anyway)."""
    after: str | None = None
    failing = ""
    while True:
        try:
            if after is None:
                after = await store.last_event_id()
            entries = await store.read_events(after, block_ms=block_ms)
        except StoreError as exc:
            if str(exc) != failing:
                logger.warning("metrics: events stream unreadable, unprotected windows and "
                               "restored protections not counted until it is: {}", exc)
            failing, after = str(exc), None
            await asyncio.sleep(_TAIL_RETRY_S)
            continue
        if failing:
            logger.info("metrics: events stream readable again")
            failing = ""
        for entry_id, fields in entries:
            after = entry_id
            metrics.observe_stream_entry(fields)
