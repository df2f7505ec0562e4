"""Many accounts per process (issue 14 item 2): cost per account, detection with the stream
muted, and weight per IP, for N accounts on one instance and on two.

Usage: PYTHONPATH=.:client python bench/accounts.py [--accounts 1 10 50] [--instances 1 2]
       [--trials 10] [--steady-s 30] [--json]
       PYTHONPATH=.:client python bench/accounts.py --verdicts --accounts 10 --budget-pct 15
       [--window-s 40]   (what bots are told: ok share and ages, one instance)
       (WD_BENCH_DAEMON_ROOT=/other/checkout runs that checkout's daemon: before/after)
(docs/HA.md, Many accounts per process: figures).

Real parts on loopback: a throw-away redis-server, the simulator in this process (one API key
per account, real sockets) and ``python -m watchdog run`` processes with ``[[accounts]]``.
Settings are the defaults except ``[binance] weight_budget_pct = 100``: the whole IP's 2400
weight/min for the watchdog (a dedicated IP); at the default 15 % one IP polls one account.
With two instances the simulator's IP limit is doubled: each instance stands for a host of its
own (its own IP and its own budget), as in production.

Per run: start the instance(s); wait until every account's health is ready and each instance
leads its fair share; measure RSS (sum over the instances) and CPU seconds over ``--steady-s``
with nothing happening; then ``--trials`` detections, round robin over the accounts: open a
position with the stream live, wait 2.5 s plus a random fraction of the poll, mute the stream,
``t0``, close it on the exchange, ``t1`` when Redis shows the position ``closed``. Weight per
IP: what the simulator charged per minute over the steady phase, per instance.

Without ``--fit`` the positions poll stays at the default 0.9 s whatever the number of
accounts: past ~6 accounts per IP that asks for more than the IP allows (the config check
refuses such a file for Binance; the simulator's loopback URL is exempt), and the shared
budget decides who waits. ``--fit`` polls as fast as the accounts per IP fit instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "client")]

import redis.asyncio  # noqa: E402

from bench.infra import PYTHON, ROOT, proc_stat, python_env, redis_server  # noqa: E402
from poswatch.keys import AccountKeys  # noqa: E402
from watchdog.sim import Simulator, run_simulator  # noqa: E402

SYMBOL = "BTCUSDT"
QTY = Decimal("0.01")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def fitted_poll_s(per_ip: int) -> float:
    """``--fit``: the shortest positions poll (weight 5) that ``per_ip`` accounts can share on
    one IP: routine reads stop at 90 % of 2400 (budget rule 4), less each account's sweep
    (8/min); never under the default 0.9 s. Rounded up to 0.05 s."""
    seconds = 60 * 5 * per_ip / (2400 * 0.9 - 8 * per_ip)
    return max(0.9, -(-round(seconds * 1000) // 50) * 0.05)


def _config(sim: Simulator, redis_url: str, names: list[str], poll_s: float | None,
            host: int = 0, hosts: int = 1, budget_pct: int = 100) -> str:
    lines = ["[binance]", f'rest_url = "{_on_host(sim.rest_url, host, hosts)}"',
             f'ws_url = "{_on_host(sim.ws_url, host, hosts)}"',
             f"weight_budget_pct = {budget_pct}"]
    if poll_s is not None:
        lines += [f"poll_interval_s = {poll_s:.2f}", f"idle_poll_interval_s = {poll_s:.2f}"]
    lines += ["[redis]", f'url = "{redis_url}"']
    for name in names:
        lines += ["[[accounts]]", f'name = "{name}"']
    return "\n".join(lines) + "\n"


async def _wait(probe: Any, what: str, timeout_s: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = await probe()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise TimeoutError(what)


HOSTS = ("127.0.0.1", "127.0.0.2")  # two "hosts": two loopback addresses (docs/SIMULATOR.md)


def _on_host(url: str, i: int, hosts: int) -> str:
    """``url`` of the simulator as instance ``i`` reaches it (its own host's IP)."""
    return url.replace("127.0.0.1", HOSTS[i % hosts]) if hosts > 1 else url


async def one_run(n_accounts: int, n_instances: int, trials: int, steady_s: float,
                  redis_url: str, fit: bool = False, hosts: int = 1,
                  kill: bool = False) -> dict[str, Any]:
    """One row. ``hosts`` 2: the instances reach the simulator at 127.0.0.1 and 127.0.0.2, which
    meters each address's weight on its own (2400 each): two hosts, two IPs. ``kill``: after
    the detections, ``kill -9`` of the instance leading the most accounts: failover (each of
    its accounts led by the survivor, its health naming it) and one muted-stream detection
    on a moved account."""
    hosts = max(1, min(hosts, len(HOSTS), n_instances))
    limit = 2400 * n_instances if hosts == 1 else 2400
    poll_s = fitted_poll_s(-(-n_accounts // n_instances)) if fit else None
    if poll_s is not None and poll_s * 1000 >= 5000:  # [core] max_age_ms: refused by the check
        return {"accounts": n_accounts, "instances": n_instances, "fit": True,
                "poll_interval_s": round(poll_s, 2), "fits_one_ip": False}
    sim_options: dict[str, Any] = ({} if hosts == 1 else
                                   {"weight_key": "dialled", "extra_hosts": HOSTS[1:hosts]})
    async with run_simulator(symbols=(SYMBOL,), weight_limit=limit, **sim_options) as sim:
        accounts = add_accounts(sim, n_accounts)
        names = list(accounts)
        charged: list[tuple[float, int, str]] = []
        sim.venue.on_charge = lambda ip, _path, _key, weight: charged.append(
            (time.monotonic(), weight, ip))
        r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        await r.flushall()
        env = daemon_env(accounts)
        with tempfile.TemporaryDirectory(prefix="wd-bench-accounts-") as tmp:
            procs = []
            for i in range(n_instances):
                config = Path(tmp) / f"config{i}.toml"
                config.write_text(_config(sim, redis_url, names, poll_s, host=i, hosts=hosts))
                with open(Path(tmp) / f"i{i}.log", "wb") as log:  # noqa: ASYNC230
                    procs.append(subprocess.Popen(  # noqa: ASYNC220 - Popen only starts it
                        [PYTHON, "-m", "watchdog", "--log-level", "WARNING", "run", "--config",
                         str(config)], cwd=daemon_root(), env=env, stdout=subprocess.DEVNULL,
                        stderr=log))
            try:
                share = -(-n_accounts // n_instances)

                async def settled() -> bool:
                    for i, p in enumerate(procs):
                        if p.poll() is not None:
                            tail = (Path(tmp) / f"i{i}.log").read_text()[-3000:]
                            raise RuntimeError(f"instance {i} exited {p.returncode}: {tail}")
                    holders = [await r.get(AccountKeys(n).leader) for n in names]
                    ready = [await r.hget(AccountKeys(n).health, "ready") for n in names]
                    per = [sum(1 for h in holders if h and h.split(":")[1] == str(p.pid))
                           for p in procs]
                    return all(x == "true" for x in ready) and all(h for h in holders) and \
                        max(per) <= share
                started = time.monotonic()
                await _wait(settled, "every account ready and led")
                ready_s = time.monotonic() - started
                await asyncio.sleep(5.0)  # startup's snapshots and sweeps out of the window
                before = [proc_stat(p.pid) for p in procs]
                t_steady = time.monotonic()
                await asyncio.sleep(steady_s)
                after = [proc_stat(p.pid) for p in procs]
                steady_weight = sum(w for t, w, _ in charged if t >= t_steady)
                by_ip: dict[str, int] = {}
                for t, w, ip in charged:
                    if t_steady <= t < t_steady + steady_s:
                        by_ip[ip or "127.0.0.1"] = by_ip.get(ip or "127.0.0.1", 0) + w
                cpu_s = sum(a.cpu_s - b.cpu_s for a, b in zip(after, before, strict=True))
                wall_s = after[0].at - before[0].at
                rss_mb = sum(a.rss_mb for a in after)
                # User-data connections open at the end of the steady phase (shared ones: several
                # listen keys each; docs/HA.md, "One user-data connection for several accounts").
                user_connections = sum(1 for c in sim.venue.hub.connections if c.subscriptions)
                detections = []
                for trial in range(trials):
                    name = names[trial % n_accounts]
                    key = accounts[name][0]
                    pos = f"{AccountKeys(name).prefix}:pos:{SYMBOL}:BOTH"
                    sim.set_faults(stream="normal")
                    sim.exchange.market_fill(key, SYMBOL, "BUY", QTY, None)
                    sim.venue.flush()

                    async def shows(state: str, pos: str = pos) -> bool:
                        return await r.hget(pos, "state") == state
                    await _wait(lambda: shows("open"), f"{name} open")
                    await asyncio.sleep(2.5 + random.random() * 0.9)
                    sim.set_faults(stream="mute")
                    t0 = time.monotonic()
                    sim.exchange.market_fill(key, SYMBOL, "SELL", QTY, None)
                    sim.venue.flush()
                    deadline = t0 + 120
                    while not await shows("closed"):
                        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                            raise RuntimeError(f"no closure seen; exits {[p.poll() for p in procs]}")
                        await asyncio.sleep(0.005)
                    detections.append((time.monotonic() - t0) * 1000)
                sim.set_faults(stream="normal")
                if kill and n_instances > 1:
                    failover = await _kill_and_fail_over(r, sim, procs, names, accounts)
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    try:
                        p.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
        await r.aclose()
    extra: dict[str, Any] = {"hosts": hosts, "weight_per_min_by_ip": {
        ip: round(w * 60 / steady_s) for ip, w in sorted(by_ip.items())}}
    if kill and n_instances > 1:
        extra.update(failover)
    return {
        **extra,
        "accounts": n_accounts, "instances": n_instances, "fit": fit,
        "poll_interval_s": round(poll_s or 0.9, 2), "ready_s": round(ready_s, 1),
        "rss_mb_total": round(rss_mb, 1), "rss_mb_per_account": round(rss_mb / n_accounts, 2),
        "cpu_pct_total": round(100 * cpu_s / wall_s, 1),
        "cpu_pct_per_account": round(100 * cpu_s / wall_s / n_accounts, 2),
        "weight_per_min_per_ip": round(steady_weight * 60 / steady_s / n_instances),
        "user_connections": user_connections,
        "detection_p50_ms": round(statistics.median(detections)),
        "detection_p95_ms": round(_quantile(detections, 0.95)),
        "detection_max_ms": round(max(detections)), "trials": trials,
    }


async def _kill_and_fail_over(r: redis.asyncio.Redis, sim: Simulator,
                              procs: list[subprocess.Popen[bytes]], names: list[str],
                              accounts: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """``kill -9`` of the instance leading the most accounts; then until the other leads
    every account it led and writes their health hashes, and one closure on a moved account
    with the stream muted."""
    def owner(value: str | None, proc: subprocess.Popen[bytes]) -> bool:
        return value is not None and value.split(":")[1:2] == [str(proc.pid)]
    holders = [await r.get(AccountKeys(n).leader) for n in names]
    dead = max(procs[:2], key=lambda p: sum(1 for h in holders if owner(h, p)))
    survivor = procs[1] if dead is procs[0] else procs[0]
    moved = [n for n, h in zip(names, holders, strict=True) if owner(h, dead)]
    dead.kill()
    t_kill = time.monotonic()
    first: dict[str, float] = {}

    async def all_moved() -> bool:
        for n in moved:
            if n not in first and owner(await r.hget(AccountKeys(n).health, "instance"), survivor):
                first[n] = (time.monotonic() - t_kill) * 1000
        return len(first) == len(moved)
    await _wait(all_moved, "the survivor leads every account", timeout_s=120)
    name = moved[0] if moved else names[0]
    key = accounts[name][0]
    pos = f"{AccountKeys(name).prefix}:pos:{SYMBOL}:BOTH"
    sim.exchange.market_fill(key, SYMBOL, "BUY", QTY, None)
    sim.venue.flush()

    async def shows(state: str) -> bool:
        return await r.hget(pos, "state") == state
    await _wait(lambda: shows("open"), f"{name} open after the kill")
    await asyncio.sleep(2.5)
    sim.set_faults(stream="mute")
    t0 = time.monotonic()
    sim.exchange.market_fill(key, SYMBOL, "SELL", QTY, None)
    sim.venue.flush()
    await _wait(lambda: shows("closed"), f"{name} closed after the kill", timeout_s=120)
    after_ms = (time.monotonic() - t0) * 1000
    sim.set_faults(stream="normal")
    times = sorted(first.values())
    return {"killed_leads": len(moved),
            "failover_ms": {"p50": round(statistics.median(times)) if times else None,
                            "max": round(max(times)) if times else None},
            "detection_after_kill_ms": round(after_ms)}


def add_accounts(sim: Any, n_accounts: int) -> dict[str, tuple[str, str]]:
    """The simulator's own account as ``acct00`` and ``n_accounts - 1`` more: name → key, secret."""
    accounts = {"acct00": (sim.api_key, sim.api_secret)}
    for i in range(1, n_accounts):
        key, secret = f"benchkey{i:03d}" + "k" * 53, f"benchsecret{i:03d}" + "s" * 50
        sim.exchange.add_account(key, secret)
        accounts[f"acct{i:02d}"] = (key, secret)
    return accounts


def daemon_env(accounts: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The daemon's environment: each account's credentials in its default variables."""
    env = python_env(daemon_root())
    for name, (key, secret) in accounts.items():
        env[f"BINANCE_API_KEY_{name.upper()}"] = key
        env[f"BINANCE_API_SECRET_{name.upper()}"] = secret
    return env


@contextlib.contextmanager
def one_instance(config_text: str, env: dict[str, str],
                 prefix: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``python -m watchdog run`` of ``config_text`` (WARNING and up to a log file); yields the
    process and its log; SIGTERM at the end (SIGKILL after 20 s)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        config, log_path = Path(tmp) / "config.toml", Path(tmp) / "i0.log"
        config.write_text(config_text)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [PYTHON, "-m", "watchdog", "--log-level", "WARNING", "run", "--config",
                 str(config)], cwd=daemon_root(), env=env, stdout=subprocess.DEVNULL,
                stderr=log)
        try:
            yield proc, log_path
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def daemon_root() -> Path:
    """The checkout whose daemon runs (``--daemon-root``, as bench/run.py's)."""
    return Path(os.environ.get("WD_BENCH_DAEMON_ROOT", str(ROOT)))


def _gaps(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in itertools.pairwise(ordered)]


def _spread(values: list[float], scale: float = 1.0) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    return {"p50": round(statistics.median(values) * scale, 2),
            "p95": round(_quantile(values, 0.95) * scale, 2), "max": round(max(values) * scale, 2)}


_SWEEP_PATHS = frozenset({"GET /fapi/v1/openOrders", "GET /fapi/v1/openAlgoOrders"})  # one list each


async def first_minute(n_accounts: int, redis_url: str, *, trials: int | None = None,
                       window_s: float = 60.0) -> dict[str, Any]:
    """``--first-minute``: every account holds a position when one instance starts; during the
    first ``window_s`` from the start, each account's positions polls (the intervals between
    its positionRisk reads as the simulator charged them), its orders sweeps (all-symbols
    openAlgoOrders and openOrders, weight 40 each, swept apart since session 6) and, one
    account after another, a closure with the stream muted (detection = the close on the
    exchange → Redis shows ``closed``). Weight: what the simulator charged per IP in that
    window. Defaults but ``weight_budget_pct = 100``."""
    trials = min(n_accounts, 10) if trials is None else trials
    async with run_simulator(symbols=(SYMBOL,), weight_limit=2400, weight_key="dialled") as sim:
        accounts = add_accounts(sim, n_accounts)
        names = list(accounts)
        by_key = {key: name for name, (key, _) in accounts.items()}
        for key, _ in accounts.values():
            sim.exchange.market_fill(key, SYMBOL, "BUY", QTY, None)
        sim.venue.flush()
        charged: list[tuple[float, str, str, str, int]] = []
        sim.venue.on_charge = lambda ip, path, key, weight: charged.append(
            (time.monotonic(), ip, path, by_key.get(key, ""), weight))
        r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        await r.flushall()
        detections: list[tuple[str, float, float]] = []
        t_start = time.monotonic()
        with one_instance(_config(sim, redis_url, names, None), daemon_env(accounts),
                          "wd-bench-first-") as (proc, log):
            def pos(name: str) -> str:
                return f"{AccountKeys(name).prefix}:pos:{SYMBOL}:BOTH"

            async def all_open() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text()[-3000:])
                return all([await r.hget(pos(n), "state") == "open" for n in names])
            await _wait(all_open, "every account's position open")
            ready_s = time.monotonic() - t_start
            step_s = max(0.0, (window_s - ready_s - 5.0) / max(1, trials))
            for k in range(trials):
                name = names[k % n_accounts]
                due = t_start + ready_s + 1.0 + k * step_s
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                sim.set_faults(stream="mute")
                t0 = time.monotonic()
                sim.exchange.market_fill(accounts[name][0], SYMBOL, "SELL", QTY, None)
                sim.venue.flush()
                deadline = t0 + 120
                while await r.hget(pos(name), "state") != "closed":
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"{name}: no closure seen; exit {proc.poll()}")
                    await asyncio.sleep(0.005)
                detections.append((name, t0 - t_start, (time.monotonic() - t0) * 1000))
                sim.set_faults(stream="normal")
            await asyncio.sleep(max(0.0, t_start + window_s - time.monotonic()))
        await r.aclose()
    inside = [c for c in charged if c[0] - t_start <= window_s]
    polls = {n: [t for t, _, path, who, _ in inside if who == n and "positionRisk" in path]
             for n in names}
    gaps = [g for n in names for g in _gaps(polls[n])]
    minutes = range(max(1, round(window_s / 60)))
    per_minute = [{"polls_per_account": round(sum(
        1 for n in names for t in polls[n] if m * 60 <= t - t_start < (m + 1) * 60) / n_accounts, 1),
        "sweeps": sum(1 for t, _, path, _, w in inside if m * 60 <= t - t_start < (m + 1) * 60
                      and path in _SWEEP_PATHS and w == 40),
        "weight": sum(w for t, _, _, _, w in inside if m * 60 <= t - t_start < (m + 1) * 60),
        "longest_gap_s": round(max((b - a for n in names
                                    for a, b in itertools.pairwise(sorted(polls[n]))
                                    if m * 60 <= b - t_start < (m + 1) * 60), default=0.0), 2)}
        for m in minutes]
    sweeps = sorted(round(t - t_start, 1) for t, _, path, _, w in inside
                    if path in _SWEEP_PATHS and w == 40)
    weight_by_ip: dict[str, int] = {}
    for _, ip, _, _, w in inside:
        weight_by_ip[ip] = weight_by_ip.get(ip, 0) + w
    return {
        "mode": "first_minute", "accounts": n_accounts, "instances": 1,
        "daemon_root": str(daemon_root()), "window_s": window_s, "ready_s": round(ready_s, 1),
        "poll_gap_s": _spread(gaps), "polls_per_account": _spread(
            [float(len(polls[n])) for n in names]),
        "longest_gap_by_account_s": {n: round(max(_gaps(polls[n]), default=0.0), 2)
                                     for n in names},
        "sweeps_at_s": sweeps, "weight_by_ip": weight_by_ip, "per_minute": per_minute,
        "detection_ms": _spread([d for _, _, d in detections]),
        "detections": [(n, round(at, 1), round(ms)) for n, at, ms in detections],
    }


async def verdicts(n_accounts: int, redis_url: str, *, budget_pct: int,
                   window_s: float) -> dict[str, Any]:
    """``--verdicts``: what bots are told when N accounts share one instance's budget. Every
    account holds a position when the instance starts; once each has been allowed, a bot asks
    ``check`` for every account's position every 0.1 s over ``window_s``. The share of ``ok``
    answers and the ages the answers carry say whether the accounts' positions reads come often
    enough for the veto's ``max_age_ms`` (3 s): the budget is a hard cap, so too many accounts
    per IP do not overspend, they make every position old."""
    from poswatch.client import AsyncWatchdogClient

    async with run_simulator(symbols=(SYMBOL,), weight_limit=2400) as sim:
        accounts = add_accounts(sim, n_accounts)
        names = list(accounts)
        for key, _ in accounts.values():
            sim.exchange.market_fill(key, SYMBOL, "BUY", QTY, None)
        sim.venue.flush()
        r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        await r.flushall()
        bots = {n: AsyncWatchdogClient.from_url(redis_url, n) for n in names}
        reasons: dict[str, int] = {}
        ages: list[float] = []
        t_start = time.monotonic()
        with one_instance(_config(sim, redis_url, names, None, budget_pct=budget_pct),
                          daemon_env(accounts), "wd-bench-verdicts-") as (proc, log):
            seen: set[str] = set()

            async def each_allowed_once() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text()[-3000:])
                for n in names:
                    if n not in seen and (await bots[n].check(SYMBOL)).allowed:
                        seen.add(n)
                return len(seen) == len(names)
            await _wait(each_allowed_once, "every account's position allowed once")
            ready_s = time.monotonic() - t_start
            end = time.monotonic() + window_s
            while time.monotonic() < end:
                for n in names:
                    verdict = await bots[n].check(SYMBOL)
                    reasons[str(verdict.reason)] = reasons.get(str(verdict.reason), 0) + 1
                    if verdict.age_ms is not None:
                        ages.append(float(verdict.age_ms))
                await asyncio.sleep(0.1)
        for bot in bots.values():
            await bot.close()
        await r.aclose()
    total = sum(reasons.values())
    return {"mode": "verdicts", "accounts": n_accounts, "instances": 1,
            "weight_budget_pct": budget_pct, "daemon_root": str(daemon_root()),
            "ready_s": round(ready_s, 1), "window_s": window_s, "answers": total,
            "ok_share": round(reasons.get("ok", 0) / total, 3) if total else None,
            "reasons": reasons, "age_ms": _spread(ages)}


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with redis_server() as rs:
        mode = "verdicts" if args.verdicts else "first_minute" if args.first_minute else ""
        if mode:
            for n_accounts in args.accounts:
                try:
                    result = await (verdicts(n_accounts, rs.url, budget_pct=args.budget_pct,
                                             window_s=args.window_s) if args.verdicts else
                                    first_minute(n_accounts, rs.url, window_s=args.window_s))
                except RuntimeError as exc:
                    result = {"mode": mode, "accounts": n_accounts, "error": str(exc)}
                results.append(result)
                if not args.json:
                    print(json.dumps(result), flush=True)
            return results
        for n_instances in args.instances:
            for n_accounts in args.accounts:
                try:
                    result = await one_run(n_accounts, n_instances, args.trials, args.steady_s,
                                           rs.url, args.fit, hosts=args.hosts, kill=args.kill)
                except RuntimeError as exc:  # recorded, and the next run goes on
                    result = {"accounts": n_accounts, "instances": n_instances, "fit": args.fit,
                              "error": str(exc)}
                results.append(result)
                if not args.json:
                    print(json.dumps(result), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--steady-s", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--fit", action="store_true",
                        help="poll as fast as the accounts per IP fit in 2400/min (the config "
                             "check's rule) instead of the default 0.9 s")
    parser.add_argument("--hosts", type=int, default=1, choices=[1, 2],
                        help="2: instances reach the simulator at 127.0.0.1 / 127.0.0.2, each "
                             "address metered on its own (two hosts, two IPs)")
    parser.add_argument("--kill", action="store_true",
                        help="with 2+ instances: kill -9 the first after the detections "
                             "(failover, detection on a moved account)")
    parser.add_argument("--first-minute", action="store_true",
                        help="one instance: poll intervals, sweeps, muted-stream detection and "
                             "weight per IP in the first minute after the start")
    parser.add_argument("--window-s", type=float, default=60.0,
                        help="--first-minute: how long from the start to record (s); "
                             "--verdicts: how long to ask once every position was allowed")
    parser.add_argument("--verdicts", action="store_true",
                        help="one instance, every account holding a position: the share of "
                             "`ok` answers and their ages (is each account read often enough?)")
    parser.add_argument("--budget-pct", type=int, default=100,
                        help="--verdicts: [binance] weight_budget_pct (15 is the default's)")
    parser.add_argument("--daemon-root", help="run the daemon from another checkout "
                        "(e.g. /work/base); default: this one")
    args = parser.parse_args()
    if args.daemon_root:
        os.environ["WD_BENCH_DAEMON_ROOT"] = str(Path(args.daemon_root).resolve())
    from loguru import logger  # the in-process simulator's INFO lines are noise here
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps({"load": os.getloadavg()[0], "runs": results}))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
