"""``binance/protocol/schedule.py`` is the pure half of polling: no asyncio, no logging, no HTTP client;
``binance/poller.py`` (the shell) re-exports its names so importers keep working."""

from __future__ import annotations

import ast
from pathlib import Path

from watchdog.binance import poller
from watchdog.binance.protocol import schedule

_IO = {"asyncio", "httpx", "loguru", "time", "os", "socket", "websockets", "redis"}


def test_schedule_imports_nothing_that_does_io() -> None:
    tree = ast.parse(Path(schedule.__file__).read_text("utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & _IO


def test_poller_reexports_the_schedule() -> None:
    for name in ("PollSchedule", "PollPlan", "SWEEP_RETRY_S",
                 "orders_share_per_min", "sweep_hold_s"):
        assert getattr(poller, name) is getattr(schedule, name), name
        assert name in poller.__all__
