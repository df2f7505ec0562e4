"""The chaos suite: the real daemon, simulator and redis-server through named fault scenarios.

    python bench/chaos.py                 # every scenario (about 15 minutes)
    python bench/chaos.py --subset ci     # the CI subset (tests/chaos/test_chaos_ci.py runs it)
    python bench/chaos.py --only NAME [--only NAME …] [--json] [--list]

One line per scenario (name, PASS/FAIL, key figure, seconds), then a summary; exit 1 when any
scenario failed. After each scenario five invariants are judged from outside (the simulator's
journal and state, Redis, exit codes): see docs/RELIABILITY.md, "Chaos suite". CHAOS_KEEP_LOGS=DIR
keeps each scenario's daemon log there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "client")]  # client/: poswatch

from chaos_rig import BOUNDS, RedisProc, Result, run_scenario  # noqa: E402
from chaos_scenarios import SCENARIOS, Spec  # noqa: E402

# Scenarios that pass on main at the time of writing and run in CI (tests/chaos/test_chaos_ci.py):
# at most 5 minutes on a loaded 2-core machine. The others wait on issue 12's fixes
# (docs/RELIABILITY.md lists which fail today and why).
CI_SUBSET = (
    "stream_mute_unproven",
    "blind_to_order_events",
    "reorder_events",
    "rest_503_burst",
    "rest_lag_bursts_flap",
    "redis_killed_restarted",
    "redis_flushall",
    "redis_down_at_start",
    "daemon_kill9_mid_reap",
    "daemon_sigterm",
    "daemon_sigterm_under_flood",
    "bad_api_key",
    "bad_config",
    "two_bots_racing",
    # the guard (issue 17): its three cheapest scenarios with margin (about 15-20 s each);
    # guard_close_while_placing joined once the guard removed its own stop on a close
    # (core/guard.py rule 4b: 0.05-0.23 s of its 5.5 s bound, was 4.4 s)
    "guard_bot_replaces_in_flight",
    "guard_rest_lag_under_lease",
    "guard_close_while_placing",
)


def select(only: list[str], subset: str | None) -> list[Spec]:
    names = {spec.name: spec for spec in SCENARIOS}
    wanted = list(only) + (list(CI_SUBSET) if subset == "ci" else [])
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise SystemExit(f"chaos: unknown scenario(s): {', '.join(unknown)} (see --list)")
    return [names[n] for n in wanted] if wanted else list(SCENARIOS)


def line(result: Result) -> str:
    verdict = "PASS" if result.ok else "FAIL"
    text = f"{result.name:<36} {verdict}  {result.figure or '-':<58} {result.seconds:6.1f}s"
    for failure in result.failures:
        text += f"\n    - {failure}"
    return text


async def main_async(specs: list[Spec], as_json: bool) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="wd-chaos-redis-") as tmp:
        redis_proc = RedisProc(Path(tmp))
        await redis_proc.start()
        try:
            for spec in specs:
                result = await run_scenario(spec.name, spec.body, redis_proc, keys=list(spec.keys),
                                            sim_args=spec.sim_args, start=spec.start)
                results.append(result)
                out = sys.stderr if as_json else sys.stdout  # with --json, progress on stderr
                print(line(result), file=out, flush=True)
                if not result.ok and "log_tail" in result.figures:
                    tail = str(result.figures["log_tail"]).splitlines()[-4:]
                    print("\n".join(f"      | {t[:160]}" for t in tail), file=out, flush=True)
        finally:
            await redis_proc.stop()
    return results


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--subset", choices=["ci"])
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args()
    if args.list:
        for spec in SCENARIOS:
            print(f"{spec.name:<36} {'ci ' if spec.name in CI_SUBSET else '   '}{spec.what}")
        return 0
    specs = select(args.only, args.subset)
    # SIGTERM (a CI timeout) unwinds like Ctrl-C: every process a scenario started is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    results = asyncio.run(main_async(specs, args.json))
    failed = [r for r in results if not r.ok]
    took = time.monotonic() - started
    if args.json:
        print(json.dumps({"bounds": BOUNDS.__dict__, "seconds": round(took, 1),
                          "passed": len(results) - len(failed), "failed": len(failed),
                          "scenarios": [{"name": r.name, "ok": r.ok, "figure": r.figure,
                                         "seconds": round(r.seconds, 1), "failures": r.failures,
                                         "figures": {k: v for k, v in r.figures.items() if k != "log_tail"}}
                                        for r in results]}))
    else:
        print(f"\n{len(results) - len(failed)}/{len(results)} scenarios passed in {took:.0f} s"
              + (f"; failed: {', '.join(r.name for r in failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
