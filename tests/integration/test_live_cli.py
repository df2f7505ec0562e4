"""``status --watch`` and ``events [--follow]`` as an operator runs them: real processes, a real
redis-server, the publisher writing events; reads wait on output with deadlines."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.support.redis_server import dead_redis_url
from tests.support.store import ACCOUNT
from watchdog.ops.live import CLEAR, HOME
from watchdog.store.publisher import RedisPublisher

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UTC_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC  ")


def config(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[redis]\nurl = "{redis_url}"\naccount = "{ACCOUNT}"\n', encoding="utf-8")
    return path


@asynccontextmanager
async def cli(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'client'}", "PYTHONUNBUFFERED": "1"}
    env.pop("POSITION_WATCHDOG_CONFIG", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watchdog", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def read_until(stream: asyncio.StreamReader, done: str, *, count: int = 1,
                     timeout_s: float = 20) -> str:
    """What ``stream`` printed up to the ``count``-th ``done``."""
    seen = ""
    async with asyncio.timeout(timeout_s):
        while seen.count(done) < count:
            chunk = await stream.read(4096)
            assert chunk, f"output ended before {count} x {done!r}: {seen!r}"
            seen += chunk.decode()
    return seen


async def test_status_watch_redraws_in_place_until_ctrl_c(tmp_path: Path, redis_url: str) -> None:
    async with cli("status", "--watch", "--config", str(config(tmp_path, redis_url))) as process:
        assert process.stdout is not None
        seen = await read_until(process.stdout, HOME, count=3)   # three frames, a second apart
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), timeout=20)
    assert process.returncode == 2                       # the last frame's status: down, no heartbeat
    assert seen.count(CLEAR) == 1                        # cleared once, then drawn over in place
    frames = seen.split(HOME)[1:]
    assert all("DOWN" in frame for frame in frames)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, every 1 s", frames[0])


async def test_events_prints_the_stream_with_utc_times_and_follows_it(
        tmp_path: Path, redis_url: str, publisher: RedisPublisher) -> None:
    await publisher.emit("alert", {"code": "first", "message": "one"})
    await publisher.emit("position_closed", {"position": "BASUSDT:BOTH"})
    path = str(config(tmp_path, redis_url))
    async with cli("events", "--config", path) as process:
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 2
    assert all(UTC_TIME.match(line) for line in lines), lines
    assert "position_closed" in lines[1]
    assert "position=BASUSDT:BOTH" in lines[1]

    async with cli("events", "--follow", "-n", "1", "--config", path) as process:
        assert process.stdout is not None
        first = await read_until(process.stdout, "\n")
        assert "position_closed" in first
        await publisher.emit("alert", {"code": "later", "message": "two"})
        later = await read_until(process.stdout, "code=later")
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), timeout=20)
    assert process.returncode == 0
    assert UTC_TIME.match(later.strip())
    assert "code=first" not in first + later             # only the newest one, then the new one


async def test_events_with_redis_unreachable_exits_2_with_one_line(tmp_path: Path) -> None:
    async with cli("events", "--config", str(config(tmp_path, dead_redis_url()))) as process:
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    assert err.decode().startswith("Error: redis wd:v1:")
    assert err.decode().count("\n") == 1
