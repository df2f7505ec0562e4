"""One typed builder per Lua script: the KEYS and ARGV of each call, built in one place (PURE).

Like redis-py's ``Script``, a :class:`ScriptCall` names its script and carries its keys and
arguments; unlike it, the arguments are typed and ordered by a function written once, so the
bot's client and the watchdog daemon (which imports this module) cannot send a script a
different argument list. Each builder's KEYS/ARGV order is the one its ``lua/<name>.lua``
header documents: the bot's four scripts by :class:`VetoCalls` (which also refuses what
begin.lua would, as a ``ValueError``), the watchdog's by :class:`WatchdogCalls`. The replies are
parsed in :mod:`poswatch.protocol`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from poswatch.keys import AccountKeys, PositionKeys, binance_symbol
from poswatch.protocol import MAX_LEASE_TTL_MS
from poswatch.scripts import script_sha

__all__ = ["Arg", "ScriptCall", "TouchEntry", "VetoCalls", "WatchdogCalls", "sha_of"]

Arg = str | int | float  # one ARGV value as redis-py encodes it

_SHAS: dict[str, str] = {}


def sha_of(script: str) -> str:
    """:func:`poswatch.scripts.script_sha`, computed once per script (calls are hot)."""
    sha = _SHAS.get(script)
    if sha is None:
        sha = _SHAS[script] = script_sha(script)
    return sha


class ScriptCall(NamedTuple):
    """One ``EVALSHA``: the script's name (``lua/<script>.lua``), its KEYS and its ARGV."""

    script: str
    keys: list[str]
    args: list[Arg]

    def command(self) -> tuple[Arg, ...]:
        """The ``EVALSHA sha numkeys keys… args…`` command, ready to pack."""
        return ("EVALSHA", sha_of(self.script), len(self.keys), *self.keys, *self.args)


class TouchEntry(NamedTuple):
    """One re-verification of ``touch_verified``: move ``verified_ms`` of a position, and its
    ``version`` from ``refresh_of`` to ``refresh_of + 1``, only where Redis still holds version
    ``refresh_of`` in ``state``."""

    names: PositionKeys
    refresh_of: int
    state: str


def _pairs(fields: Iterable[tuple[str, str]]) -> list[Arg]:
    return [item for pair in fields for item in pair]


class VetoCalls:
    """The four bot scripts for one account (their replies: :mod:`poswatch.protocol`).

    Symbols are Binance's (``BTCUSDT``) or ccxt's (``BTC/USDT:USDT``); sides BOTH, LONG, SHORT.
    Raises ``ValueError`` on a symbol, side or account that cannot be part of a key.
    """

    def __init__(self, account: str, max_age_ms: int | None = None) -> None:
        self.keys = AccountKeys(account)
        self.max_age = "" if max_age_ms is None else str(max_age_ms)
        self._cache: dict[tuple[str, str], PositionKeys] = {}

    def position(self, symbol: str, side: str) -> PositionKeys:
        """Validated key names of one position, cached: bots ask about a handful of symbols."""
        cached = self._cache.get((symbol, side))
        if cached is None:
            cached = self.keys.of_member(f"{binance_symbol(symbol)}:{side}")
            if len(self._cache) < 4096:
                self._cache[(symbol, side)] = cached
        return cached

    def check(self, symbol: str, side: str) -> ScriptCall:
        p = self.position(symbol, side)
        return ScriptCall("check", [self.keys.health, p.position, p.reaping, p.lease], [self.max_age])

    def begin(self, symbol: str, side: str, holder: str, ttl_ms: int) -> ScriptCall:
        _check_begin_args(holder, ttl_ms)
        k, p = self.keys, self.position(symbol, side)
        return ScriptCall("begin", [p.lease, k.lease_seq, k.leases, k.events],
                          [p.member, holder, ttl_ms, self.max_age, k.channel, k.health, p.position,
                           p.reaping])

    def confirm(self, symbol: str, side: str, lease: int) -> ScriptCall:
        k, p = self.keys, self.position(symbol, side)
        return ScriptCall("confirm", [p.lease, k.events],
                          [p.member, lease, self.max_age, k.channel, k.health, p.position])

    def end(self, symbol: str, side: str, lease: int, outcome: str, mode: str = "") -> ScriptCall:
        """``mode`` "replace": a zero-gap replacement (the window is recorded as 0)."""
        if mode not in ("", "replace"):
            raise ValueError(f"mode must be '' or 'replace', got {mode!r}")
        k, p = self.keys, self.position(symbol, side)
        args: list[Arg] = [p.member, lease, outcome, k.channel, k.health]
        if mode:
            args.append(mode)
        return ScriptCall("end", [p.lease, k.leases, k.windows, k.events], args)


def _check_begin_args(holder: str, ttl_ms: int) -> None:
    """What begin.lua refuses, refused here with a ValueError (a bug in the caller, not an outage
    to be answered with watchdog_down)."""
    if not (isinstance(ttl_ms, int) and not isinstance(ttl_ms, bool)
            and 1 <= ttl_ms <= MAX_LEASE_TTL_MS):
        raise ValueError(f"ttl_ms must be an integer from 1 to {MAX_LEASE_TTL_MS}, got {ttl_ms!r}")
    if not (isinstance(holder, str) and 1 <= len(holder) <= 128 and holder.isascii()
            and holder.isprintable()):
        raise ValueError(f"holder must be 1-128 printable ASCII characters, got {holder!r}")


class WatchdogCalls:
    """The watchdog's scripts for one account. ``fence`` is the caller's fencing token (every
    write carries it; Lua refuses it when it is not the account's any more, docs/HA.md)."""

    def __init__(self, keys: AccountKeys) -> None:
        self.keys = keys

    # ------------------------------------------------------------ leadership

    def acquire_lead(self, instance: str, ttl_ms: int) -> ScriptCall:
        """Registration lives three TTLs in the instances zset."""
        k = self.keys
        return ScriptCall("acquire_lead", [k.leader, k.fence, k.instances],
                          [instance, ttl_ms, 3 * ttl_ms])

    def renew_lead(self, instance: str, fence: int, ttl_ms: int) -> ScriptCall:
        k = self.keys
        return ScriptCall("renew_lead", [k.leader, k.fence, k.instances],
                          [instance, fence, ttl_ms, 3 * ttl_ms])

    def register_instance(self, instance: str, ttl_ms: int) -> ScriptCall:
        """A standby that does not try to lead: registration only (three TTLs, as above)."""
        k = self.keys
        return ScriptCall("register_instance", [k.leader, k.instances], [instance, 3 * ttl_ms])

    def resign_lead(self, instance: str) -> ScriptCall:
        return ScriptCall("resign_lead", [self.keys.leader, self.keys.instances], [instance])

    def mark_stopped(self, instance: str, fence: int) -> ScriptCall:
        k = self.keys
        return ScriptCall("mark_stopped", [k.health, k.events, k.fence, k.leader, k.instances],
                          [instance, k.channel, fence])

    # ------------------------------------------------------------ health and events

    def heartbeat(self, ttl_ms: int, fence: int, wall_ms: int,
                  fields: Iterable[tuple[str, str]]) -> ScriptCall:
        return ScriptCall("heartbeat", [self.keys.health, self.keys.fence],
                          [ttl_ms, fence, wall_ms, *_pairs(fields)])

    def emit_event(self, kind: str, fields: Iterable[tuple[str, str]], fence: int) -> ScriptCall:
        k = self.keys
        return ScriptCall("emit_event", [k.events, k.health, k.fence],
                          [k.channel, fence, "kind", kind, *_pairs(fields)])

    # ------------------------------------------------------------ positions

    def publish_position(self, p: PositionKeys, *, version: int, state: str, knowledge: str,
                         amount: str, entry_price: str, source: str, as_of_ms: int,
                         verified_ms: int, reason: str, closed_ttl_ms: int, clear_firing: bool,
                         fence: int) -> ScriptCall:
        """A complete view, written unless Redis holds an equal or newer ``version``."""
        k = self.keys
        symbol, _, side = p.member.partition(":")
        return ScriptCall(
            "publish_position", [p.position, k.positions, p.lease, k.leases, k.events, k.health, k.fence],
            [p.member, version, state, knowledge, amount, entry_price, source, as_of_ms, verified_ms,
             reason, closed_ttl_ms, k.channel, symbol, side, "1" if clear_firing else "0", fence])

    def retract_position(self, p: PositionKeys, reason: str, version: int, fence: int) -> ScriptCall:
        symbol, _, side = p.member.partition(":")
        return ScriptCall("retract_position", [p.position, self.keys.positions, self.keys.fence],
                          [p.member, reason, version, symbol, side, fence])

    def touch_verified(self, entries: Iterable[tuple[PositionKeys, int, str]], verified_ms: int,
                       closed_ttl_ms: int, fence: int) -> ScriptCall:
        """Many re-verifications (``TouchEntry`` or plain tuples in its order), all to
        ``verified_ms``, in one call, applied in this order (replies: the 1-based indexes of the
        entries it did not write). A closed entry also names its lease (revoked with the
        closure, as ``publish_position`` does)."""
        k = self.keys
        keys: list[str] = [k.positions, k.leases, k.events, k.health, k.fence]
        args: list[Arg] = [closed_ttl_ms, k.channel, fence, verified_ms]
        entries = entries if isinstance(entries, list) else list(entries)
        args += [value for _, refresh_of, state in entries for value in (refresh_of, state)]
        if "closed" in args[5::2]:  # the states (comprehensions: 300 open positions, the hot case)
            keys += [key for names, _, state in entries
                     for key in ((names.position, names.lease) if state == "closed"
                                 else (names.position,))]
        else:
            keys += [names.position for names, _, _ in entries]
        return ScriptCall("touch_verified", keys, args)

    def mark_firing(self, p: PositionKeys, fence: int, *, algo_id: int | str = "", status: str = "",
                    since_ms: int | str = "", child_id: int | str = "") -> ScriptCall:
        """Show a firing stop on the position hash; all empty: clear it."""
        return ScriptCall("mark_firing", [p.position, self.keys.fence],
                          [algo_id, status, since_ms, child_id, fence])

    def set_protection(self, p: PositionKeys, protection: str, unprotected_since_ms: int | None,
                       guard_order: str, fence: int) -> ScriptCall:
        since = "" if unprotected_since_ms is None else str(unprotected_since_ms)
        return ScriptCall("set_protection", [p.position, self.keys.fence],
                          [protection, since, guard_order, fence])

    # ------------------------------------------------------------ leases and reaping

    def revoke_lease(self, p: PositionKeys, reason: str, fence: int) -> ScriptCall:
        k = self.keys
        return ScriptCall("revoke_lease", [p.lease, k.leases, k.events, k.health, k.fence],
                          [p.member, reason, k.channel, fence])

    def leased(self) -> ScriptCall:
        return ScriptCall("leased", [self.keys.leases], [])

    def lease_ends(self) -> ScriptCall:
        """Redis' clock and the leases zset in one atomic read."""
        return ScriptCall("lease_ends", [self.keys.leases], [])

    def mark_reaping(self, p: PositionKeys, fence: int, reason: str, ttl_ms: int) -> ScriptCall:
        """``ttl_ms`` 0 and ``reason`` "": clear the mark."""
        return ScriptCall("mark_reaping", [p.reaping, self.keys.fence], [fence, reason, ttl_ms])
