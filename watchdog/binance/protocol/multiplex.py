"""Several accounts on one user-data connection, pure: the URL, how many keys one connection
carries, which account a frame belongs to, and when a connection being gathered opens.

Binance's routed private endpoint accepts several ``listenKey``/``events`` pairs on one
connection in stream mode, each frame then wrapped as ``{"stream": <listenKey>, "data": <event>}``
(docs/BINANCE.md §1.2, "One connection for several accounts"). The shell that runs such
connections is ``binance/shared_stream.py``; nothing here waits or touches a socket.

Rules of this module:
1. One key: the URL is exactly the one-account URL (``/private/ws?listenKey=K&events=…``, raw
   frames). Several keys: ``/private/stream?listenKey=K1&events=…&listenKey=K2&events=…``,
   every key with its own ``events=`` filter, each key once, in the order given.
2. At most ``KEYS_PER_CONNECTION`` keys on one connection (Binance documents no cap for listen
   keys; 20 is the figure of our many-accounts target, 100 accounts on at most 5 connections,
   and keeps the URL under 4 KB where servers commonly stop at 8 KB).
3. A wrapped frame is attributed by its ``stream`` name, which is the listen key (also
   ``<key>@…``: the part before ``@``). A frame that cannot be attributed belongs to nobody in
   particular and so to everybody: the shell hands it to every account on the connection, whose
   stream reports it malformed (and its core asks REST): never dropped in silence.
4. Gathering: accounts that want a connection at about the same time share one. A gather opens
   at once when it is full, or when someone waits for it with no stream at all (``urgent``: a
   start or a reconnect) and every account without a stream has joined; otherwise
   ``GATHER_QUIET_S`` after the last joiner (``URGENT_QUIET_S`` when someone is urgent), and
   never later than ``GATHER_MAX_S`` (``URGENT_MAX_S``) after the first. Non-urgent joiners are
   rotations: the connection they replace keeps delivering meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from watchdog.binance.protocol.wire import USER_EVENT_TYPES

__all__ = ["GATHER_MAX_S", "GATHER_QUIET_S", "KEYS_PER_CONNECTION", "URGENT_MAX_S",
           "URGENT_QUIET_S", "Gather", "attribute", "events_filter", "gather_open_in_s",
           "shared_stream_url", "unwrap"]

KEYS_PER_CONNECTION = 20
URGENT_QUIET_S = 0.3   # an account without a stream waits this long for company, at most
URGENT_MAX_S = 1.0
GATHER_QUIET_S = 0.5   # rotations: the old connections deliver meanwhile; the accounts of one
GATHER_MAX_S = 5.0     # connection rotate within milliseconds of each other (opened together)


def events_filter() -> str:
    """The ``events=`` value: every event type the wire parses (docs/BINANCE.md §1.2)."""
    return "/".join(USER_EVENT_TYPES)


def shared_stream_url(ws_url: str, keys: Sequence[str]) -> str:
    """Rule 1: the URL of one connection carrying ``keys`` (1 to ``KEYS_PER_CONNECTION``)."""
    unique = list(dict.fromkeys(keys))
    if not 1 <= len(unique) <= KEYS_PER_CONNECTION:
        raise ValueError(f"a connection carries 1 to {KEYS_PER_CONNECTION} listen keys, "
                         f"not {len(unique)}")
    base, events = ws_url.rstrip("/"), events_filter()
    if len(unique) == 1:
        return f"{base}/private/ws?listenKey={quote(unique[0], safe='')}&events={events}"
    pairs = "&".join(f"listenKey={quote(k, safe='')}&events={events}" for k in unique)
    return f"{base}/private/stream?{pairs}"


def unwrap(raw: object) -> tuple[str, Mapping[str, object]] | None:
    """Rule 3: ``(stream name, event)`` of a wrapped frame, None for any other shape."""
    if not isinstance(raw, Mapping):
        return None
    name, data = raw.get("stream"), raw.get("data")
    if not isinstance(name, str) or not isinstance(data, Mapping):
        return None
    return name, data


def attribute(name: str, keys: Mapping[str, object] | set[str] | frozenset[str]) -> str | None:
    """Rule 3: the listen key a stream name stands for, None when it is none of ``keys``."""
    if name in keys:
        return name
    head = name.split("@", 1)[0]
    return head if head in keys else None


@dataclass
class Gather:
    """Rule 4: the accounts waiting for one connection (times: the caller's monotonic s)."""

    first_at: float
    last_at: float
    joined: int = 0
    urgent: bool = False

    def join(self, now_s: float, *, urgent: bool) -> None:
        self.joined += 1
        self.last_at = now_s
        self.urgent = self.urgent or urgent


def gather_open_in_s(gather: Gather, now_s: float, *, missing: int,
                     cap: int = KEYS_PER_CONNECTION) -> float:
    """Rule 4: seconds until ``gather`` opens (0 or less: now). ``missing``: accounts with no
    stream at all that have not joined it yet."""
    if gather.joined >= cap:
        return 0.0
    if gather.urgent:
        if missing <= 0:
            return 0.0
        quiet_s, max_s = URGENT_QUIET_S, URGENT_MAX_S
    else:
        quiet_s, max_s = GATHER_QUIET_S, GATHER_MAX_S
    open_at = min(gather.last_at + quiet_s, gather.first_at + max_s)
    return max(0.0, open_at - now_s) if math.isfinite(open_at) else 0.0
