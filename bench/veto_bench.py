"""Veto protocol latency and throughput on loopback, one client (docs/BENCHMARKS.md § Veto protocol).

Usage: PYTHONPATH=. python bench/veto_bench.py [--url redis://127.0.0.1:6379/0] [-n 20000] [--batch 100]
Without --url it starts its own redis-server on a free port (--save "" --appendonly no).
Measures, with the sync WatchdogClient (hiredis parser when installed):
  check   one EVALSHA round trip per verdict (latency p50/p99/max)
  begin   one round trip (each begin is followed by an unmeasured end to release the lease)
  check/s sequential verdicts per second, and pipelined (EVALSHA batches of --batch)
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from decimal import Decimal

from redis import exceptions as redis_errors

from poswatch.calls import VetoCalls
from poswatch.client import WatchdogClient
from poswatch.scripts import script_sha
from watchdog.core.model import (
    Knowledge,
    PositionKey,
    PositionSide,
    PositionState,
    PositionView,
    Source,
    Symbol,
)
from watchdog.demo.processes import free_port
from watchdog.store.publisher import RedisPublisher

ACCOUNT = "bench"


def _start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server not on PATH")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = WatchdogClient.from_url(url, ACCOUNT)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.redis.ping()
            break
        except redis_errors.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    client.close()
    return proc, url


async def _prepare(url: str) -> None:
    pub = RedisPublisher.from_url(url, account=ACCOUNT, health_ttl_ms=600_000, closed_ttl_s=60,
                                  events_maxlen=10_000, veto_max_age_ms=3_600_000, socket_timeout_s=2.0)
    await pub.start()
    if not await pub.acquire():  # every watchdog write is fenced (docs/HA.md): lead first
        raise RuntimeError(f"another instance leads account {ACCOUNT} in {url}")
    await pub.heartbeat({"stream": "live"})
    key = PositionKey(Symbol("BTCUSDT"), PositionSide.BOTH)
    now = int(time.time() * 1000)
    await pub.publish(PositionView(key, PositionState.OPEN, Knowledge.CONFIRMED, Decimal("0.01"),
                                   Decimal("60000"), Source.STREAM, now, now, 1))
    await pub.close()


def _pct(samples_ns: list[int], q: float) -> float:
    ordered = sorted(samples_ns)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def _report(name: str, samples_ns: list[int]) -> None:
    print(f"{name:<8} n={len(samples_ns):>6}  p50={_pct(samples_ns, 0.50):.3f} ms  "
          f"p99={_pct(samples_ns, 0.99):.3f} ms  max={max(samples_ns) / 1e6:.3f} ms  "
          f"mean={statistics.fmean(samples_ns) / 1e6:.3f} ms")


def run(url: str, n: int, batch: int) -> None:
    asyncio.run(_prepare(url))
    client = WatchdogClient.from_url(url, ACCOUNT)
    client.redis.config_resetstat()
    for _ in range(500):  # warm-up: connection, script cache
        client.check("BTCUSDT")
    clock = time.perf_counter_ns
    checks: list[int] = []
    for _ in range(n):
        t0 = clock()
        verdict = client.check("BTCUSDT")
        checks.append(clock() - t0)
    assert verdict.allowed, verdict
    begins: list[int] = []
    for _ in range(n // 2):
        t0 = clock()
        verdict = client.begin("BTCUSDT", holder="bench", ttl_ms=10_000)
        begins.append(clock() - t0)
        client.end("BTCUSDT", "BOTH", verdict.lease or 0)
    assert verdict.allowed, verdict
    _report("check", checks)
    _report("begin", begins)
    print(f"check/s  sequential: {n / (sum(checks) / 1e9):,.0f}")
    _, keys, args = VetoCalls(ACCOUNT, None).check("BTCUSDT", "BOTH")
    sha = script_sha("check")
    t0 = clock()
    done = 0
    while done < n * 5:
        pipe = client.redis.pipeline(transaction=False)
        for _ in range(batch):
            pipe.evalsha_ro(sha, len(keys), *keys, *args)
        replies = pipe.execute()
        done += len(replies)
    elapsed_s = (clock() - t0) / 1e9
    assert all(r[0] == 1 for r in replies)
    print(f"check/s  pipelined (batch {batch}): {done / elapsed_s:,.0f}")
    stats = client.redis.info("commandstats").get("cmdstat_evalsha_ro", {})
    print(f"server   evalsha_ro (check) usec_per_call={stats.get('usec_per_call')} "
          f"over {stats.get('calls')} calls (Lua time inside redis-server, no network or client)")
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    opts = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.processor() or '?'}, "
          f"{__import__('os').cpu_count()} cpu(s)")
    if opts.url:
        run(opts.url, opts.n, opts.batch)
        return
    with tempfile.TemporaryDirectory(prefix="wd-bench-") as tmp:
        proc, url = _start_redis(tmp)
        try:
            run(url, opts.n, opts.batch)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
