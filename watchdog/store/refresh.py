"""Re-verifications in one script call: ``Reverified`` effects and ``Publish`` effects whose
``refresh_of`` is set (PURE).

Why: every positions poll (0.9 s) re-verifies every tracked position, and with 300 positions
writing 300 complete views to move ``verified_ms`` was most of the daemon's idle CPU
(docs/BENCHMARKS.md, Idle CPU). ``touch_verified.lua`` moves ``verified_ms`` and ``version`` of
many positions at once, only where Redis still holds the re-verified version and state; the
publisher writes the complete view for every entry it reports as not written, so readers see
exactly what a complete publish would have left. The call itself is built by
:meth:`poswatch.calls.WatchdogCalls.touch_verified`, or by :class:`TouchCalls` from the call
before it.

Rules of this module:
1. :class:`TouchCalls` gives the call ``WatchdogCalls.touch_verified`` gives, equal in every
   key and argument; only the KEYS list is the very list of the call before while the run's
   positions and states are the same, in the same order (the runner then packs it once:
   runner.py). Why: at 300 positions a read, the keys (305 names) and the states stay the
   same from read to read, only the versions and ``verified_ms`` move; building and packing
   the names again was ≈ a third of the read's Redis write (docs/BENCHMARKS.md, session 9).
2. Its ARGV is a :class:`TouchArgs`: a plain list of the same values, which also carries
   ``pairs``, the entries' part of the ARGV (a version, a state each) packed as
   ``hiredis.pack_command`` packs those elements, byte for byte, or None. It is made by one
   bytes ``%`` over a template of the run's states, built when the run changes, and kept only
   while every version has the digits the template was built for (non-negative, the same
   count: the least and the greatest version tell); anything else leaves ``pairs`` None and
   the runner packs the list (runner.py rule 1). Why: packing 600 arguments an int or a str
   at a time was the largest part of the read's Redis write left after rule 1 (about a tenth
   of the core's and the store's CPU per read, docs/BENCHMARKS.md, session 10). Like the KEYS,
   the list is never changed in place once made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import cast

from poswatch.calls import Arg, ScriptCall, WatchdogCalls
from poswatch.keys import PositionKeys
from watchdog.core.model import PositionKey, PositionState, PositionView
from watchdog.errors import InvariantViolation

__all__ = ["TouchArgs", "TouchCalls", "missed_refreshes"]

_KEY = attrgetter("key")
_STATE = attrgetter("state")


class TouchArgs(list):  # type: ignore[type-arg]
    """A ``touch_verified`` ARGV list, with its entries' elements packed (module rule 2):
    ``pairs`` is the packed elements of ``self[HEAD:]``, or None."""

    __slots__ = ("pairs",)
    HEAD = 4  # closed_ttl_ms, channel, fencing token, verified_ms

    def __init__(self, values: list[Arg], pairs: bytes | None) -> None:
        super().__init__(values)
        self.pairs = pairs


def _pairs_template(states: Sequence[str], digits: int) -> bytes:
    """The packed elements of (version, state) pairs, each version a ``%d`` of ``digits``
    digits: what ``hiredis.pack_command`` makes of them (``$<bytes>\r\n<text>\r\n``)."""
    parts = []
    for state in states:
        text = state.encode().replace(b"%", b"%%")
        parts.append(b"$%d\r\n%%d\r\n$%d\r\n%s\r\n" % (digits, len(state.encode()), text))
    return b"".join(parts)


def missed_refreshes(views: Sequence[PositionView], reply: object) -> list[PositionView]:
    """The views the script did not write (its reply: 1-based indexes), to publish in full."""
    if not isinstance(reply, list):
        raise InvariantViolation(f"touch_verified replied {reply!r}, expected a list of indexes")
    return [views[int(index) - 1] for index in reply]


class TouchCalls:
    """``touch_verified`` calls for the publisher, the last run's KEYS kept (module rule 1).

    The kept list is never changed in place: a new run gets a new list."""

    def __init__(self, calls: WatchdogCalls, names_of: Callable[[PositionKey], PositionKeys]) -> None:
        self._calls = calls
        self._names_of = names_of
        self._run: list[PositionKey] = []  # the last run's positions, in order
        self._states: list[PositionState] = []  # and their states
        self._keys: list[str] = []  # its KEYS
        self._args: list[Arg] = []  # its ARGV, the versions and the head to fill in
        self._templates: dict[int, bytes] = {}  # rule 2: the run's by version digits

    def call(self, views: Sequence[PositionView], verified_ms: int, closed_ttl_ms: int,
             fence: int) -> ScriptCall:
        """One touch_verified call: each view re-verifies the version before its own, and all
        have ``verified_ms`` (core/effects.py rules 2 and 3)."""
        run = list(map(_KEY, views))
        states = list(map(_STATE, views))
        # List equality: identity first, then ==, in C (the book hands the same key objects).
        if not self._keys or run != self._run or states != self._states:
            names_of = self._names_of
            built = self._calls.touch_verified(
                # plain tuples (a TouchEntry each was a Python call per position per poll); the
                # state's text read from the member (Enum.value is a Python property)
                [(names_of(view.key), view.version - 1, view.state._value_) for view in views],
                verified_ms, closed_ttl_ms, fence)
            self._run, self._states, self._keys, self._args = run, states, built.keys, built.args
            self._templates = {}
            return ScriptCall("touch_verified", built.keys, self._with_pairs(built.args))
        args = self._args.copy()
        args[0], args[2], args[3] = closed_ttl_ms, fence, verified_ms
        args[4::2] = [view.version - 1 for view in views]
        return ScriptCall("touch_verified", self._keys, self._with_pairs(args))

    def _with_pairs(self, args: list[Arg]) -> TouchArgs:
        """``args`` as a :class:`TouchArgs`, its entries packed when the template fits (rule 2)."""
        versions = args[4::2]
        pairs = None
        if versions and set(map(type, versions)) == {int}:  # %d packs an int as hiredis does
            ints = cast("list[int]", versions)
            low, high = min(ints), max(ints)
            if low >= 0 and (digits := len(str(low))) == len(str(high)):
                template = self._templates.get(digits)
                if template is None:
                    template = self._templates[digits] = _pairs_template(
                        [str(state) for state in args[5::2]], digits)
                pairs = template % tuple(versions)
        return TouchArgs(args, pairs)
