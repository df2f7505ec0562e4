"""Orphans while the stream is muted, at default settings: how fast, and at what weight.

Usage: PYTHONPATH=. python bench/blind_reap.py [--trials 10] [--json]
(docs/RELIABILITY.md § Orphans while the stream is muted (defaults)).

The real daemon (``watchdog.runtime.daemon.run``, every setting at its default; only the URLs
and the Redis account are set) runs in this process against an in-process simulator (real
sockets) and a throw-away redis-server. Each trial is the issue's incident:

1. unmute the stream; BUY opens a position; the bot places a reduce-only STOP_MARKET (A),
   which the stream reports; wait until Redis shows the position open and A is known;
2. mute the stream (connected, pings answered, no events), SELL closes the position (t_close),
   and the bot places a second reduce-only STOP_MARKET (B) for the closed position (t_b);
3. wait until both are gone from the simulator; the next trial starts ``--spacing-s`` later.

Figures: A's removal after t_close (its grace starts when REST first shows the position flat)
and B's after t_b (its grace starts at its creation), against the issue's ``grace_ms`` + 2 s
and the lag-honest floor ``grace_ms`` + ``max_rest_lag_ms`` (a REST answer proves flatness only
as of its request time minus the lag bound; docs/RELIABILITY.md) plus 1.5 s of slack; the
simulator's own count of the weight it charged (``X-MBX-USED-WEIGHT-1M``: per wall-clock
minute, what Binance limits) and the peak of any sliding 60 s window, against our share
(``weight_budget_pct`` of 2400). The bot's order placements cost no weight on the simulator
(as on Binance), so all of it is the watchdog's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import statistics
import sys
import time
from collections import deque
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.infra import redis_server
from watchdog.binance.protocol.weights import IP_WEIGHT_LIMIT_PER_MIN
from watchdog.config import Config, Credentials, parse_config
from watchdog.runtime.daemon import run as run_daemon
from watchdog.sim import Simulator, run_simulator
from watchdog.sim.auth import WeightMeter

SYMBOL = "BASUSDT"
QTY = "1216"
ACCOUNT = "blindreap"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class WeightLog:
    """Every weight the simulator charges, with the monotonic time it was charged."""

    def __init__(self, sim: Simulator) -> None:
        self.charges: list[tuple[float, int]] = []
        charges = self.charges

        class LoggedMeter(WeightMeter):
            def charge(self, now_ms: int, weight: int) -> int:
                used = super().charge(now_ms, weight)  # raises on 429/418: not charged then
                charges.append((time.monotonic(), weight))
                return used

        old = sim.venue.weights
        sim.venue.weights = LoggedMeter(limit=old.limit, ban_after=old.ban_after, ban_ms=old.ban_ms)
        self._meter = sim.venue.weights
        self._minutes: dict[int, int] = {}

    def sample(self) -> None:
        """The simulator's per-minute counter (Binance's X-MBX-USED-WEIGHT-1M), as it grows."""
        self._minutes[self._meter.minute] = self._meter.used

    def peak_sliding_60s(self) -> int:
        window: deque[tuple[float, int]] = deque()
        total = peak = 0
        for at, weight in self.charges:
            window.append((at, weight))
            total += weight
            while window[0][0] <= at - 60.0:
                total -= window.popleft()[1]
            peak = max(peak, total)
        return peak

    def per_minute(self) -> list[int]:
        """Full wall-clock minutes only (the first and the last are partial)."""
        minutes = sorted(self._minutes)
        return [self._minutes[m] for m in minutes[1:-1]]


async def bot_stop(sim: Simulator, http: httpx.AsyncClient, client_id: str) -> int:
    """The bot's reduce-only STOP_MARKET below the mark (it cannot trigger)."""
    tick = sim.exchange.specs[SYMBOL].tick_size
    trigger = (sim.exchange.mark[SYMBOL] * Decimal("0.9")).quantize(tick)
    params = {"algoType": "CONDITIONAL", "symbol": SYMBOL, "side": "SELL", "type": "STOP_MARKET",
              "triggerPrice": f"{trigger:f}", "quantity": QTY, "reduceOnly": "true",
              "clientAlgoId": client_id, "timestamp": int(time.time() * 1000)}
    query = urlencode(params)
    signature = hmac.new(sim.api_secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    response = await http.post(f"{sim.rest_url}/fapi/v1/algoOrder?{query}&signature={signature}",
                               headers={"X-MBX-APIKEY": sim.api_key})
    response.raise_for_status()
    return int(response.json()["algoId"])


def algo_open(sim: Simulator, algo_id: int) -> bool:
    algo = sim.exchange.accounts[sim.api_key].algos.get(algo_id)
    return algo is not None and algo.is_open


async def until(probe: Any, what: str, timeout_s: float, weights: WeightLog) -> float:
    """Wait for ``probe()``; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout_s
    while not await probe():
        weights.sample()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not reached within {timeout_s:g}s")
        await asyncio.sleep(0.01)
    return time.monotonic()


def daemon_config(sim: Simulator, redis_url: str) -> Config:
    return parse_config({"binance": {"rest_url": sim.rest_url, "ws_url": sim.ws_url},
                         "redis": {"url": redis_url, "account": ACCOUNT}}, "blind_reap.toml")


async def measure(trials: int, redis_url: str, spacing_s: float) -> dict[str, Any]:
    import redis.asyncio

    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    position_key = f"wd:v1:{{{ACCOUNT}}}:pos:{SYMBOL}:BOTH"
    async with run_simulator() as sim, httpx.AsyncClient(timeout=10) as http:
        config = daemon_config(sim, redis_url)
        weights = WeightLog(sim)
        stop = asyncio.Event()
        daemon = asyncio.create_task(run_daemon(config, Credentials(sim.api_key, sim.api_secret),
                                                stop=stop))
        known_s: list[float] = []
        placed_s: list[float] = []
        try:
            async def state() -> str | None:
                if daemon.done():
                    raise RuntimeError(f"daemon ended: {daemon.result()!r}")
                return await r.hget(position_key, "state")  # type: ignore[no-any-return]

            started = time.monotonic()
            for trial in range(trials):
                if trial:
                    # One incident every ~20 s, not back to back: each costs the reaper's
                    # re-reads and cancels, paid from the same share as the polls.
                    await asyncio.sleep(spacing_s)
                sim.clear_faults()
                sim.fill(SYMBOL, "BUY", QTY)
                known = await bot_stop(sim, http, f"bot-sl-{trial}-a")

                async def opened() -> bool:
                    return await state() == "open"
                await until(opened, f"trial {trial}: open in Redis", 30, weights)
                # The core treats a REST "flat" within max_rest_lag_ms of a newer stream fact as
                # possibly lagging: close well after that, as a real stop would.
                await asyncio.sleep(config.core.max_rest_lag_ms / 1000 + 0.5)
                sim.set_faults(stream="mute")
                t_close = time.monotonic()
                sim.fill(SYMBOL, "SELL", QTY)
                placed = await bot_stop(sim, http, f"bot-sl-{trial}-b")
                t_placed = time.monotonic()

                async def gone(algo_id: int) -> bool:
                    await state()
                    return not algo_open(sim, algo_id)
                t_known = await until(lambda k=known: gone(k), f"trial {trial}: stop A removed",
                                      60, weights)
                t_b = await until(lambda p=placed: gone(p), f"trial {trial}: stop B removed", 60,
                                  weights)
                known_s.append(t_known - t_close)
                placed_s.append(t_b - t_placed)
                print(f"trial {trial}: A removed {known_s[-1]:.2f} s after the close, "
                      f"B {placed_s[-1]:.2f} s after its creation", file=sys.stderr)
            run_s = time.monotonic() - started
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(daemon, 30)
            await r.aclose()
    share = IP_WEIGHT_LIMIT_PER_MIN * config.binance.weight_budget_pct // 100
    worst = [max(a, b) for a, b in zip(known_s, placed_s, strict=True)]
    per_minute = weights.per_minute()
    return {
        "trials": trials,
        "grace_ms": config.reaper.grace_ms,
        "bound_s": config.reaper.grace_ms / 1000 + 2.0,
        "floor_s": (config.reaper.grace_ms + config.core.max_rest_lag_ms) / 1000,
        "target_s": (config.reaper.grace_ms + config.core.max_rest_lag_ms) / 1000 + 1.5,
        "known_p50_s": round(statistics.median(known_s), 2),
        "known_p95_s": round(quantile(known_s, 0.95), 2),
        "placed_p50_s": round(statistics.median(placed_s), 2),
        "placed_p95_s": round(quantile(placed_s, 0.95), 2),
        "worst_p95_s": round(quantile(worst, 0.95), 2),
        "max_s": round(max(worst), 2),
        "weight_share_per_min": share,
        "weight_peak_sliding_60s": weights.peak_sliding_60s(),
        "weight_per_wallclock_minute": per_minute,
        "weight_mean_per_min": round(sum(w for _, w in weights.charges) / (run_s / 60), 1),
        "run_s": round(run_s, 1),
        "spacing_s": spacing_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--spacing-s", type=float, default=15.0,
                        help="pause between one trial's end and the next one's start")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    with redis_server() as redis:
        result = asyncio.run(measure(args.trials, redis.url, args.spacing_s))
    if args.json:
        print(json.dumps(result))
        return
    print(f"orphans with the stream muted, defaults, {result['trials']} trials "
          f"(issue's bound grace {result['grace_ms']} ms + 2 s = {result['bound_s']:g} s; "
          f"lag-honest floor grace + max_rest_lag_ms = {result['floor_s']:g} s after the first "
          f"flat read, target p95 {result['target_s']:g} s):")
    print(f"  stop known before the mute, after the close: p50 {result['known_p50_s']} s, "
          f"p95 {result['known_p95_s']} s")
    print(f"  stop placed after the close, after its creation: p50 {result['placed_p50_s']} s, "
          f"p95 {result['placed_p95_s']} s; worst of both p95 {result['worst_p95_s']} s, "
          f"max {result['max_s']} s")
    print(f"  weight: share {result['weight_share_per_min']}/min; peak sliding 60 s "
          f"{result['weight_peak_sliding_60s']}; per full wall-clock minute "
          f"{result['weight_per_wallclock_minute']}; mean {result['weight_mean_per_min']}/min "
          f"over {result['run_s']} s")


if __name__ == "__main__":
    main()
