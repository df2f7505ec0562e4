"""The idle daemon's CPU floor: the footprint set-up with positions read only every 15 s.

Usage (under the shared lock, like every bench):
    cd bench && flock /work/bench.lock env PYTHONPATH=..:../client python floor.py \\
        --daemon-root <tree> [--window-s 45] [--after-s 50] [--pyspy OUT.txt] [--extra 'a = 1|[s]|b = 2']

The ``footprint`` section's set-up (bench/sections.py: 300 open positions on the simulator, a
throw-away redis-server, the daemon as a process), with ``[binance] poll_interval_s =
idle_poll_interval_s = 15`` and ``weight_budget_pct = 2`` (so the per-symbol order reads keep
the one read a minute they get at the defaults: a slower positions poll alone would hand them
its whole share, 300 reads a minute), and ``[core]``/``[veto] max_age_ms`` raised to allow it.
What is left is what the daemon spends with no positions read: Ticks, heartbeat, lead renewal,
poller planning, the guard's doubt reads (docs/BENCHMARKS.md, "#13 item 2: the CPU floor").
Prints one JSON line: CPU % over the window (/proc), voluntary context switches a second of
the main thread (each one an event-loop wake-up that found nothing ready), user/system ticks,
the load average at the window's start. ``--pyspy`` records ``py-spy --nonblocking`` over the
window (raw format). ``--extra`` adds config lines (``|`` for a newline) at the end of
``[binance]``: ``[service]|tick_interval_s = 5.0`` measures the Ticks' share. ``--stops``
places a closePosition STOP_MARKET (far from the price) on the first 200 positions before the
daemon starts (200: the account's limit of conditional orders, -4045 "Reach max stop order
limit", which the simulator enforces), as a bot protecting its positions would: the order book
then holds 200 orders and the per-symbol orders reads list them (the reaper's, the trigger
levels' and the guard's idle cost with orders).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis
from infra import daemon, proc_stat, redis_server, simulator, wait_until

MAX_STOPS = 200  # conditional orders an account may hold (-4045)
SLOW_READS = ("poll_interval_s = 15.0\nidle_poll_interval_s = 15.0\nweight_budget_pct = 2\n"
              "[core]\nmax_age_ms = 120000\n[veto]\nmax_age_ms = 60000\n")


def _main_thread(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                out["cs"] = int(line.split(":")[1])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    out["utime"], out["stime"] = int(fields[11]), int(fields[12])
    return out


def measure(window_s: float, after_s: float, extra: str, pyspy: str | None,
            symbols: int = 300, slow_reads: bool = True, stops: bool = False) -> dict[str, object]:
    names = [f"S{i:03d}USDT" for i in range(symbols)]
    account = "bench"
    members = f"wd:v1:{{{account}}}:positions"
    with redis_server() as rs, simulator(names) as sim:
        for name in names:
            sim.control("POST", "fills", {"symbol": name, "side": "BUY", "qty": "10"})
        if stops:
            from sections import _signed_post
            prices = sim.control("GET", "state")["prices"]
            for name in names[:MAX_STOPS]:
                price = float(prices[name]["contract_price"])
                _signed_post(sim, "/fapi/v1/algoOrder", {
                    "algoType": "CONDITIONAL", "symbol": name, "side": "SELL",
                    "type": "STOP_MARKET", "triggerPrice": f"{price / 2:.4f}",
                    "closePosition": "true"})
        r = redis.Redis.from_url(rs.url, decode_responses=True)
        with daemon(sim, rs.url, account, binance_extra=(SLOW_READS if slow_reads else "")
                    + extra.replace("|", "\n")) as wd:
            up = time.monotonic()
            wait_until(lambda: r.scard(members) >= symbols, timeout_s=60,
                       what=f"{symbols} positions in Redis", interval_s=0.1)
            time.sleep(max(0.0, up + after_s - time.monotonic()))  # past the start's reads
            load = Path("/proc/loadavg").read_text().split()[:3]
            spy = None
            if pyspy:
                exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                spy = subprocess.Popen([exe, "record", "--nonblocking", "-r", "500", "-d",
                                        str(int(window_s)), "-f", "raw", "-o", pyspy,
                                        "-p", str(wd.pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            c0, before = _main_thread(wd.pid), proc_stat(wd.pid)
            time.sleep(window_s)  # the measured window, not a synchronisation
            after, c1 = proc_stat(wd.pid), _main_thread(wd.pid)
            if spy is not None:
                spy.wait()
            states = [r.hget(f"wd:v1:{{{account}}}:pos:{m}", "state") for m in r.smembers(members)]
        r.close()
    return {"cpu_pct": round((after.cpu_s - before.cpu_s) / (after.at - before.at) * 100, 3),
            "window_s": round(after.at - before.at, 1), "load": load,
            "wakeups_per_s": round((c1["cs"] - c0["cs"]) / window_s, 1),
            "user_ticks": c1["utime"] - c0["utime"], "sys_ticks": c1["stime"] - c0["stime"],
            "open": states.count("open"), "tracked": len(states), "extra": extra,
            "reads": "slow" if slow_reads else "default", "stops": stops,
            "daemon_root": os.environ.get("WD_BENCH_DAEMON_ROOT", "")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daemon-root", default="")
    parser.add_argument("--window-s", type=float, default=45.0)
    parser.add_argument("--after-s", type=float, default=50.0)
    parser.add_argument("--extra", default="")
    parser.add_argument("--pyspy", default=None)
    parser.add_argument("--default-reads", action="store_true",
                        help="keep the default poll settings (the footprint's steady state)")
    parser.add_argument("--stops", action="store_true",
                        help="a closePosition stop on 200 positions (placed before the start)")
    args = parser.parse_args()
    if args.daemon_root:
        os.environ["WD_BENCH_DAEMON_ROOT"] = args.daemon_root
    print(json.dumps(measure(args.window_s, args.after_s, args.extra, args.pyspy,
                                  slow_reads=not args.default_reads, stops=args.stops)),
          flush=True)


if __name__ == "__main__":
    main()
