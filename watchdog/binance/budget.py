"""Request-weight accounting against our share of Binance's per-IP budget (BINANCE-API.md §4.2).

Rules of this module:
1. Pure: every method takes ``now_s`` (monotonic seconds); nothing here sleeps or reads a clock.
2. Two numbers are tracked: the IP's whole usage as Binance reports it (``X-MBX-USED-WEIGHT-1M``,
   shared with the bot) and our own weight over a sliding 60 s window.
3. Urgent calls (a snapshot the core asked for, a cancel) go out while we are over our share,
   but never while Binance told us to wait (429/418 ``Retry-After``); non-urgent calls wait.
"""

from __future__ import annotations

from collections import deque

__all__ = ["IP_WEIGHT_LIMIT_PER_MIN", "WeightBudget"]

IP_WEIGHT_LIMIT_PER_MIN = 2400
_WINDOW_S = 60.0
# Leave the bot this much headroom of the whole IP limit before we stop non-urgent reads.
_IP_HEADROOM = 0.9


class WeightBudget:
    """Our share of the 2400/min IP weight, and Binance's own view of the IP's usage."""

    def __init__(self, budget_per_min: int) -> None:
        if budget_per_min <= 0:
            raise ValueError(f"budget_per_min must be positive, got {budget_per_min}")
        self.budget_per_min = budget_per_min
        self._spent: deque[tuple[float, int]] = deque()  # (sent_at_s, weight)
        self._spent_sum = 0  # sum of the weights in _spent (asked several times per request)
        self._ip_used_1m = 0
        self._ip_seen_at_s: float | None = None
        self.blocked_until_s = 0.0
        self.degraded = False

    # -------------------------------------------------------------- bookkeeping

    def record(self, weight: int, now_s: float) -> None:
        """A request of ``weight`` was sent (count it whether or not it succeeded)."""
        self._spent.append((now_s, weight))
        self._spent_sum += weight
        self._trim(now_s)

    def observe_used_weight(self, used_1m: int, now_s: float) -> None:
        """Binance's ``X-MBX-USED-WEIGHT-1M`` from the latest answer (the whole IP's usage)."""
        self._ip_used_1m = used_1m
        self._ip_seen_at_s = now_s

    def block(self, retry_after_s: float, now_s: float) -> None:
        """Binance answered 429/418: no call at all until the wait is over; state is degraded."""
        self.blocked_until_s = max(self.blocked_until_s, now_s + retry_after_s)
        self.degraded = True

    def succeeded(self, now_s: float) -> None:
        """A call got through after any block had ended: no longer degraded."""
        if now_s >= self.blocked_until_s:
            self.degraded = False

    # -------------------------------------------------------------- questions

    def own_used_1m(self, now_s: float) -> int:
        """Our own weight over the last 60 s."""
        self._trim(now_s)
        return self._spent_sum

    def ip_used_1m(self, now_s: float) -> int:
        """The IP's weight as Binance last reported it; 0 once that report is a minute old."""
        if self._ip_seen_at_s is None or now_s - self._ip_seen_at_s >= _WINDOW_S:
            return 0
        return self._ip_used_1m

    def blocked_for_s(self, now_s: float) -> float:
        """Seconds left of a 429/418 wait (0 when free to call)."""
        return max(0.0, self.blocked_until_s - now_s)

    def wait_for_s(self, weight: int, *, urgent: bool, now_s: float,
                   count_own: bool = True) -> float:
        """How long a call of ``weight`` must wait; 0 means send now.

        Non-urgent calls wait until the IP as a whole is below 90% of its limit and, with
        ``count_own``, until our own sliding window has room for them; urgent calls only
        honour a 429/418 block. (``count_own=False`` is for reads whose rate is already bounded
        by configuration, like the positions poll: our share must not starve them.)
        """
        blocked = self.blocked_for_s(now_s)
        if urgent or blocked > 0:
            return blocked
        self._trim(now_s)
        wait_s = 0.0
        own = self._spent_sum
        if count_own and own + weight > self.budget_per_min:
            # Wait until enough of the oldest spending has left the window.
            excess = own + weight - self.budget_per_min
            for sent_at_s, w in self._spent:
                excess -= w
                if excess <= 0:
                    wait_s = sent_at_s + _WINDOW_S - now_s
                    break
        if self.ip_used_1m(now_s) + weight > IP_WEIGHT_LIMIT_PER_MIN * _IP_HEADROOM:
            assert self._ip_seen_at_s is not None
            wait_s = max(wait_s, self._ip_seen_at_s + _WINDOW_S - now_s)
        return max(0.0, wait_s)

    def _trim(self, now_s: float) -> None:
        while self._spent and self._spent[0][0] <= now_s - _WINDOW_S:
            self._spent_sum -= self._spent.popleft()[1]
