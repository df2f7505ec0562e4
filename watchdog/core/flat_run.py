"""Flat runs (book rule 9): since when REST has shown a key flat without a break.

Why apart from the book: the reaper cancels an order only if its position was provably flat
since before the order was placed (``flat_since``) and recently enough (``flat_proven_ms``);
when a run starts, grows and breaks is a rule of its own, and small enough to test alone.

Rules of this module:
1. A run starts at the ``requested_time_ms`` of a trusted read that shows the key flat, but
   only if that read was requested after the run last broke (``seq``: the book's event count
   when requested and when broken): a read already in flight when the run broke cannot start a
   new one, even if it is answered after the break.
2. While a run goes, every further trusted flat read moves ``proof_ms`` (its newest read's
   ``requested_time_ms``) forward, never back; ``since_ms`` stays.
3. A break ends the run at once (the book breaks it on a gap, a failed read covering the key,
   an open fact, any loss of confirmed knowledge, an exchange clock step). ``proven_ms`` is
   None while no run goes.
4. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FlatRun"]


@dataclass(slots=True)
class FlatRun:
    """One key's run (or the run of every key the book never held)."""

    since_ms: int | None = None  # requested_time_ms of the run's first flat read
    proof_ms: int = 0  # requested_time_ms of the run's newest flat read
    break_seq: int = 0  # the book's event count when the run last broke

    @property
    def proven_ms(self) -> int | None:
        """``proof_ms`` while a run goes, else None (rule 3)."""
        return None if self.since_ms is None else self.proof_ms

    def shown_flat(self, requested_ms: int, request_seq: int) -> None:
        """A trusted read requested at ``requested_ms`` (event count ``request_seq``) showed
        the key flat (rules 1 and 2)."""
        if self.since_ms is None:
            if request_seq > self.break_seq:
                self.since_ms = self.proof_ms = requested_ms
        else:
            self.proof_ms = max(self.proof_ms, requested_ms)

    def broken(self, seq: int) -> None:
        """The run breaks at the book's event count ``seq`` (rule 3)."""
        self.since_ms, self.break_seq = None, seq
