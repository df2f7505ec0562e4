"""Failover benchmark: kill -9 the leader, time until a bot gets ``allow`` for a fresh position.

Usage (from the repository root)::

    python bench/ha.py [--kills 10] [--instances 2] [--json]

Everything real and on loopback: a private redis-server, the simulator in its own process, and
``--instances`` daemons (``python -m watchdog run``) with one configuration at the defaults
(``[redis] lead_ttl_ms`` 1500). Each trial: the position is flat and the verdict says so; the
leader is killed with SIGKILL (no resign: its lease runs out), a position is opened at once, and
the bot's ``check`` is polled every 5 ms until it allows. The killed instance is replaced and
the next trial waits until the replacement has registered as a standby. Also reported: the
leader's own REST weight per minute after a steady window (its health hash). A standby's cost
is fixed by design (one positionRisk, weight 5, per 10 s: 30/min); it is not measured from
Binance's IP header, which counts a calendar minute and cannot be compared with the leader's
rolling 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "client")]

import redis  # noqa: E402
from infra import PYTHON, ROOT, python_env, redis_server, simulator, wait_until  # noqa: E402

from poswatch.client import WatchdogClient  # noqa: E402

ACCOUNT = "ha"
SYMBOL = "ETHUSDT"
QTY = "1"

CONFIG = """\
[binance]
rest_url = "{rest_url}"
ws_url = "{ws_url}"

[redis]
url = "{redis_url}"
account = "{account}"
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--steady-s", type=float, default=65.0,
                        help="after the kills, how long to let the weight windows fill (>= 60)")
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    args = parser.parse_args()
    result = run(args.kills, args.instances, args.steady_s)
    if args.json:
        sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(f"failover to allow over {result['kills']} kill -9 of the leader "
                         f"({result['instances']} instances): p50 {result['p50_ms']} ms, "
                         f"p95 {result['p95_ms']} ms, max {result['max_ms']} ms; REST weight/min "
                         f"of the leader {result['leader_weight_1m']}\n")


def run(kills: int, instances: int, steady_s: float) -> dict[str, Any]:
    with redis_server() as rs, simulator([SYMBOL, "BTCUSDT"]) as sim, \
            tempfile.TemporaryDirectory(prefix="wd-bench-ha-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(CONFIG.format(rest_url=sim.rest_url, ws_url=sim.ws_url,
                                        redis_url=rs.url, account=ACCOUNT))
        env = python_env()
        env.update(BINANCE_API_KEY=sim.api_key, BINANCE_API_SECRET=sim.api_secret)
        r = redis.Redis.from_url(rs.url, decode_responses=True)
        bot = WatchdogClient.from_url(rs.url, ACCOUNT)
        prefix = f"wd:v1:{{{ACCOUNT}}}"
        procs: dict[int, subprocess.Popen[bytes]] = {}
        started = 0

        def start() -> None:
            nonlocal started
            started += 1
            with open(Path(tmp) / f"i{started}.log", "wb") as log:
                proc = subprocess.Popen([PYTHON, "-m", "watchdog", "--log-level", "WARNING", "run",
                                         "--config", str(config)], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=log)
            procs[proc.pid] = proc

        def registered() -> int:
            now_ms = time.time() * 1000
            return sum(1 for _, score in r.zrange(f"{prefix}:instances", 0, -1, withscores=True)
                       if score > now_ms)

        def position(side: str) -> None:
            sim.control("POST", "fills", {"symbol": SYMBOL, "side": side, "qty": QTY})

        samples: list[float] = []
        try:
            for _ in range(instances):
                start()
            wait_until(lambda: registered() == instances and r.hget(f"{prefix}:health", "ready")
                       == "true", timeout_s=60, what="instances registered and ready")
            for _ in range(kills):
                wait_until(lambda: bot.check(SYMBOL).reason in ("no_position", "position_closed"),
                           timeout_s=30, what="the position flat in the verdict")
                leader = r.get(f"{prefix}:leader")
                pid = int(str(leader).split(":")[1])
                procs.pop(pid).send_signal(signal.SIGKILL)
                killed = time.monotonic()
                position("BUY")
                wait_until(lambda: bot.check(SYMBOL).allowed, timeout_s=30,
                           what="allow for the fresh position after the kill", interval_s=0.005)
                samples.append((time.monotonic() - killed) * 1000)
                start()
                wait_until(lambda: registered() == instances, timeout_s=60,
                           what="the replacement registered")
                position("SELL")
            # Steady state: the leader's own weight and the IP's (every instance shares it).
            time.sleep(steady_s)  # a measuring window, not synchronisation
            weight = int(r.hget(f"{prefix}:health", "rest_weight_used_1m") or 0)
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            bot.close()
            r.close()
    return {"kills": len(samples), "instances": instances,
            "p50_ms": round(statistics.median(samples), 1),
            "p95_ms": round(percentile(samples, 0.95), 1), "max_ms": round(max(samples), 1),
            "samples_ms": [round(s, 1) for s in samples], "leader_weight_1m": weight,
            "standby_weight_1m_design": 30,
            "lead_ttl_ms": 1500, "loadavg": round(os.getloadavg()[0], 2)}


if __name__ == "__main__":
    main()
