"""Redis Sentinel (docs/HA.md): a master, a replica and three sentinels on loopback, started
here (Debian's redis-server and redis-sentinel); two watchdog instances and a bot follow the
master by name. The master is killed with SIGKILL while positions change and the bot checks:
the replica is promoted, everything is republished to it within about one heartbeat, and no
position hash carries a token older than the account's fence."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.sentinel

from poswatch.client import AsyncWatchdogClient
from tests.integration.test_daemon import ACCOUNT, KEYS, config_table, write_toml
from tests.integration.test_ha import fence_fields, instance, registered
from tests.support.redis_server import free_port
from tests.support.waiting import eventually, eventually_sync
from watchdog.sim import Simulator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-sentinel") is None,
                       reason="redis-sentinel not installed (apt-get install redis-sentinel; "
                              ".ci/bootstrap does)"),
]

MASTER = "wdmaster"


def _serve(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ping(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.2).ping())
    except redis.RedisError:
        return False


def _until(what: str, probe: Callable[[], bool], timeout_s: float = 30) -> None:
    eventually_sync(probe, bool, timeout_s=timeout_s, interval_s=0.05, what=what)


class Topology:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def start(self) -> None:
        for name, port, extra in (("master", self.master_port, []),
                                  ("replica", self.replica_port,
                                   ["--replicaof", "127.0.0.1", str(self.master_port)])):
            workdir = self.tmp / name
            workdir.mkdir()
            self.procs[name] = _serve(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--dir", str(workdir),
                                       *extra])
            _until(f"redis {name}", lambda port=port: _ping(port))  # type: ignore[misc]
        _until("the replica in sync", lambda: redis.Redis(port=self.replica_port).info(
            "replication").get("master_link_status") == "up")
        for i, port in enumerate(self.sentinel_ports):
            conf = self.tmp / f"sentinel{i}.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {self.tmp}\n"
                            f"sentinel monitor {MASTER} 127.0.0.1 {self.master_port} 2\n"
                            f"sentinel down-after-milliseconds {MASTER} 1000\n"
                            f"sentinel failover-timeout {MASTER} 10000\n"
                            f"sentinel parallel-syncs {MASTER} 1\n")
            self.procs[f"sentinel{i}"] = _serve(["redis-sentinel", str(conf)])
        for port in self.sentinel_ports:
            _until("each sentinel knows the replica and the two other sentinels",
                   lambda port=port: self._sees_all(port))  # type: ignore[misc]

    def _sees_all(self, port: int) -> bool:
        try:
            s = redis.Redis(port=port, socket_timeout=0.2, decode_responses=True)
            return (len(s.sentinel_slaves(MASTER)) == 1
                    and len(s.sentinel_sentinels(MASTER)) == 2)
        except redis.RedisError:
            return False

    def master_now(self) -> int:
        s = redis.Redis(port=self.sentinel_ports[0], socket_timeout=0.5, decode_responses=True)
        return int(s.sentinel_get_master_addr_by_name(MASTER)[1])

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    topo = Topology(tmp_path)
    try:
        topo.start()
        yield topo
    finally:
        topo.stop()


def sentinel_table(sim: Simulator, topo: Topology) -> dict[str, Any]:
    table = config_table(sim, f"redis://127.0.0.1:{topo.master_port}/0")
    # The url's host is not used with sentinels: point it at nothing to prove it.
    table["redis"]["url"] = "redis://192.0.2.1:6379/0"
    table["redis"]["sentinels"] = topo.sentinels
    table["redis"]["sentinel_master"] = MASTER
    return table


async def test_master_killed_under_load_everything_is_republished_and_fenced(
        sim: Simulator, topology: Topology, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    config = write_toml(tmp_path / "config.toml", sentinel_table(sim, topology))
    bot = AsyncWatchdogClient.from_url("redis://192.0.2.1:6379/0", ACCOUNT,
                                       sentinels=topology.sentinels, sentinel_master=MASTER,
                                       socket_timeout_s=1.0)
    r = redis.asyncio.sentinel.Sentinel(
        [("127.0.0.1", p) for p in topology.sentinel_ports], socket_timeout=1.0,
    ).master_for(MASTER, decode_responses=True, socket_timeout=1.0)
    verdicts: list[str] = []
    stop = asyncio.Event()

    async def load() -> None:
        """A bot checking continuously while a position opens and closes every 0.3 s."""
        side = "BUY"
        next_fill = time.monotonic()
        while not stop.is_set():
            try:
                verdicts.append((await bot.check("BASUSDT")).reason)
            except Exception as exc:  # noqa: BLE001 - an outage is what this test causes
                verdicts.append(type(exc).__name__)
            if time.monotonic() >= next_fill:
                sim.fill("ETHUSDT", side, "2")
                side = "SELL" if side == "BUY" else "BUY"
                next_fill = time.monotonic() + 0.3
            await asyncio.sleep(0.01)

    async with AsyncExitStack() as stack:
        stack.push_async_callback(bot.close)
        stack.push_async_callback(r.aclose)
        for i in range(2):
            await stack.enter_async_context(instance(sim, config, tmp_path / f"i{i}.log"))
        await eventually(lambda: registered(r), lambda names: len(names) == 2, timeout_s=60,
                         what="2 instances registered through Sentinel")
        await eventually(lambda: bot.check("BASUSDT"), lambda v: v.allowed, timeout_s=30,
                         what="check allows through Sentinel")
        fence_before = int(await r.get(KEYS.fence))
        loader = asyncio.create_task(load())
        await asyncio.sleep(1.0)  # load running before the kill (a measuring window)
        topology.procs["master"].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await eventually(lambda: asyncio.to_thread(topology.master_now),
                         lambda port: port == topology.replica_port, timeout_s=60,
                         what="the replica promoted by the sentinels")
        promoted = time.monotonic()
        await eventually(lambda: bot.check("BASUSDT"), lambda v: v.allowed, timeout_s=30,
                         what="check allows again on the promoted master")
        allowed = time.monotonic()
        stop.set()
        await loader
        # Converged: the ETH position as the simulator has it, every hash under the current fence.
        amount = sim.exchange.accounts[sim.api_key].position("ETHUSDT", "BOTH").amount
        expected = "open" if amount != 0 else "closed"
        await eventually(lambda: r.hget(f"{KEYS.prefix}:pos:ETHUSDT:BOTH", "state"),
                         lambda state: state == expected, timeout_s=30,
                         what=f"ETHUSDT {expected} on the new master, as on the exchange")
        fence_after = int(await r.get(KEYS.fence))
        assert fence_after >= fence_before
        fences = await fence_fields(r)
        assert set(fences.values()) == {str(fence_after)}, fences
        assert await r.exists(KEYS.health)
        record_property("failover_promoted_ms", round((promoted - killed) * 1000))
        record_property("allow_after_promotion_ms", round((allowed - promoted) * 1000))
        assert "ok" in verdicts
