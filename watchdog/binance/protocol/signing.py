"""HMAC-SHA256 request signing for Binance SIGNED endpoints (pure, no clock, no I/O).

Binance signs ``totalParams`` = the query string concatenated with the request body, byte for
byte as sent, and requires ``signature`` to be the last parameter (docs/BINANCE.md §4.2). So this
module builds the exact string once and the adapter sends that very string; nothing re-encodes
or re-orders it afterwards. The signature is a secret-derived value: never log it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote

__all__ = ["Credentials", "ParamValue", "Params", "build_query", "build_signed_query", "sign_query"]

# Binance example values are plain ASCII; anything else is percent-encoded (RFC 3986 unreserved
# characters stay as they are) so that the signed text equals the bytes on the wire.
_SAFE = "-_.~"

ParamValue = str | int | bool | Decimal
Params = Mapping[str, ParamValue] | Iterable[tuple[str, ParamValue]]


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """The Binance API key and secret. ``repr``/``str`` never show the secret, nor most of the key."""

    api_key: str
    api_secret: str

    def __repr__(self) -> str:
        shown = self.api_key[: min(4, len(self.api_key) // 4)]
        return f"Credentials(api_key='{shown}…', api_secret=***)"

    __str__ = __repr__


def sign_query(query: str, secret: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of ``query`` (query string + body) under ``secret``."""
    return hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


def _text(value: ParamValue) -> str:
    # Binance expects lowercase booleans ("true"/"false"), not Python's "True".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        # Fixed-point text: str(Decimal("1E+1")) would send "1E+1", which Binance rejects.
        return format(value, "f")
    return str(value)


def build_query(params: Params) -> str:
    """Encode ``params`` as ``k=v&…`` in the given order (no sorting: the order is signed)."""
    items = params.items() if isinstance(params, Mapping) else params
    return "&".join(f"{quote(key, safe=_SAFE)}={quote(_text(value), safe=_SAFE)}"
                    for key, value in items)


def build_signed_query(params: Params, secret: str, timestamp_ms: int, recv_window_ms: int) -> str:
    """Return ``params&recvWindow=…&timestamp=…&signature=…`` ready to send as-is.

    Args:
        params: request parameters, in the order they should appear; must not already
            contain ``recvWindow``, ``timestamp`` or ``signature``.
        secret: the API secret.
        timestamp_ms: the request time in exchange epoch ms (local clock + server offset).
        recv_window_ms: how long after ``timestamp_ms`` the server may still accept it.

    Raises:
        ValueError: ``params`` already carries one of the parameters this function adds.
    """
    base = build_query(params)
    for reserved in ("recvWindow=", "timestamp=", "signature="):
        if base.startswith(reserved) or f"&{reserved}" in base:
            raise ValueError(f"params must not contain {reserved[:-1]!r}; it is added here")
    suffix = f"recvWindow={recv_window_ms}&timestamp={timestamp_ms}"
    query = f"{base}&{suffix}" if base else suffix
    return f"{query}&signature={sign_query(query, secret)}"
