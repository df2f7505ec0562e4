"""When knowledge may have lapsed (book rule 5), and a wall clock stepped back.

Why apart from the book: checking every key's age on every event would make each apply cost as
much as the book is large; a single deadline (the earliest ``verified_ms + max_age_ms`` that
may lapse) keeps apply O(1) until it passes. The wall clock's step back is detected here because
it is the one input that makes every age unknown at once.

Rules of this module:
1. ``watch(verified_ms)`` keeps the earliest deadline ``verified_ms + max_age_ms``.
2. ``due(now_ms)`` says whether the caller must scan: None while no deadline has passed and
   the wall clock did not go back; else how far it went back (0: only a deadline passed). A
   scan forgets the deadline: the caller ``watch``es again what is still young.
3. A ``now_ms`` smaller than the previous one is a wall clock stepped back, by an unknown
   amount: every age measured on it reads younger than it is, so the caller expires all that
   it holds (never younger than it is). A step back shorter than the time between two calls
   cannot be seen here; the shell sees it instead (it compares the wall clock with the
   monotonic one, runtime/ticker.py) and says so with ``due(now_ms, stepped_back_ms)``: the
   same as a smaller ``now_ms``.
4. ``lapsed`` is strict: knowledge exactly ``max_age_ms`` old is still fresh. Pure: no clock.
5. ``next_due_ms()`` is the earliest ``now_ms`` at which ``due`` may ask for a scan without a
   step back (the deadline + 1, rule 4), None while nothing is watched: the shell's ticker
   sends no Tick for ageing before it (runtime/ticker.py), and a scan at it or later finds
   the same as a scan at every Tick would.
"""

from __future__ import annotations

__all__ = ["Ageing"]


class Ageing:
    """The next age deadline and the previous ``now_ms`` (module rules)."""

    def __init__(self, *, max_age_ms: int) -> None:
        self.max_age_ms = max_age_ms
        self._deadline_ms: int | None = None  # earliest verified_ms + max_age_ms that may lapse
        self._latest_now_ms = 0  # the previous call's now_ms: a smaller one is a step back

    def watch(self, verified_ms: int) -> None:
        """Knowledge verified at ``verified_ms`` lapses after its deadline (rule 1)."""
        deadline_ms = verified_ms + self.max_age_ms
        if self._deadline_ms is None or deadline_ms < self._deadline_ms:
            self._deadline_ms = deadline_ms

    def due(self, now_ms: int, stepped_back_ms: int = 0) -> int | None:
        """None: nothing may have lapsed; else the wall clock's step back in ms, 0 for none
        (rules 2 and 3); ``stepped_back_ms``: a step back the shell saw (rule 3)."""
        back_ms = max(self._latest_now_ms - now_ms, stepped_back_ms)
        self._latest_now_ms = now_ms
        if back_ms <= 0 and (self._deadline_ms is None or now_ms <= self._deadline_ms):
            return None
        self._deadline_ms = None
        return max(back_ms, 0)

    def next_due_ms(self) -> int | None:
        """The earliest ``now_ms`` at which a deadline has passed (rule 5)."""
        return None if self._deadline_ms is None else self._deadline_ms + 1

    def lapsed(self, verified_ms: int, now_ms: int) -> bool:
        """Older than ``max_age_ms`` at ``now_ms`` (rule 4)."""
        return now_ms - verified_ms > self.max_age_ms
