"""Make-before-break at suspicion, pure: when the user stream opens a standby connection, how
long it keeps it, and which ending promotes it (the shell: ``binance/standby.py``).

Why: in the first blind incident after a start, the flat run of a closed position restarted at
the blind reconnect's post-connect read, ``blind_after_ms`` after the first REST read that
showed the unreported close (core/book.py rule 9). A connection opened at that first read and
listening while the verdict is pending lets the gap break the run as of the moment it started to
listen instead (docs/RELIABILITY.md, "The first blind incident").

Rules of this module (times are the caller's monotonic seconds):
1. Open: on the core's ``PrepareStandby`` while a connection serves, no rotation successor is
   being made (one extra connection at a time: the 24 h rotation's successor and the standby
   never coexist; a rotation that becomes due drops the standby), a blind verdict would
   replace the connection before the standby's hold ends (``promotable_in_time``: stream rule
   6 defers a blind reconnect to once a minute; one due within ``hold_s`` less
   ``PROMOTE_MARGIN_S`` can still promote it — the blind-reap bench met such a deferral in one
   incident of ten, 7.15 s instead of 4.6 s —, a longer deferral could not before it is
   dropped), and the weight budget has room now for
   its listen key and its positions read (a read refused for weight is a failed read, which
   makes the keys it covers unknown: worse than no standby). A standby already opening or
   listening is reused: its hold is extended.
2. Hold: a standby is kept ``hold_s`` after the last ``PrepareStandby`` (the verdict comes with
   the first read ``blind_after_ms`` after the change: a poll and a budget wait fit), then
   dropped: closed, with the frames it buffered. A suspicion extends it only while it is
   younger than ``STANDBY_MAX_AGE_HOLDS`` holds (a stream late again and again must not keep
   one buffering for ever); a later suspicion then opens a new one.
3. Listening: once its handshake is done (the point from which today's reconnect is trusted
   too) the shell tells the core ``StandbyListening`` and reads positions right after it (a
   priority read, requested after the mark: the first flat read a promotion's run may start
   at; the poller's spacing of requested reads would add up to ``fast_poll_interval_s``),
   unless the budget has no room for it any more (then the next read after the mark serves).
   Only then may it be promoted.
4. Promote: only a listening standby of the connection that just ended, and only when that
   connection ended because REST found it blind (a ``BLIND`` ending: reconnect at once). Any
   other ending drops it (a new connection is fresh anyway).
5. A standby that fails to open, or closes before it is promoted, is dropped: nothing changes,
   the verdict's reconnect opens a fresh connection as before.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PROMOTE_MARGIN_S", "STANDBY_HOLD_S", "STANDBY_MAX_AGE_HOLDS", "StandbyAction",
           "promotable_in_time", "promotes", "standby_action"]

STANDBY_HOLD_S = 4.0  # rule 2: blind_after_ms (1 s) + a positions poll + a budget wait
STANDBY_MAX_AGE_HOLDS = 4  # rule 2: extended for at most this many holds
PROMOTE_MARGIN_S = 0.5  # rule 1: a deferred blind reconnect must come this long before the drop


class StandbyAction(StrEnum):
    OPEN = "open"            # open a standby now
    EXTEND = "extend"        # one is opening or listening: keep it longer
    NO_STREAM = "no_stream"  # no connection serves: the next one is fresh anyway
    ROTATING = "rotating"    # a rotation's successor is being made: one at a time
    DEFERRED = "deferred"    # a blind verdict would not replace the connection now
    NO_ROOM = "no_room"      # the weight budget has no room for its listen key and read now
    OFF = "off"              # standbys are off (hold 0)


def promotable_in_time(*, blind_wait_s: float, hold_s: float) -> bool:
    """Rule 1: a blind verdict now would replace the connection (at once, or after the
    blind-reconnect interval's ``blind_wait_s``) while a standby opened now is still held."""
    return blind_wait_s <= max(0.0, hold_s - PROMOTE_MARGIN_S)


def standby_action(*, hold_s: float, serving: bool, rotating: bool, blind_now: bool,
                   exists: bool, room: bool = True) -> StandbyAction:
    """Rule 1 for one ``PrepareStandby``."""
    if hold_s <= 0:
        return StandbyAction.OFF
    if not serving:
        return StandbyAction.NO_STREAM
    if exists:
        return StandbyAction.EXTEND
    if rotating:
        return StandbyAction.ROTATING
    if not blind_now:
        return StandbyAction.DEFERRED
    return StandbyAction.OPEN if room else StandbyAction.NO_ROOM


def promotes(*, listening: bool, for_ended: bool, blind_ending: bool) -> bool:
    """Rule 4: the standby replaces the connection that just ended."""
    return listening and for_ended and blind_ending
