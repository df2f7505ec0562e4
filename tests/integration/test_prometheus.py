"""A real Prometheus server (Debian's ``prometheus`` package) scrapes the daemon, which runs
against the simulator and a real redis-server; metrics are read back through Prometheus's HTTP
API, as a dashboard or an alert would read them. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_daemon import config_table, start_daemon
from tests.support.waiting import eventually
from watchdog.demo.processes import free_port
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")


@contextlib.asynccontextmanager
async def prometheus_server(tmp_path: Path, target: str) -> AsyncIterator[str]:
    """Prometheus on a free loopback port, scraping ``target`` every second; yields its URL."""
    assert PROMETHEUS is not None
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: position-watchdog\n"
        f"    static_configs:\n      - targets: ['{target}']\n")
    log = (tmp_path / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        stdout=log, stderr=asyncio.subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def query(http: httpx.AsyncClient, base: str, promql: str) -> list[dict[str, Any]]:
    """The instant vector of ``promql``; [] while Prometheus is not up yet."""
    try:
        response = await http.get(f"{base}/api/v1/query", params={"query": promql})
    except httpx.TransportError:
        return []
    if response.status_code != 200:
        return []
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def first_value(result: list[dict[str, Any]]) -> float | None:
    return float(result[0]["value"][1]) if result else None


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus package is not installed "
                    "(.ci/bootstrap installs it)")
async def test_prometheus_scrapes_the_daemon_and_answers_queries(
        sim: Simulator, redis_url: str, tmp_path: Path) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    listen = f"127.0.0.1:{free_port()}"
    table = config_table(sim, redis_url)
    table["metrics"] = {"listen": listen}
    daemon, stop = start_daemon(sim, table)
    try:
        async with prometheus_server(tmp_path, listen) as base, httpx.AsyncClient(timeout=5) as http:
            async def ask(promql: str) -> float | None:
                return first_value(await query(http, base, promql))

            assert await eventually(lambda: ask('up{job="position-watchdog"}'), lambda v: v == 1,
                                    timeout_s=60, interval_s=0.25, what="Prometheus scrapes the daemon")
            await eventually(lambda: ask('position_watchdog_stream_state{state="live"}'),
                             lambda v: v == 1, timeout_s=30, interval_s=0.25, what="stream live")
            await eventually(lambda: ask('position_watchdog_positions{state="open"}'),
                             lambda v: v == 1, timeout_s=30, interval_s=0.25, what="one open position")
            sim.fill("BASUSDT", "SELL", "1216")  # the closure is detected and timed
            await eventually(lambda: ask("sum(position_watchdog_closure_detection_seconds_count)"),
                             lambda v: v is not None and v >= 1, timeout_s=30, interval_s=0.25,
                             what="the closure's detection time recorded")
            budget = await ask("position_watchdog_rest_weight_budget_1m")
            assert budget is not None
            assert budget > 0
            scraped = (await http.get(f"http://{listen}/metrics")).text
            assert sim.api_key not in scraped
            assert sim.api_secret not in scraped
    finally:
        stop.set()
        assert await asyncio.wait_for(daemon, timeout=30) == 0
