"""``position-watchdog run`` with its stderr named by ``$JOURNAL_STREAM``, as systemd starts it:
every line it writes carries a syslog priority (what ``journalctl -p warning`` filters on) and
no timestamp of its own. What the daemon wrote is parsed line by line."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import redis.asyncio

from tests.integration.test_daemon import KEYS, ROOT, config_table, write_toml
from tests.support.waiting import eventually
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

PREFIX = re.compile(r"<([2-7])>(.*)")
HEAD = re.compile(r"(CRITICAL|ERROR|WARNING|SUCCESS|INFO|DEBUG|TRACE)\s*\| (.*)")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


async def test_every_line_under_journald_has_its_priority_and_no_timestamp(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    table = config_table(sim, redis_url)
    # A warning and an error the daemon lives with: a tick slower than the keepalive, and a
    # metrics textfile in a directory that does not exist.
    table["service"] = {"tick_interval_s": 1.5}
    table["metrics"] = {"textfile_path": str(tmp_path / "absent" / "wd.prom")}
    config = write_toml(tmp_path / "config.toml", table)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY")}
    env |= {"BINANCE_API_KEY": sim.api_key, "BINANCE_API_SECRET": sim.api_secret,
            "PYTHONPATH": str(ROOT)}
    journal = tmp_path / "journal-stream"
    with journal.open("wb") as err:
        found = os.fstat(err.fileno())
        env["JOURNAL_STREAM"] = f"{found.st_dev}:{found.st_ino}"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watchdog", "--log-level", "DEBUG", "run", "--config", str(config),
            cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err)
        try:
            await eventually(lambda: rclient.hget(KEYS.health, "ready"), lambda v: v == "true",
                             timeout_s=30, what="daemon ready")
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0
    lines = [line for line in journal.read_text(encoding="utf-8").splitlines() if line]
    assert lines
    parsed = []
    for line in lines:
        match = PREFIX.match(line)
        assert match is not None, f"no priority prefix: {line!r}"
        assert not TIMESTAMP.search(line), f"a second timestamp: {line!r}"
        head = HEAD.match(match.group(2))  # else a traceback line, prefixed like its record
        if head is not None:
            parsed.append((int(match.group(1)), head.group(1), head.group(2)))
    levels = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "SUCCESS": 5, "INFO": 6, "DEBUG": 7, "TRACE": 7}
    assert all(levels[name] == priority for priority, name, _ in parsed), parsed
    assert any(p == 4 and "systemd keepalive due" in text for p, _, text in parsed)
    assert any(p == 3 and "metrics textfile" in text for p, _, text in parsed)
    assert any(p == 6 and "starting" in text for p, _, text in parsed)
    assert any(p == 7 for p, _, _ in parsed)
