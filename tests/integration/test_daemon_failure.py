"""A task that FAILS after startup must end the daemon: ``run()`` raises, ``position-watchdog run``
exits non-zero, so systemd's Restart=on-failure fires instead of a hung process waiting for
WatchdogSec. The fault is real: once the daemon is ready the simulator refuses the API key
(-2015) on every REST call; the stream's next listen-key keepalive then raises
AuthenticationFailed, which is fatal, while the poller and the heartbeat are busy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from tests.integration.test_daemon import KEYS, cli_process, config_table, stderr_of, write_toml
from tests.support.waiting import eventually
from watchdog.config import Credentials, parse_config
from watchdog.errors import AuthenticationFailed
from watchdog.runtime.daemon import run
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

_KEY_REFUSED = {"status": 401, "count": 1_000_000, "code": -2015,
                "msg": "Invalid API-key, IP, or permissions for action."}


def failing_table(sim: Simulator, redis_url: str) -> dict[str, Any]:
    table = config_table(sim, redis_url)
    table["binance"]["keepalive_interval_s"] = 0.5  # the PUT that meets the refusal comes soon
    return table


async def test_run_raises_when_a_task_fails_after_startup(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    stop = asyncio.Event()
    daemon = asyncio.create_task(run(parse_config(failing_table(sim, redis_url), "itest.toml"),
                                     Credentials(sim.api_key, sim.api_secret), stop=stop),
                                 name="daemon-under-test")
    try:
        await eventually(lambda: rclient.hget(KEYS.health, "ready"), lambda v: v == "true",
                         timeout_s=30, what="daemon ready")
        sim.set_faults(rest_errors=_KEY_REFUSED)
        with pytest.raises(BaseExceptionGroup) as caught:
            await asyncio.wait_for(asyncio.shield(daemon), timeout=20)
        assert caught.group_contains(AuthenticationFailed)
    finally:
        sim.clear_faults()
        if not daemon.done():
            stop.set()
            daemon.cancel()


async def test_cli_run_exits_77_when_a_task_fails_after_startup(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    config = write_toml(tmp_path / "config.toml", failing_table(sim, redis_url))
    try:
        async with cli_process("run", "--config", str(config), key=sim.api_key,
                               secret=sim.api_secret) as process:
            await eventually(lambda: rclient.hget(KEYS.health, "ready"), lambda v: v == "true",
                             timeout_s=30, what="daemon ready")
            sim.set_faults(rest_errors=_KEY_REFUSED)
            await asyncio.wait_for(process.wait(), timeout=20)
        err = await stderr_of(process)
        assert process.returncode == 77, err
    finally:
        sim.clear_faults()
