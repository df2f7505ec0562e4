"""CPU of one REST request through ``BinanceRest``, the daemon's way, against the simulator.

Usage (from bench/, under the shared lock; trees alternate round by round)::

    flock /work/bench.lock env PYTHONPATH=..:../client python rest_cpu.py \
        --root /work/base --root /work/snap-http --rounds 2 --requests 1000 --json

The simulator runs in its own process (this checkout's, 300 symbols with a position each, its
weight limit lifted so thousands of reads fit in a minute). For each tree a child process
imports ``watchdog`` from that tree, builds the REST client as that tree's daemon does
(``runtime/build.py``: ``rest_http`` where it exists, else the ``httpx.AsyncClient`` it
built before) and reads, one request at a time: the 300-row ``GET /fapi/v3/positionRisk``
(``fetch_position_snapshot``, parsed into a core snapshot), one symbol's ``openOrders`` and one
symbol's ``openAlgoOrders`` (empty lists). ``time.process_time()`` over ``--requests`` reads of
each kind, divided by their number: the client's own CPU per request (signing, the weight
budget's calls, the HTTP exchange, JSON, parsing; the simulator's CPU is its own process').

The budget's answer is ignored (its calls still run): the harness reads far faster than any
share, and the simulator's ``X-MBX-USED-WEIGHT-1M`` would hold every read. That decision is the
same code in every tree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
KINDS = ("positions_300", "open_orders_1", "open_algo_orders_1")


# ---------------------------------------------------------------- the simulator (own process)

async def _serve_sim(symbols: int) -> None:
    from watchdog.sim.runner import run_simulator

    names = tuple(f"S{i:03d}USDT" for i in range(symbols))
    async with run_simulator(symbols=names, weight_limit=10**9) as sim:
        for name in names:
            sim.fill(name, "BUY", "10")
        print(json.dumps({"rest_url": sim.rest_url}), flush=True)
        await asyncio.Event().wait()


# ---------------------------------------------------------------- one tree (own process)

async def _measure(rest_url: str, requests: int, warmup: int, variant: str) -> dict[str, Any]:
    import httpx
    from loguru import logger

    import watchdog
    import watchdog.runtime.build as build
    from watchdog.binance.protocol.budget import Priority, WeightBudget
    from watchdog.clock import SystemClock
    from watchdog.config import BinanceConfig, Config, Credentials

    logger.remove()
    logger.add(sys.stderr, level="INFO")  # the daemon's default level: debug lines cost a check

    class NoWait(WeightBudget):
        def wait_for_s(self, weight: int, *, priority: Priority = Priority.ROUTINE,
                       now_s: float) -> float:
            super().wait_for_s(weight, priority=priority, now_s=now_s)
            return 0.0

    cfg = BinanceConfig(rest_url=rest_url, ws_url="ws://127.0.0.1:1")
    make = getattr(build, "rest_http", None)
    timeout = httpx.Timeout(cfg.request_timeout_s)
    if variant == "httpx-nocookies":  # httpx as rest.make_http_client has it (no cookie jar)
        from watchdog.binance.rest import make_http_client
        http: Any = make_http_client(cfg.rest_url, cfg.request_timeout_s)
    elif make is not None and variant == "daemon":
        http = make(cfg.rest_url, cfg.request_timeout_s)
    else:  # the daemon's client before rest_http: httpx with its defaults (and cookie jar)
        http = httpx.AsyncClient(base_url=cfg.rest_url, timeout=timeout)
    out: dict[str, Any] = {"watchdog": watchdog.__file__, "client": type(http).__name__,
                           "variant": variant}
    async with http:
        rest = build.rest_of(Config(binance=cfg), Credentials("sim-key", "sim-secret"),
                             SystemClock(), http, budget=NoWait(10**9))
        calls = {
            "positions_300": lambda: rest.fetch_position_snapshot(
                request_id=1, requested_time_ms=rest.exchange_time_ms(), priority=Priority.ROUTINE),
            "open_orders_1": lambda: rest.fetch_open_orders("S001USDT"),
            "open_algo_orders_1": lambda: rest.fetch_open_algo_orders("S001USDT"),
        }
        rows = len((await calls["positions_300"]()).positions)
        out["rows"] = rows
        for kind, call in calls.items():
            for _ in range(warmup):
                await call()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(requests):
                await call()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            out[kind] = {"cpu_ms": round(cpu / requests * 1000, 3),
                         "wall_ms": round(wall / requests * 1000, 3)}
    return out


# ---------------------------------------------------------------- the driver

def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(root), *([str(root / "client")] if (root / "client").is_dir() else [])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", default=[],
                        help="a checkout to measure (repeat; alternated each round)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=1000, help="reads of each kind")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--variant", default="daemon", choices=["daemon", "httpx", "httpx-nocookies"],
                        help="the client: the tree's daemon's (default), httpx with its defaults, "
                             "or httpx without a cookie jar (rest.make_http_client)")
    parser.add_argument("--serve-sim", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", metavar="REST_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sim:
        asyncio.run(_serve_sim(args.symbols))
        return
    if args.child:
        print(json.dumps(asyncio.run(_measure(args.child, args.requests, args.warmup,
                                              args.variant))))
        return
    roots = [Path(r).resolve() for r in (args.root or [str(HERE.parents[1])])]
    sim = subprocess.Popen([sys.executable, str(HERE), "--serve-sim", "--symbols", str(args.symbols)],
                           env=_env(HERE.parents[1]), stdout=subprocess.PIPE, text=True)
    runs: list[dict[str, Any]] = []
    try:
        assert sim.stdout is not None
        rest_url = json.loads(sim.stdout.readline())["rest_url"]
        for rnd in range(args.rounds):
            for root in roots:
                load = os.getloadavg()[0]
                done = subprocess.run([sys.executable, str(HERE), "--child", rest_url,
                                       "--requests", str(args.requests), "--warmup", str(args.warmup),
                                       "--variant", args.variant],
                                      env=_env(root), capture_output=True, text=True, check=True)
                run = {"root": str(root), "round": rnd + 1, "load_1m": round(load, 2),
                       "utc": time.strftime("%H:%M:%S", time.gmtime()),
                       **json.loads(done.stdout.strip().splitlines()[-1])}
                runs.append(run)
                if not args.json:
                    print(f"{run['utc']} load {load:.2f} {root}: " + ", ".join(
                        f"{k} {run[k]['cpu_ms']:.3f} ms" for k in KINDS), flush=True)
    finally:
        sim.terminate()
        sim.wait(10)
    summary = {str(root): {k: statistics.median(r[k]["cpu_ms"] for r in runs if r["root"] == str(root))
                           for k in KINDS} for root in roots}
    if args.json:
        print(json.dumps({"runs": runs, "median_cpu_ms": summary}))
    else:
        for root, kinds in summary.items():
            print(f"median {root}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in kinds.items()))


if __name__ == "__main__":
    main()
