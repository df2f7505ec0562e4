"""A graceful stop is visible to bots at once: right after ``run()`` returns (or the process
exits on SIGTERM) every verdict is ``watchdog_down``, long before the health hash could have
expired. A stop while Redis is unreachable only logs and still exits 0."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from poswatch.client import AsyncWatchdogClient
from tests.integration.test_daemon import (
    ACCOUNT,
    KEYS,
    cli_process,
    config_table,
    start_daemon,
    stderr_of,
    write_toml,
)
from tests.support.waiting import eventually
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

_LONG_TTL_MS = 60_000  # the hash cannot expire during a test: only the stop can remove it


def long_ttl_table(sim: Simulator, redis_url: str) -> dict[str, Any]:
    table = config_table(sim, redis_url)
    table["redis"]["health_ttl_ms"] = _LONG_TTL_MS
    return table


@pytest.fixture
async def bot(redis_url: str) -> AsyncIterator[AsyncWatchdogClient]:
    client = AsyncWatchdogClient.from_url(redis_url, ACCOUNT)
    yield client
    await client.close()


async def test_run_returning_leaves_watchdog_down_not_a_live_looking_health(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis,
        bot: AsyncWatchdogClient) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    daemon, stop = start_daemon(sim, long_ttl_table(sim, redis_url))
    try:
        verdict = await eventually(lambda: bot.check("BASUSDT"), lambda v: v.allowed,
                                   timeout_s=30, what="check allows while the daemon runs")
        assert verdict.reason == "ok"
    finally:
        stop.set()
        code = await asyncio.wait_for(daemon, timeout=20)
    assert code == 0
    assert await rclient.exists(KEYS.health) == 0
    verdict = await bot.check("BASUSDT")
    assert (verdict.allowed, verdict.reason) == (False, "watchdog_down")
    kinds = [fields["kind"] for _, fields in await rclient.xrange(KEYS.events)]
    assert "watchdog_stopped" in kinds


async def test_sigterm_makes_watchdog_down_before_the_process_is_gone(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis,
        bot: AsyncWatchdogClient, tmp_path: Path) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    config = write_toml(tmp_path / "config.toml", long_ttl_table(sim, redis_url))
    async with cli_process("run", "--config", str(config), key=sim.api_key,
                           secret=sim.api_secret) as process:
        await eventually(lambda: bot.check("BASUSDT"), lambda v: v.allowed, timeout_s=30,
                         what="check allows while the daemon runs")
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=20)
    assert process.returncode == 0, await stderr_of(process)
    assert (await bot.check("BASUSDT")).reason == "watchdog_down"
    assert await rclient.pttl(KEYS.health) == -2  # gone, not merely expiring


async def test_stop_while_redis_is_unreachable_only_logs_and_exits_0(
        sim: Simulator, redis_server: Any, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    table = long_ttl_table(sim, redis_url)
    table["redis"]["socket_timeout_s"] = 0.5
    daemon, stop = start_daemon(sim, table)
    try:
        await eventually(lambda: rclient.hget(KEYS.health, "ready"), lambda v: v == "true",
                         timeout_s=30, what="daemon ready")
        redis_server.stop()
        stop.set()
        assert await asyncio.wait_for(daemon, timeout=20) == 0
    finally:
        stop.set()
        if redis_server.process is None:
            redis_server.start()


async def read_until(process: asyncio.subprocess.Process, needle: str, *,
                     timeout_s: float) -> list[str]:
    """stderr lines up to and including the first that contains ``needle``."""
    assert process.stderr is not None
    seen: list[str] = []
    async with asyncio.timeout(timeout_s):
        while True:
            line = (await process.stderr.readline()).decode(errors="replace")
            if not line:
                raise AssertionError(f"stderr ended before {needle!r}: {''.join(seen)}")
            seen.append(line)
            if needle in line:
                return seen


async def test_sigterm_during_startup_exits_0_with_a_log_line(
        sim: Simulator, redis_url: str, tmp_path: Path) -> None:
    """Binance unreachable: startup retries the server-time sync for seconds. A SIGTERM then
    (systemctl stop, a TimeoutStartSec) ends the process as documented (0, one log line),
    not by the default handler (-15, nothing said)."""
    from watchdog.demo.processes import free_port

    table = config_table(sim, redis_url)
    dead = free_port()  # nothing listens there: every connect is refused at once
    table["binance"] |= {"rest_url": f"http://127.0.0.1:{dead}", "ws_url": f"ws://127.0.0.1:{dead}"}
    config = write_toml(tmp_path / "config.toml", table)
    async with cli_process("run", "--config", str(config), key=sim.api_key,
                           secret=sim.api_secret) as process:
        before = await read_until(process, "retrying", timeout_s=30)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=20)
        err = "".join(before) + await stderr_of(process)
    assert process.returncode == 0, err
    assert "stopping on signal" in err, err
