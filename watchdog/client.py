"""``watchdog.client`` is the bot client :mod:`poswatch`, kept under its old name for existing bots.

New code imports ``poswatch`` (distribution ``position-watchdog-client``, which depends on
``redis`` only and does not clash with PyPI's ``watchdog``); this name stays as long as the
daemon ships, with the same objects.
"""

from __future__ import annotations

from poswatch.client import (
    AsyncGuard,
    AsyncWatchdogClient,
    Ended,
    Guard,
    Reason,
    Verdict,
    Vetoed,
    WatchdogClient,
    WatchdogEvent,
    check_position,
)

__all__ = [
    "AsyncGuard",
    "AsyncWatchdogClient",
    "Ended",
    "Guard",
    "Reason",
    "Verdict",
    "Vetoed",
    "WatchdogClient",
    "WatchdogEvent",
    "check_position",
]
