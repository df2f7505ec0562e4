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
5. The run as a standby connection sees it (make-before-break at suspicion, book rule 9):
   ``mark(seq)`` starts a shadow run broken at ``seq`` (the event count when a standby
   connection was listening). The shadow follows every read and every break of the run (rules
   1-3), so it is the run "broken at the mark, continued from the first trusted flat read
   requested after it, unbroken since". A gap that promotes that standby does not break the
   shadow: the book takes it out before the gap (``take_standby``) and puts it back after it
   (``promoted``); the run itself broke at the gap as ever, and the first trusted flat read
   requested after that gap (the post-gap read rule 3 waits for) makes the shadow the run
   (it continues from its start) instead of starting a new one. A gap without the promotion
   drops the shadow.
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
    standby: FlatRun | None = None  # the shadow run since a standby's mark (rule 5)
    resuming: bool = False  # the standby was promoted: the next read resumes the shadow

    @property
    def proven_ms(self) -> int | None:
        """``proof_ms`` while a run goes, else None (rule 3)."""
        return None if self.since_ms is None else self.proof_ms

    def shown_flat(self, requested_ms: int, request_seq: int) -> None:
        """A trusted read requested at ``requested_ms`` (event count ``request_seq``) showed
        the key flat (rules 1 and 2; the shadow too, rule 5)."""
        shadow = self.standby
        if shadow is not None:
            shadow.shown_flat(requested_ms, request_seq)
            if self.resuming and request_seq > self.break_seq:  # the first read after the gap
                self.since_ms, self.proof_ms = shadow.since_ms, shadow.proof_ms
                self.break_seq, self.standby, self.resuming = shadow.break_seq, None, False
                return
        if self.since_ms is None:
            if request_seq > self.break_seq:
                self.since_ms = self.proof_ms = requested_ms
        else:
            self.proof_ms = max(self.proof_ms, requested_ms)

    def broken(self, seq: int) -> None:
        """The run breaks at the book's event count ``seq`` (rule 3; the shadow too)."""
        self.since_ms, self.break_seq = None, seq
        if self.standby is not None:
            self.standby.broken(seq)

    def mark(self, seq: int) -> None:
        """A standby connection listens since the book's event count ``seq`` (rule 5)."""
        self.standby = FlatRun(break_seq=seq)

    def fork(self) -> FlatRun:
        """The run of a key the book starts to hold, which was in this (all-symbols) run: it
        inherits the break it was born under, and the shadow's."""
        shadow = self.standby
        return FlatRun(break_seq=self.break_seq,
                       standby=None if shadow is None else FlatRun(break_seq=shadow.break_seq))

    def take_standby(self) -> FlatRun | None:
        """Detach the shadow before a gap breaks the run (rule 5)."""
        shadow, self.standby, self.resuming = self.standby, None, False
        return shadow

    def promoted(self, shadow: FlatRun | None, *, resume: bool) -> None:
        """After the gap: keep following ``shadow``; ``resume``: the standby was promoted, so
        the first read requested after the gap makes it the run (rule 5)."""
        self.standby, self.resuming = shadow, resume and shadow is not None
