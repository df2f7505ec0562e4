"""CPU per frame of the daemon's ingest path without sockets: a figure a busy shared machine
cannot move much (process time, best of ``--repeats``), to compare checkouts.

The same frames as ``POST /sim/v1/flood`` (ACCOUNT_UPDATE with a new amount each time,
ORDER_TRADE_UPDATE placing then cancelling an order), fed in order through the stages the
stream and the core loop run, cumulatively: ``loads`` (orjson), ``+dedup`` (the rotation
duplicate filter), ``+parse`` (wire → core events), ``+core`` (OrderBook + PositionBook),
``+pack`` (``RedisPublisher.run_many`` building and packing the EVALSHAs of each 256-event batch;
no socket; the publisher leads, or since HA fencing it writes nothing and packs nothing).
``daemon_core`` is the daemon's own core instead of those two stages: loads, dedup and parse
as above, then ``CoreLoop.handle_many`` of the pipeline ``runtime.build`` wires (the books, the
order blindness, the stream's proof, the poller's and the guard's observers, trigger watching,
the firing stops, the guard's step, the effects runner and the publisher's packing; no socket)
on batches of up to 512 events, as the core loop takes them in a flood (None for a checkout
without ``runtime.build``). websockets' frame parsing and the event loop are in neither (about
11 µs per frame on the 2-core machine, the same with uvloop: bare client, same flood).
``cap_order_us`` is the cost of one order (placed, then cancelled) once ``OrderBook`` holds
``MAX_TOMBSTONES`` tombstones.

Usage (from the repository root)::

    python bench/ingest_cpu.py [--root OTHER_CHECKOUT] [--count 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from typing import Any


def frames(count: int, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> list[str]:
    """Flood-shaped frames, every one unique (wallet and order ids move), times increasing."""
    out = []
    t0 = 1_795_573_638_050
    for k in range(count):
        t = t0 + k // 32
        symbol = symbols[(k // 2) % len(symbols)]
        if k % 2 == 0:
            amount = ("0.001", "0.002")[(k // (2 * len(symbols))) % 2]
            out.append(
                f'{{"e":"ACCOUNT_UPDATE","E":{t},"T":{t},"a":{{"m":"ORDER","B":[{{"a":"USDT",'
                f'"wb":"{10000 + k * 1e-8:.8f}","cw":"10000.00000000","bc":"0.00000000"}}],'
                f'"P":[{{"s":"{symbol}","pa":"{amount}","ep":"90000.00","bep":"90000.00",'
                f'"cr":"0.00000000","up":"0.00000000","mt":"cross","iw":"0","ps":"BOTH"}}]}}}}')
        else:
            m = k // 2
            status = "CANCELED" if m % 2 else "NEW"
            out.append(
                f'{{"e":"ORDER_TRADE_UPDATE","E":{t},"T":{t},"o":{{"s":"{symbol}","c":"flood",'
                f'"S":"BUY","o":"LIMIT","f":"GTC","q":"0.001","p":"45000.00","ap":"0","sp":"0",'
                f'"x":"{status}","X":"{status}","i":{9_000_000_000_000 + m // 2},"l":"0.000",'
                f'"z":"0.000","L":"0","T":{t},"t":0,"b":"0","a":"0","m":false,"R":false,'
                f'"wt":"CONTRACT_PRICE","ot":"LIMIT","ps":"BOTH","cp":false,"pP":false,"si":0,'
                f'"ss":0,"rp":"0","V":"EXPIRE_MAKER","pm":"NONE","gtd":0,"er":"0"}}}}')
    return out


def measure(count: int, repeats: int) -> dict[str, Any]:
    import redis.asyncio

    from poswatch.calls import ScriptCall
    try:
        from watchdog.binance.protocol import wire
        from watchdog.binance.protocol.reconnect import RecentEvents, event_identity
    except ImportError:  # a ``--root`` checkout from before binance/protocol/
        from watchdog.binance import wire  # type: ignore[no-redef,attr-defined]
        from watchdog.binance.reconnect import (  # type: ignore[no-redef,import-not-found]
            RecentEvents,
            event_identity,
        )
    from watchdog.binance.stream import _loads
    from watchdog.core import orders as orders_module
    from watchdog.core.book import PositionBook
    from watchdog.core.events import PositionSnapshot, SnapshotRequested, StreamConnected
    from watchdog.core.orders import OrderBook
    from watchdog.store.publisher import RedisPublisher

    texts = frames(count)
    publisher = RedisPublisher(redis.asyncio.Redis(), account="bench", health_ttl_ms=1000,
                               closed_ttl_s=1, events_maxlen=10, veto_max_age_ms=1)

    async def no_socket(calls: list[ScriptCall]) -> list[object]:
        from watchdog.store import runner as module

        pack = module._pack
        for call in calls:
            if pack is not None:
                pack(call.command())
        return [1] * len(calls)

    publisher._runner._pipeline = no_socket  # type: ignore[method-assign]
    if hasattr(publisher, "_fence"):  # HA fencing: only the leader writes (and packs)
        publisher._fence, publisher._announced = 1, True

    def run(stage: int) -> float:
        recent, book, orders = RecentEvents(), PositionBook(), OrderBook()
        book.apply(StreamConnected(1), 1)
        book.apply(SnapshotRequested(1, 1), 1)
        book.apply(PositionSnapshot(1, 1, 1, ()), 2)
        loop = asyncio.new_event_loop()
        batch: list[Any] = []
        now_ms = 1_795_573_638_050
        started = time.process_time()
        for text in texts:
            raw = _loads(text)
            if stage < 1:
                continue
            if not recent.first_time(event_identity(raw, text)):
                raise RuntimeError("a flood frame was taken for a duplicate")
            if stage < 2:
                continue
            events = wire.parse_user_event(raw)
            if stage < 3:
                continue
            for event in events:
                orders.apply(event)
                batch += book.apply(event, now_ms)
            if len(batch) >= 256:
                if stage >= 4:
                    loop.run_until_complete(publisher.run_many(batch))
                batch = []
        elapsed = time.process_time() - started
        loop.close()
        return elapsed / count * 1e6

    result: dict[str, Any] = {}
    for stage, name in enumerate(("loads", "+dedup", "+parse", "+core", "+pack")):
        runs = []
        for _ in range(repeats):
            gc.collect()
            runs.append(run(stage))
        result[name] = round(min(runs), 2)

    cap = orders_module.MAX_TOMBSTONES
    parsed = [e for t in frames(4 * cap + 2048)[1::2] for e in wire.parse_user_event(_loads(t))]
    book = OrderBook()
    for event in parsed[: 2 * cap]:
        book.apply(event)  # the cap is reached: every further terminal fact evicts one
    started = time.process_time()
    for event in parsed[2 * cap:]:
        book.apply(event)
    result["cap_order_us"] = round((time.process_time() - started) / (len(parsed[2 * cap:]) / 2)
                                      * 1e6, 2)
    result["daemon_core"] = daemon_core(texts, repeats)
    return result


def daemon_core(texts: list[str], repeats: int) -> float | None:
    """µs per frame through the daemon's wired core (module docstring), best of ``repeats``."""
    try:
        from watchdog.runtime.build import build
    except ImportError:  # a checkout from before runtime/build.py
        return None
    from watchdog.binance.protocol import wire
    from watchdog.binance.protocol.reconnect import RecentEvents, event_identity
    from watchdog.binance.stream import _loads
    from watchdog.clock import SystemClock
    from watchdog.config import BinanceConfig, Config, Credentials, RedisConfig
    from watchdog.core.events import PositionSnapshot, SnapshotRequested, StreamConnected
    from watchdog.logs import configure_logging

    configure_logging("INFO")  # the daemon's default: debug lines are built, not written
    config = Config(binance=BinanceConfig(rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9"),
                    redis=RedisConfig(url="redis://127.0.0.1:9", account="bench"))

    async def once() -> float:
        async with build(config, Credentials("key", "secret"), SystemClock()) as pipeline:
            store, runner = pipeline.store, pipeline.store._runner
            store._fence, store._announced = 1, True  # leading: every batch is packed

            async def pipelined(calls: list[Any]) -> list[object]:
                for call in calls:
                    runner._packed(call)
                return [[1, 0]] * len(calls)

            async def one(call: Any) -> object:
                runner._packed(call)
                return [1, 0]

            runner._pipeline, runner._one = pipelined, one  # type: ignore[method-assign]
            core, now_ms = pipeline.core, pipeline.clock.wall_ms()
            await core.handle_many([StreamConnected(1), SnapshotRequested(1, now_ms),
                                    PositionSnapshot(1, now_ms, now_ms, ())])
            recent = RecentEvents()
            gc.collect()
            batch: list[Any] = []
            started = time.process_time()
            for text in texts:
                raw = _loads(text)
                if not recent.first_time(event_identity(raw, text)):
                    raise RuntimeError("a flood frame was taken for a duplicate")
                batch += wire.parse_user_event(raw)
                if len(batch) >= 512:
                    await core.handle_many(batch)
                    batch = []
            if batch:
                await core.handle_many(batch)
            return (time.process_time() - started) / len(texts) * 1e6

    return round(min(asyncio.run(once()) for _ in range(repeats)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", help="import watchdog from this checkout instead")
    parser.add_argument("--count", type=int, default=40_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.root:
        sys.path.insert(0, args.root)
    print(json.dumps(measure(args.count, args.repeats)))


if __name__ == "__main__":
    main()
