"""Re-verifications in one script call: ``Publish`` effects whose ``refresh_of`` is set (PURE).

Why: every positions poll (0.9 s) re-verifies every tracked position, and with 300 positions
writing 300 complete views to move ``verified_ms`` was most of the daemon's idle CPU
(docs/BENCHMARKS.md, Idle CPU). ``touch_verified.lua`` moves ``verified_ms`` and ``version`` of
many positions at once, only where Redis still holds the re-verified version and state; the
publisher writes the complete view for every entry it reports as not written, so readers see
exactly what a complete publish would have left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from watchdog.core.model import PositionKey, PositionView
from watchdog.errors import InvariantViolation
from watchdog.store.keys import AccountKeys

__all__ = ["Call", "TouchCalls", "missed_refreshes"]

Call = tuple[str, list[object], list[object]]  # script name, KEYS, ARGV


Names = Callable[[PositionKey], tuple[str, str, str]]  # (position key, lease key, member)


class TouchCalls:
    """Builds ``touch_verified`` calls for one account. ``names`` is the publisher's cache of
    each position's key names (formatting and validating them for every position on every poll
    was a third of the cost)."""

    def __init__(self, keys: AccountKeys, closed_ttl_ms: int, names: Names) -> None:
        self._keys = keys
        self._closed_ttl_ms = closed_ttl_ms
        self._names = names

    def call(self, refreshes: Sequence[tuple[PositionView, int]], fence: int) -> Call:
        """One call for ``(view, refresh_of)`` pairs, applied in this order, under ``fence``."""
        k = self._keys
        script_keys: list[object] = [k.positions, k.leases, k.events, k.health, k.fence]
        args: list[object] = [self._closed_ttl_ms, k.channel, fence]
        names = self._names
        for view, refresh_of in refreshes:
            position, lease, member = names(view.key)
            script_keys += (position, lease)
            args += (member, refresh_of, view.version, view.verified_ms, view.state.value)
        return "touch_verified", script_keys, args


def missed_refreshes(refreshes: Sequence[tuple[PositionView, int]],
                     reply: object) -> list[PositionView]:
    """The views the script did not write (its reply: 1-based indexes), to publish in full."""
    if not isinstance(reply, list):
        raise InvariantViolation(f"touch_verified replied {reply!r}, expected a list of indexes")
    return [refreshes[int(index) - 1][0] for index in reply]
