"""Key schema v1: the only place Redis key names are built (PURE, no I/O).

Every key of one account shares the hash tag ``{ACCOUNT}`` so that the Lua scripts, which touch
several keys at once, stay legal in Redis Cluster (all keys of one call live in one slot).

::

    wd:v1:{ACCOUNT}:pos:SYMBOL:SIDE      hash    the published position (state, amt, version, …)
    wd:v1:{ACCOUNT}:positions            set     members "SYMBOL:SIDE" of every published position
    wd:v1:{ACCOUNT}:health               hash    watchdog heartbeat; PEXPIRE health_ttl_ms; missing = down
    wd:v1:{ACCOUNT}:epoch                string  heartbeat token: missing/foreign = Redis lost our data
    wd:v1:{ACCOUNT}:events               stream  bounded (MAXLEN ~ events_maxlen) event log
    wd:v1:{ACCOUNT}:events               channel pub/sub twin of the stream (same name, other namespace)
    wd:v1:{ACCOUNT}:lease:SYMBOL:SIDE    hash    the veto lease on one position (fencing token, holder, …)
    wd:v1:{ACCOUNT}:lease_seq            string  INCR counter issuing fencing tokens
    wd:v1:{ACCOUNT}:leases               zset    "SYMBOL:SIDE" scored by lease expiry (server ms)
    wd:v1:{ACCOUNT}:reaping:SYMBOL:SIDE  string  orphan removal in progress there (PX ttl)
    wd:v1:{ACCOUNT}:windows              hash    the bots' unprotected windows per "SYMBOL:SIDE"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from watchdog.core.model import PositionKey, PositionSide, Symbol

__all__ = ["SCHEMA", "AccountKeys", "PositionKeys", "member_of", "parse_lease_member", "parse_member",
           "validate_account"]

SCHEMA = "wd:v1"

# Hash-tag braces, ':' and whitespace in an account or symbol would break the schema (a '}' in
# the account would move the hash tag); Binance symbols are upper-case alphanumerics.
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SYMBOL_RE = re.compile(r"^[A-Z0-9_]{1,40}$")


def validate_account(account: str) -> str:
    """Return ``account`` if it is usable inside a key, else raise ``ValueError`` saying why."""
    if not _ACCOUNT_RE.fullmatch(account):
        raise ValueError(f"expected 1-64 characters of [A-Za-z0-9_-], got {account!r}")
    return account


def _validate_symbol(symbol: str) -> str:
    if not _SYMBOL_RE.fullmatch(symbol):
        raise ValueError(f"expected an upper-case Binance symbol like BTCUSDT, got {symbol!r}")
    return symbol


def member_of(key: PositionKey) -> str:
    """The ``SYMBOL:SIDE`` string used in sets, hashes and events."""
    return f"{_validate_symbol(key.symbol)}:{key.side.value}"


def parse_member(member: str) -> PositionKey:
    """Inverse of :func:`member_of`; raises ``ValueError`` on a malformed member."""
    symbol, _, side = member.partition(":")
    return PositionKey(Symbol(_validate_symbol(symbol)), PositionSide(side))


def parse_lease_member(member: str) -> frozenset[PositionKey]:
    """The positions a lease member names, read leniently: bots write it themselves (``begin``'s
    member argument, docs/PROTOCOL.md §4). A malformed side means every side of the symbol, a
    lower-case symbol its upper case (when unsure, the reaper waits); no symbol at all: none."""
    try:
        return frozenset({parse_member(member)})
    except ValueError:
        pass
    symbol, _, side = member.partition(":")
    try:
        symbol = _validate_symbol(symbol.strip().upper())
    except ValueError:
        return frozenset()
    sides = [s for s in PositionSide if s.value == side.strip().upper()] or list(PositionSide)
    return frozenset(PositionKey(Symbol(symbol), s) for s in sides)


@dataclass(frozen=True, slots=True)
class PositionKeys:
    """The per-position keys, in the KEYS order the veto scripts expect (see lua/*.lua)."""

    position: str
    lease: str
    reaping: str
    member: str


@dataclass(frozen=True, slots=True)
class AccountKeys:
    """All key names of one account."""

    account: str

    def __post_init__(self) -> None:
        validate_account(self.account)

    @property
    def prefix(self) -> str:
        return f"{SCHEMA}:{{{self.account}}}"

    @property
    def health(self) -> str:
        return f"{self.prefix}:health"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}:epoch"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def channel(self) -> str:
        """Pub/sub channel name (channels and keys are separate namespaces in Redis)."""
        return f"{self.prefix}:events"

    @property
    def positions(self) -> str:
        return f"{self.prefix}:positions"

    @property
    def lease_seq(self) -> str:
        return f"{self.prefix}:lease_seq"

    @property
    def leases(self) -> str:
        return f"{self.prefix}:leases"

    @property
    def windows(self) -> str:
        return f"{self.prefix}:windows"

    def position(self, key: PositionKey) -> str:
        return f"{self.prefix}:pos:{member_of(key)}"

    def lease(self, key: PositionKey) -> str:
        return f"{self.prefix}:lease:{member_of(key)}"

    def reaping(self, key: PositionKey) -> str:
        return f"{self.prefix}:reaping:{member_of(key)}"

    def of(self, key: PositionKey) -> PositionKeys:
        return PositionKeys(self.position(key), self.lease(key), self.reaping(key), member_of(key))
