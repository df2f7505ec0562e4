"""CPU of the store side's per-read and per-beat work, in-process (no daemon, no Redis).

Usage (compare two trees; alone on the machine, or under the shared lock):
    cd bench && PYTHONPATH=<tree>:<tree>/client python store_cpu.py

Two figures, best of 5 repetitions (process time):
- ``touch_us``: building the ``touch_verified`` call of a read re-verifying 300 open positions
  and packing it as the runner sends it (hiredis), over 2,000 consecutive reads (the same run of
  positions, the versions and ``verified_ms`` moving): ``RedisPublisher._touch_call`` then
  ``ScriptRunner._packed`` (or ``pack_command(call.command())`` on a tree without it).
- ``health_us``: one heartbeat's ``Vitals.health`` + ``Health.to_fields`` + ``check_no_secrets``
  with 300 open positions, all alerted unprotected by the guard.
docs/BENCHMARKS.md, "#13 item 2: wake-ups outside the read (session 9)".
"""

from __future__ import annotations

import json
import time
from decimal import Decimal

from hiredis import pack_command

from tests.support.store import make_view, position_key, publisher_on
from watchdog.core.book import PositionBook
from watchdog.core.events import (
    PositionAmount,
    PositionSnapshot,
    SnapshotRequested,
    StreamConnected,
)
from watchdog.runtime.vitals import Identity, Vitals
from watchdog.store.heartbeat import check_no_secrets

T0 = 1_764_000_000_000


def _best(run: object, count: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        run()  # type: ignore[operator]
        best = min(best, (time.process_time() - start) / count * 1e6)
    return round(best, 1)


def touch_us() -> float:
    pub = publisher_on("redis://127.0.0.1:1/0")  # packs only: never connects
    pub._fence = 7
    views = [make_view(position_key(f"S{i:03d}USDT"), version=10, verified_ms=T0) for i in range(300)]
    reads = []
    ms = T0
    for _ in range(2000):
        ms += 900
        views = [v.reverified(ms, v.version + 1) for v in views]
        reads.append((views, ms))
    packed = getattr(pub._runner, "_packed", None)

    def run() -> None:
        for batch, at_ms in reads:
            call = pub._touch_call(batch, at_ms)
            if packed is not None:
                packed(call)
            else:
                pack_command(call.command())

    return _best(run, len(reads))


def health_us() -> float:
    book = PositionBook()
    book.apply(StreamConnected(1), T0)
    book.apply(SnapshotRequested(1, T0 + 1), T0 + 1)
    rows = tuple(PositionAmount(position_key(f"S{i:03d}USDT"), Decimal("1"), Decimal("2"), T0)
                 for i in range(300))
    book.apply(PositionSnapshot(1, T0 + 1, T0 + 2, rows), T0 + 2)
    alerted = tuple((row.key, T0) for row in rows)
    vitals = Vitals(Identity(pid=1, host="h", version="0", started_ms=1), book,
                    weight_budget_1m=360, progress_limit_s=10.0, unprotected=lambda: alerted,
                    trigger_watch=lambda: {"trigger_watch": "on"})
    vitals.ready = True

    def run() -> None:
        for i in range(2000):
            check_no_secrets(vitals.health(T0 + i).to_fields())

    return _best(run, 2000)


if __name__ == "__main__":
    print(json.dumps({"touch_us": touch_us(), "health_us": health_us()}))
