"""CPU of the poller's planning per round on an idle 300-symbol account, in-process, per tree.

Usage (from bench/, under the shared lock; trees alternate round by round)::

    flock /work/bench.lock env PYTHONPATH=..:../client python plan_cpu.py \
        --root /work/base --root /work/wt/readshell --rounds 2 --json

For each tree a child process imports ``watchdog`` from that tree and builds the steady state
of the floor bench (``floor.py --default-reads``) without I/O: a ``Poller`` on a
``PollSchedule`` with 300 open positions whose order reads are all due (held by the budget),
a ``WeightBudget`` of 360 with a minute of positions reads every 0.91 s (answered 20 ms later)
and an orders read every 11 s, both lists swept 100 s ago, the stream probes trusted. Then the
best of 7 runs of 500 calls, in µs, of what a round calls: ``plan`` (ordered, as ``run``; unordered,
as ``_next_wake_s``), ``_next_wake_s``, ``_pace_s`` (the positions read's pace) and
``positions_seen`` of an answer with the last one's rows (``wire_rest``'s unchanged read).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import timeit
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
CALLS = ("plan_ordered", "plan_unordered", "next_wake_s", "pace_s", "positions_seen_same")


def _measure() -> dict[str, Any]:
    from decimal import Decimal

    import watchdog
    from watchdog.binance.poller import Poller, PollSchedule
    from watchdog.binance.protocol.budget import WeightBudget
    from watchdog.clock import ManualClock
    from watchdog.core.events import PositionAmount, PositionSnapshot
    from watchdog.core.model import PositionKey, PositionSide, Symbol

    clock = ManualClock()

    class Rest:  # what the poller reads of BinanceRest
        def __init__(self) -> None:
            self.budget = WeightBudget(360)

        def budget_wait_s(self, weight: int, priority: object = None) -> float:
            return self.budget.wait_for_s(weight, now_s=clock.monotonic())

    rest = Rest()
    schedule = PollSchedule(poll_interval_s=0.9, orders_poll_interval_s=5.0,
                            fast_poll_interval_s=0.25)
    poller = Poller(rest, schedule, clock=clock,  # type: ignore[arg-type]
                    stream_trusted=lambda: True, stops_far=lambda: True)
    rows = tuple(PositionAmount(PositionKey(Symbol(f"S{i:03d}USDT"), PositionSide.BOTH),
                                Decimal(10), Decimal(1), 1) for i in range(300))
    snapshot = PositionSnapshot(1, 0, 0, rows, None)
    clock.advance(1000.0)
    schedule.positions_seen(snapshot, clock.monotonic())
    schedule.sweep_started(clock.monotonic() - 100.0, None)
    for i in range(70):
        now_s = clock.monotonic()
        schedule.positions_started(now_s)
        poller._paced.append((now_s, 5))
        entry = rest.budget.record(5, now_s)
        clock.advance(0.02)
        rest.budget.answered(entry, clock.monotonic())
        if i % 12 == 0:
            rest.budget.answered(rest.budget.record(2, clock.monotonic()), clock.monotonic())
        clock.advance(0.89)
    now_s = clock.monotonic()
    calls = {
        "plan_ordered": lambda: schedule.plan(now_s, (), False),
        "plan_unordered": lambda: schedule.plan(now_s, (), False, ordered=False),
        "next_wake_s": lambda: poller._next_wake_s(()),
        "pace_s": lambda: poller._pace_s(now_s),
        "positions_seen_same": lambda: schedule.positions_seen(
            PositionSnapshot(2, 0, 0, rows, None), now_s),  # a new answer, the same rows
    }
    out: dict[str, Any] = {"watchdog": watchdog.__file__}
    for name, call in calls.items():
        out[name] = round(min(timeit.repeat(call, number=500, repeat=7)) / 500 * 1e6, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", default=[], help="a tree to measure")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure()), flush=True)
        return
    runs: list[dict[str, Any]] = []
    for round_ in range(1, args.rounds + 1):
        for root in args.root or [str(HERE.parent.parent)]:
            env = {**os.environ, "PYTHONPATH": f"{root}:{root}/client",
                   "PYTHONDONTWRITEBYTECODE": "1"}
            done = subprocess.run([sys.executable, str(HERE), "--child"], env=env, check=True,
                                  capture_output=True, text=True)
            runs.append({"root": root, "round": round_, **json.loads(done.stdout)})
            if not args.json:
                print(runs[-1], flush=True)
    medians = {root: {c: statistics.median(r[c] for r in runs if r["root"] == root)
                      for c in CALLS} for root in {r["root"] for r in runs}}
    print(json.dumps({"runs": runs, "median_us": medians}) if args.json else medians)


if __name__ == "__main__":
    main()
