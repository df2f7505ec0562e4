"""A strict Binance USDⓈ-M futures simulator with fault injection (extra ``sim``: aiohttp).

Never imports ``watchdog.binance``: the fake must not share the client's understanding of the
protocol. Start it with :func:`run_simulator` (tests, demo) or ``position-watchdog sim``.
"""

from __future__ import annotations

from watchdog.sim.runner import Simulator, run_simulator
from watchdog.sim.settings import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimSettings

__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "SimSettings", "Simulator", "run_simulator"]
