"""Request authentication and limits, Binance's way (docs/BINANCE.md §4.2, §4.3). Pure.

The simulator has its own signing code on purpose: it must not share the client's
(``watchdog.binance``) understanding of the protocol.

Signing: ``signature`` = hex HMAC-SHA256(secret, totalParams), where totalParams is the raw
query string concatenated with the raw request body (no separator), the ``signature``
parameter itself removed; it must be the last parameter of wherever it is sent.
Time: accept iff ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``
(default 5000, at most 60000).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from watchdog.sim import rejections as rj

__all__ = [
    "OrderCounter",
    "WeightMeter",
    "check_timestamp",
    "merge_params",
    "sign",
    "split_signature",
    "verify_signature",
]


def sign(payload: str, secret: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` — what a client must send as ``signature``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _strip_last(raw: str) -> tuple[str, str] | None:
    """``a=1&signature=xx`` → (``a=1``, ``xx``) when signature is the last parameter."""
    parts = raw.split("&")
    if not parts or not parts[-1].startswith("signature="):
        return None
    if any(p.startswith("signature=") for p in parts[:-1]):
        return None
    return "&".join(parts[:-1]), parts[-1][len("signature="):]


def split_signature(query: str, body: str) -> tuple[str, str] | None:
    """(totalParams without the signature, signature), or None when absent/misplaced."""
    if "signature=" in body:
        stripped = _strip_last(body)
        if stripped is None:
            return None
        return query + stripped[0], stripped[1]
    if "signature=" in query:
        stripped = _strip_last(query)
        if stripped is None:
            return None
        return stripped[0] + body, stripped[1]
    return None


def verify_signature(query: str, body: str, secret: str) -> None:
    """Raise -1102 if no signature was sent, -1022 if it does not match."""
    split = split_signature(query, body)
    if split is None or not split[1]:
        raise rj.mandatory_param("signature")
    payload, signature = split
    if not hmac.compare_digest(sign(payload, secret), signature.lower()):
        raise rj.bad_signature()


def merge_params(query: str, body: str) -> dict[str, str]:
    """Query and form-body parameters, decoded (the body may add to the query, docs/BINANCE.md §4.2)."""
    params: dict[str, str] = {}
    for raw in (query, body):
        for name, value in parse_qsl(raw, keep_blank_values=True):
            params[name] = value
    return params


def check_timestamp(params: dict[str, str], server_time_ms: int) -> None:
    text = params.get("timestamp")
    if not text or not text.isdigit():
        raise rj.mandatory_param("timestamp")
    window_text = params.get("recvWindow", "5000")
    if not window_text.isdigit():
        raise rj.invalid_param("recvWindow")
    recv_window = int(window_text)
    if recv_window > 60_000:
        raise rj.Rejection(-1131, "recvWindow must be less than 60000")
    timestamp = int(text)
    if timestamp >= server_time_ms + 1000:
        raise rj.invalid_timestamp(ahead=True)
    if server_time_ms - timestamp > recv_window:
        raise rj.invalid_timestamp(ahead=False)


@dataclass(slots=True)
class WeightMeter:
    """IP request weight per wall-clock minute; 429 past ``limit``, 418 after ``ban_after`` more.

    Binance: "Every request will contain X-MBX-USED-WEIGHT-1M"; 429 → back off with
    Retry-After; continuing after 429s gets an automated ban (418, 2 min … 3 days).
    """

    limit: int = 2400
    ban_after: int = 50
    ban_ms: int = 120_000
    minute: int = -1
    used: int = 0
    rejected: int = 0
    banned_until_ms: int = 0

    def charge(self, now_ms: int, weight: int) -> int:
        """Count ``weight``; returns the minute's usage or raises 429/418."""
        if now_ms < self.banned_until_ms:
            raise rj.banned(self.banned_until_ms, max(1, -(-(self.banned_until_ms - now_ms) // 1000)))
        minute = now_ms // 60_000
        if minute != self.minute:
            self.minute, self.used, self.rejected = minute, 0, 0
        retry_after_s = max(1, -(-((minute + 1) * 60_000 - now_ms) // 1000))
        if self.used + weight > self.limit:
            self.rejected += 1
            if self.rejected > self.ban_after:
                self.banned_until_ms = now_ms + self.ban_ms
                raise rj.banned(self.banned_until_ms, self.ban_ms // 1000)
            raise rj.too_many_requests(self.limit, retry_after_s)
        self.used += weight
        return self.used


@dataclass(slots=True)
class OrderCounter:
    """Per-account order counts (X-MBX-ORDER-COUNT-10S / -1M): 300 per 10 s, 1200 per minute."""

    limit_10s: int = 300
    limit_1m: int = 1200
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)

    def count(self, api_key: str, now_ms: int) -> dict[str, str]:
        ten, one = now_ms // 10_000, now_ms // 60_000
        w10, c10 = self.windows.get(api_key + ":10s", (ten, 0))
        w1, c1 = self.windows.get(api_key + ":1m", (one, 0))
        c10 = c10 if w10 == ten else 0
        c1 = c1 if w1 == one else 0
        if c10 + 1 > self.limit_10s:
            retry_s = max(1, ((ten + 1) * 10_000 - now_ms) // 1000)
            raise rj.too_many_orders(self.limit_10s, "10 SECOND", retry_s)
        if c1 + 1 > self.limit_1m:
            raise rj.too_many_orders(self.limit_1m, "1 MINUTE", max(1, ((one + 1) * 60_000 - now_ms) // 1000))
        self.windows[api_key + ":10s"] = (ten, c10 + 1)
        self.windows[api_key + ":1m"] = (one, c1 + 1)
        return {"X-MBX-ORDER-COUNT-10S": str(c10 + 1), "X-MBX-ORDER-COUNT-1M": str(c1 + 1)}
