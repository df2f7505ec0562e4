"""Several accounts in one process, and spread over two (issue 14 item 2, docs/HA.md).

Real processes (``python -m watchdog run``), real redis-server, the simulator over real sockets
with one API key per account. Checks: each account is published in its own namespace (keys
unchanged); ten accounts on two instances: each leads its fair share, and when one is killed
(-9) its accounts move to the other, with issue 14's four checks: no ``allow`` for a closed
position, no write with an old fencing token accepted, no stop cancelled on an open position,
and the state converges (every account led by the survivor, its positions fresh and correct,
its heartbeat published).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from poswatch.client import AsyncWatchdogClient
from poswatch.keys import AccountKeys
from tests.integration.test_ha import Instance, place_stop, spawned, sync
from tests.support.store import make_view, position_key
from tests.support.waiting import eventually
from watchdog.errors import Fenced
from watchdog.sim import Simulator
from watchdog.store.publisher import RedisPublisher

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
    """One instance of ``config``, each account's credentials in its default variables."""
    credentials: dict[str, str] = {}
    for name, (key, secret) in accounts.items():
        credentials[f"BINANCE_API_KEY_{name.upper()}"] = key
        credentials[f"BINANCE_API_SECRET_{name.upper()}"] = secret
    async with spawned(config, log, credentials) as one:
        yield one


@dataclass
class Setup:
    """What ``started`` runs: the accounts, the instances, and a bot per account."""

    accounts: dict[str, tuple[str, str]]
    group: list[Instance]
    bots: dict[str, AsyncWatchdogClient] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.accounts)

    def key(self, name: str) -> str:
        return self.accounts[name][0]


async def started(stack: AsyncExitStack, sim: Simulator, redis_url: str, tmp_path: Path,
                  accounts: dict[str, tuple[str, str]], instances: int = 1) -> Setup:
    """``instances`` processes of one configuration listing ``accounts``, and a bot for each
    account; all ended by ``stack``."""
    config = write_config(tmp_path / "config.toml", sim, redis_url, list(accounts))
    group = [await stack.enter_async_context(process(config, tmp_path / f"p{i}.log", accounts))
             for i in range(instances)]
    setup = Setup(accounts, group)
    for name in accounts:
        setup.bots[name] = AsyncWatchdogClient.from_url(redis_url, name)
        stack.push_async_callback(setup.bots[name].close)
    return setup


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
    fill(sim, accounts["acct1"][0], "BASUSDT", "BUY", "1216")
    async with AsyncExitStack() as stack:
        setup = await started(stack, sim, redis_url, tmp_path, accounts)
        (only,), bots, names = setup.group, setup.bots, setup.names
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


# Issue 14's "Done when": 10 accounts on two instances, one killed.
ACCOUNTS = 10
# A position closed after the kill may still be allowed on the dead leader's last verification
# (made before the close) for the veto's max_age_ms (3 s, the default), plus the probe's round
# trip: bench/chaos_rig.py's bound after SIGKILL. Never later: nobody may verify it open.
CLOSED_ALLOW_S = 3.5


@dataclass
class Probe:
    """Bots asking ``check`` for every account's symbols in turn, all along; each answer kept
    as (asked, answered: wall seconds, account, symbol, allowed, reason)."""

    bots: dict[str, AsyncWatchdogClient]
    symbols: tuple[str, ...]
    answers: list[tuple[float, float, str, str, bool, str]] = field(default_factory=list)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Probe]:
        stop = asyncio.Event()

        async def ask() -> None:
            while not stop.is_set():
                for name, bot in self.bots.items():
                    for symbol in self.symbols:
                        asked = time.time()
                        verdict = await bot.check(symbol)
                        self.answers.append((asked, time.time(), name, symbol, verdict.allowed,
                                             str(verdict.reason)))
                await asyncio.sleep(0.05)  # a probe's pace, not a wait for anything

        task = asyncio.create_task(ask(), name="probe")
        try:
            yield self
        finally:
            stop.set()
            await task

    def first(self, name: str, symbol: str, reason: str) -> float | None:
        """When ``name``'s ``symbol`` was first answered ``reason`` (asked, wall seconds)."""
        return next((asked for asked, _, n, s, _, why in self.answers
                     if n == name and s == symbol and why == reason), None)

    def allowed_after(self, name: str, symbol: str, since: float) -> list[float]:
        """When ``name``'s ``symbol`` was allowed on a question asked after ``since``."""
        return [asked for asked, _, n, s, allowed, _ in self.answers
                if allowed and n == name and s == symbol and asked > since]


def cancelled_while_open(sim: Simulator) -> list[dict[str, Any]]:
    """Every stop the simulator's journal shows cancelled while its position was open (the test
    cancels nothing itself, and the guard's last-resort stops are off by default)."""
    return [e for e in sim.exchange.journal.entries
            if e["kind"] in ("algo", "order") and e["status"] == "CANCELED"
            and e["position_amount"] != "0"]


def cancels_of(sim: Simulator, algo_id: int) -> int:
    return sum(1 for e in sim.exchange.journal.entries
               if e["kind"] == "algo" and e["id"] == algo_id and e["status"] == "CANCELED")


async def fences(r: redis.asyncio.Redis, names: list[str]) -> dict[str, int]:
    return {name: int(await r.get(AccountKeys(name).fence)) for name in names}


async def unconverged(r: redis.asyncio.Redis, sim: Simulator, setup: Setup,
                      survivor: Instance) -> list[str]:
    """What still differs from a converged state: every account led by ``survivor``, its health
    naming it under the account's fence, every position the simulator holds published open with
    the same amount and allowed (fresh: within the veto's max age), nothing else open or
    unknown, and every hash written under the account's fence."""
    wrong: list[str] = []
    for name in setup.names:
        keys = AccountKeys(name)
        fence: Any = await r.get(keys.fence)
        if not survivor.owns(await r.get(keys.leader)):
            wrong.append(f"{name}: leader {await r.get(keys.leader)}")
        health: dict[str, Any] = await r.hgetall(keys.health)
        if not survivor.owns(health.get("instance")) or health.get("fence") != fence:
            wrong.append(f"{name}: health {health.get('instance')} fence {health.get('fence')}"
                         f" (account fence {fence})")
        truth = {f"{symbol}:{side}": p.amount
                 for (symbol, side), p in sim.exchange.accounts[setup.key(name)].positions.items()
                 if p.amount}
        for member in await r.smembers(keys.positions):
            view: dict[str, Any] = await r.hgetall(f"{keys.prefix}:pos:{member}")
            if view.get("fence") != fence:
                wrong.append(f"{name} {member}: fence {view.get('fence')} (account {fence})")
            if member not in truth and view.get("state") not in ("closed", None):
                wrong.append(f"{name} {member}: flat, published {view.get('state')}")
        for member, amount in truth.items():
            verdict = await setup.bots[name].check(member.split(":")[0])
            if not verdict.allowed or Decimal(verdict.position.get("amt", "nan")) != amount:
                wrong.append(f"{name} {member}: holds {amount}, verdict {verdict.reason} "
                             f"{verdict.position.get('amt')}")
    return wrong


async def beats(r: redis.asyncio.Redis, names: list[str]) -> dict[str, int]:
    return {name: int(await r.hget(AccountKeys(name).health, "beat_ms") or 0) for name in names}


async def test_ten_accounts_on_two_processes_the_survivor_takes_the_killed_ones_safely(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis, tmp_path: Path) -> None:
    accounts = accounts_of(sim, ACCOUNTS)
    stops: dict[str, int] = {}
    for name, (key, _) in accounts.items():  # every account holds a position under a stop
        fill(sim, key, "BASUSDT", "BUY", "1216")
        stops[name] = place_stop(sim, "BASUSDT", "1216", api_key=key)
    async with AsyncExitStack() as stack:
        setup = await started(stack, sim, redis_url, tmp_path, accounts, instances=2)
        group, bots, names = setup.group, setup.bots, setup.names

        def spread(held: dict[str, str | None]) -> bool:
            return all(held.values()) and all(
                sum(1 for v in held.values() if i.owns(v)) == ACCOUNTS // 2 for i in group)

        held = await eventually(lambda: leaders(rclient, names), spread, timeout_s=90,
                                what=f"{ACCOUNTS // 2} accounts led by each instance")
        await every_account_lists_its_leader_and_standby(rclient, redis_url, names, held, group)
        for name in names:
            await eventually(lambda n=name: bots[n].check("BASUSDT"), lambda v: v.allowed,
                             timeout_s=60, what=f"{name}'s position allowed under its leader")
        dead, survivor = group
        moved = [n for n, v in held.items() if dead.owns(v)]
        kept = [n for n in names if n not in moved]
        before = await fences(rclient, names)
        async with Probe(bots, ("BASUSDT", "ETHUSDT")).running() as probe:
            await eventually(sync(lambda: len(probe.answers)), lambda n: n >= 2 * ACCOUNTS,
                             timeout_s=30, what="the probe asked about every account")
            dead.process.kill()  # SIGKILL: no resign; its leases run out
            closed: dict[str, float] = {}
            for name in (moved[0], kept[0]):  # closed while a moved account has no leader;
                fill(sim, setup.key(name), "BASUSDT", "SELL", "1216")  # its stop: an orphan
                closed[name] = time.time()
            fresh = moved[1]  # a position opened after the kill, under a stop of its own
            fill(sim, setup.key(fresh), "ETHUSDT", "BUY", "2")
            fresh_stop = place_stop(sim, "ETHUSDT", "2", api_key=setup.key(fresh))

            await eventually(lambda: leaders(rclient, names),
                             lambda h: all(survivor.owns(v) for v in h.values()), timeout_s=60,
                             what="the survivor leads every account")
            verdict = await eventually(lambda: bots[fresh].check("ETHUSDT"), lambda v: v.allowed,
                                       timeout_s=60, what="a fresh position allowed after the move")
            assert verdict.reason == "ok"
            for name in closed:
                told = await eventually(lambda n=name: bots[n].check("BASUSDT"),
                                        lambda v: v.reason == "position_closed", timeout_s=60,
                                        what=f"{name}'s closure told by the survivor")
                assert not told.allowed
            for name in closed:  # the orphans are the survivor's to remove, once each
                await eventually(
                    sync(lambda n=name: sim.exchange.find_algo(setup.key(n), stops[n],
                                                               None).is_open),
                    lambda is_open: not is_open, timeout_s=60,
                    what=f"{name}'s orphaned stop removed")
            await eventually(lambda: unconverged(rclient, sim, setup, survivor),
                             lambda wrong: not wrong, timeout_s=60,
                             what="every account converged on the survivor")
            first = await beats(rclient, names)
            await eventually(lambda: beats(rclient, names),
                             lambda now: all(now[n] > first[n] for n in names), timeout_s=30,
                             what="the survivor's heartbeat published for every account")

        # No allow for a closed position beyond the dead leader's last verification, none once
        # it was told closed, and none for a position never held.
        for name, at in closed.items():
            late = probe.allowed_after(name, "BASUSDT", at + CLOSED_ALLOW_S)
            assert not late, (name, f"allowed {late[0] - at:.2f} s after its close")
            told_at = probe.first(name, "BASUSDT", "position_closed")
            assert told_at is not None, name
            assert not probe.allowed_after(name, "BASUSDT", told_at), name
        assert not [a for a in probe.answers if a[3] == "ETHUSDT" and a[4] and a[2] != fresh]
        # No write with an old fencing token accepted: the moved accounts got greater tokens,
        # every hash carries the account's current one (unconverged), and the dead leader's
        # token, replayed as a paused leader would, is refused and changes nothing.
        after = await fences(rclient, names)
        assert all(after[n] > before[n] for n in moved), (before, after)
        assert all(after[n] >= before[n] for n in kept), (before, after)
        for name in moved:
            await refused_with(redis_url, rclient, name, before[name])
        # No stop cancelled on an open position; each orphan cancelled exactly once.
        assert cancelled_while_open(sim) == []
        assert {n: cancels_of(sim, stops[n]) for n in closed} == dict.fromkeys(closed, 1)
        for name in names:
            if name not in closed:
                assert sim.exchange.find_algo(setup.key(name), stops[name], None).is_open, name
        assert sim.exchange.find_algo(setup.key(fresh), fresh_stop, None).is_open
        await eventually(sync(survivor.text), lambda t: "live instance(s)" in t, timeout_s=30,
                         what="the survivor saw the other instance go")
        assert survivor.process.returncode is None, survivor.text()[-3000:]


async def refused_with(redis_url: str, r: redis.asyncio.Redis, name: str, old: int) -> None:
    """The writes of a leader holding ``old`` (a position it never saw, an event) are refused
    with ``Fenced`` and change nothing. Not a heartbeat: a refused beat tries to acquire (as
    after Redis lost its data), which registers the caller as a live instance and shrinks the
    survivor's fair share, and this publisher is no instance."""
    stale = RedisPublisher.from_url(redis_url, account=name, health_ttl_ms=2000, closed_ttl_s=60,
                                    events_maxlen=1000, veto_max_age_ms=3000, socket_timeout_s=2.0)
    await stale.start()
    keys = AccountKeys(name)
    try:
        health = await r.hget(keys.health, "instance")
        writes: list[Callable[[], Any]] = [
            lambda: stale.publish(make_view(position_key("BTCUSDT"), version=99,
                                            verified_ms=int(time.time() * 1000))),
            lambda: stale.emit("alert", {"code": "replayed_old_fence"})]
        for write in writes:
            stale._fence = old  # what the dead leader believed (tests/support/store.py as_leader)
            with pytest.raises(Fenced):
                await write()
        assert await r.exists(f"{keys.prefix}:pos:BTCUSDT:BOTH") == 0
        assert "BTCUSDT:BOTH" not in await r.smembers(keys.positions)
        assert not [f for _, f in await r.xrange(keys.events) if f.get("code") == "replayed_old_fence"]
        assert await r.hget(keys.health, "instance") == health
        assert await r.zscore(keys.instances, stale.instance) is None
    finally:
        await stale.close()
