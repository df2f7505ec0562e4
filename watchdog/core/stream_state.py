"""The user stream as the book sees it: ``down``, ``gap`` (connected, not yet reconciled) or ``live``.

Why apart from the book: whether a stream fact may confirm a key, whether a REST read is
trusted, and whether blindness is watched all hang on this one small machine; as a table it can
be read, rendered (docs/CORE.md) and tested on its own.

Rules of this module:
1. Three states; ``TRANSITIONS`` is the whole machine (one table). It starts ``down``: nothing
   is connected until the stream says so.
2. ``LOST`` (StreamLost, ListenKeyExpired) → ``down``; ``CONNECTED`` (StreamConnected) →
   ``gap``. Both are a *gap*: the epoch grows by one and what REST covered is forgotten.
3. ``RECONCILED`` (a trusted all-symbols snapshot, requested after the last gap, applied) turns
   a ``gap`` ``live``; while ``down`` it changes no state (there is no stream to trust yet), but
   the read still covers every key until the next gap.
4. Coverage: a key is *covered* once a trusted read of all symbols, or scoped to its symbol, was
   applied since the last gap (book rule 3). Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

from watchdog.core.model import Symbol

__all__ = ["TRANSITIONS", "StreamSignal", "StreamState", "StreamTrack", "next_state"]

StreamState = Literal["live", "gap", "down"]


class StreamSignal(StrEnum):
    """The inputs of the machine."""

    LOST = "lost"               # StreamLost, ListenKeyExpired
    CONNECTED = "connected"     # StreamConnected
    RECONCILED = "reconciled"   # a trusted post-gap all-symbols snapshot was applied


TRANSITIONS: dict[StreamState, dict[StreamSignal, StreamState]] = {
    "down": {StreamSignal.LOST: "down", StreamSignal.CONNECTED: "gap",
             StreamSignal.RECONCILED: "down"},
    "gap": {StreamSignal.LOST: "down", StreamSignal.CONNECTED: "gap",
            StreamSignal.RECONCILED: "live"},
    "live": {StreamSignal.LOST: "down", StreamSignal.CONNECTED: "gap",
             StreamSignal.RECONCILED: "live"},
}


def next_state(state: StreamState, signal: StreamSignal) -> StreamState:
    """One step of the machine (rule 1)."""
    return TRANSITIONS[state][signal]


class StreamTrack:
    """The stream's state, its gap epoch and what REST covered since the last gap."""

    def __init__(self) -> None:
        self.state: StreamState = "down"
        self.epoch = 0  # +1 on every gap: a request remembers it, to be trusted only in it
        self._all_covered = False
        self._symbols_covered: set[Symbol] = set()

    @property
    def connected(self) -> bool:
        return self.state != "down"

    def gap(self, *, connected: bool) -> bool:
        """A gap (rule 2); returns whether the stream was connected before it."""
        was_connected = self.connected
        self.state = next_state(self.state, StreamSignal.CONNECTED if connected
                                else StreamSignal.LOST)
        self.epoch += 1
        self._all_covered = False
        self._symbols_covered.clear()
        return was_connected

    def reconciled(self, symbols: Iterable[Symbol] | None) -> bool:
        """A trusted snapshot of ``symbols`` (None: all) was applied; True when the stream
        became ``live`` by it (rule 3)."""
        if symbols is not None:
            self._symbols_covered.update(symbols)
            return False
        self._all_covered = True
        before = self.state
        self.state = next_state(before, StreamSignal.RECONCILED)
        return before != "live" and self.state == "live"

    def covered(self, symbol: Symbol) -> bool:
        """A trusted REST read covered ``symbol`` since the last gap (rule 4)."""
        return self._all_covered or symbol in self._symbols_covered
