"""Processes the end-to-end benchmark runs: a private redis-server, the simulator, the daemon.

Each is a real process on loopback (the daemon's RSS and CPU are read from /proc), started on a
free port and always stopped by its context manager, even when a section fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from watchdog.demo.processes import free_port

__all__ = ["ROOT", "ProcStat", "Redis", "Sim", "proc_stat", "redis_server", "simulator", "wait_until"]

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def wait_until(probe: Any, *, timeout_s: float, what: str, interval_s: float = 0.01) -> Any:
    """Poll ``probe()`` until it returns something truthy; RuntimeError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


def _stop(proc: subprocess.Popen[Any], timeout_s: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)


@dataclass
class Redis:
    url: str
    port: int
    proc: subprocess.Popen[bytes]


@contextlib.contextmanager
def redis_server() -> Iterator[Redis]:
    """A throw-away redis-server (no persistence; keyspace notifications for hashes on)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wd-bench-redis-") as tmp:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp, "--notify-keyspace-events", "Kh",
             "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def ready() -> bool:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                        s.sendall(b"PING\r\n")
                        return s.recv(16).startswith(b"+PONG")
                except OSError:
                    return False
            wait_until(ready, timeout_s=10, what="redis-server")
            yield Redis(f"redis://127.0.0.1:{port}/0", port, proc)
        finally:
            _stop(proc)


@dataclass
class Sim:
    rest_url: str
    ws_url: str
    control_url: str
    proc: subprocess.Popen[str]
    api_key: str = "sim-key"
    api_secret: str = "sim-secret"

    def control(self, method: str, name: str, doc: dict[str, Any] | None = None,
                timeout_s: float = 120.0) -> Any:
        response = httpx.request(method, f"{self.control_url}/{name}", json=doc, timeout=timeout_s)
        if response.status_code != 200:
            raise RuntimeError(f"simulator {method} {name}: {response.status_code} {response.text}")
        return response.json()

    def private_connections(self) -> int:
        return sum(1 for c in self.control("GET", "state")["connections"] if c["listen_keys"])


@contextlib.contextmanager
def simulator(symbols: list[str], **extra: str) -> Iterator[Sim]:
    """``python -m watchdog sim`` in its own process (so it never shares a core's loop with us)."""
    args = [PYTHON, "-m", "watchdog", "--log-level", "WARNING", "sim", "--port", "0",
            "--symbols", ",".join(symbols)]
    for name, value in extra.items():
        args += [f"--{name.replace('_', '-')}", value]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulator exited with {proc.wait()} before printing its URLs")
        urls = json.loads(line)
        yield Sim(urls["rest_url"], urls["ws_url"], urls["control_url"], proc)
    finally:
        _stop(proc)


@dataclass(frozen=True)
class ProcStat:
    """CPU seconds (user + system) and resident memory of one process, from /proc."""

    cpu_s: float
    rss_mb: float
    at: float


def proc_stat(pid: int) -> ProcStat:
    ticks = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
    rss_kb = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return ProcStat(cpu_s, rss_kb / 1024, time.monotonic())


def python_env(root: Path = ROOT) -> dict[str, str]:
    """The environment for our Python subprocesses: the checkout first on the path."""
    env = dict(os.environ)
    # client/: the bot client's package poswatch, which the daemon imports (absent in old trees)
    paths = [str(root), *([str(root / "client")] if (root / "client").is_dir() else [])]
    env["PYTHONPATH"] = os.pathsep.join([*paths, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


@dataclass
class Consumer:
    """A process reading the simulator's user stream (the daemon)."""

    name: str
    proc: subprocess.Popen[Any]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        """Running and no task has failed (a failed task is fatal for the daemon)."""
        if self.proc.poll() is not None:
            return False
        try:
            return "| ERROR" not in self.log_path.read_text(errors="replace")
        except OSError:
            return True

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


DAEMON_CONFIG = """\
[binance]
rest_url = "{rest_url}"
ws_url = "{ws_url}"
{binance_extra}
[redis]
url = "{redis_url}"
account = "{account}"

[reaper]
enabled = {reaper}
"""


@contextlib.contextmanager
def daemon(sim: Sim, redis_url: str, account: str, *, reaper: bool = True, binance_extra: str = "",
           ready_timeout_s: float = 60.0) -> Iterator[Consumer]:
    """``python -m watchdog run --config TMP.toml`` against the simulator; ready when the health
    hash says ``ready`` and the user stream is connected."""
    import redis as redis_sync

    with tempfile.TemporaryDirectory(prefix="wd-bench-daemon-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(DAEMON_CONFIG.format(
            rest_url=sim.rest_url, ws_url=sim.ws_url, redis_url=redis_url, account=account,
            reaper="true" if reaper else "false", binance_extra=binance_extra))
        log_path = Path(tmp) / "daemon.log"
        root = Path(os.environ.get("WD_BENCH_DAEMON_ROOT", ROOT))  # another checkout, for development
        env = python_env(root)
        env.update(BINANCE_API_KEY=sim.api_key, BINANCE_API_SECRET=sim.api_secret)
        with open(log_path, "wb") as log:
            level = os.environ.get("WD_BENCH_DAEMON_LOG", "WARNING")  # DEBUG when diagnosing
            proc = subprocess.Popen([PYTHON, "-m", "watchdog", "--log-level", level, "run",
                                     "--config", str(config)],
                                    cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=log)
        consumer = Consumer("daemon", proc, log_path)
        r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
        health = f"wd:v1:{{{account}}}:health"
        try:
            def ready() -> bool:
                if not consumer.alive():
                    raise RuntimeError(f"daemon exited ({proc.returncode}):\n{consumer.log_tail()}")
                return r.hget(health, "ready") == "true" and sim.private_connections() > 0
            wait_until(ready, timeout_s=ready_timeout_s, what="the daemon to be ready", interval_s=0.05)
            yield consumer
        finally:
            r.close()
            _stop(proc, timeout_s=10)
            keep = os.environ.get("WD_BENCH_DAEMON_LOG_COPY")  # a path: keep the log to study it
            if keep:
                shutil.copyfile(log_path, keep)
