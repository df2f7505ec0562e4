"""Stream blindness (book rule 7): REST showed a change the live user stream never reported.

Why a module: the BASUSDT incident was a stream that stayed connected and said nothing. The
positions' side lives here; the orders' side (``order_blindness.py``) and the canary share its
watch, its tolerance and its verdict, so the rule is written once. What happens after a verdict
(the stream unproven until REST corroborates it) is ``proof.py``'s machine.

Rules of this module:
1. The watch: only a change provably made while this connection was up counts. It starts at the
   ``requested_time_ms`` of the first positions request after the stream connected (the
   stream's resync asks at once); a gap (StreamLost, StreamConnected, ListenKeyExpired)
   forgets the watch and everything pending. A change whose earliest possible time is before
   the watch start may predate the connection: the stream never had a chance to report it.
2. The tolerance: a change is pending from the exchange time it happened at or before
   (``since_ms``); it is raised once a trusted REST request is ``blind_after_ms`` past that (a
   healthy stream may be a few ms behind REST), and only once.
3. The verdict: ``stream_blind`` leaves as a RaiseAlert (naming the key when there is one), a
   Notify for bots and a ``Reconnect`` (the shell replaces the connection: the core no longer
   trusts it); the canary's ``stream_blind`` leaves the same way.
4. Positions: the oldest unreported change per key is kept. A stream fact for the key newer
   than the fact held before the change, or a fill on its symbol after it, reports it (late,
   not blind). Fills are remembered per symbol until the next gap: the book does not note a
   change that a fill since the held fact explains.
5. Pure: no clock, no I/O.
6. Suspicion: the first change held back while nothing else is pending starts an *episode*;
   ``note`` says so, and the book asks the shell for a standby connection (``PrepareStandby``,
   make-before-break at suspicion: book rule 9). The episode ends when nothing is pending any
   more (reported late, judged blind, or forgotten by a gap).
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.core.effects import Effect, Notify, RaiseAlert, Reconnect
from watchdog.core.model import PositionKey, Symbol

__all__ = ["BLIND_CODE", "ConnectionWatch", "PositionBlindness", "blind_verdict", "overdue"]

BLIND_CODE = "stream_blind"


def blind_verdict(message: str, key: PositionKey | None = None) -> list[Effect]:
    """The effects of one ``stream_blind`` verdict (rule 3)."""
    text = message if key is None else f"{key}: {message}"
    return [RaiseAlert(BLIND_CODE, text, key), Notify(BLIND_CODE, key, (("message", message),)),
            Reconnect(text)]


def overdue(since_ms: int, requested_ms: int, blind_after_ms: int) -> str | None:
    """The age note of a change pending since ``since_ms`` once a request dated
    ``requested_ms`` is past the tolerance (rule 2), else None."""
    age_ms = requested_ms - since_ms
    return None if age_ms < blind_after_ms else f"(unreported for at least {age_ms} ms)"


class ConnectionWatch:
    """Since when this connection is watched (rule 1)."""

    def __init__(self) -> None:
        self.connected = False
        self.from_ms: int | None = None

    def gap(self, *, connected: bool) -> None:
        self.connected = connected
        self.from_ms = None

    def requested(self, requested_time_ms: int) -> None:
        """A positions request; the first one after the connect starts the watch."""
        if self.connected and self.from_ms is None:
            self.from_ms = requested_time_ms

    def covers(self, earliest_ms: int) -> bool:
        """A change no earlier than ``earliest_ms`` was made while this connection was up."""
        return self.from_ms is not None and earliest_ms >= self.from_ms


@dataclass(frozen=True, slots=True)
class _Unreported:
    """A position change REST showed that the live stream has not reported yet."""

    since_ms: int  # the change happened at or before this exchange time
    prior_ms: int  # time of the held fact before it: a later stream fact or fill reports it
    message: str


class PositionBlindness:
    """Unreported position changes of this connection (rules 1, 2 and 4)."""

    def __init__(self, *, blind_after_ms: int) -> None:
        self._blind_after_ms = blind_after_ms
        self.watch = ConnectionWatch()
        self._unreported: dict[PositionKey, _Unreported] = {}
        self._fills: dict[Symbol, int] = {}  # last fill time per symbol since the gap

    @property
    def pending(self) -> bool:
        """Some change awaits its verdict (nothing pending: nothing to check, the hot path)."""
        return bool(self._unreported)

    def gap(self, *, connected: bool) -> None:
        self.watch.gap(connected=connected)
        self._fills.clear()
        self._unreported.clear()

    def stream_fact(self, key: PositionKey, update_time_ms: int) -> None:
        """The stream reported ``key`` as of ``update_time_ms`` (rule 4)."""
        pending = self._unreported.get(key)
        if pending is not None and update_time_ms > pending.prior_ms:
            del self._unreported[key]  # the stream reported it after all: late, not blind

    def filled(self, symbol: Symbol, time_ms: int) -> None:
        """A fill on ``symbol`` at ``time_ms`` reports every change before it (rule 4)."""
        self._fills[symbol] = max(time_ms, self._fills.get(symbol, time_ms))
        for key in [k for k, u in self._unreported.items()
                    if k.symbol == symbol and time_ms > u.prior_ms]:
            del self._unreported[key]

    def last_fill_ms(self, symbol: Symbol) -> int | None:
        """The newest fill on ``symbol`` since the gap, None when there was none."""
        return self._fills.get(symbol)

    def note(self, key: PositionKey, since_ms: int, prior_ms: int, message: str,
             earliest_ms: int) -> bool:
        """Remember the oldest unreported change of ``key`` if it was made at or after
        ``earliest_ms`` while this connection was up (rule 1); True when it starts an episode
        (rule 6: nothing was pending before)."""
        if self.watch.covers(earliest_ms) and key not in self._unreported:
            episode = not self._unreported
            self._unreported[key] = _Unreported(since_ms, prior_ms, message)
            return episode
        return False

    def check(self, key: PositionKey, requested_time_ms: int) -> list[Effect]:
        """Blind once a trusted snapshot finds the change unreported past the tolerance."""
        pending = self._unreported.get(key)
        if pending is None:
            return []
        age = overdue(pending.since_ms, requested_time_ms, self._blind_after_ms)
        if age is None:
            return []
        del self._unreported[key]
        return blind_verdict(f"{pending.message} {age}", key)
