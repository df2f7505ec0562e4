"""Several instances of one configuration: one leader per account, fenced (docs/HA.md).

Real processes (``python -m watchdog run``), real redis-server, the simulator over real sockets.
Each test kills or pauses the leader and checks what the issue asks: a standby leads, bots get
``allow`` for a fresh open position again, a paused leader writes nothing once a newer one has
written, nothing is cancelled twice, and no position hash carries an old fence.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from poswatch.client import AsyncWatchdogClient
from tests.integration.test_daemon import ACCOUNT, KEYS, ROOT, config_table, write_toml
from tests.support.waiting import eventually
from watchdog.ops.status import read_status
from watchdog.ops.status_view import render_text
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


class Instance:
    """One ``python -m watchdog run`` process; its log goes to a file (never a full pipe)."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def owns(self, instance: str | None) -> bool:
        """``instance`` (host:pid:random, as the leader key and health name it) is this one."""
        return instance is not None and instance.split(":")[1:2] == [str(self.pid)]


@asynccontextmanager
async def spawned(config: Path, log: Path, credentials: dict[str, str]) -> AsyncIterator[Instance]:
    """``python -m watchdog run --config config`` of this checkout, with ``credentials`` (env
    name → value) as its only Binance credentials and no systemd variables; killed on exit."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY") and not k.startswith("BINANCE_API_")}
    env |= {**credentials, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'client'}"}
    with open(log, "wb") as sink:  # noqa: ASYNC230 - opened once, before the process runs
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watchdog", "run", "--config", str(config), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=sink)
    try:
        yield Instance(process, log)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)
                process.kill()
            await process.wait()


@asynccontextmanager
async def instance(sim: Simulator, config: Path, log: Path) -> AsyncIterator[Instance]:
    """One instance watching the simulator's own account."""
    async with spawned(config, log, {"BINANCE_API_KEY": sim.api_key,
                                     "BINANCE_API_SECRET": sim.api_secret}) as one:
        yield one


def sync(read: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    """A synchronous read as the probe ``eventually`` awaits."""
    async def probe() -> Any:
        return read()
    return probe


def ha_table(sim: Simulator, redis_url: str) -> dict[str, Any]:
    """The integration config at the default lead lease (1500 ms) and reaper grace."""
    return config_table(sim, redis_url)


async def leader_of(r: redis.asyncio.Redis) -> str | None:
    value = await r.get(KEYS.leader)
    return None if value is None else str(value)


async def registered(r: redis.asyncio.Redis) -> list[str]:
    now_ms = int(time.time() * 1000)
    return [str(m) for m, score in await r.zrange(KEYS.instances, 0, -1, withscores=True)
            if score > now_ms]


async def fence_fields(r: redis.asyncio.Redis) -> dict[str, str | None]:
    """The ``fence`` of every published position hash (and of the health hash)."""
    out: dict[str, str | None] = {"health": await r.hget(KEYS.health, "fence")}
    for member in await r.smembers(KEYS.positions):
        out[str(member)] = await r.hget(f"{KEYS.prefix}:pos:{member}", "fence")
    return out


def count_cancels(sim: Simulator) -> dict[int, int]:
    """Wrap the simulator's algo cancel: every cancel request that reaches the exchange."""
    counts: dict[int, int] = {}
    original = sim.exchange.cancel_algo

    def counting(api_key: str, algo_id: int | None, client_algo_id: str | None) -> Any:
        if algo_id is not None:
            counts[algo_id] = counts.get(algo_id, 0) + 1
        return original(api_key, algo_id, client_algo_id)

    sim.exchange.cancel_algo = counting  # type: ignore[method-assign]
    return counts


def place_stop(sim: Simulator, symbol: str, qty: str, factor: str = "0.8", *,
               api_key: str | None = None) -> int:
    """A reduce-only STOP_MARKET below the mark on ``api_key``'s account (the simulator's own)."""
    tick = sim.exchange.specs[symbol].tick_size
    trigger = f"{(sim.exchange.mark[symbol] * Decimal(factor)).quantize(tick):f}"
    algo = sim.exchange.place_algo(api_key or sim.api_key, {
        "algoType": "CONDITIONAL", "symbol": symbol, "side": "SELL", "type": "STOP_MARKET",
        "triggerPrice": trigger, "quantity": qty, "reduceOnly": "true"})
    sim.venue.flush()
    return int(algo.algo_id)


@pytest.fixture
async def bot(redis_url: str) -> AsyncIterator[AsyncWatchdogClient]:
    client = AsyncWatchdogClient.from_url(redis_url, ACCOUNT)
    yield client
    await client.close()


async def start_group(stack: AsyncExitStack, sim: Simulator, redis_url: str, tmp_path: Path,
                      n: int, r: redis.asyncio.Redis) -> list[Instance]:
    config = write_toml(tmp_path / "config.toml", ha_table(sim, redis_url))
    group = [await stack.enter_async_context(instance(sim, config, tmp_path / f"i{i}.log"))
             for i in range(n)]
    await eventually(lambda: registered(r), lambda names: len(names) == n, timeout_s=60,
                     what=f"{n} instances registered")
    return group


def the_leader(group: list[Instance], name: str | None) -> Instance:
    found = [i for i in group if i.owns(name)]
    assert len(found) == 1, (name, [i.pid for i in group])
    return found[0]


@pytest.mark.parametrize(("n", "warm"), [(2, True), (2, False), (3, True)])
async def test_kill_9_of_the_leader_a_standby_leads_and_a_fresh_position_is_allowed(
        n: int, warm: bool, sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis,
        bot: AsyncWatchdogClient, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    async with AsyncExitStack() as stack:
        group = await start_group(stack, sim, redis_url, tmp_path, n, rclient)
        await eventually(lambda: bot.check("BASUSDT"), lambda v: v.allowed, timeout_s=30,
                         what="check allows under the first leader")
        old = the_leader(group, await leader_of(rclient))
        report = await asyncio.to_thread(read_status, redis_url, ACCOUNT, socket_timeout_s=2.0)
        assert old.owns(report.ha["leader"]), report.ha  # status names leader and standbys
        assert report.ha["fence"] == int(await rclient.get(KEYS.fence))
        assert len(report.ha["standbys"]) == n - 1, report.ha
        text = render_text(report)
        assert f"leader     {report.ha['leader']} (fence {report.ha['fence']})" in text
        assert "standbys: " in text
        assert report.to_json()["ha"]["standbys"] == report.ha["standbys"]
        for standby in group:  # warm: each standby's stream reconciled; cold: just registered
            if warm and standby is not old:
                await eventually(sync(standby.text), lambda t: "stream_recovered" in t,
                                 timeout_s=30, what="the standby's stream live")
        old_fence = int(await rclient.get(KEYS.fence))
        old.process.kill()  # SIGKILL: no resign, the lease runs out
        killed = time.monotonic()
        sim.fill("ETHUSDT", "BUY", "2")  # a fresh open position, seen by the standbys' streams
        if n == 2:  # and a closure nobody could announce: told by the new leader at takeover
            sim.fill("BASUSDT", "SELL", "1216")
        verdict = await eventually(lambda: bot.check("ETHUSDT"), lambda v: v.allowed, timeout_s=30,
                                   what="check allows the fresh position under the new leader")
        record_property("failover_to_allow_ms", round((time.monotonic() - killed) * 1000))
        assert verdict.reason == "ok"
        new = the_leader([i for i in group if i is not old], await leader_of(rclient))
        new_fence = int(await rclient.get(KEYS.fence))
        assert new_fence > old_fence
        assert new.owns(await rclient.hget(KEYS.health, "instance"))
        fences = await fence_fields(rclient)
        assert fences["ETHUSDT:BOTH"] == str(new_fence), fences
        if n == 2:
            closed = await eventually(
                lambda: rclient.xrange(KEYS.events),
                lambda entries: any(f.get("kind") == "position_closed"
                                    and f.get("position") == "BASUSDT:BOTH" for _, f in entries),
                timeout_s=30, what="position_closed for the closure during the takeover")
            assert closed
            assert (await bot.check("BASUSDT")).reason == "position_closed"
        else:
            assert (await bot.check("BASUSDT")).allowed  # republished by the new leader
        for other in group:
            if other is not old:
                assert other.process.returncode is None, other.text()[-2000:]


async def test_a_leader_paused_past_its_lease_writes_and_cancels_nothing_after_resuming(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, bot: AsyncWatchdogClient,
        tmp_path: Path) -> None:
    cancels = count_cancels(sim)
    sim.fill("BASUSDT", "BUY", "1216")
    algo = place_stop(sim, "BASUSDT", "1216")
    async with AsyncExitStack() as stack:
        group = await start_group(stack, sim, redis_url, tmp_path, 3, rclient)
        await eventually(lambda: bot.check("BASUSDT"), lambda v: v.allowed, timeout_s=30,
                         what="check allows under the first leader")
        paused = the_leader(group, await leader_of(rclient))
        paused.process.send_signal(signal.SIGSTOP)
        name = await eventually(lambda: leader_of(rclient),
                                lambda v: v is not None and not paused.owns(v), timeout_s=30,
                                what="a standby leads while the leader is paused")
        new = the_leader(group, name)
        await eventually(lambda: rclient.hget(KEYS.health, "instance"), new.owns, timeout_s=30,
                         what="the new leader's first write (its heartbeat)")
        new_fence = await rclient.get(KEYS.fence)
        # The stop becomes an orphan: only the new leader may remove it, exactly once.
        sim.fill("BASUSDT", "SELL", "1216")
        paused.process.send_signal(signal.SIGCONT)
        await eventually(sync(lambda: sim.exchange.find_algo(sim.api_key, algo, None).is_open),
                         lambda is_open: not is_open, timeout_s=60,
                         what="the orphaned stop removed by the new leader")
        await eventually(sync(paused.text), lambda t: "stepping down" in t,
                         timeout_s=30, what="the resumed leader steps down on its first refusal")
        await eventually(lambda: registered(rclient), lambda names: len(names) == 3, timeout_s=30,
                         what="the resumed instance registered again, as a standby")
        assert await leader_of(rclient) == name
        fences = await fence_fields(rclient)
        assert set(fences.values()) == {new_fence}, fences  # nothing written under the old fence
        assert cancels == {algo: 1}, cancels
        assert "cancelling via" not in paused.text()
        # It learnt it had lost the lead from Redis (a refused renewal or a FENCED write), not
        # from a clock: tests/store/test_fencing.py refuses each write path's old token.
        for each in group:
            assert each.process.returncode is None, each.text()[-2000:]


async def test_one_instance_one_account_keeps_todays_keys_and_stops_cleanly(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, bot: AsyncWatchdogClient,
        tmp_path: Path) -> None:
    sim.fill("BASUSDT", "BUY", "1216")
    async with AsyncExitStack() as stack:
        (only,) = await start_group(stack, sim, redis_url, tmp_path, 1, rclient)
        await eventually(lambda: bot.check("BASUSDT"), lambda v: v.allowed, timeout_s=30,
                         what="check allows")
        assert only.owns(await leader_of(rclient))
        keys = {str(k) for k in await rclient.keys(f"{KEYS.prefix}:*")}
        position = f"{KEYS.prefix}:pos:BASUSDT:BOTH"
        assert {KEYS.health, KEYS.positions, KEYS.events, position} <= keys
        # Today's keys plus the lease's three; the epoch token of earlier versions is gone.
        assert keys - {KEYS.health, KEYS.positions, KEYS.events, KEYS.leader, KEYS.fence,
                       KEYS.instances} <= {f"{KEYS.prefix}:pos:BASUSDT:BOTH"}, keys
        only.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(only.process.wait(), timeout=20) == 0, only.text()[-2000:]
    assert await rclient.exists(KEYS.leader) == 0  # the lease is handed on at once
    assert (await bot.check("BASUSDT")).reason == "watchdog_down"


@pytest.mark.parametrize("after_step_down", [False, True],
                         ids=["closed_at_once", "closed_after_the_step_down"])
async def test_one_instance_cut_from_redis_past_its_lease_leads_again_and_loses_no_event(
        after_step_down: bool, sim: Simulator, redis_server: Any, redis_url: str,
        rclient: redis.asyncio.Redis, bot: AsyncWatchdogClient, tmp_path: Path) -> None:
    """A Redis outage longer than the lease makes the only instance step down (it cannot prove
    its lead); when Redis is back it leads again, republishes, and the event it deferred for
    a closure during the outage is still written (not dropped as a standby's would be).

    ``closed_at_once``: the closure comes right after Redis went away; the daemon usually sees
    it before its step-down (its write fails and is deferred), and after it on a loaded
    machine. ``closed_after_the_step_down`` pins that second order: no write had failed, and
    Redis comes back empty, so nothing but the deferred event can tell the closure."""
    sim.fill("BASUSDT", "BUY", "1216")
    async with AsyncExitStack() as stack:
        (only,) = await start_group(stack, sim, redis_url, tmp_path, 1, rclient)
        await eventually(lambda: bot.check("BASUSDT"), lambda v: v.allowed, timeout_s=30,
                         what="check allows")
        redis_server.stop()
        if not after_step_down:
            sim.fill("BASUSDT", "SELL", "1216")  # closes while Redis is away
        await eventually(sync(only.text), lambda t: "stepping down" in t, timeout_s=30,
                         what="the instance steps down: its lease cannot be renewed")
        if after_step_down:
            sim.fill("BASUSDT", "SELL", "1216")
            await eventually(sync(only.text),
                             lambda t: "position_closed position=BASUSDT:BOTH" in t, timeout_s=30,
                             what="the stepped-down instance's core sees the closure")
        redis_server.start()  # empty: no persistence

        async def kinds() -> list[tuple[str, str]]:
            try:
                return [(f.get("kind", ""), f.get("position", ""))
                        for _, f in await rclient.xrange(KEYS.events)]
            except redis.exceptions.ConnectionError:  # the test's pooled connection died too
                return []

        told = await eventually(kinds, lambda k: ("position_closed", "BASUSDT:BOTH") in k,
                                timeout_s=30,
                                what="the deferred position_closed written once it leads again")
        assert told.count(("position_closed", "BASUSDT:BOTH")) == 1, told
        assert only.owns(await leader_of(rclient))
        assert (await bot.check("BASUSDT")).reason == "position_closed"
        assert only.process.returncode is None, only.text()[-2000:]
