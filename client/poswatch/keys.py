"""Key schema v1: the only place Redis key names are built (PURE, no I/O).

Shared by the watchdog, which writes these keys, and by bots, which read them and run the veto
scripts on them: one definition, so the two sides cannot drift apart.

Every key of one account shares the hash tag ``{ACCOUNT}`` so that the Lua scripts, which touch
several keys at once, stay legal in Redis Cluster (all keys of one call live in one slot).

::

    wd:v1:{ACCOUNT}:pos:SYMBOL:SIDE      hash    the published position (state, amt, version, …)
    wd:v1:{ACCOUNT}:positions            set     members "SYMBOL:SIDE" of every published position
    wd:v1:{ACCOUNT}:health               hash    watchdog heartbeat; PEXPIRE health_ttl_ms; missing = down
    wd:v1:{ACCOUNT}:epoch                string  (before HA, no longer written) heartbeat token
    wd:v1:{ACCOUNT}:leader               string  the leader's instance id; PX lead_ttl_ms (docs/HA.md)
    wd:v1:{ACCOUNT}:fence                string  the leader's fencing token (integer, checked by every write)
    wd:v1:{ACCOUNT}:instances            zset    running instances (leader, standbys) by expiry ms
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
from typing import Protocol

__all__ = ["FUTURE_TOLERANCE_MS", "SCHEMA", "SIDES", "AccountKeys", "PositionKeys", "PositionLike",
           "binance_symbol", "lease_member_positions", "member", "member_of", "split_member",
           "validate_account"]

SCHEMA = "wd:v1"

# Binance ``positionSide``: BOTH in one-way mode, LONG/SHORT in hedge mode.
SIDES = ("BOTH", "LONG", "SHORT")

# A verified_ms at most this far ahead of the watchdog's clock (as the verdicts measure it, with
# the health hash's clock_offset_ms) is the offset's measurement error and reads as age 0;
# further ahead, its age is unknown (stale). Same value as FUTURE_TOLERANCE_MS in
# lua/_prelude.lua (a test compares them); docs/PROTOCOL.md §2 explains the choice.
FUTURE_TOLERANCE_MS = 1000

# Hash-tag braces, ':' and whitespace in an account or symbol would break the schema (a '}' in
# the account would move the hash tag); Binance symbols are upper-case alphanumerics.
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SYMBOL_RE = re.compile(r"^[A-Z0-9_]{1,40}$")
# ccxt's unified symbol of a USDⓈ-M contract: BASE/QUOTE:SETTLE, dated ones with -YYMMDD.
_CCXT_RE = re.compile(r"^([A-Z0-9]+)/([A-Z0-9]+):([A-Z0-9]+)(?:-([0-9]{6}))?$")


class PositionLike(Protocol):
    """Anything naming one position: a symbol and a side (the daemon's ``PositionKey``)."""

    @property
    def symbol(self) -> str: ...

    @property
    def side(self) -> str: ...


def validate_account(account: str) -> str:
    """Return ``account`` if it is usable inside a key, else raise ``ValueError`` saying why."""
    if not _ACCOUNT_RE.fullmatch(account):
        raise ValueError(f"expected 1-64 characters of [A-Za-z0-9_-], got {account!r}")
    return account


def _validate_symbol(symbol: str) -> str:
    if not _SYMBOL_RE.fullmatch(symbol):
        raise ValueError(f"expected an upper-case Binance symbol like BTCUSDT, got {symbol!r}")
    return symbol


def _validate_side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"expected a position side BOTH, LONG or SHORT, got {side!r}")
    return side


def binance_symbol(symbol: str) -> str:
    """The Binance symbol of ``symbol``, given either as Binance spells it (``BTCUSDT``) or as
    ccxt's unified USDⓈ-M symbol (``BTC/USDT:USDT`` → ``BTCUSDT``, ``BTC/USDT:USDT-250328`` →
    ``BTCUSDT_250328``). Raises ``ValueError`` on anything else, a COIN-M or spot symbol
    included: guessing another market's contract would put a verdict on the wrong position."""
    if "/" not in symbol:
        return _validate_symbol(symbol)
    found = _CCXT_RE.fullmatch(symbol)
    if found is None:
        raise ValueError(f"expected a ccxt USDⓈ-M futures symbol like BTC/USDT:USDT, got {symbol!r}")
    base, quote, settle, expiry = found.groups()
    if settle != quote:
        raise ValueError(f"{symbol!r} is not a USDⓈ-M (linear) contract: it settles in {settle}, not {quote}")
    return _validate_symbol(f"{base}{quote}_{expiry}" if expiry else f"{base}{quote}")


def member(symbol: str, side: str) -> str:
    """The ``SYMBOL:SIDE`` string used in sets, hashes and events."""
    return f"{_validate_symbol(symbol)}:{_validate_side(str(side))}"


def member_of(key: PositionLike) -> str:
    """:func:`member` of a position key."""
    return member(key.symbol, key.side)


def split_member(text: str) -> tuple[str, str]:
    """Inverse of :func:`member`: ``(symbol, side)``; raises ``ValueError`` on a malformed member."""
    symbol, _, side = text.partition(":")
    return _validate_symbol(symbol), _validate_side(side)


def lease_member_positions(text: str) -> frozenset[tuple[str, str]]:
    """The ``(symbol, side)`` positions a lease member names, read leniently: bots write it
    themselves (``begin``'s member argument, docs/PROTOCOL.md §4). A malformed side means every
    side of the symbol, a lower-case symbol its upper case (when unsure, the reaper waits); no
    symbol at all: none."""
    try:
        return frozenset({split_member(text)})
    except ValueError:
        pass
    symbol, _, side = text.partition(":")
    try:
        symbol = _validate_symbol(symbol.strip().upper())
    except ValueError:
        return frozenset()
    side = side.strip().upper()
    return frozenset((symbol, s) for s in ((side,) if side in SIDES else SIDES))


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
    def leader(self) -> str:
        return f"{self.prefix}:leader"

    @property
    def fence(self) -> str:
        return f"{self.prefix}:fence"

    @property
    def instances(self) -> str:
        return f"{self.prefix}:instances"

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

    def position(self, key: PositionLike) -> str:
        return f"{self.prefix}:pos:{member_of(key)}"

    def lease(self, key: PositionLike) -> str:
        return f"{self.prefix}:lease:{member_of(key)}"

    def reaping(self, key: PositionLike) -> str:
        return f"{self.prefix}:reaping:{member_of(key)}"

    def of(self, key: PositionLike) -> PositionKeys:
        return self.of_member(member_of(key))

    def of_member(self, text: str) -> PositionKeys:
        """The keys of the position ``SYMBOL:SIDE`` (validated with :func:`split_member`)."""
        split_member(text)
        p = self.prefix
        return PositionKeys(f"{p}:pos:{text}", f"{p}:lease:{text}", f"{p}:reaping:{text}", text)
