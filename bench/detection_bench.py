"""Detection with the stream muted: exchange closes a position → the core knows CLOSED.

Usage: PYTHONPATH=. python bench/detection_bench.py [--trials 30] [--json]
(docs/BENCHMARKS.md § Detection (stream muted)). The pipeline the daemon runs
(``runtime.build``), at default settings throughout: only the URLs point at an in-process
simulator (loopback, real sockets; default simulator settings) and a throw-away redis-server.

Each trial:
1. unmute the stream; BUY on the simulator; wait until the core publishes OPEN;
2. wait ``max_rest_lag_ms`` + 0.5 s + a random fraction of ``poll_interval_s`` (the core treats
   a REST "flat" within ``max_rest_lag_ms`` of a newer stream fact as possibly lagging, so an
   immediate close would measure that rule, not detection; the random part spreads the close
   over the poll phase);
3. mute the stream (connected, pings answered, no events), then SELL to close; ``t0`` is taken
   just before the fill is submitted;
4. ``t1`` is when the pipeline has run the core's CLOSED for the position (a ``Publish``
   effect written to Redis, seen by an ``Endpoints.effects`` observer). Detection = ``t1 - t0``.
Weight: (a) steady state — after the trials, a position open and the stream muted for
``--steady-s`` (60 s): the cost of polling alone; (b) over the trials, which each add a
blind-stream reconnect (listen-key POST, post-gap snapshot) and two fills (core-requested
snapshots), with the peak of our sliding 60 s window once a full minute has passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from bench.infra import redis_server
from tests.support.pipeline import running
from watchdog.clock import SystemClock
from watchdog.config import BinanceConfig, Config, Credentials, RedisConfig
from watchdog.core.effects import Effect, Publish
from watchdog.core.model import PositionKey, PositionSide, PositionState, Symbol
from watchdog.runtime.build import Endpoints, build
from watchdog.sim import run_simulator

KEY = PositionKey(Symbol("BTCUSDT"), PositionSide.BOTH)
QTY = "0.01"


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} cores ({model or platform.processor()}), "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


async def _until(predicate: Any, what: str, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise RuntimeError(f"{what} not reached within {timeout_s}s")
        await asyncio.sleep(0.005)


class _ClosedAt:
    """When the pipeline ran a CLOSED view of ``KEY`` (an ``Endpoints.effects`` observer)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.at: list[float] = []

    def effects_run(self, effects: Sequence[Effect], *, written: bool) -> None:
        for effect in effects:
            if (isinstance(effect, Publish) and effect.view.key == KEY
                    and effect.view.state is PositionState.CLOSED):
                self.at.append(self._loop.time())

    def store_written(self, seconds: float) -> None:
        pass


async def run(trials: int, seed: int, steady_s: float) -> dict[str, Any]:
    with redis_server() as redis:
        return await _run(trials, seed, steady_s, redis.url)


async def _run(trials: int, seed: int, steady_s: float, redis_url: str) -> dict[str, Any]:
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    closed = _ClosedAt(loop)
    closed_at = closed.at
    async with run_simulator() as sim:
        config = Config(binance=BinanceConfig(rest_url=sim.rest_url, ws_url=sim.ws_url),
                        redis=RedisConfig(url=redis_url, account="detection"))
        cfg, core_cfg = config.binance, config.core
        async with build(config, Credentials(sim.api_key, sim.api_secret), SystemClock(),
                         Endpoints(effects=closed)) as pipeline, running(pipeline):
            book, rest, stream = pipeline.book, pipeline.rest, pipeline.stream
            result = await _trials(sim, book, rest, rng, trials, steady_s, cfg.poll_interval_s,
                                   core_cfg.max_rest_lag_ms, closed_at)
    result.update({"poll_interval_s": cfg.poll_interval_s,
                   "weight_budget_per_min": rest.budget.budget_per_min,
                   "stream_reconnects": stream.stats.reconnects, "machine": _machine()})
    return result


async def _trials(sim: Any, book: Any, rest: Any, rng: random.Random, trials: int,
                  steady_s: float, poll_interval_s: float, max_rest_lag_ms: int,
                  closed_at: list[float]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    detections_s: list[float] = []
    peak_own_1m = 0
    await _until(lambda: book.stream_state == "live", "stream live")
    started_s, weight_at_start = loop.time(), rest.weight_sent
    for trial in range(trials):
        sim.clear_faults()
        await _until(lambda: book.stream_state == "live", "stream live again")
        sim.fill("BTCUSDT", "BUY", QTY)
        await _until(lambda: (v := book.view(KEY)) is not None
                     and v.state is PositionState.OPEN and v.amount == Decimal(QTY),
                     "open known")
        await asyncio.sleep(max_rest_lag_ms / 1000 + 0.5 + rng.random() * poll_interval_s)
        sim.set_faults(stream="mute")
        closed_at.clear()
        t0 = loop.time()
        sim.fill("BTCUSDT", "SELL", QTY)
        await _until(lambda: bool(closed_at), f"trial {trial}: closed known")
        detections_s.append(closed_at[0] - t0)
        if loop.time() - started_s >= 60:  # a full window: steady state
            peak_own_1m = max(peak_own_1m, rest.own_weight_1m)
    elapsed_min = (loop.time() - started_s) / 60
    weight_per_min = (rest.weight_sent - weight_at_start) / elapsed_min
    # Steady state: a position open, the stream muted, nothing happening: the cost of
    # polling alone (positions every poll_interval_s, that symbol's orders).
    sim.clear_faults()
    await _until(lambda: book.stream_state == "live", "stream live (steady phase)")
    sim.fill("BTCUSDT", "BUY", QTY)
    await _until(lambda: (v := book.view(KEY)) is not None
                 and v.state is PositionState.OPEN, "open known (steady phase)")
    await asyncio.sleep(max_rest_lag_ms / 1000)
    sim.set_faults(stream="mute")
    steady_from, steady_weight = loop.time(), rest.weight_sent
    await asyncio.sleep(steady_s)
    steady_per_min = (rest.weight_sent - steady_weight) / ((loop.time() - steady_from) / 60)
    steady_state = book.view(KEY)
    return {
        "trials": trials,
        "p50_s": round(statistics.median(detections_s), 3),
        "p95_s": round(_quantile(detections_s, 0.95), 3),
        "max_s": round(max(detections_s), 3),
        "min_s": round(min(detections_s), 3),
        "weight_per_min": round(weight_per_min, 1),
        "steady_weight_per_min": round(steady_per_min, 1),
        "steady_s": steady_s,
        "steady_position_state": steady_state.state.value if steady_state else None,
        "peak_own_weight_1m": peak_own_1m,
        "run_min": round(elapsed_min, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steady-s", type=float, default=60.0,
                        help="length of the steady-state weight phase (position open, muted)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    result = asyncio.run(run(args.trials, args.seed, args.steady_s))
    if args.json:
        print(json.dumps(result))
        return
    print(f"detection with the stream muted, {result['trials']} trials: "
          f"p50 {result['p50_s']} s, p95 {result['p95_s']} s, max {result['max_s']} s")
    print(f"REST weight, steady state (position open, stream muted, {result['steady_s']:g} s): "
          f"{result['steady_weight_per_min']}/min; budget {result['weight_budget_per_min']}/min")
    print(f"REST weight during the trials (one blind-stream reconnect and two fills per trial): "
          f"{result['weight_per_min']}/min over {result['run_min']} min, peak 60 s window "
          f"{result['peak_own_weight_1m']}")
    print(f"machine: {result['machine']}")


if __name__ == "__main__":
    main()
