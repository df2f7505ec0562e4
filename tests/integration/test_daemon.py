"""The daemon end to end: ``run()`` (and ``position-watchdog run``) against the simulator and a
real redis-server. What is asserted is what operators and bots see: Redis keys, sd_notify
datagrams, the simulator's state, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import redis.exceptions

from tests.support.waiting import eventually
from watchdog.config import Config, Credentials, parse_config
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.runtime.daemon import run
from watchdog.runtime.systemd import Notifier
from watchdog.sim import Simulator
from watchdog.store.keys import AccountKeys

pytestmark = pytest.mark.integration

ACCOUNT = "itest"
KEYS = AccountKeys(ACCOUNT)
BASUSDT = PositionKey(Symbol("BASUSDT"), PositionSide.BOTH)
ROOT = Path(__file__).resolve().parents[2]


def config_table(sim: Simulator, redis_url: str) -> dict[str, Any]:
    # Polling and the weight budget at their defaults (issue 12: these tests once needed a 90 %
    # share for 0.2 s polls); only silence and reconnect delays are shortened, for test time.
    return {
        "binance": {"rest_url": sim.rest_url, "ws_url": sim.ws_url,
                    "max_silence_s": 5.0, "reconnect_min_delay_s": 0.1,
                    "reconnect_max_delay_s": 0.5},
        "redis": {"url": redis_url, "account": ACCOUNT, "heartbeat_interval_s": 0.2,
                  "health_ttl_ms": 2000},
        "service": {"tick_interval_s": 0.05},
    }


def make_config(sim: Simulator, redis_url: str) -> Config:
    return parse_config(config_table(sim, redis_url), "itest.toml")


def start_daemon(sim: Simulator, table: dict[str, Any]) -> tuple[asyncio.Task[int], asyncio.Event]:
    """``run()`` as a task of this loop, with the ``stop`` event that ends it gracefully."""
    stop = asyncio.Event()
    daemon = asyncio.create_task(run(parse_config(table, "itest.toml"),
                                     Credentials(sim.api_key, sim.api_secret), stop=stop),
                                 name="daemon-under-test")
    return daemon, stop


def write_toml(path: Path, table: dict[str, Any]) -> Path:
    lines: list[str] = []
    for section, values in table.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield path, sock
    sock.close()


def datagrams(sock: socket.socket) -> list[str]:
    found: list[str] = []
    while True:
        try:
            found += sock.recv(4096).decode().split("\n")
        except BlockingIOError:
            return found


async def listen_key_alive(sim: Simulator) -> bool:
    """Through the control API (GET /sim/v1/state), as an operator would look."""
    import httpx

    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{sim.control_url}/state")
    response.raise_for_status()
    listen_key = response.json()["accounts"][0]["listen_key"]
    return listen_key is not None and listen_key["expires_in_ms"] > 0


async def test_daemon_publishes_notifies_and_stops_without_deleting_the_listen_key(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis,
        notify_socket: tuple[str, socket.socket]) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    # Protected by a stop, as a bot's position is: a bare one is a health problem (the guard).
    sim.exchange.place_algo(sim.api_key, {
        "algoType": "CONDITIONAL", "symbol": "BASUSDT", "side": "SELL", "type": "STOP_MARKET",
        "quantity": "1216", "reduceOnly": "true",
        "triggerPrice": f"{(sim.exchange.mark['BASUSDT'] / 2).quantize(Decimal('0.00000001')):f}"})
    address, sock = notify_socket
    stop = asyncio.Event()
    seen: list[str] = []
    daemon = asyncio.create_task(run(make_config(sim, redis_url), Credentials(sim.api_key, sim.api_secret),
                                     notifier=Notifier({"NOTIFY_SOCKET": address}), stop=stop),
                                 name="daemon-under-test")
    try:
        position = await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)),
                                    lambda h: h.get("state") == "open", timeout_s=20,
                                    what="BASUSDT:BOTH published open")
        assert position["amt"] == "1216"

        async def notified() -> list[str]:
            seen.extend(datagrams(sock))
            return seen

        await eventually(notified, lambda s: "READY=1" in s and "WATCHDOG=1" in s, timeout_s=20,
                         what="READY=1 then WATCHDOG=1")
        assert seen.index("READY=1") < seen.index("WATCHDOG=1")
        health = await eventually(lambda: rclient.hgetall(KEYS.health),
                                  lambda h: h.get("ready") == "true", what="heartbeat says ready")
        assert health["stream_state"] == "live"
        assert health["healthy"] == "true", health["problems"]
        assert await listen_key_alive(sim)
    finally:
        stop.set()
        code = await asyncio.wait_for(daemon, timeout=20)
    assert code == 0
    assert "STOPPING=1" in datagrams(sock)
    assert await listen_key_alive(sim), "a graceful stop must never DELETE the (shared) listen key"


async def test_sigterm_exits_0_and_leaves_the_listen_key_alive(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "config.toml", config_table(sim, redis_url))
    async with cli_process("run", "--config", str(config), key=sim.api_key,
                           secret=sim.api_secret) as process:
        await eventually(lambda: rclient.hget(KEYS.health, "ready"), lambda v: v == "true",
                         timeout_s=30, what="daemon ready")
        assert await listen_key_alive(sim)
        _, report = await eventually(lambda: status_of(config), lambda r: r[0] == 0,
                                        timeout_s=20, what="status healthy")
        assert report["stream"]["state"] == "live"
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=20)
    assert process.returncode == 0, await stderr_of(process)
    assert await listen_key_alive(sim), "SIGTERM must never DELETE the (shared) listen key"
    _, report = await eventually(lambda: status_of(config), lambda r: r[0] == 2, timeout_s=20,
                                    what="status down once the heartbeat expired")
    assert report["alive"] is False


async def status_of(config: Path) -> tuple[int, dict[str, Any]]:
    """``position-watchdog status --json`` as an operator runs it: (exit code, report)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'client'}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watchdog", "status", "--json", "--config", str(config), cwd=ROOT,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, json.loads(out)


async def test_rejected_api_key_exits_77(sim: Simulator, redis_url: str, tmp_path: Path) -> None:
    config = write_toml(tmp_path / "config.toml", config_table(sim, redis_url))
    async with cli_process("run", "--config", str(config), key="not-the-key", secret="nope") as process:
        await asyncio.wait_for(process.wait(), timeout=30)
    err = await stderr_of(process)
    assert process.returncode == 77, err
    assert "Error: Binance rejected the API key" in err


async def test_bad_config_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[binance]\npoll_intervall_s = 1.0\n")
    async with cli_process("run", "--config", str(config), key="k", secret="s") as process:
        await asyncio.wait_for(process.wait(), timeout=30)
    err = await stderr_of(process)
    assert process.returncode == 78, err
    assert "poll_intervall_s" in err.splitlines()[-1]


@contextlib.asynccontextmanager
async def cli_process(*args: str, key: str, secret: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m watchdog ARGS`` as systemd would start it; killed if still running at the end."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY")}
    env |= {"BINANCE_API_KEY": key, "BINANCE_API_SECRET": secret,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'client'}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watchdog", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stderr_of(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    return (await process.stderr.read()).decode(errors="replace")


async def test_redis_restart_while_the_position_closes_ends_with_the_closure_in_redis(
        sim: Simulator, redis_server: Any, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    table = config_table(sim, redis_url)
    table["redis"]["socket_timeout_s"] = 0.5
    daemon, stop = start_daemon(sim, table)
    try:
        await eventually(lambda: rclient.hget(KEYS.position(BASUSDT), "state"), lambda v: v == "open",
                         timeout_s=20, what="published open")
        redis_server.stop()
        sim.fill("BASUSDT", "SELL", "1216")  # closes while Redis is away (and restarts empty)
        redis_server.start()

        async def read(key: str) -> dict[str, str]:
            try:
                return await rclient.hgetall(key)
            except redis.exceptions.ConnectionError:  # the test's own pooled connection died too
                return {}

        position = await eventually(lambda: read(KEYS.position(BASUSDT)),
                                    lambda h: h.get("state") == "closed", timeout_s=30,
                                    what="closure written after Redis came back")
        assert Decimal(position["amt"]) == 0
        assert not daemon.done(), "a Redis outage must not end the daemon"
        await eventually(lambda: read(KEYS.health), lambda h: h.get("healthy") == "true",
                         timeout_s=20, what="healthy again")
    finally:
        stop.set()
        assert await asyncio.wait_for(daemon, timeout=20) == 0


async def test_unreachable_exchange_at_startup_is_alive_but_degraded_not_down(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    """A watchdog that cannot see Binance must say so (alive, not healthy), not vanish."""
    from tests.support.redis_server import free_port

    table = config_table(sim, redis_url)
    dead = f"127.0.0.1:{free_port()}"
    table["binance"].update(rest_url=f"http://{dead}", ws_url=f"ws://{dead}")
    stop = asyncio.Event()
    daemon = asyncio.create_task(run(parse_config(table, "itest.toml"),
                                     Credentials(sim.api_key, sim.api_secret), stop=stop),
                                 name="daemon-without-exchange")
    try:
        health = await eventually(lambda: rclient.hgetall(KEYS.health), lambda h: bool(h),
                                  timeout_s=60, what="a heartbeat although Binance is unreachable")
        assert health["healthy"] == "false"
        assert health["stream_state"] != "live"
    finally:
        stop.set()
        code = await asyncio.wait_for(daemon, timeout=30)
    assert code == 0


async def test_a_restarted_daemon_publishes_a_closure_that_happened_while_it_was_down(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis) -> None:
    """Versions must keep growing across restarts: Redis refuses a write whose version is not
    greater than the stored one, so a daemon counting from 1 again would never show the close."""

    async def run_until(predicate: Any, what: str) -> dict[str, str]:
        stop = asyncio.Event()
        daemon = asyncio.create_task(run(make_config(sim, redis_url),
                                         Credentials(sim.api_key, sim.api_secret), stop=stop),
                                     name="daemon-under-test")
        try:
            return await eventually(lambda: rclient.hgetall(KEYS.position(BASUSDT)), predicate,
                                    timeout_s=30, what=what)
        finally:
            stop.set()
            assert await asyncio.wait_for(daemon, timeout=20) == 0

    sim.fill("BASUSDT", "BUY", "1216")
    first = await run_until(lambda h: h.get("state") == "open", "first run publishes open")
    sim.fill("BASUSDT", "SELL", "1216")  # closes while no watchdog runs
    second = await run_until(lambda h: h.get("state") == "closed", "second run publishes closed")
    assert int(second["version"]) > int(first["version"])
