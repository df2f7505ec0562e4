"""The guard's detection: a stop is cancelled (no replacement) → ``position_unprotected``.

Usage: PYTHONPATH=. python bench/guard_bench.py [--trials 20] [--json]
(docs/GUARD.md § Figures). Real processes on loopback: a private redis-server, the simulator
(``python -m watchdog sim``) and the daemon (``python -m watchdog run``) at DEFAULT settings:
only the URLs are set, so ``[guard] unprotected_alert_ms`` is 3000 and ``[binance]
orders_poll_interval_s`` 5.0.

Each trial: the bot (signed REST, as a bot would) places a reduce-only STOP_MARKET for the whole
position and waits until the position hash says ``protection=covered``; in the muted mode the
simulator's stream is then muted (connected, pings answered, no events); the stop then rests a
random 2-12 s (``--settle-s``: the order reads the placement itself set off are over, and the
cancel lands at a random phase of the orders poll); ``t0`` is taken just before the bot's
DELETE of the stop; ``t1`` is the ``at_ms`` of the ``position_unprotected``
entry in the events stream (Redis server time, same host). Reported per mode: ``t1 - t0``
(alert latency, the grace included) and ``unprotected_since_ms - t0`` (how late the guard saw
the cancel). The stream is unmuted and a stop placed again between trials.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import platform
import random
import statistics
import sys
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import redis as redis_sync

from bench.infra import Sim, daemon, redis_server, simulator, wait_until

ACCOUNT = "guardbench"
SYMBOL = "BTCUSDT"
QTY = "0.01"
POS = f"wd:v1:{{{ACCOUNT}}}:pos:{SYMBOL}:BOTH"
EVENTS = f"wd:v1:{{{ACCOUNT}}}:events"


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def signed(sim: Sim, http: httpx.Client, method: str, path: str, **params: Any) -> Any:
    query = urlencode({**params, "timestamp": int(time.time() * 1000)})
    signature = hmac.new(sim.api_secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    response = http.request(method, f"{sim.rest_url}{path}?{query}&signature={signature}",
                            headers={"X-MBX-APIKEY": sim.api_key})
    if response.status_code != 200:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
    return response.json()


def place_stop(sim: Sim, http: httpx.Client) -> int:
    mark = Decimal(signed(sim, http, "GET", "/fapi/v3/positionRisk", symbol=SYMBOL)[0]["markPrice"])
    trigger = (mark * Decimal("0.9")).quantize(Decimal("0.1"))
    body = signed(sim, http, "POST", "/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol=SYMBOL,
                  side="SELL", type="STOP_MARKET", triggerPrice=f"{trigger:f}", quantity=QTY,
                  reduceOnly="true", clientAlgoId=f"bench-{time.monotonic_ns()}")
    return int(body["algoId"])


def trial(sim: Sim, http: httpx.Client, r: redis_sync.Redis, *, muted: bool,
          settle_s: tuple[float, float]) -> tuple[int, int]:
    algo_id = place_stop(sim, http)
    wait_until(lambda: r.hget(POS, "protection") == "covered", timeout_s=60,
               what="protection covered", interval_s=0.01)
    last_id = (r.xrevrange(EVENTS, count=1) or [("0-0", {})])[0][0]
    if muted:
        sim.control("POST", "faults", {"stream": "mute"})
    time.sleep(random.uniform(*settle_s))  # scripted resting time (a benchmark, not a test)
    t0 = int(time.time() * 1000)
    signed(sim, http, "DELETE", "/fapi/v1/algoOrder", algoId=algo_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for _, entries in r.xread({EVENTS: last_id}, block=1000) or []:
            for entry_id, fields in entries:
                last_id = entry_id
                if fields.get("kind") == "position_unprotected":
                    if muted:
                        sim.control("DELETE", "faults")
                    return int(fields["at_ms"]) - t0, int(fields["unprotected_since_ms"]) - t0
    raise RuntimeError("no position_unprotected within 60 s")


def summary(values: list[int]) -> dict[str, float]:
    return {"p50_ms": statistics.median(values), "p95_ms": _quantile(values, 0.95),
            "max_ms": max(values), "min_ms": min(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--settle-s", type=float, nargs=2, default=(2.0, 12.0),
                        metavar=("MIN", "MAX"), help="how long the stop rests before its cancel")
    args = parser.parse_args()
    results: dict[str, Any] = {"trials": args.trials, "settle_s": list(args.settle_s),
                               "python": platform.python_version(),
                               "settings": "defaults ([guard] unprotected_alert_ms 3000, "
                                           "[binance] orders_poll_interval_s 5.0)"}
    with redis_server() as rs, simulator([SYMBOL]) as sim, httpx.Client(timeout=10) as http:
        sim.control("POST", "fills", {"symbol": SYMBOL, "side": "BUY", "qty": QTY})
        with daemon(sim, rs.url, ACCOUNT):
            r = redis_sync.Redis.from_url(rs.url, decode_responses=True)
            wait_until(lambda: r.hget(POS, "state") == "open", timeout_s=60, what="position open")
            for mode, muted in (("stream_live", False), ("stream_muted", True)):
                alerts, seen = [], []
                for _ in range(args.trials):
                    alert_ms, seen_ms = trial(sim, http, r, muted=muted,
                                              settle_s=tuple(args.settle_s))
                    alerts.append(alert_ms)
                    seen.append(seen_ms)
                results[mode] = {"cancel_to_alert": summary(alerts),
                                 "cancel_to_seen": summary(seen)}
                alert, seen_at = results[mode]["cancel_to_alert"], results[mode]["cancel_to_seen"]
                print(f"{mode}: cancel → position_unprotected p50 {alert['p50_ms']:.0f} ms, "
                      f"p95 {alert['p95_ms']:.0f} ms, max {alert['max_ms']:.0f} ms; cancel → seen "
                      f"p95 {seen_at['p95_ms']:.0f} ms", file=sys.stderr)
            r.close()
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
