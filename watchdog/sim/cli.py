"""``position-watchdog sim``: run the simulator until SIGINT/SIGTERM.

Prints exactly one JSON line ``{"rest_url", "ws_url", "control_url"}`` on stdout once it
listens (scripts read it to configure the daemon), then nothing else on stdout.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

from watchdog.sim.market import parse_symbols
from watchdog.sim.runner import run_simulator

__all__ = ["serve"]


async def _serve(**settings: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with run_simulator(**settings) as sim:
        sys.stdout.write(json.dumps({"rest_url": sim.rest_url, "ws_url": sim.ws_url,
                                     "control_url": sim.control_url}) + "\n")
        sys.stdout.flush()
        await stop.wait()


def serve(*, host: str, port: int, api_key: str, api_secret: str, symbols: str, time_scale: float,
          dual_side: bool = False) -> None:
    """Blocking entry point for the CLI; raises OSError if the port cannot be bound."""
    names = parse_symbols(symbols)
    if not names:
        raise ValueError("--symbols: at least one symbol is required")
    if time_scale <= 0:
        raise ValueError(f"--time-scale: must be positive, got {time_scale}")
    asyncio.run(_serve(host=host, port=port, api_key=api_key, api_secret=api_secret,
                       symbols=tuple(names), time_scale=time_scale, dual_side=dual_side))
