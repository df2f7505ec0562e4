"""Credentials Binance refuses (-2014, -2015, -1022, an IP outside the key's whitelist):
docs/RULES.md rule 3, a fatal misconfiguration exits with its code, anything later degrades.

At startup a restart cannot fix them: ``position-watchdog run`` exits 77 with one line (systemd
does not restart it, the bot is not held back by a 90 s start timeout). After startup the
watchdog keeps running degraded and keeps saying why (health problem, a log line a minute): a
revoked whitelist entry must not take the watchdog, and the bots' vetoes, away. The faults are
real: a wrong secret (the simulator verifies signatures) and the simulator's
``ip_not_whitelisted``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis.asyncio

from tests.integration.test_daemon import KEYS, cli_process, config_table, stderr_of, write_toml
from tests.support.waiting import eventually
from watchdog.config import Credentials, parse_config
from watchdog.runtime.daemon import run
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

_STARTUP_TIMEOUT_S = 30


@pytest.mark.parametrize("case", ["wrong secret", "unknown key", "ip not whitelisted"])
async def test_rejected_credentials_at_startup_exit_77_with_one_line(
        sim: Simulator, redis_url: str, tmp_path: Path, case: str) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    key, secret = sim.api_key, sim.api_secret
    if case == "wrong secret":
        secret = "not-the-secret"
    elif case == "unknown key":
        key = "no-such-key"
    else:
        sim.set_faults(ip_not_whitelisted=True)
    config = write_toml(tmp_path / "config.toml", config_table(sim, redis_url))
    try:
        async with cli_process("run", "--config", str(config), key=key, secret=secret) as process:
            await asyncio.wait_for(process.wait(), timeout=_STARTUP_TIMEOUT_S)
            err = await stderr_of(process)
    finally:
        sim.clear_faults()
    assert process.returncode == 77, err
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, err
    assert ("-1022" if case == "wrong secret" else "-2015") in errors[0]
    assert "not-the-secret" not in err


async def test_credentials_rejected_after_startup_degrade_and_say_why(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    from loguru import logger

    sim.fill("BASUSDT", "BUY", "1216")
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{level} {message}")
    stop = asyncio.Event()
    daemon = asyncio.create_task(run(parse_config(config_table(sim, redis_url), "itest.toml"),
                                     Credentials(sim.api_key, sim.api_secret), stop=stop),
                                 name="daemon-under-test")
    try:
        await eventually(lambda: rclient.hget(KEYS.health, "ready"), lambda v: v == "true",
                         timeout_s=_STARTUP_TIMEOUT_S, what="daemon ready")
        sim.set_faults(ip_not_whitelisted=True)
        problems = await eventually(
            lambda: rclient.hget(KEYS.health, "problems"),
            lambda v: v is not None and "rejects the credentials" in v and "-2015" in v,
            timeout_s=20, what="the rejection named in the health problems")
        assert any(p.startswith("Binance rejects the credentials") for p in json.loads(problems))
        # Several polls (every 0.2 s here) met the refusal; the log said it once.
        await eventually(lambda: rclient.hget(KEYS.health, "positions_unknown"),
                         lambda v: v is not None and int(v) >= 1, timeout_s=20,
                         what="the position turned unknown")
        assert not daemon.done()
        said = [line for line in lines if "rejects the credentials" in line]
        assert len(said) == 1, said
        sim.clear_faults()
        await eventually(lambda: rclient.hget(KEYS.health, "problems"),
                         lambda v: v is not None and "rejects the credentials" not in v,
                         timeout_s=20, what="the problem gone once Binance accepts the key")
        assert not daemon.done()
    finally:
        logger.remove(sink)
        sim.clear_faults()
        stop.set()
        assert await asyncio.wait_for(daemon, timeout=20) == 0
