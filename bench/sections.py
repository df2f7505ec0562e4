"""The sections of ``bench/run.py``: veto, detection and footprint (ingest is in ingest.py).

Every section starts what it needs (daemon, simulator) and stops it before returning; Redis is
shared and flushed between sections.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import redis
from infra import Sim, daemon, proc_stat, simulator, wait_until
from ingest import percentile
from veto_bench import ACCOUNT as VETO_ACCOUNT
from veto_bench import _prepare as prepare_veto

from poswatch.calls import VetoCalls
from poswatch.client import WatchdogClient
from poswatch.scripts import script_sha

__all__ = ["detection", "footprint", "trigger_detection", "veto"]


# ---------------------------------------------------------------- veto


def veto(redis_url: str, n: int = 5000, batch: int = 100) -> dict[str, Any]:
    """``check``/``begin`` latency from one sync client, verdicts/s sequential and pipelined.

    Reuses bench/veto_bench.py's setup (a fresh open position and a heartbeat).
    """
    asyncio.run(prepare_veto(redis_url))
    client = WatchdogClient.from_url(redis_url, VETO_ACCOUNT)
    try:
        for _ in range(300):  # warm-up: connection, script cache
            client.check("BTCUSDT")
        clock = time.perf_counter
        checks = []
        for _ in range(n):
            t0 = clock()
            verdict = client.check("BTCUSDT")
            checks.append(clock() - t0)
        if not verdict.allowed:
            raise RuntimeError(f"check vetoed the benchmark position: {verdict}")
        begins = []
        for _ in range(n // 2):
            t0 = clock()
            verdict = client.begin("BTCUSDT", holder="bench", ttl_ms=10_000)
            begins.append(clock() - t0)
            client.end("BTCUSDT", "BOTH", verdict.lease or 0)
        _, keys, args = VetoCalls(VETO_ACCOUNT, None).check("BTCUSDT", "BOTH")
        sha = script_sha("check")
        done, t0 = 0, clock()
        while done < n * 2:
            pipe = client.redis.pipeline(transaction=False)
            for _ in range(batch):
                pipe.evalsha_ro(sha, len(keys), *keys, *args)
            done += len(pipe.execute())
        pipelined_s = clock() - t0
    finally:
        client.close()
    ms = 1000.0
    return {
        "check_p50_ms": round(percentile(checks, 0.5) * ms, 3),
        "check_p99_ms": round(percentile(checks, 0.99) * ms, 3),
        "begin_p50_ms": round(percentile(begins, 0.5) * ms, 3),
        "begin_p99_ms": round(percentile(begins, 0.99) * ms, 3),
        "sequential_per_s": round(n / sum(checks), 1),
        "pipelined_per_s": round(done / pipelined_s, 1),
    }


# ---------------------------------------------------------------- detection


def _state(r: redis.Redis, key: str) -> str | None:
    value = r.hget(key, "state")
    return None if value is None else str(value)


# watchdog.config's defaults, which the daemon runs with here
_MAX_REST_LAG_S = 2.0  # [core] max_rest_lag_ms
_POLL_INTERVAL_S = 0.9  # [binance] poll_interval_s


def detection(redis_url: str, trials: int = 20, account: str = "bench",
              lag_trials: int = 5, warmup_s: float = 0.0) -> dict[str, Any]:
    """Closure detection with the stream muted (REST only), the daemon at its defaults.

    The stream is muted for the whole phase (the simulator's fault survives reconnects). Per
    trial: the position was opened (by REST alone) and is left ``max_rest_lag_ms`` + a random
    part of ``poll_interval_s`` (so the close lands at a random phase of the poll, and outside the
    core's REST-lag rule: docs/BENCHMARKS.md), then closed through the simulator; the daemon's
    ``position_closed`` event is awaited on the events stream (XREAD); detection = its ``at_ms``
    (Redis clock, same machine) minus the close's wall time. The position is then reopened (not
    timed). REST weight: the simulator's per-minute meter (everything the daemon sent, listen
    keys included), summed over these trials.
    Then ``lag_trials`` closes right after the open is seen (within ``max_rest_lag_ms``): an
    untimed flat that REST lag could explain, which the core shows ``unknown`` at once and
    ``closed`` once the window has passed (core/fusion.py): both times are reported apart.
    ``warmup_s``: the position stays open that long before the first trial, so the trials
    measure the steady state instead of the minute after the start, whose startup sweep (80
    weight) slows the positions poll (the ``detection_steady`` row).
    """
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"wd:v1:{{{account}}}:pos:BTCUSDT:BOTH"
    events = f"wd:v1:{{{account}}}:events"
    closed_ms: list[float] = []
    lag_closed_ms: list[float] = []
    lag_not_open_ms: list[float] = []

    def reopen() -> None:
        sim.control("POST", "fills", {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01"})
        wait_until(lambda: _state(r, key) == "open", timeout_s=60, what="the position to (re)open",
                   interval_s=0.01)

    def close() -> tuple[str, float]:
        last_id = r.xrevrange(events, count=1)
        t0_ms = time.time() * 1000
        sim.control("POST", "fills", {"symbol": "BTCUSDT", "side": "SELL", "qty": "0.01"})
        return (last_id[0][0] if last_id else "0-0"), t0_ms

    with simulator(["BTCUSDT", "ETHUSDT"]) as sim, daemon(sim, redis_url, account) as wd:
        sim.control("POST", "faults", {"stream": "mute"})
        reopen()
        time.sleep(warmup_s)  # not a synchronisation: the daemon polls meanwhile (docstring)
        weight = _WeightRate(sim)
        for _ in range(trials):
            time.sleep(_MAX_REST_LAG_S + random.uniform(0.0, _POLL_INTERVAL_S))
            cursor, t0_ms = close()
            closed_ms.append(_await_closed(r, events, cursor, t0_ms, wd))
            weight.sample()
            reopen()
            weight.sample()
        weight.sample(force=True)
        for _ in range(lag_trials):
            time.sleep(random.uniform(0.0, _POLL_INTERVAL_S / 2))
            cursor, t0_ms = close()
            wait_until(lambda: _state(r, key) != "open", timeout_s=30, what="the position not open",
                       interval_s=0.005)
            lag_not_open_ms.append(time.time() * 1000 - t0_ms)
            lag_closed_ms.append(_await_closed(r, events, cursor, t0_ms, wd))
            time.sleep(_MAX_REST_LAG_S)
            reopen()
        sim.control("DELETE", "faults")
    r.close()
    out = {"trials": len(closed_ms),
           "p50_ms": round(percentile(closed_ms, 0.5), 1),
           "p95_ms": round(percentile(closed_ms, 0.95), 1),
           "max_ms": round(max(closed_ms), 1),
           "weight_per_min": round(weight.per_min(), 1),
           "weight_window_s": round(weight.at - weight.started, 1)}
    if lag_closed_ms:
        out["within_lag"] = {"trials": len(lag_closed_ms),
                             "not_open_p50_ms": round(percentile(lag_not_open_ms, 0.5), 1),
                             "not_open_max_ms": round(max(lag_not_open_ms), 1),
                             "closed_p50_ms": round(percentile(lag_closed_ms, 0.5), 1),
                             "closed_max_ms": round(max(lag_closed_ms), 1)}
    return out


def _await_closed(r: redis.Redis, events: str, cursor: str, t0_ms: float, wd: Any) -> float:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and wd.alive():
        for _, entries in r.xread({events: cursor}, block=500) or []:
            for entry_id, fields in entries:
                cursor = entry_id
                if fields.get("kind") == "position_closed" and fields.get("position") == "BTCUSDT:BOTH":
                    return float(fields["at_ms"]) - t0_ms
    raise RuntimeError(f"no position_closed event within 30 s:\n{wd.log_tail()}")


def _signed_post(sim: Sim, path: str, params: dict[str, str]) -> dict[str, Any]:
    """A signed REST call as a bot makes it (the simulator's default key and secret)."""
    import hashlib
    import hmac
    from urllib.parse import urlencode

    query = urlencode({**params, "timestamp": int(time.time() * 1000)})
    signature = hmac.new(b"sim-secret", query.encode(), hashlib.sha256).hexdigest()
    response = httpx.post(f"{sim.rest_url}{path}", content=f"{query}&signature={signature}",
                          headers={"X-MBX-APIKEY": "sim-key",
                                   "Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def trigger_detection(redis_url: str, trials: int = 20, account: str = "bench",
                      binance_extra: str = "") -> dict[str, Any]:
    """Closure by a CONTRACT_PRICE stop, user stream muted: from the crossing price's print to
    the daemon's ``position_closed`` event (issue 13's target: ≤ 300 ms p95), daemon defaults.

    Per trial: the user stream delivers (so the daemon learns the new stop from its ALGO_UPDATE,
    as in production), a closePosition STOP_MARKET is placed 10 ticks under the contract price,
    the daemon's market connection subscribes ``btcusdt@aggTrade``, then the user stream is
    muted; after ``max_rest_lag_ms`` and a random part of ``poll_interval_s`` (outside the core's
    REST-lag rule, as in ``detection``) the contract price is moved 20 ticks down through
    ``/sim/v1/mark-price`` (the crossing print; the stop fires and closes the position) and
    ``position_closed`` is awaited (XREAD); ``not_open_*`` is the time until the position hash
    stops saying ``open`` (``unknown`` at the crossing, or ``closed``). t0 is taken just before
    that call (an upper bound of
    the print's time). A daemon without trigger watching (``--daemon-root`` of an older
    checkout) detects the same closure by its routine poll.
    """
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"wd:v1:{{{account}}}:pos:BTCUSDT:BOTH"
    events = f"wd:v1:{{{account}}}:events"
    closed_ms: list[float] = []
    not_open_ms: list[float] = []  # until bots stop getting "open" (unknown or closed)

    def price() -> float:
        return float(sim.control("GET", "state")["prices"]["BTCUSDT"]["contract_price"])

    def subscribed() -> bool:
        state = sim.control("GET", "state")
        return any("btcusdt@aggTrade" in c["streams"] for c in state.get("market_connections", []))

    with simulator(["BTCUSDT", "ETHUSDT"]) as sim, daemon(sim, redis_url, account,
                                                          binance_extra=binance_extra) as wd:
        watching: bool | None = None  # found on the first trial: an older daemon never subscribes
        for _ in range(trials):
            sim.control("DELETE", "faults")
            sim.control("POST", "fills", {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.01"})
            wait_until(lambda: _state(r, key) == "open", timeout_s=60, what="the position to open",
                       interval_s=0.01)
            now = price()
            _signed_post(sim, "/fapi/v1/algoOrder", {
                "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
                "triggerPrice": f"{now - 1.0:.2f}", "closePosition": "true"})
            if watching is None:
                try:
                    wait_until(subscribed, timeout_s=10, what="the daemon to follow btcusdt@aggTrade")
                    watching = True
                except RuntimeError:
                    watching = False  # no trigger watching: the routine poll detects it
            elif watching:
                wait_until(subscribed, timeout_s=30, what="the daemon to follow btcusdt@aggTrade")
            sim.control("POST", "faults", {"stream": "mute"})
            # Past the core's REST-lag window after the open (as detection() does), at a random
            # phase of the routine poll.
            time.sleep(_MAX_REST_LAG_S + random.uniform(0.0, _POLL_INTERVAL_S))
            last_id = r.xrevrange(events, count=1)
            t0_ms = time.time() * 1000
            sim.control("POST", "mark-price", {"symbol": "BTCUSDT", "price": f"{now - 2.0:.2f}"})
            wait_until(lambda: _state(r, key) != "open", timeout_s=30, what="the position not open",
                       interval_s=0.002)
            not_open_ms.append(time.time() * 1000 - t0_ms)
            closed_ms.append(_await_closed(r, events, last_id[0][0] if last_id else "0-0", t0_ms, wd))
        sim.control("DELETE", "faults")
    r.close()
    return {"trials": len(closed_ms), "trigger_watching": bool(watching),
            "p50_ms": round(percentile(closed_ms, 0.5), 1),
            "p95_ms": round(percentile(closed_ms, 0.95), 1), "max_ms": round(max(closed_ms), 1),
            "not_open_p50_ms": round(percentile(not_open_ms, 0.5), 1),
            "not_open_p95_ms": round(percentile(not_open_ms, 0.95), 1),
            "closed_ms": [round(ms) for ms in closed_ms]}  # every trial, in order


class _WeightRate:
    """REST weight the daemon used, from the simulator's wall-clock-minute meter."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.started = time.monotonic()
        self.last = self._used()
        self.total = 0
        self.at = self.started

    def _used(self) -> int:
        return int(self.sim.control("GET", "state")["weight_used_1m"])

    def sample(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.at < 0.5:
            return
        used = self._used()
        self.total += used - self.last if used >= self.last else used  # a new minute began
        self.last, self.at = used, time.monotonic()

    def per_min(self) -> float:
        return self.total / (self.at - self.started) * 60


# ---------------------------------------------------------------- footprint


def footprint(redis_url: str, symbols: int = 300, idle_s: float = 20.0,
              account: str = "bench", steady_after_s: float = 70.0) -> dict[str, Any]:
    """RSS with ``symbols`` open positions tracked, and idle CPU over ``idle_s`` (from /proc).

    Two windows in one daemon run: ``idle_cpu_pct`` 5 s after all positions are in Redis (inside
    the first minute, whose start sweep's weight slows the positions poll), and
    ``idle_cpu_steady_pct`` from ``steady_after_s`` after the daemon was up, when the poll runs
    at its steady pace (0.9 s at the defaults): the figure the 1 % target is about.
    """
    names = [f"S{i:03d}USDT" for i in range(symbols)]
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    members = f"wd:v1:{{{account}}}:positions"

    def all_open() -> int:
        return sum(1 for m in r.smembers(members)
                   if r.hget(f"wd:v1:{{{account}}}:pos:{m}", "state") == "open")

    with simulator(names) as sim:
        for name in names:  # positions first: the daemon's startup snapshot finds all of them
            sim.control("POST", "fills", {"symbol": name, "side": "BUY", "qty": "10"})
        with daemon(sim, redis_url, account) as wd:
            up = time.monotonic()
            wait_until(lambda: r.scard(members) >= symbols, timeout_s=60,
                       what=f"{symbols} positions in Redis", interval_s=0.1)
            time.sleep(5.0)  # settle: startup reads, order polls and caches done
            start = _idle_window(sim, wd.pid, idle_s)
            open_start = all_open()
            time.sleep(max(0.0, up + steady_after_s - time.monotonic()))  # past the first minute
            steady = _idle_window(sim, wd.pid, idle_s)
            tracked = int(r.scard(members))
            open_count = all_open()
    r.close()
    if min(open_start, open_count) != symbols:  # a daemon that stopped polling is cheap: not a figure
        raise RuntimeError(f"only {min(open_start, open_count)} of {symbols} positions still open "
                           "at the end of an idle window (they aged to unknown: the daemon stopped "
                           "polling)")
    return {"symbols": symbols, "tracked": tracked, "open": open_count,
            "rss_mb": round(start["rss_mb"], 1), "idle_cpu_pct": start["cpu_pct"],
            "idle_window_s": start["window_s"], "weight_per_min": start["weight_per_min"],
            "idle_cpu_steady_pct": steady["cpu_pct"], "steady_window_s": steady["window_s"],
            "steady_weight_per_min": steady["weight_per_min"],
            "rss_steady_mb": round(steady["rss_mb"], 1),
            "steady_started_s": round(steady["started"] - up, 1)}


def _idle_window(sim: Sim, pid: int, idle_s: float) -> dict[str, float]:
    """The daemon's CPU share over ``idle_s`` (from /proc), and the REST weight it spent."""
    before = proc_stat(pid)
    weight = _WeightRate(sim)  # the idle window's REST weight, as the simulator charged it
    while time.monotonic() - weight.started < idle_s:
        time.sleep(1.0)  # not a synchronisation: sampling the meter (it resets each minute)
        weight.sample()
    after = proc_stat(pid)
    weight.sample(force=True)
    return {"cpu_pct": round((after.cpu_s - before.cpu_s) / (after.at - before.at) * 100, 2),
            "window_s": round(after.at - before.at, 1), "rss_mb": after.rss_mb,
            "weight_per_min": round(weight.per_min(), 1), "started": before.at}
