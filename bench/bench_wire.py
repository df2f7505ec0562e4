"""Parse throughput of ``watchdog.binance.protocol.wire`` on the documented payloads (no I/O).

Run from the repo root: ``python -m bench.bench_wire`` (or ``python bench/bench_wire.py``
with the repo on ``PYTHONPATH``). Reports the best of several repeats, per payload type, for
``parse_user_event`` alone and for ``orjson.loads`` + ``parse_user_event`` on the raw frame.
"""

from __future__ import annotations

import json
import timeit
from pathlib import Path

import orjson

from watchdog.binance.protocol.wire import parse_user_event

DOCS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "binance_docs"
PAYLOADS = ["account_update.json", "order_trade_update.json", "trade_lite.json",
            "algo_update_triggered_stream.json"]
NUMBER = 20_000
REPEAT = 7


def main() -> None:
    print(f"{'payload':36s} {'parse us':>9s} {'parse/s':>10s} {'load+parse/s':>13s}")
    for name in PAYLOADS:
        raw = orjson.dumps(json.loads((DOCS / name).read_text()))
        payload = orjson.loads(raw)
        parse_s = min(timeit.repeat(lambda p=payload: parse_user_event(p), number=NUMBER, repeat=REPEAT))
        both_s = min(timeit.repeat(lambda r=raw: parse_user_event(orjson.loads(r)), number=NUMBER,
                                   repeat=REPEAT))
        print(f"{name:36s} {parse_s / NUMBER * 1e6:9.2f} {NUMBER / parse_s:10,.0f} {NUMBER / both_s:13,.0f}")


if __name__ == "__main__":
    main()
