"""The key schema as the daemon reads it: members as core ``PositionKey`` values.

The schema itself (key names, validation, the tolerance the Lua shares) is defined once in
:mod:`poswatch.keys`, the bot client's distribution, and imported from there.
"""

from __future__ import annotations

from poswatch.keys import (
    FUTURE_TOLERANCE_MS,
    SCHEMA,
    AccountKeys,
    PositionKeys,
    lease_member_positions,
    member_of,
    split_member,
    validate_account,
)
from watchdog.core.model import PositionKey, PositionSide, Symbol

__all__ = ["FUTURE_TOLERANCE_MS", "SCHEMA", "AccountKeys", "PositionKeys", "member_of",
           "parse_lease_member", "parse_member", "validate_account"]


def parse_member(member: str) -> PositionKey:
    """Inverse of :func:`member_of`; raises ``ValueError`` on a malformed member."""
    symbol, side = split_member(member)
    return PositionKey(Symbol(symbol), PositionSide(side))


def parse_lease_member(member: str) -> frozenset[PositionKey]:
    """The positions a lease member names, leniently (:func:`poswatch.keys.lease_member_positions`)."""
    return frozenset(PositionKey(Symbol(symbol), PositionSide(side))
                     for symbol, side in lease_member_positions(member))
