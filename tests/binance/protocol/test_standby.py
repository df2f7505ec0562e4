"""The standby's decisions (``binance/protocol/standby.py``), pure and table-driven."""

from __future__ import annotations

import pytest

from watchdog.binance.protocol.standby import StandbyAction, promotes, standby_action


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
