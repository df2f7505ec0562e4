"""poswatch: the trading bot's side of position-watchdog's veto protocol (Redis key schema wd:v1).

Ask the watchdog before touching a stop; it can say no. Depends on ``redis`` only, so it fits in
a bot's own environment; the watchdog daemon imports its key names and Lua scripts from here.

The names below load on first use: the daemon's config reads :mod:`poswatch.urls` (standard
library only) without pulling in redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from poswatch.client import AsyncGuard, AsyncWatchdogClient, Guard, WatchdogClient, check_position
    from poswatch.keys import SCHEMA, binance_symbol
    from poswatch.protocol import Ended, Reason, Verdict, Vetoed, WatchdogEvent

__all__ = [
    "DISTRIBUTION",
    "SCHEMA",
    "AsyncGuard",
    "AsyncWatchdogClient",
    "Ended",
    "Guard",
    "Reason",
    "Verdict",
    "Vetoed",
    "WatchdogClient",
    "WatchdogEvent",
    "__version__",
    "binance_symbol",
    "check_position",
]

__version__ = "0.1.0"
DISTRIBUTION = "position-watchdog-client"

_HOME = {
    "AsyncGuard": "client", "AsyncWatchdogClient": "client", "Guard": "client",
    "WatchdogClient": "client", "check_position": "client",
    "SCHEMA": "keys", "binance_symbol": "keys",
    "Ended": "protocol", "Reason": "protocol", "Verdict": "protocol", "Vetoed": "protocol",
    "WatchdogEvent": "protocol",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'poswatch' has no attribute {name!r}")
    return getattr(importlib.import_module(f"poswatch.{home}"), name)
