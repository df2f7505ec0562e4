"""Re-verifications in one script call: ``Reverified`` effects and ``Publish`` effects whose
``refresh_of`` is set (PURE).

Why: every positions poll (0.9 s) re-verifies every tracked position, and with 300 positions
writing 300 complete views to move ``verified_ms`` was most of the daemon's idle CPU
(docs/BENCHMARKS.md, Idle CPU). ``touch_verified.lua`` moves ``verified_ms`` and ``version`` of
many positions at once, only where Redis still holds the re-verified version and state; the
publisher writes the complete view for every entry it reports as not written, so readers see
exactly what a complete publish would have left. The call itself is built by
:meth:`poswatch.calls.WatchdogCalls.touch_verified`.
"""

from __future__ import annotations

from collections.abc import Sequence

from watchdog.core.model import PositionView
from watchdog.errors import InvariantViolation

__all__ = ["missed_refreshes"]


def missed_refreshes(views: Sequence[PositionView], reply: object) -> list[PositionView]:
    """The views the script did not write (its reply: 1-based indexes), to publish in full."""
    if not isinstance(reply, list):
        raise InvariantViolation(f"touch_verified replied {reply!r}, expected a list of indexes")
    return [views[int(index) - 1] for index in reply]
