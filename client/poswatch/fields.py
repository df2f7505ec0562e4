"""Field names of the hashes the Lua scripts write, as readers read them (PURE).

A bot sees the position hash in ``Verdict.position``; ``position-watchdog status`` reads the
position and lease hashes. The names are written by ``lua/*.lua`` (publish_position,
retract_position, touch_verified, mark_firing, set_protection, begin/confirm/end) and listed in
docs/PROTOCOL.md; the health hash's are the daemon's (``watchdog.store.heartbeat``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["LeaseField", "PositionField"]


class PositionField(StrEnum):
    """``wd:v1:{A}:pos:SYMBOL:SIDE``."""

    STATE = "state"
    KNOWLEDGE = "knowledge"
    AMOUNT = "amt"
    ENTRY_PRICE = "entry"
    SOURCE = "source"
    AS_OF_MS = "as_of_ms"
    VERIFIED_MS = "verified_ms"
    VERSION = "version"
    REASON = "reason"
    SYMBOL = "symbol"
    SIDE = "side"
    UPDATED_MS = "updated_ms"
    RETRACTED_MS = "retracted_ms"
    FENCE = "fence"
    REV = "rev"
    # mark_firing.lua: a stop of the position is firing (all four gone when none is)
    FIRING_ALGO_ID = "firing_algo_id"
    FIRING_STATUS = "firing_status"
    FIRING_SINCE_MS = "firing_since_ms"
    FIRING_CHILD_ID = "firing_child_id"
    # set_protection.lua: the guard's answer (issue 17)
    PROTECTION = "protection"
    UNPROTECTED_SINCE_MS = "unprotected_since_ms"
    GUARD_ORDER = "guard_order"


class LeaseField(StrEnum):
    """``wd:v1:{A}:lease:SYMBOL:SIDE`` (begin.lua; confirm, end and revocations add theirs)."""

    TOKEN = "token"
    HOLDER = "holder"
    POSITION = "position"
    BEGIN_MS = "begin_ms"
    EXPIRES_MS = "expires_ms"
    TTL_MS = "ttl_ms"
    POS_VERSION = "pos_version"
    CONFIRM_MS = "confirm_ms"
    CONFIRM_REASON = "confirm_reason"
    RELEASED_MS = "released_ms"
    OUTCOME = "outcome"
    REVOKED = "revoked"
    REVOKED_MS = "revoked_ms"
    FENCE = "fence"  # not written by these scripts: status falls back to it when token is missing
