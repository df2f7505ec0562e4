"""The REST request ledger: which positions read was asked when, and which answers may speak.

Why apart from the book: REST answers arrive late and out of order, and a read proves only what
was true when it was *requested*. The book asks this ledger whether an answer may prove
anything (book rules 2, 3 and 11); the ledger knows nothing of positions.

Rules of this module:
1. Every REST positions read is bracketed: ``SnapshotRequested`` remembers its request (the
   stream's gap epoch, its symbols, the book's event count, the exchange clock epoch); its answer
   (``PositionSnapshot`` or ``SnapshotFailed``) takes it back once. An answer without a
   remembered request (never asked, or forgotten beyond ``MAX_PENDING_REQUESTS``) proves
   nothing. Memory is bounded (core/pending.py).
2. Reads are ordered by ``(requested_time_ms, request_id)``, per symbol and for all symbols: a
   read whose order is below one already applied for a symbol is *superseded* for that symbol
   (request ids increase, so equal times are ordered by id). An all-symbols read orders every
   symbol at once (its rows keep no order of their own), and a read ordered after every read
   applied so far supersedes nothing (``after_every_applied``: one comparison for a whole
   answer instead of one per row; the answer of a routine poll is such a read).
3. Exchange clock steps (book rule 11): a request dated more than ``max_rest_lag_ms`` before an
   earlier one, or whose ``requested_time_ms - now_ms`` moved by more than that since the
   previous request, starts a new clock epoch and forgets the read order of rule 2 (a read on
   the new clock must not be skipped as older). An answer to a request of an earlier clock
   epoch is *stale*: its dates belong to the old clock. The detection lives here because the
   request dates are what it watches and the read order is what it resets.
4. Pure: no clock (``now_ms`` injected), no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from watchdog.core.events import PositionSnapshot, SnapshotRequested
from watchdog.core.model import Symbol
from watchdog.core.pending import remember_request

__all__ = ["Request", "RequestLedger"]

_NEVER = (-1, -1)


@dataclass(frozen=True, slots=True)
class Request:
    """What the book knew when a read was requested (rule 1)."""

    epoch: int  # the stream's gap epoch: trusted only while it still holds (book rule 3)
    symbols: frozenset[Symbol] | None
    seq: int  # the book's events applied: before or after a flat run broke (book rule 9)
    clock: int = 0  # exchange clock epoch (rule 3)


class RequestLedger:
    """Pending requests, the read order per symbol and the exchange clock epoch (module rules)."""

    def __init__(self, *, max_rest_lag_ms: int) -> None:
        self._max_rest_lag_ms = max_rest_lag_ms
        self._pending: dict[int, Request] = {}
        self._order: dict[Symbol, tuple[int, int]] = {}
        self._order_all = _NEVER
        self._newest_order = _NEVER  # the max of every order above
        self._clock_offset_ms: int | None = None  # requested_time_ms - now_ms of the last request
        self._newest_requested_ms: int | None = None
        self.clock_epoch = 0  # +1 on every exchange clock step

    def requested(self, event: SnapshotRequested, now_ms: int, *, epoch: int, seq: int) -> bool:
        """Remember a request (rule 1); True when its date shows an exchange clock step (rule 3)."""
        stepped = self._clock_step(event.requested_time_ms, now_ms)
        remember_request(self._pending, event.request_id,
                         Request(epoch, event.symbols, seq, self.clock_epoch))
        return stepped

    def answered(self, request_id: int) -> Request | None:
        """Take back the request of an answer; None when it was never remembered (rule 1)."""
        return self._pending.pop(request_id, None)

    def stale(self, request: Request) -> bool:
        """Requested on the exchange clock before a step: its dates say nothing now (rule 3)."""
        return request.clock != self.clock_epoch

    def superseded(self, snap: PositionSnapshot, symbol: Symbol) -> bool:
        """A read requested after ``snap`` was already applied for ``symbol`` (rule 2)."""
        newest = max(self._order_all, self._order.get(symbol, _NEVER))
        return (snap.requested_time_ms, snap.request_id) < newest

    def after_every_applied(self, snap: PositionSnapshot) -> bool:
        """``snap`` was requested after every read applied so far: ``superseded`` is False for
        every symbol (one comparison instead of one per row)."""
        return (snap.requested_time_ms, snap.request_id) >= self._newest_order

    def applied(self, snap: PositionSnapshot, row_symbols: Iterable[Symbol]) -> None:
        """``snap`` was applied: it now orders later answers for its scope and its rows."""
        order = (snap.requested_time_ms, snap.request_id)
        self._newest_order = max(self._newest_order, order)
        if snap.symbols is None:
            # Every symbol's order is read as its max with _order_all, which only grows: the
            # rows' symbols need no entry of their own.
            self._order_all = max(self._order_all, order)
            return
        for symbol in {*snap.symbols, *row_symbols}:
            self._order[symbol] = max(self._order.get(symbol, _NEVER), order)

    def last_read_ms(self, symbol: Symbol) -> int:
        """``requested_time_ms`` of the newest read applied for ``symbol`` (-1: none)."""
        return max(self._order_all, self._order.get(symbol, _NEVER))[0]

    def _clock_step(self, requested_time_ms: int, now_ms: int) -> bool:
        offset_ms = requested_time_ms - now_ms
        tolerance_ms = self._max_rest_lag_ms
        stepped = ((self._newest_requested_ms is not None
                    and requested_time_ms < self._newest_requested_ms - tolerance_ms)
                   or (self._clock_offset_ms is not None
                       and abs(offset_ms - self._clock_offset_ms) > tolerance_ms))
        self._clock_offset_ms = offset_ms
        self._newest_requested_ms = max(self._newest_requested_ms or requested_time_ms,
                                        requested_time_ms)
        if stepped:
            self._newest_requested_ms = requested_time_ms
            self.clock_epoch += 1
            self._order.clear()
            self._order_all = self._newest_order = _NEVER
        return stepped
