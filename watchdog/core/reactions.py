"""What an event asks for beside fusion (book rule 7): reads, alerts and the canary's verdict.

Why apart from the book: these effects follow from the event alone, never from what the book
holds, so they read best as one table of event to effects; the book adds them after its own.

Rules of this module:
1. Every stream event on a symbol (position rows, order and algo updates, fills) says
   ``ReadNow`` for it (its orders read once more soon, the symbol watched closely for a
   while), once per symbol, in the order the event names them.
2. A fill (TradeLite, OrderUpdate with a fill) asks a positions snapshot of its symbol: it may
   have changed a position the stream may not report. Other order facts leave positions alone
   (order lifecycle is the reaper's business).
3. MarginCall raises ``margin_call`` for each of its rows and asks a snapshot of their symbols.
4. A ``MalformedFrame`` (the stream could not read a frame, which may have carried a change)
   asks a snapshot of all symbols now, not at the next poll.
5. A ``CanaryAlert`` (the stream's liveness canary, core/canary.py) leaves as a RaiseAlert, and
   for ``stream_blind`` by the same effects as the book's blindness verdict (blindness.py).
6. Pure: no clock, no I/O; the event is all it reads.
"""

from __future__ import annotations

from watchdog.core.blindness import BLIND_CODE, blind_verdict
from watchdog.core.effects import Effect, RaiseAlert, ReadNow, RequestSnapshot
from watchdog.core.events import (
    AlgoUpdate,
    CanaryAlert,
    Event,
    MalformedFrame,
    MarginCall,
    OrderUpdate,
    StreamPositions,
    TradeLite,
)
from watchdog.core.model import ZERO, Symbol

__all__ = ["asks"]


def asks(event: Event) -> list[Effect]:
    """The effects ``event`` asks for beside the book's (module rules)."""
    match event:
        case StreamPositions():
            return [ReadNow(symbol)
                    for symbol in dict.fromkeys(row.key.symbol for row in event.positions)]
        case OrderUpdate():
            if event.last_filled_quantity != ZERO:
                return [ReadNow(event.symbol), _fill_read(event.symbol)]
            return [ReadNow(event.symbol)]
        case TradeLite():
            return [ReadNow(event.symbol), _fill_read(event.symbol)]
        case AlgoUpdate():
            return [ReadNow(event.symbol)]
        case MarginCall():
            return _margin_call(event)
        case MalformedFrame(problem=problem):
            return [RequestSnapshot(reason=f"malformed user-stream frame: {problem}")]
        case CanaryAlert(code=code, message=message):
            return blind_verdict(message) if code == BLIND_CODE else [RaiseAlert(code, message)]
        case _:
            return []


def _fill_read(symbol: Symbol) -> RequestSnapshot:
    """A fill may have changed a position the stream may not report: ask REST (rule 2)."""
    return RequestSnapshot(reason=f"fill on {symbol}", symbols=frozenset({symbol}))


def _margin_call(event: MarginCall) -> list[Effect]:
    effects: list[Effect] = [
        RaiseAlert("margin_call", f"margin call on {row.key} amount={row.amount}", row.key)
        for row in event.positions
    ]
    symbols = frozenset(row.key.symbol for row in event.positions)
    if symbols:
        effects.append(RequestSnapshot(reason="margin call", symbols=symbols))
    return effects
