"""The peer: ccxt.pro ``binanceusdm.watch_positions`` reading the same flood (own process).

What a bot author would otherwise run: ccxt parses each frame and keeps positions (and orders)
in memory; it publishes nothing. As docs/ADAPTERS.md § Measured here says: every ``https://``
API entry and the ``linear`` WS entry are re-pointed at the simulator, ``fetchCurrencies`` is
off, and ``watch_positions`` returns the REST snapshot first (the WebSocket opens on the second call).

Prints one JSON line: ``{"frames", "elapsed_s", "events_per_s"}`` (flood at full speed) or, with
``--rate``, ``{"frames", "age_p50_ms", "age_p99_ms"}`` (age of each frame when ccxt has handled
it: wall ms now minus the frame's ``E``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import ccxt.pro as ccxtpro
import httpx


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    ex = ccxtpro.binanceusdm({"apiKey": args.api_key, "secret": args.api_secret})
    for name, url in list(ex.urls["api"].items()):
        if isinstance(url, str) and url.startswith("https://"):
            ex.urls["api"][name] = args.rest_url + urlsplit(url).path
    ex.urls["api"]["ws"]["linear"] = args.ws_url + "/ws"
    ex.has["fetchCurrencies"] = False
    seen: list[float] = []
    ages: list[float] = []
    done = asyncio.Event()
    original = ex.handle_message

    def counted(client: Any, message: Any) -> Any:
        result = original(client, message)
        now = time.time()
        if isinstance(message, dict) and message.get("e") in ("ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE"):
            seen.append(now)
            if args.rate:
                ages.append(now * 1000 - int(message["E"]))
            if len(seen) >= args.count:
                done.set()
        return result

    ex.handle_message = counted
    try:
        await ex.load_markets()
        await ex.watch_positions()  # REST snapshot; the stream opens on the next call
        watcher = asyncio.create_task(_watch(ex))
        async with httpx.AsyncClient(timeout=300) as http:
            deadline = time.monotonic() + 20
            while not await _connected(http, args.control_url):
                if time.monotonic() > deadline or watcher.done():
                    raise RuntimeError("ccxt.pro did not open the user stream")
                await asyncio.sleep(0.05)
            doc = {"count": args.count, "rate_per_s": args.rate or None, "symbols": args.symbols}
            flood = asyncio.create_task(http.post(f"{args.control_url}/flood", json=doc))
            await asyncio.wait_for(done.wait(), timeout=args.timeout_s)
            response = await flood
            response.raise_for_status()
        watcher.cancel()
    finally:
        await ex.close()
    if args.rate:
        return {"frames": len(ages), "age_p50_ms": round(_percentile(ages, 0.50), 3),
                "age_p99_ms": round(_percentile(ages, 0.99), 3)}
    elapsed = seen[args.count - 1] - seen[0]
    return {"frames": args.count, "elapsed_s": round(elapsed, 4),
            "events_per_s": round((args.count - 1) / elapsed, 1)}


async def _watch(ex: Any) -> None:
    while True:
        await ex.watch_positions()


async def _connected(http: httpx.AsyncClient, control_url: str) -> bool:
    state = (await http.get(f"{control_url}/state")).json()
    return any(c["listen_keys"] for c in state["connections"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest-url", required=True)
    parser.add_argument("--ws-url", required=True)
    parser.add_argument("--control-url", required=True)
    parser.add_argument("--api-key", default="sim-key")
    parser.add_argument("--api-secret", default="sim-secret")
    parser.add_argument("--count", type=int, default=60_000)
    parser.add_argument("--rate", type=float, default=0.0, help="frames/s; 0 = as fast as read")
    parser.add_argument("--symbols", nargs="+", default=["BTCUSDT"])
    parser.add_argument("--timeout-s", type=float, default=120.0)
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
