"""The ingest hot path without the daemon: stream → wire → PositionBook → RedisPublisher (own process).

A stand-in used by ``bench/run.py`` to measure (and profile) the path every stream frame takes,
with the project's own parts: ``binance.wire`` parses, ``core.book.PositionBook`` applies,
``store.publisher.RedisPublisher`` writes. Modes:

- ``serial``: like the daemon's core loop: one event at a time, each store effect awaited
  (one Redis round trip per published change).
- ``batched``: every frame already received is parsed and applied, then all store effects of
  that batch go to Redis in one pipelined round trip (``RedisPublisher.run_many``), in order.
  Every state change is still written (nothing is coalesced).

Startup: listen key, a signed positionRisk snapshot bracketed as the core expects
(StreamConnected → SnapshotRequested → PositionSnapshot), one heartbeat, then ``ready`` on
stdout. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from typing import Any

import httpx
import websockets

from watchdog.binance.protocol.signing import build_signed_query
from watchdog.binance.protocol.wire import Ignored, parse_user_event
from watchdog.binance.protocol.wire_rest import parse_position_risk
from watchdog.core.book import BookPolicy, PositionBook
from watchdog.core.effects import Effect, Notify, Publish, RaiseAlert, Retract
from watchdog.core.events import SnapshotRequested, StreamConnected, Tick
from watchdog.store.publisher import RedisPublisher

try:
    import orjson

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover - the fast extra is optional
    _loads = json.loads

_STORE = (Publish, Retract, Notify, RaiseAlert)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _snapshot(http: httpx.AsyncClient, args: argparse.Namespace, book: PositionBook,
                    store: RedisPublisher) -> None:
    requested = _now_ms()
    await _run(store, book.apply(SnapshotRequested(1, requested), requested))
    query = build_signed_query({}, args.api_secret, requested, 5000)
    response = await http.get(f"{args.rest_url}/fapi/v2/positionRisk?{query}",
                              headers={"X-MBX-APIKEY": args.api_key})
    response.raise_for_status()
    snap = parse_position_risk(response.json(), request_id=1, requested_time_ms=requested,
                               received_time_ms=_now_ms())
    await _run(store, book.apply(snap, _now_ms()))


async def _run(store: RedisPublisher, effects: list[Effect]) -> None:
    for effect in effects:
        if isinstance(effect, _STORE):
            await store.run(effect)


async def main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    store = RedisPublisher.from_url(args.redis_url, account=args.account, health_ttl_ms=60_000,
                                    closed_ttl_s=60, events_maxlen=10_000, veto_max_age_ms=5000,
                                    socket_timeout_s=2.0)
    await store.start()
    book = PositionBook(BookPolicy(max_age_ms=60_000, max_rest_lag_ms=2000))
    async with httpx.AsyncClient(timeout=10) as http:
        key = (await http.post(f"{args.rest_url}/fapi/v1/listenKey",
                               headers={"X-MBX-APIKEY": args.api_key})).json()["listenKey"]
        url = f"{args.ws_url}/private/ws?listenKey={key}&events=ACCOUNT_UPDATE/ORDER_TRADE_UPDATE"
        compression = None if args.no_compression else "deflate"
        async with websockets.connect(url, compression=compression, max_queue=args.max_queue) as ws:
            await _run(store, book.apply(StreamConnected(1), _now_ms()))
            await _snapshot(http, args, book, store)
            await store.heartbeat({"stream": "live"})
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            consume = asyncio.create_task((_batched if args.mode == "batched" else _serial)(ws, book, store))
            ticker = asyncio.create_task(_tick(book, store))
            await stop.wait()
            for task in (consume, ticker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    await store.close()


async def _tick(book: PositionBook, store: RedisPublisher) -> None:
    while True:
        await asyncio.sleep(1.0)
        await _run(store, book.apply(Tick(), _now_ms()))
        await store.heartbeat({"stream": "live"})


async def _serial(ws: Any, book: PositionBook, store: RedisPublisher) -> None:
    async for message in ws:
        parsed = parse_user_event(_loads(message))
        if isinstance(parsed, Ignored):
            continue
        for event in parsed:
            await _run(store, book.apply(event, _now_ms()))


async def _batched(ws: Any, book: PositionBook, store: RedisPublisher) -> None:
    pending = ws.recv_messages.frames  # websockets' buffer of received frames
    async for message in ws:
        batch = [message]
        while len(pending):  # everything already received; recv() then returns at once
            batch.append(await ws.recv())
        effects: list[Effect] = []
        for raw in batch:
            parsed = parse_user_event(_loads(raw))
            if isinstance(parsed, Ignored):
                continue
            now_ms = _now_ms()
            for event in parsed:
                effects.extend(e for e in book.apply(event, now_ms) if isinstance(e, _STORE))
        await store.run_many(effects)  # type: ignore[arg-type]


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest-url", required=True)
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--account", default="bench")
    parser.add_argument("--api-key", default="sim-key")
    parser.add_argument("--api-secret", default="sim-secret")
    parser.add_argument("--mode", choices=("serial", "batched"), default="serial")
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--max-queue", type=int, default=None)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))


if __name__ == "__main__":
    cli()
