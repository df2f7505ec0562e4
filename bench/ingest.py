"""Ingest: flood the consumer's user stream and watch Redis from outside (this process).

- Throughput: ``count`` frames at full speed (the simulator writes as fast as the consumer
  reads). Done when every flooded position's hash shows the flood's final amount with the last
  frame's time; ``events_per_s = count / (done - first frame's E)``. ``drain_lag_ms`` is how long
  after the simulator's last write that took: a backlog inside the consumer shows up there.
- Latency: ``count`` frames at ``rate_per_s``; a Redis reader subscribed to keyspace
  notifications of the position hash reads ``as_of_ms`` (the frame's ``E``/``T``) on each write;
  latency = notification arrival (wall ms) - E. E is integer ms stamped at send, so every figure
  carries up to 1 ms of truncation (≈ +0.5 ms on average), as do the ccxt reference figures
  (docs/BENCHMARKS.md § Reference figures (measured here)).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from decimal import Decimal
from typing import Any

import redis
import redis.asyncio
from infra import Sim

from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.store.keys import AccountKeys

__all__ = ["latency", "percentile", "throughput"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pos_key(account: str, symbol: str) -> str:
    return AccountKeys(account).position(PositionKey(Symbol(symbol), PositionSide.BOTH))


def throughput(sim: Sim, redis_url: str, account: str, symbols: list[str], count: int,
               alive: Any, timeout_s: float = 120.0) -> dict[str, Any]:
    """Flood ``count`` frames at full speed; see the module docstring."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    result: dict[str, Any] = {}
    flooder = threading.Thread(target=lambda: result.update(
        sim.control("POST", "flood", {"count": count, "symbols": symbols}, timeout_s=timeout_s)))
    flooder.start()
    flooder.join(timeout_s)
    sent_at = time.time()
    if "last_event_ms" not in result:
        raise RuntimeError("flood did not finish")
    keys = {s: _pos_key(account, s) for s in result["final_amounts"]}
    want = {s: Decimal(a) for s, a in result["final_amounts"].items()}
    last_ms = str(result["last_event_ms"])
    deadline = time.monotonic() + timeout_s
    while True:
        pipe = r.pipeline(transaction=False)
        for key in keys.values():
            pipe.hmget(key, "amt", "as_of_ms")
        rows = pipe.execute()
        done_at = time.time()
        if all(amt is not None and Decimal(amt) == want[s] and as_of == last_ms
               for s, (amt, as_of) in zip(keys, rows, strict=True)):
            break
        if not alive():
            raise RuntimeError("the consumer exited during the flood")
        if time.monotonic() > deadline:
            raise RuntimeError(f"final state not visible in Redis after {timeout_s}s: {rows}")
        time.sleep(0.002)
    r.close()
    elapsed = done_at - result["first_event_ms"] / 1000
    return {"events_per_s": round(count / elapsed, 1), "elapsed_s": round(elapsed, 3),
            "sim_send_per_s": result["rate_per_s"], "drain_lag_ms": round((done_at - sent_at) * 1000, 1)}


async def _latency(sim: Sim, redis_url: str, account: str, symbol: str, rate: float,
                   count: int) -> dict[str, Any]:
    key = _pos_key(account, symbol)
    sub = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    reader = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    pubsub = sub.pubsub()
    await pubsub.subscribe(f"__keyspace@0__:{key}")
    samples: list[float] = []
    seen_versions: set[str] = set()
    enough = asyncio.Event()
    expected = (count + 1) // 2  # one position write per ACCOUNT_UPDATE

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] != "message" or message["data"] != "hset":
                continue  # one notification per publish: publish_position.lua writes the hash with one HSET
            arrived_ms = time.time() * 1000
            as_of, version = await reader.hmget(key, "as_of_ms", "version")
            if version in seen_versions or as_of is None:
                continue
            seen_versions.add(version)
            samples.append(arrived_ms - int(as_of))
            if len(samples) >= expected:
                enough.set()

    task = asyncio.create_task(listen())
    try:
        await asyncio.sleep(0.2)  # let SUBSCRIBE land before the first frame (setup only)
        await asyncio.to_thread(sim.control, "POST", "flood",
                                {"count": count, "rate_per_s": rate, "symbols": [symbol]})
        with contextlib.suppress(TimeoutError):  # a write may be missed if two land together
            await asyncio.wait_for(enough.wait(), timeout=2.0)
    finally:
        task.cancel()
        await pubsub.aclose()
        await sub.aclose()
        await reader.aclose()
    if not samples:
        raise RuntimeError("no position write seen in Redis during the paced flood")
    return {"p50_ms": round(percentile(samples, 0.50), 3), "p99_ms": round(percentile(samples, 0.99), 3),
            "samples": len(samples)}


def latency(sim: Sim, redis_url: str, account: str, symbol: str, rate: float = 1000.0,
            count: int = 3000) -> dict[str, Any]:
    """Frame → visible-in-Redis latency at ``rate`` frames/s (half are ACCOUNT_UPDATEs)."""
    return asyncio.run(_latency(sim, redis_url, account, symbol, rate, count))
