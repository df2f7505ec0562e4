"""Pure decisions of the user-data stream: backoff, duplicate detection, what a failure means.

Rules of this module:
1. No I/O and no clock: randomness is an injected ``random.Random``; times are arguments.
2. ``StreamFailure`` names what a failed connect or a dropped connection means: retry the same
   key, get a (possibly new) key first, or end the stream task (a bug). The one function that
   maps an exception to it, ``connection.classify_stream_error``, lives beside the websocket
   client whose exceptions it reads.
3. A reconnect because REST proved the stream blind is no failure of the link (the backoff does
   not grow), but ``BlindReconnects`` spaces them: the first at once, then at most one every
   ``interval_s``, so a stream that stays muted costs a bounded, steady cadence of listen-key
   POSTs, connects and post-gap snapshots instead of one per unreported change.
4. Only a connection that lived ``HEALTHY_AFTER_S`` resets the backoff (``backoff_resets``),
   whatever ended it: a listen key that expires at every connect, or a connection found blind
   within seconds, is a failing link and the delays grow (docs/BINANCE.md §4.3: the listen-key
   POSTs and post-connect reads are paid from the same IP weight as the bot's).
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Hashable, Mapping
from enum import StrEnum

__all__ = [
    "BLIND_RECONNECT_INTERVAL_S",
    "HEALTHY_AFTER_S",
    "Backoff",
    "BlindReconnects",
    "RecentEvents",
    "StreamFailure",
    "backoff_resets",
    "event_identity",
]


class Backoff:
    """Bounded exponential backoff with jitter: each delay in [cap/2, cap], cap doubling.

    The first reconnect after a healthy connection waits about ``min_delay_s``: a gap is
    blindness, so we come back fast, and slow down only while attempts keep failing.
    """

    def __init__(self, min_delay_s: float, max_delay_s: float, rng: random.Random) -> None:
        if not 0 < min_delay_s <= max_delay_s:
            raise ValueError(f"need 0 < min_delay_s <= max_delay_s, got {min_delay_s}, "
                             f"{max_delay_s}")
        self.min_delay_s = min_delay_s
        self.max_delay_s = max_delay_s
        self._rng = rng
        self.failures = 0

    def next_delay_s(self) -> float:
        """The wait before the next attempt; counts one more failure."""
        cap_s = min(self.max_delay_s, self.min_delay_s * 2.0 ** min(self.failures, 30))
        self.failures += 1
        jitter_s: float = self._rng.random() * cap_s / 2
        return max(self.min_delay_s, cap_s / 2 + jitter_s)

    def reset(self) -> None:
        """A connection was healthy: the next failure starts from the minimum again."""
        self.failures = 0


BLIND_RECONNECT_INTERVAL_S = 60.0  # rule 3's default spacing
HEALTHY_AFTER_S = 5.0  # rule 4: a connection that lived this long resets the backoff


def backoff_resets(lived_s: float) -> bool:
    """Rule 4: does a connection that ended after ``lived_s`` seconds reset the backoff?"""
    return lived_s >= HEALTHY_AFTER_S


class BlindReconnects:
    """When a connection found blind may be replaced (rule 3); ``now_s`` is monotonic seconds."""

    def __init__(self, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"need interval_s > 0, got {interval_s}")
        self.interval_s = interval_s
        self._last_at: float | None = None

    def wait_s(self, now_s: float) -> float:
        """0 when a blind reconnect may start now, else how long until one may."""
        if self._last_at is None:
            return 0.0
        return max(0.0, self._last_at + self.interval_s - now_s)

    def started(self, now_s: float) -> None:
        """A blind reconnect starts now: the next one waits ``interval_s``."""
        self._last_at = now_s


# Per event type, the fields that tell one event from another beyond e/E/T (docs/BINANCE.md §2.1).
_ORDER_KEYS = ("i", "x", "X", "t", "z", "l")
_ALGO_KEYS = ("aid", "X", "ai")


def event_identity(raw: Mapping[str, object], text: str | bytes | None = None) -> Hashable:
    """What makes two frames the same event: ``(e, E, T, key fields)``.

    Used to drop the events delivered twice while two connections overlap during rotation.
    Unknown shapes fall back to the whole payload, which errs towards keeping an event.
    """
    e, big_e, big_t = raw.get("e"), raw.get("E"), raw.get("T")
    order = raw.get("o")
    if e == "ORDER_TRADE_UPDATE" and isinstance(order, Mapping):
        get = order.get  # _ORDER_KEYS, spelled out: a generator per frame cost ~1 µs of ~35
        return (e, big_e, big_t, str(get("i")), str(get("x")), str(get("X")), str(get("t")),
                str(get("z")), str(get("l")))
    if e == "ALGO_UPDATE" and isinstance(order, Mapping):
        return (e, big_e, big_t, *(str(order.get(k)) for k in _ALGO_KEYS))
    if e == "TRADE_LITE":
        return (e, big_e, big_t, str(raw.get("i")), str(raw.get("t")))
    if text is not None:  # the frame as received: equal frames are the same event
        return (e, big_e, big_t, text)
    return (e, big_e, big_t, json.dumps(raw, sort_keys=True, default=str))


class RecentEvents:
    """The identities of the last ``capacity`` delivered events (a bounded set)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._order: deque[Hashable] = deque()
        self._seen: set[Hashable] = set()
        self._capacity = capacity

    def first_time(self, identity: Hashable) -> bool:
        """True (and remembered) the first time; False for a duplicate."""
        if identity in self._seen:
            return False
        self._seen.add(identity)
        self._order.append(identity)
        if len(self._order) > self._capacity:
            self._seen.discard(self._order.popleft())
        return True


class StreamFailure(StrEnum):
    """What to do after a connection attempt failed or a connection dropped."""

    RETRY = "retry"          # transient: back off and reconnect with the same key
    NEW_KEY = "new_key"      # the key was refused or expired: POST listenKey, then reconnect
    FATAL = "fatal"          # a bug: the stream task ends

