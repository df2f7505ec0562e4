"""Where metrics go: the HTTP endpoint on the loop, the atomic textfile, the events-stream tail.

Real sockets and a real redis-server; waits are deadline-based (``eventually``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from loguru import logger
from prometheus_client.parser import text_string_to_metric_families

from tests.support.store import ACCOUNT
from tests.support.waiting import eventually
from watchdog.clock import SystemClock
from watchdog.config import MetricsConfig
from watchdog.core.book import PositionBook
from watchdog.demo.processes import free_port
from watchdog.runtime import metrics_serve
from watchdog.runtime.metrics import PREFIX, Metrics
from watchdog.runtime.metrics_serve import serve_metrics, tail_events, write_textfile
from watchdog.runtime.vitals import Identity, Vitals
from watchdog.store.publisher import RedisPublisher


def make_metrics() -> Metrics:
    vitals = Vitals(Identity(1, "h", "1.0", 0), PositionBook(), weight_budget_1m=360,
                    progress_limit_s=10)
    return Metrics(vitals, SystemClock(), account=ACCOUNT)


def sample(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == PREFIX + name:
                return item.value
    raise AssertionError(f"{PREFIX + name} not in the exposition")


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{level} {message}")
    yield lines
    logger.remove(sink)


@contextlib.asynccontextmanager
async def serving(metrics: Metrics, config: MetricsConfig) -> AsyncIterator[asyncio.Task[None]]:
    task: asyncio.Task[None] = asyncio.create_task(serve_metrics(metrics, config))  # type: ignore[arg-type]
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def get(url: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.request(method, url)


async def answers(url: str) -> httpx.Response | None:
    try:
        return await get(url)
    except httpx.TransportError:
        return None


async def test_endpoint_serves_metrics_on_loopback_and_nothing_else() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with serving(make_metrics(), MetricsConfig(listen=f"127.0.0.1:{port}")):
        response = await eventually(lambda: answers(base + "/metrics"), lambda r: r is not None,
                                    what="the endpoint answers")
        assert response is not None
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert sample(response.text, "running") == 1
        assert (await get(base + "/nope")).status_code == 404
        assert (await get(base + "/metrics", "POST")).status_code == 405
        assert (await get(base + "/")).status_code == 200


async def test_a_port_in_use_is_an_error_retried_never_a_crash(
        monkeypatch: pytest.MonkeyPatch, log_lines: list[str]) -> None:
    monkeypatch.setattr(metrics_serve, "_BIND_RETRY_S", 0.05)
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        async with serving(make_metrics(), MetricsConfig(listen=f"127.0.0.1:{port}")) as task:
            await eventually(lambda: _lines(log_lines), lambda ls: any(
                "ERROR" in line and f"127.0.0.1:{port}/metrics not served" in line for line in ls),
                what="the bind error logged")
            holder.close()
            response = await eventually(lambda: answers(f"http://127.0.0.1:{port}/metrics"),
                                        lambda r: r is not None, what="served once the port is free")
            assert response is not None
            assert response.status_code == 200
            assert not task.done()
    finally:
        holder.close()


async def _lines(lines: list[str]) -> list[str]:
    return list(lines)


async def test_textfile_is_replaced_atomically_and_says_stopped_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "position-watchdog.prom"
    metrics = make_metrics()
    async with serving(metrics, MetricsConfig(textfile_path=str(path), textfile_interval_s=1)):
        text = await eventually(lambda: _read(path), lambda t: bool(t), what="textfile written")
        assert sample(text, "running") == 1
        assert sorted(os.listdir(tmp_path)) == ["position-watchdog.prom"], "no temporary left"
    assert sample(path.read_text(), "running") == 0


async def _read(path: Path) -> str:
    return await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")


def test_unwritable_textfile_is_an_error_logged_once_then_recovered(
        tmp_path: Path, log_lines: list[str]) -> None:
    path = tmp_path / "missing-dir" / "wd.prom"
    metrics = make_metrics()
    assert not write_textfile(metrics, str(path))
    assert not write_textfile(metrics, str(path))
    errors = [line for line in log_lines if line.startswith("ERROR")]
    assert len(errors) == 1
    assert "textfile_path" in errors[0]
    assert str(path) in errors[0]
    path.parent.mkdir()
    assert write_textfile(metrics, str(path))
    assert any("written again" in line for line in log_lines)


async def test_tail_counts_windows_from_bot_ends_after_start_only(publisher: RedisPublisher) -> None:
    await publisher.emit("lease", {"action": "end", "window_ms": "9000"})  # before: not counted
    metrics = make_metrics()
    task = asyncio.create_task(tail_events(publisher, metrics, block_ms=100))
    try:
        count = PREFIX + "unprotected_window_seconds_count"

        async def windows() -> float:
            return metrics.registry.get_sample_value(count) or 0.0

        await eventually(lambda: _started(task), bool, what="tail started")
        # The tail may not have read the stream's newest id yet: emit until one is counted.
        async def emit_and_count() -> float:
            await publisher.emit("lease", {"action": "end", "window_ms": "1400"})
            return await windows()

        await eventually(emit_and_count, lambda n: n >= 1, interval_s=0.1, what="an end counted")
        assert (metrics.registry.get_sample_value(PREFIX + "unprotected_window_seconds_sum") or 0
                ) == pytest.approx(1.4 * await windows())
        await publisher.emit("protection_restored", {"position": "BASUSDT:BOTH"})
        await eventually(lambda: _get(metrics, "protections_restored_total"), lambda v: v == 1,
                         what="protection_restored counted")
    finally:
        await cancel_until_done(task)


async def cancel_until_done(task: asyncio.Task[object]) -> None:
    """Cancel again until the task has ended: redis-py's asyncio client can lose a cancellation
    that lands inside a command (XREAD here), as ``daemon._stop_when`` explains."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.2)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _started(task: asyncio.Task[object]) -> bool:
    return not task.done()


async def _get(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(PREFIX + name) or 0.0
