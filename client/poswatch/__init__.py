"""poswatch: the trading bot's side of position-watchdog's veto protocol (Redis key schema wd:v1).

Ask the watchdog before touching a stop; it can say no. Depends on ``redis`` only, so it fits in
a bot's own environment; the watchdog daemon imports its key names, Lua scripts, typed script
calls (:mod:`poswatch.calls`) and hash field names (:mod:`poswatch.fields`) from here.

The names below load on first use: the daemon's config reads :mod:`poswatch.urls` (standard
library only) without pulling in redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ below
    from poswatch.client import AsyncGuard as AsyncGuard
    from poswatch.client import AsyncWatchdogClient as AsyncWatchdogClient
    from poswatch.client import Guard as Guard
    from poswatch.client import WatchdogClient as WatchdogClient
    from poswatch.client import check_position as check_position
    from poswatch.keys import SCHEMA as SCHEMA
    from poswatch.keys import binance_symbol as binance_symbol
    from poswatch.protocol import Ended as Ended
    from poswatch.protocol import Reason as Reason
    from poswatch.protocol import Replaced as Replaced
    from poswatch.protocol import Verdict as Verdict
    from poswatch.protocol import Vetoed as Vetoed
    from poswatch.protocol import WatchdogEvent as WatchdogEvent

__version__ = "0.1.0"
DISTRIBUTION = "position-watchdog-client"

_HOME = {
    "AsyncGuard": "client", "AsyncWatchdogClient": "client", "Guard": "client",
    "WatchdogClient": "client", "check_position": "client",
    "SCHEMA": "keys", "binance_symbol": "keys",
    "Ended": "protocol", "Reason": "protocol", "Replaced": "protocol", "Verdict": "protocol",
    "Vetoed": "protocol",
    "WatchdogEvent": "protocol",
}
__all__ = ["DISTRIBUTION", "__version__", *_HOME]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'poswatch' has no attribute {name!r}")
    return getattr(importlib.import_module(f"poswatch.{home}"), name)
