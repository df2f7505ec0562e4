"""Re-verifications in one script call: ``Publish`` effects whose ``refresh_of`` is set (PURE).

Why: every positions poll (0.9 s) re-verifies every tracked position, and with 300 positions
writing 300 complete views to move ``verified_ms`` was most of the daemon's idle CPU
(docs/BENCHMARKS.md, Idle CPU). ``touch_verified.lua`` moves ``verified_ms`` and ``version`` of
many positions at once, only where Redis still holds the re-verified version and state; the
publisher writes the complete view for every entry it reports as not written, so readers see
exactly what a complete publish would have left.
"""

from __future__ import annotations

from collections.abc import Sequence

from watchdog.core.model import PositionView
from watchdog.errors import InvariantViolation
from watchdog.store.keys import AccountKeys, member_of

__all__ = ["Call", "missed_refreshes", "touch_call"]

Call = tuple[str, list[object], list[object]]  # script name, KEYS, ARGV


def touch_call(keys: AccountKeys, refreshes: Sequence[tuple[PositionView, int]],
               closed_ttl_ms: int) -> Call:
    """One ``touch_verified`` call for ``(view, refresh_of)`` pairs, applied in this order."""
    script_keys: list[object] = [keys.positions, keys.leases, keys.events, keys.health]
    args: list[object] = [closed_ttl_ms, keys.channel]
    for view, refresh_of in refreshes:
        script_keys += (keys.position(view.key), keys.lease(view.key))
        args += (member_of(view.key), refresh_of, view.version, view.verified_ms, view.state.value)
    return "touch_verified", script_keys, args


def missed_refreshes(refreshes: Sequence[tuple[PositionView, int]],
                     reply: object) -> list[PositionView]:
    """The views the script did not write (its reply: 1-based indexes), to publish in full."""
    if not isinstance(reply, list):
        raise InvariantViolation(f"touch_verified replied {reply!r}, expected a list of indexes")
    return [refreshes[int(index) - 1][0] for index in reply]
