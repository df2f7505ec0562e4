"""The standby's decisions (``binance/protocol/standby.py``), pure and table-driven."""

from __future__ import annotations

import pytest

from watchdog.binance.protocol.standby import (
    StandbyAction,
    promotable_in_time,
    promotes,
    standby_action,
)


@pytest.mark.parametrize(("hold_s", "serving", "rotating", "blind_now", "exists", "action"), [
    (4.0, True, False, True, False, StandbyAction.OPEN),
    (4.0, True, False, True, None, StandbyAction.NO_ROOM),     # no weight for key and read now
    (4.0, True, False, True, True, StandbyAction.EXTEND),      # rule 1: reused
    (4.0, True, True, True, True, StandbyAction.EXTEND),
    (4.0, True, True, True, False, StandbyAction.ROTATING),    # one extra connection at a time
    (4.0, True, False, False, False, StandbyAction.DEFERRED),  # the verdict would not reconnect
    (4.0, False, False, True, False, StandbyAction.NO_STREAM),
    (0.0, True, False, True, False, StandbyAction.OFF),
])
def test_when_a_standby_is_opened(hold_s: float, serving: bool, rotating: bool, blind_now: bool,
                                  exists: bool | None, action: StandbyAction) -> None:
    """``exists`` None: no standby, and no room in the weight budget."""
    room = exists is not None
    assert standby_action(hold_s=hold_s, serving=serving, rotating=rotating,
                          blind_now=blind_now, exists=bool(exists), room=room) is action


@pytest.mark.parametrize(("listening", "for_ended", "blind_ending", "promoted"), [
    (True, True, True, True),
    (False, True, True, False),   # not listening yet: the core has no mark for it
    (True, False, True, False),   # it stood by another connection
    (True, True, False, False),   # ended for another reason: a fresh connection is fresh
])
def test_only_a_listening_standby_of_the_blind_connection_is_promoted(
        listening: bool, for_ended: bool, blind_ending: bool, promoted: bool) -> None:
    assert promotes(listening=listening, for_ended=for_ended,
                    blind_ending=blind_ending) is promoted


@pytest.mark.parametrize(("blind_wait_s", "hold_s", "in_time"), [
    (0.0, 4.0, True),    # a verdict now replaces the connection at once
    (2.5, 4.0, True),    # the blind-reap bench's trial 8: the once-a-minute reconnect 2.5 s away
    (3.5, 4.0, True),    # due half a second before the drop
    (3.6, 4.0, False),   # too close to the drop to be promoted for sure
    (55.0, 4.0, False),  # a long deferral: the standby would be dropped first
    (0.0, 0.0, True),
])
def test_a_deferred_blind_reconnect_due_within_the_hold_can_promote(
        blind_wait_s: float, hold_s: float, in_time: bool) -> None:
    assert promotable_in_time(blind_wait_s=blind_wait_s, hold_s=hold_s) is in_time
