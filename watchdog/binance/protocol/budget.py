"""Request-weight accounting against our share of Binance's per-IP budget (docs/BINANCE.md §4.3).

Rules of this module:
1. Pure: every method takes ``now_s`` (monotonic seconds); nothing here sleeps or reads a clock.
2. Two numbers are tracked: the IP's whole usage as Binance reports it (``X-MBX-USED-WEIGHT-1M``,
   shared with the bot) and our own weight over a sliding 60 s window.
3. One hard cap: our own window never goes over ``budget_per_min``, whatever the call (a
   reconnect's listen key, a post-gap snapshot, a cancel). Nothing bypasses it; what differs
   between calls is their ``Priority``: ``ROUTINE`` calls (scheduled polls, the sweep) stop
   ``reserve`` short of the cap, and stop short of the weight of every priority call that is
   waiting for room (``want``/``served``): the weight a safety decision waits on is freed by
   the routine polls first. A single call heavier than its whole limit goes only into an
   empty window.
4. Binance's counter is a per-minute window on its own clock: the IP usage it reported counts
   until the end of the minute it was reported in (not for a sliding 60 s after it). Routine
   calls also wait while the IP is above 90% of 2400 (the bot's room); priority calls only
   while they would push it over 2400. Nothing is sent while a 429/418 ``Retry-After`` runs,
   and the usage reported with it counts no longer than that wait: Binance says when it lifts.
5. Routine polls are paced (``pace_s``), not only capped: spending is spread over the minute
   so the window never forces a long stop. The pace is the least even spacing that keeps the
   next minute under the limit (a hair faster overflows), and even is what the positions
   poll wants: for a given number of reads, the wait from a random moment (a closure) to the
   next read is shortest, in mean and in every quantile, with equal gaps. Polling at full
   speed while far from the cap and slowing only near it spends the same reads with a stop
   at the end (docs/BENCHMARKS.md "#13 item 2: pacing").
6. A request counts from when it is sent until 60 s after its answer (``answered``): Binance
   charges it when it arrives, somewhere between the two, and counts it for 60 s from then.
   Counting only from the send let a request sent just before the window's edge and charged
   a few ms later stay in Binance's window while it had left ours: the simulator measured 364
   over a sliding 60 s against a share of 360, with nothing bypassing the cap.
7. The pace plans for what others spend too (``spread_over_window``): the weight in the window
   that was not the paced poll's own (priority reads, order reads, listen keys) is expected
   again, evenly, over the next 60 s. Planned from the window alone, the poll took the room
   those reads came for and then met the cap: a 1.5 to 1.8 s gap in a 0.93 s cadence, where a
   closure waits longest (docs/BENCHMARKS.md, "every weight unit of a minute"). Evenly
   slower is the better trade (rule 5).
8. Questions about a later time (``pace_s``, ``used_at_s``) change nothing: the poller asks
   them ahead of time (poller.py rule 8), and a trim at a later time would drop spending that
   still counts now. Every change of the window or of what limits it is told to ``watch``ers
   (the poller's wake-up planned from an earlier answer is planned again).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from enum import IntEnum

from watchdog.binance.protocol.weights import IP_WEIGHT_LIMIT_PER_MIN

__all__ = ["PRIORITY_RESERVE", "Priority", "WeightBudget", "spread_over_window"]

_WINDOW_S = 60.0
_MINUTE_MS = 60_000
# Leave the bot this much headroom of the whole IP limit before we stop routine reads.
_IP_HEADROOM = 0.9
# What routine polls leave free under the cap: one pre-cancel re-read (positionRisk, 5), one
# cancel (1) and one symbol's order reads (1 + 1), so a reap never waits for a routine poll.
PRIORITY_RESERVE = 8


def spread_over_window(weight: int, now_s: float) -> list[tuple[float, int]]:
    """Rule 7: ``weight`` expected over the next 60 s at an even rate, as planned spending
    (``(at_s, 1)`` entries for ``WeightBudget.pace_s``)."""
    count = max(0, int(weight))
    return [(now_s + (i + 0.5) * _WINDOW_S / count, 1) for i in range(count)]


class Priority(IntEnum):
    """Who goes first when weight is short (lower first)."""

    SAFETY = 0      # the reaper's pre-cancel re-read, cancels and their re-queries
    REQUESTED = 1   # what a decision waits on: post-gap snapshots, listen keys, reads the core
                    # or the reaper asked for, the orders of a position that just closed
    ROUTINE = 2     # scheduled positions polls, periodic order reads, the sweep


class WeightBudget:
    """Our share of the 2400/min IP weight, and Binance's own view of the IP's usage."""

    def __init__(self, budget_per_min: int, *, reserve: int = PRIORITY_RESERVE) -> None:
        if budget_per_min <= 0:
            raise ValueError(f"budget_per_min must be positive, got {budget_per_min}")
        self.budget_per_min = budget_per_min
        self.reserve = max(0, min(reserve, budget_per_min // 2))
        self._spent: deque[list[float]] = deque()  # [counted_from_s, weight] (rule 6)
        self._spent_sum = 0  # sum of the weights in _spent (asked several times per request)
        self._wanted = 0  # weight of priority calls waiting for room (rule 3)
        self._ip_used_1m = 0
        self._ip_reset_at_s = float("-inf")  # when Binance's minute of that report ends
        self.blocked_until_s = 0.0
        self.degraded = False
        self._watchers: list[Callable[[], None]] = []  # told of every change (rule 8)
        # Pollers spending from this budget (several accounts on one IP, runtime/build.py rule
        # 4): each paces its routine calls this many times wider, so together they keep the
        # pace one poller would (rule 5) and take turns instead of racing for freed room.
        self.sharers = 1

    # -------------------------------------------------------------- bookkeeping

    def watch(self, changed: Callable[[], None]) -> None:
        """Rule 8: call ``changed`` after every change of the window or of what limits it."""
        self._watchers.append(changed)

    def _changed(self) -> None:
        for changed in self._watchers:
            changed()

    def record(self, weight: int, now_s: float) -> list[float]:
        """A request of ``weight`` was sent (count it whether or not it succeeded); pass the
        returned entry to ``answered`` when its answer (or its failure) is in."""
        entry = [now_s, weight]
        self._spent.append(entry)
        self._spent_sum += weight
        self._trim(now_s)
        self._changed()
        return entry

    def answered(self, entry: list[float], now_s: float) -> None:
        """Rule 6: the request of ``entry`` got its answer (or gave up) at ``now_s``: Binance
        charged it by then, so it stays in our window until 60 s after that."""
        entry[0] = max(entry[0], now_s)
        self._changed()

    def want(self, weight: int) -> None:
        """A priority call of ``weight`` waits for room: routine calls leave it that room."""
        self._wanted += weight
        self._changed()

    def served(self, weight: int) -> None:
        """A call registered with ``want`` was sent or given up."""
        self._wanted = max(0, self._wanted - weight)
        self._changed()

    @property
    def wanted(self) -> int:
        return self._wanted

    def observe_used_weight(self, used_1m: int, now_s: float,
                            exchange_ms: int | None = None) -> None:
        """Binance's ``X-MBX-USED-WEIGHT-1M`` from the latest answer (the whole IP's usage),
        received at ``exchange_ms`` on Binance's clock: it counts until that minute ends
        (rule 4). Without ``exchange_ms``, for a full 60 s."""
        self._ip_used_1m = used_1m
        left_ms = _MINUTE_MS if exchange_ms is None else _MINUTE_MS - exchange_ms % _MINUTE_MS
        self._ip_reset_at_s = now_s + left_ms / 1000
        self._changed()

    def block(self, retry_after_s: float, now_s: float) -> None:
        """Binance answered 429/418: no call at all until the wait is over; state is degraded.
        Its ``Retry-After`` also says when the usage it reported stops counting (rule 4):
        our clocks can place a 429 answered a few ms before Binance's minute ended in the next
        minute, which held every call, safety reads included, for a whole minute."""
        self.blocked_until_s = max(self.blocked_until_s, now_s + retry_after_s)
        self._ip_reset_at_s = min(self._ip_reset_at_s, self.blocked_until_s)
        self.degraded = True
        self._changed()

    def succeeded(self, now_s: float) -> None:
        """A call got through after any block had ended: no longer degraded."""
        if now_s >= self.blocked_until_s:
            self.degraded = False

    # -------------------------------------------------------------- questions

    def own_used_1m(self, now_s: float) -> int:
        """Our own weight over the last 60 s."""
        self._trim(now_s)
        return self._spent_sum

    def used_at_s(self, at_s: float) -> int:
        """Rule 8: what ``own_used_1m(at_s)`` will answer if nothing is spent until then, asked
        now: nothing is trimmed."""
        used = self._spent_sum
        for sent_at_s, weight in self._spent:  # the trim's prefix, in send order
            if sent_at_s > at_s - _WINDOW_S:
                break
            used -= int(weight)
        return used

    def ip_used_1m(self, now_s: float) -> int:
        """The IP's weight as Binance last reported it; 0 once Binance's minute has ended."""
        return self._ip_used_1m if now_s < self._ip_reset_at_s else 0

    def blocked_for_s(self, now_s: float) -> float:
        """Seconds left of a 429/418 wait (0 when free to call)."""
        return max(0.0, self.blocked_until_s - now_s)

    def limit(self, priority: Priority) -> int:
        """How much of our window a call of ``priority`` may fill (rule 3)."""
        if priority is Priority.ROUTINE:
            return max(0, self.budget_per_min - self.reserve - self._wanted)
        return self.budget_per_min

    def wait_for_s(self, weight: int, *, priority: Priority = Priority.ROUTINE,
                   now_s: float) -> float:
        """How long a call of ``weight`` at ``priority`` must wait; 0 means send now."""
        blocked = self.blocked_for_s(now_s)
        if blocked > 0:
            return blocked
        self._trim(now_s)
        wait_s = self._own_wait_s(weight, self.limit(priority), now_s)
        line = IP_WEIGHT_LIMIT_PER_MIN * (_IP_HEADROOM if priority is Priority.ROUTINE else 1)
        if self.ip_used_1m(now_s) + weight > line:
            wait_s = max(wait_s, self._ip_reset_at_s - now_s)
        return max(0.0, wait_s)

    def pace_s(self, weight: int, now_s: float,
               planned: Sequence[tuple[float, int]] = ()) -> float:
        """The shortest spacing of routine calls of ``weight``, the first now, that keeps our
        window within the routine limit for the next 60 s, given when what is in it expires
        and what is ``planned`` (``(at_s, weight)``, e.g. each order list's sweep at its due
        time: the poller plans the two lists' 40s apart, poller.py rule 4).

        Rule 5: a sliding window punishes spending at once (a sweep's 40, a burst at startup):
        the room frees only when that spending is a minute old, and a poll that went at full
        speed until the cap must then stop for seconds. Spread over the minute instead, the
        same room slows the poll a little (0.9 s → about 1.0 s around one list's sweep at the
        defaults; 1.2 s when both lists' 80 shared a window) and never stops it.
        ``math.inf`` when even one call now would overflow before the window frees (the
        hard check, ``wait_for_s``, says for how long). Rule 8: nothing is trimmed (it is asked
        for later times too); what left the window by ``now_s`` frees its weight before the
        first step (``ahead_s <= 0``), as if trimmed."""
        room = self.limit(Priority.ROUTINE) - self._spent_sum - weight
        steps: list[tuple[float, int]] = [(at_s - now_s, -w) for at_s, w in planned
                                          if at_s - now_s < _WINDOW_S]
        steps += [(sent_at_s + _WINDOW_S - now_s, int(w)) for sent_at_s, w in self._spent]
        steps.append((_WINDOW_S, 0))  # the horizon: what we send now leaves the window then
        steps.sort()  # at equal times, planned spending (negative) before expiry
        pace = 0.0
        per_call = max(1, weight)
        for ahead_s, freed in steps:  # ~100 steps, twice a positions read: no calls inside
            if ahead_s > 0:  # just before this step: ``room`` must hold our calls up to here
                if room < 0:
                    return math.inf
                # n calls fit before this step when spaced ahead_s / n (a hair more: floats)
                step_pace = ahead_s / (room // per_call + 1) * (1 + 1e-9)
                if step_pace > pace:
                    pace = step_pace
            room += freed
        return pace * self.sharers

    def _own_wait_s(self, weight: int, limit: int, now_s: float) -> float:
        """Until enough of the oldest spending has left the window for ``weight`` to fit."""
        excess = self._spent_sum + weight - limit
        if excess <= 0:
            return 0.0
        if weight > limit:  # never fits: only into an empty window
            return max(at for at, _ in self._spent) + _WINDOW_S - now_s if self._spent else 0.0
        for sent_at_s, w in sorted(self._spent):  # answers may come out of order (rule 6)
            excess -= int(w)
            if excess <= 0:
                return sent_at_s + _WINDOW_S - now_s
        raise AssertionError("unreachable: the window holds more than the excess")  # pragma: no cover

    def _trim(self, now_s: float) -> None:
        # In send order: one answered late keeps those behind it a little longer (never less).
        while self._spent and self._spent[0][0] <= now_s - _WINDOW_S:
            self._spent_sum -= int(self._spent.popleft()[1])
