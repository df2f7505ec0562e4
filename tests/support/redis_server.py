"""A real redis-server on a free loopback port, started once per session (no fakeredis).

Once per session means once per pytest-xdist worker too: every worker owns its own server, and
``start`` checks that the server answering on the port is the process it started (two workers,
or anything else on the machine, can be handed the same just-freed port)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio

from watchdog.demo.processes import free_port

__all__ = ["PortTaken", "RedisServer", "dead_redis_url", "free_port", "rclient", "redis_server", "redis_url"]


class PortTaken(RuntimeError):
    """The port given to a new redis-server was not free after all (it is raced for)."""


@dataclass
class RedisServer:
    """A running redis-server we own; ``restart()`` keeps the port (for restart tests)."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server not found on PATH: apt-get install redis-server (.ci/run does)")
        self.process = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:  # could not listen: the port is someone else's
                self.process = None
                raise PortTaken(f"redis-server exited at start on port {self.port}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"INFO server\r\n")
                    answer = b""
                    while b"process_id:" not in answer or not answer.endswith(b"\r\n"):
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        answer += chunk
                    pid = re.search(rb"process_id:(\d+)", answer)
                    if pid is not None:
                        if int(pid.group(1)) == self.process.pid:
                            return
                        self.stop()  # another server answers on this port: not ours to use
                        raise PortTaken(f"another redis-server answers on port {self.port}")
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="wd-redis-") as tmp:
        for attempt in range(5):
            server = RedisServer(port=free_port(), workdir=Path(tmp))
            try:
                server.start()
                break
            except PortTaken:
                if attempt == 4:
                    raise
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of a flushed database on the session's redis-server."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    client.flushall()
    client.script_flush()
    client.close()
    return redis_server.url


@pytest.fixture
async def rclient(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client (str replies) on the flushed database of ``redis_url``."""
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def dead_redis_url() -> str:
    """A loopback Redis URL where nothing listens (a just-freed port, not a fixed one: as root a
    low port like 1 can be bound by anything running beside the tests)."""
    return f"redis://127.0.0.1:{free_port()}/0"
