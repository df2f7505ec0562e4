"""Redis Cluster (docs/HA.md): six ``redis-server --cluster-enabled yes`` on loopback (three
primaries, three replicas), started here; the daemon and a bot reach it through one startup
node with ``[redis] cluster = true``. Every key of the account is in one slot, so every script
runs; the primary owning that slot is killed and its replica takes over: the watchdog writes
there again, republishing, and no hash carries a token older than the account's fence."""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.crc import key_slot

from poswatch.client import AsyncWatchdogClient
from tests.integration.test_daemon import ACCOUNT, KEYS, config_table, write_toml
from tests.integration.test_ha import instance
from tests.support.waiting import eventually, eventually_sync
from watchdog.sim import Simulator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli not installed"),
]


def _until(what: str, probe: Callable[[], bool], timeout_s: float = 60) -> None:
    """``eventually_sync`` where a node not answering yet counts as "not yet"."""

    def answered() -> bool:
        try:
            return probe()
        except redis.RedisError:
            return False

    eventually_sync(answered, bool, timeout_s=timeout_s, interval_s=0.1, what=what)


def cluster_ports(n: int) -> list[int]:
    """Free ports whose cluster bus port (port + 10000) is free and valid too."""
    rng = random.Random()
    found: list[int] = []
    while len(found) < n:
        port = rng.randrange(20000, 40000)
        if port in found:
            continue
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        found.append(port)
    return found


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[int, subprocess.Popen[bytes]]]:
    ports = cluster_ports(6)
    procs: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for port in ports:
            workdir = tmp_path / str(port)
            workdir.mkdir()
            procs[port] = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled",
                 "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1500",
                 "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports:
            _until(f"node {port}", lambda port=port: redis.Redis(port=port).ping())  # type: ignore[misc]
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas", "1",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for port in ports:
            _until("cluster_state:ok everywhere", lambda port=port: redis.Redis(  # type: ignore[misc]
                port=port, decode_responses=True).cluster("info")["cluster_state"] == "ok")
        _until("three replicas in sync", lambda: sum(
            1 for port in ports
            if (info := redis.Redis(port=port, decode_responses=True).info("replication"))
            ["role"] == "slave" and info.get("master_link_status") == "up") == 3)
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def owner_of_slot(port: int, slot: int) -> int:
    """The port of the primary serving ``slot``, as node ``port`` sees the cluster."""
    for start, end, primary, *_ in redis.Redis(port=port).cluster("slots"):
        if start <= slot <= end:
            return int(primary[1])
    raise AssertionError(f"slot {slot} not served")


async def test_the_slots_primary_killed_the_watchdog_writes_on_its_replica(
        sim: Simulator, cluster: dict[int, subprocess.Popen[bytes]], tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    ports = list(cluster)
    slot = key_slot(ACCOUNT.encode())
    url = f"redis://127.0.0.1:{ports[0]}/0"
    table: dict[str, Any] = config_table(sim, url)
    table["redis"]["cluster"] = True
    config = write_toml(tmp_path / "config.toml", table)
    sim.fill("BASUSDT", "BUY", "1216")
    bot = AsyncWatchdogClient.from_url(url, ACCOUNT, cluster=True, socket_timeout_s=1.0)
    r = redis.asyncio.RedisCluster.from_url(url, decode_responses=True, socket_timeout=1.0)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(bot.close)
        stack.push_async_callback(r.aclose)
        await stack.enter_async_context(instance(sim, config, tmp_path / "i0.log"))
        await eventually(lambda: bot.check("BASUSDT"), lambda v: v.allowed, timeout_s=60,
                         what="check allows through the cluster")
        fence_before = int(await r.get(KEYS.fence))
        primary = owner_of_slot(ports[0], slot)
        cluster[primary].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        alive = next(p for p in ports if p != primary)
        await asyncio.to_thread(  # off the loop: the simulator serves the daemon from it
            _until, "a replica serves the account's slot",
            lambda: owner_of_slot(alive, slot) != primary)
        promoted = time.monotonic()
        sim.fill("BASUSDT", "SELL", "1216")  # a change after the failover reaches the new primary

        async def state() -> str | None:
            try:
                return await r.hget(f"{KEYS.prefix}:pos:BASUSDT:BOTH", "state")
            except redis.RedisError:
                return None

        await eventually(state, lambda s: s == "closed", timeout_s=60,
                         what="the closure written on the promoted replica")
        verdict = await eventually(lambda: bot.check("BASUSDT"),
                                   lambda v: v.reason == "position_closed", timeout_s=30,
                                   what="the bot's verdict from the promoted replica")
        assert not verdict.allowed
        fence_after = int(await r.get(KEYS.fence))
        assert fence_after >= fence_before
        fences = {await r.hget(KEYS.health, "fence"),
                  await r.hget(f"{KEYS.prefix}:pos:BASUSDT:BOTH", "fence")}
        assert fences == {str(fence_after)}, fences
        record_property("cluster_failover_promoted_ms", round((promoted - killed) * 1000))
