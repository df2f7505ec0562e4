"""The reaper's race, measured: how long an open position is without the stop the reaper took.

Usage: PYTHONPATH=. python bench/reaper_race.py [--trials 10] [--json]
(docs/REAPER.md § The race). Simulator in process over real sockets, a throw-away
redis-server, the pipeline the daemon runs (``runtime.build``, through the integration tests'
rig, ``tests/support/reaper_rig.py``), reaper and core at their defaults: ``grace_ms`` 2000,
``max_rest_lag_ms`` 2000, positions polled every 0.9 s (the rig polls orders as often).

Each trial, with the user stream live, muted, and muted with REST 1.5 s behind (``rest_lag_ms``,
inside the 2 s bound):
1. ETHUSDT flat by REST; the bot places a reduce-only STOP_MARKET (an orphan);
2. the reaper selects it; right after its pre-cancel re-read (flat) the bot's entry fills: the
   race of issue 12 — the cancel then removes the protection of a new position;
3. the reaper finds the open after the cancel and places an equivalent order.
Measured on the simulator's own record (exchange ms): ``unprotected`` = the new order's create
time - the old order's cancel time (the position has no stop in between), and ``since_fill`` =
new order's create time - the entry's fill time. Then the bot removes the restored stop and
closes the position for the next trial. Last, ``orphan_removal_muted``: with the stream muted, a
stop placed on the flat position (no race) — exchange ms from its creation to its cancel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from decimal import Decimal
from typing import Any

sys.path.insert(0, ".")

from bench.infra import redis_server
from tests.support.reaper_rig import ReaperRig, _rig
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.runtime.reaper_after_cancel import ReadPositions
from watchdog.runtime.reaper_task import Outcome
from watchdog.sim import Simulator, run_simulator

ETH = Symbol("ETHUSDT")
KEY = PositionKey(ETH, PositionSide.BOTH)
POLL_INTERVAL_S = 0.9  # [binance] poll_interval_s default (the rig polls orders as often)
MODES = (("stream_live", False, 0), ("stream_muted", True, 0),
         ("muted_rest_lag_1500", True, 1500))  # REST 1.5 s behind: within the 2 s bound


def _stop_price(sim: Simulator) -> str:
    tick = sim.exchange.specs[ETH].tick_size
    return f"{(sim.exchange.mark[ETH] * Decimal('0.95')).quantize(tick):f}"


async def _trial(sim: Simulator, rig: ReaperRig, fill_at: dict[str, int], muted: bool,
                 rest_lag_ms: int) -> dict[str, int]:
    account = sim.exchange.accounts[sim.api_key]
    await rig.until("flat by REST", lambda: rig.book.flat_since(KEY) is not None, timeout_s=30)
    sim.set_faults(stream="mute" if muted else "normal", rest_lag_ms=rest_lag_ms)
    fill_at.clear()
    before = len(rig.reaper.results)
    stop = await rig.bot.place_stop(ETH, "SELL", _stop_price(sim), qty="1",
                                    client_id=f"bot-race-{time.monotonic_ns() % 10**9}")
    results = await rig.until("restored", lambda: [
        r for r in list(rig.reaper.results)[before:] if r.cancel.order_id == stop
        and r.outcome in (Outcome.RESTORED, Outcome.UNPROTECTED, Outcome.REMOVED)], timeout_s=60)
    result = results[0]
    if result.outcome is not Outcome.RESTORED or result.new_order_id is None:
        raise AssertionError(f"trial did not restore: {result}")
    old, new = account.algos[stop], account.algos[result.new_order_id]
    figures = {"unprotected_ms": new.create_time_ms - old.update_time_ms,
               "since_fill_ms": new.create_time_ms - fill_at["ms"]}
    sim.set_faults(stream="normal", rest_lag_ms=0)
    await rig.bot.call("DELETE", "/fapi/v1/algoOrder", algoId=result.new_order_id)
    sim.fill(ETH, "SELL", "1")
    return figures


async def _removal(sim: Simulator, rig: ReaperRig) -> int:
    """Stream muted, a stop placed on a flat position: exchange ms from its creation to its
    cancel (the whole pre-cancel path: grace, REST proof less the lag bound, re-read)."""
    account = sim.exchange.accounts[sim.api_key]
    await rig.until("flat by REST", lambda: rig.book.flat_since(KEY) is not None, timeout_s=30)
    sim.set_faults(stream="mute")
    stop = await rig.bot.place_stop(ETH, "SELL", _stop_price(sim), qty="1",
                                    client_id=f"bot-orphan-{time.monotonic_ns() % 10**9}")
    await rig.until("orphan removed", lambda: not account.algos[stop].is_open, timeout_s=60)
    sim.set_faults(stream="normal")
    algo = account.algos[stop]
    return algo.update_time_ms - algo.create_time_ms


async def _run(trials: int) -> dict[str, Any]:
    fill_at: dict[str, int] = {}

    def fill_after_read(read: ReadPositions) -> ReadPositions:
        async def wrapped(reason: str) -> Any:
            snapshot = await read(reason)
            if "before cancelling" in reason and snapshot is not None and "off" not in fill_at:
                sim.fill(ETH, "BUY", "1")  # the bot's entry fills right after the re-read
                fill_at["ms"] = sim.exchange.now_ms()
            return snapshot
        return wrapped

    out: dict[str, Any] = {}
    with redis_server() as redis:
        async with run_simulator(ping_interval_s=1.0) as sim, \
                _rig(sim, redis.url, grace_ms=2000, max_rest_lag_ms=2000,
                     poll_interval_s=POLL_INTERVAL_S, wrap_reader=fill_after_read) as rig:
            for mode, muted, lag_ms in MODES:
                rows = [await _trial(sim, rig, fill_at, muted, lag_ms) for _ in range(trials)]
                out[mode] = {name: _stats([r[name] for r in rows])
                             for name in ("unprotected_ms", "since_fill_ms")}
            fill_at["off"] = 1  # no race for the removal figure
            out["orphan_removal_muted"] = {
                "created_to_cancelled_ms": _stats([await _removal(sim, rig)
                                                   for _ in range(trials)])}
    return out


def _stats(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(values), "min": ordered[0], "p50": statistics.median(ordered), "p95": p95,
            "max": ordered[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(_run(args.trials))
    figures["machine"] = f"{platform.machine()} {platform.python_version()}"
    if args.json:
        print(json.dumps(figures))
        return
    for mode in [m for m, _, _ in MODES] + ["orphan_removal_muted"]:
        for name, s in figures[mode].items():
            print(f"{mode:19s} {name:15s} n={s['n']} min={s['min']} p50={s['p50']} "
                  f"p95={s['p95']} max={s['max']} (ms)")


if __name__ == "__main__":
    main()
