"""Several accounts in one process, and spread over two (issue 14 item 2, docs/HA.md).

Real processes (``python -m watchdog run``), real redis-server, the simulator over real sockets
with one API key per account. Checks: each account is published in its own namespace (keys
unchanged), each instance leads at most its fair share, and when one is killed (-9) its
accounts move to the other: a fresh open position is allowed there, a closed one is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from poswatch.client import AsyncWatchdogClient
from poswatch.keys import AccountKeys
from tests.integration.test_daemon import ROOT
from tests.integration.test_ha import Instance, sync
from tests.support.waiting import eventually
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


def accounts_of(sim: Simulator, n: int) -> dict[str, tuple[str, str]]:
    """``n`` simulator accounts by name: (api key, secret); the first is the simulator's own."""
    found = {"acct0": (sim.api_key, sim.api_secret)}
    for i in range(1, n):
        key, secret = f"key{i:02d}" + "k" * 58, f"secret{i:02d}" + "s" * 55
        sim.exchange.add_account(key, secret)
        found[f"acct{i}"] = (key, secret)
    return found


def write_config(path: Path, sim: Simulator, redis_url: str, names: list[str]) -> Path:
    """The integration settings (test_daemon.config_table) with ``[[accounts]]``. The weight
    share is raised: on the simulator (no limit, the check skips loopback) the accounts' polls
    at the default 0.9 s must not wait for one another's weight."""
    binance = {"rest_url": sim.rest_url, "ws_url": sim.ws_url, "max_silence_s": 5.0,
               "reconnect_min_delay_s": 0.1, "reconnect_max_delay_s": 0.5,
               "weight_budget_pct": 100}
    lines = ["[binance]", *(f"{k} = {json.dumps(v)}" for k, v in binance.items()),
             "[redis]", f"url = {json.dumps(redis_url)}", "heartbeat_interval_s = 0.2",
             "health_ttl_ms = 2000", "[service]", "tick_interval_s = 0.05"]
    for name in names:
        lines += ["[[accounts]]", f'name = "{name}"']
    path.write_text("\n".join(lines) + "\n")
    return path


@asynccontextmanager
async def process(config: Path, log: Path, accounts: dict[str, tuple[str, str]],
                  ) -> AsyncIterator[Instance]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY", "BINANCE_API_KEY",
                        "BINANCE_API_SECRET")}
    for name, (key, secret) in accounts.items():
        env[f"BINANCE_API_KEY_{name.upper()}"] = key
        env[f"BINANCE_API_SECRET_{name.upper()}"] = secret
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'client'}"
    with open(log, "wb") as sink:  # noqa: ASYNC230 - opened once, before the process runs
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watchdog", "run", "--config", str(config), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=sink)
    try:
        yield Instance(proc, log)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def leaders(r: redis.asyncio.Redis, names: list[str]) -> dict[str, str | None]:
    return {name: await r.get(AccountKeys(name).leader) for name in names}


async def every_account_lists_its_leader_and_standby(
        r: redis.asyncio.Redis, redis_url: str, names: list[str], held: dict[str, str | None],
        group: list[Instance]) -> None:
    """``status`` of each account names its leader and the other instance as its standby, from
    registrations renewed after the leads spread (those of the startup expire within three
    TTLs: an instance at its share that never re-registered vanished from the accounts it did
    not lead, and one that handed a lead on was removed from it at once)."""
    from watchdog.ops.status import read_status

    spread_ms = int((await r.time())[0]) * 1000

    async def renewed() -> dict[str, list[float]]:
        return {n: [score for _, score in await r.zrange(AccountKeys(n).instances, 0, -1,
                                                          withscores=True)] for n in names}

    lead_ttl_ms = 1500  # the default: registrations live three of it
    await eventually(renewed, lambda rows: all(
        len(scores) == 2 and min(scores) > spread_ms + 3 * lead_ttl_ms
        for scores in rows.values()), timeout_s=30,
        what="both instances registered in every account's instances set after the spread")
    for name in names:
        report = read_status(redis_url, name, socket_timeout_s=2.0)
        leader, standbys = report.ha["leader"], report.ha["standbys"]
        assert leader == held[name], (name, report.ha)
        assert len(standbys) == 1, (name, report.ha)
        other = next(i for i in group if not i.owns(leader))
        assert other.owns(standbys[0]), (name, report.ha)
        assert report.to_json()["ha"]["standbys"] == standbys


def fill(sim: Simulator, key: str, symbol: str, side: str, qty: str) -> None:
    sim.exchange.market_fill(key, symbol, side, Decimal(qty), None)
    sim.venue.flush()


async def test_one_process_publishes_each_account_in_its_own_namespace(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    accounts = accounts_of(sim, 3)
    names = list(accounts)
    fill(sim, accounts["acct1"][0], "BASUSDT", "BUY", "1216")
    config = write_config(tmp_path / "config.toml", sim, redis_url, names)
    async with AsyncExitStack() as stack:
        only = await stack.enter_async_context(process(config, tmp_path / "p.log", accounts))
        bots = {n: AsyncWatchdogClient.from_url(redis_url, n) for n in names}
        for client in bots.values():
            stack.push_async_callback(client.close)
        await eventually(lambda: bots["acct1"].check("BASUSDT"), lambda v: v.allowed,
                         timeout_s=60, what="acct1's position allowed")
        for name in ("acct0", "acct2"):  # alive, but no such position on those accounts
            verdict = await eventually(lambda n=name: bots[n].check("BASUSDT"),
                                       lambda v: v.reason != "watchdog_down",
                                       timeout_s=60, what=f"{name} published")
            assert verdict.reason == "no_position", (name, verdict)
        held = await leaders(rclient, names)
        assert all(only.owns(v) for v in held.values()), held
        assert len(set(held.values())) == 1  # one instance id for the process's accounts
        only.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(only.process.wait(), timeout=30) == 0, only.text()[-3000:]
    for name in names:  # every account marked stopped, its lease handed on
        assert await rclient.exists(AccountKeys(name).health, AccountKeys(name).leader) == 0


async def test_two_processes_share_the_accounts_and_the_survivor_takes_the_killed_ones(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    accounts = accounts_of(sim, 4)
    names = list(accounts)
    config = write_config(tmp_path / "config.toml", sim, redis_url, names)
    async with AsyncExitStack() as stack:
        group = [await stack.enter_async_context(process(config, tmp_path / f"p{i}.log", accounts))
                 for i in range(2)]

        def spread(held: dict[str, str | None]) -> bool:
            return all(held.values()) and all(
                sum(1 for v in held.values() if i.owns(v)) == 2 for i in group)

        held = await eventually(lambda: leaders(rclient, names), spread, timeout_s=90,
                                what="2 accounts led by each instance")
        await every_account_lists_its_leader_and_standby(rclient, redis_url, names, held, group)
        dead = group[0]
        moved = [n for n, v in held.items() if dead.owns(v)]
        survivor = group[1]
        bots = {n: AsyncWatchdogClient.from_url(redis_url, n) for n in names}
        for client in bots.values():
            stack.push_async_callback(client.close)
        key = accounts[moved[0]][0]
        fill(sim, key, "BASUSDT", "BUY", "1216")
        await eventually(lambda: bots[moved[0]].check("BASUSDT"), lambda v: v.allowed,
                         timeout_s=60, what="allowed under the first leader")
        dead.process.kill()  # SIGKILL: no resign; the leases run out
        fill(sim, accounts[moved[1]][0], "ETHUSDT", "BUY", "2")  # fresh, after the kill
        fill(sim, key, "BASUSDT", "SELL", "1216")  # closed while nobody led it
        await eventually(lambda: leaders(rclient, names),
                         lambda h: all(survivor.owns(v) for v in h.values()), timeout_s=60,
                         what="the survivor leads every account")
        verdict = await eventually(lambda: bots[moved[1]].check("ETHUSDT"), lambda v: v.allowed,
                                   timeout_s=60, what="a fresh position allowed after the move")
        assert verdict.reason == "ok"
        closed = await eventually(lambda: bots[moved[0]].check("BASUSDT"),
                                  lambda v: v.reason == "position_closed", timeout_s=60,
                                  what="the closure told after the move")
        assert not closed.allowed
        for name in names:  # health names the survivor everywhere
            instance: Any = await rclient.hget(AccountKeys(name).health, "instance")
            assert survivor.owns(instance), (name, instance)
        assert survivor.process.returncode is None, survivor.text()[-3000:]
        await eventually(sync(survivor.text), lambda t: "live instance(s)" in t, timeout_s=30,
                         what="the survivor saw the other instance go")
