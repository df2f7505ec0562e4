"""The processes a demo starts (a private redis-server, the watchdog daemon), always cleaned up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["DemoSetupError", "free_port", "redis_server", "watchdog_daemon"]


class DemoSetupError(RuntimeError):
    """Something the demo needs is missing; the message says how to get it."""


def free_port() -> int:
    """A loopback TCP port free right now (the OS picks it; it may be taken again before use, so
    only for our own short-lived servers). The one copy: tests and bench/ import it from here."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _stop(process: asyncio.subprocess.Process, name: str) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        print(f"demo: {name} did not stop within 10 s of SIGTERM; killing it", file=sys.stderr)
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def redis_server() -> AsyncIterator[str]:
    """A throwaway redis-server on a free loopback port, no persistence; yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise DemoSetupError("redis-server not found on PATH: install it with "
                             "`sudo apt-get install redis-server` (or run `bash .ci/bootstrap demo`)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wd-demo-redis-") as workdir:
        process = await asyncio.create_subprocess_exec(
            exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", workdir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            await _wait_port(port, process, "redis-server")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            await _stop(process, "redis-server")


async def _wait_port(port: int, process: asyncio.subprocess.Process, name: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline:
        if process.returncode is not None:
            raise DemoSetupError(f"{name} exited with {process.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise DemoSetupError(f"{name} did not listen on 127.0.0.1:{port} within 10 s")


@contextlib.asynccontextmanager
async def watchdog_daemon(config_text: str, api_key: str, api_secret: str,
                          log_path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``position-watchdog run`` as a child process, as systemd would run it (logs to a file)."""
    with tempfile.TemporaryDirectory(prefix="wd-demo-") as tmp:
        config_path = Path(tmp) / "config.toml"
        config_path.write_text(config_text)
        env = {**os.environ, "BINANCE_API_KEY": api_key, "BINANCE_API_SECRET": api_secret}
        env.pop("NOTIFY_SOCKET", None)
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "watchdog", "run", "--config", str(config_path),
                stdout=log, stderr=log, env=env)
            try:
                yield process
            finally:
                await _stop(process, "position-watchdog run")
