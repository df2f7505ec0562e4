"""Pure classification of Binance answers into the watchdog's error tree.

Rules of this module:
1. Every HTTP answer and every transport failure is classified here, once, by a pure function;
   ``rest.py`` only raises what these functions return (it says, from httpx's exception type,
   whether a failed request may have been sent: this module imports no HTTP client).
2. Transient (retry an idempotent call later) → ``ExchangeUnavailable``; the request may have
   executed → ``OutcomeUnknown``; the API key is refused → ``AuthenticationFailed``; any other
   definite 4xx → ``ExchangeRejected``.
3. The endpoint is the path only: query strings carry signatures and are never kept.

Sources: docs/BINANCE.md §4.3 (HTTP statuses, 503 variants, Retry-After) and §5.1 (error codes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from watchdog.binance.protocol import wire_rest
from watchdog.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    OutcomeUnknown,
)

__all__ = [
    "AUTH_CODES",
    "CODE_INVALID_LISTEN_KEY",
    "CODE_INVALID_TIMESTAMP",
    "CODE_TIMEOUT",
    "ErrorBody",
    "classify_response",
    "classify_transport_failure",
    "parse_error_body",
    "parse_retry_after_s",
]

CODE_TIMEOUT = -1007            # "Send status unknown; execution status unknown."
CODE_INVALID_TIMESTAMP = -1021  # outside recvWindow: re-sync the server-time offset
CODE_INVALID_LISTEN_KEY = -1125
# Bad API-key format / key, IP or permission refused, and -1022: a signature Binance cannot verify
# with the key's secret, i.e. a wrong secret. Restarting cannot fix any of them (exit 77).
AUTH_CODES = frozenset({-1022, -2014, -2015})

# 418 bans last "from 2 minutes to 3 days"; without a Retry-After we wait the minimum.
_DEFAULT_RETRY_AFTER_S = {429: 5.0, 418: 120.0}


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """``{"code": -2011, "msg": "Unknown order sent."}``, or what we could salvage of a body."""

    code: int | None
    msg: str


def parse_error_body(body: bytes) -> ErrorBody:
    """Read Binance's error shape; a non-JSON body (HTML from a proxy, WAF) keeps an excerpt."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ErrorBody(None, body[:200].decode("utf-8", "replace"))
    parsed = wire_rest.parse_error_body(data)
    if parsed is not None:
        return ErrorBody(*parsed)
    if isinstance(data, dict) and isinstance(data.get("msg"), str):
        return ErrorBody(None, data["msg"])
    return ErrorBody(None, body[:200].decode("utf-8", "replace"))


def parse_retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` in seconds (Binance sends delta-seconds); anything else is ignored."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def classify_response(status: int, body: bytes, endpoint: str, *,
                      retry_after: str | None = None) -> ExchangeError | None:
    """Map one HTTP answer to an error, or ``None`` when it is a success (2xx).

    Args:
        status: HTTP status code.
        body: raw response body.
        endpoint: ``METHOD /path`` (never the query).
        retry_after: the ``Retry-After`` header, if any.
    """
    if 200 <= status < 300:
        return None
    err = parse_error_body(body)
    what = f"{endpoint}: HTTP {status}" + (f" code {err.code}" if err.code is not None else "")
    if status in (429, 418):
        wait_s = parse_retry_after_s(retry_after)
        if wait_s is None:
            wait_s = _DEFAULT_RETRY_AFTER_S[status]
        kind = "IP banned" if status == 418 else "rate limited"
        return ExchangeUnavailable(f"{what}: {kind}: {err.msg}; retry after {wait_s:g}s",
                                   endpoint=endpoint, status=status, retry_after_s=wait_s)
    if err.code == CODE_TIMEOUT or (status == 503 and "unknown error" in err.msg.lower()):
        return OutcomeUnknown(f"{what}: execution status unknown: {err.msg}",
                              endpoint=endpoint, code=err.code)
    if status >= 500 or status == 408:
        return ExchangeUnavailable(f"{what}: {err.msg}", endpoint=endpoint, status=status)
    if status == 401 or err.code in AUTH_CODES:
        return AuthenticationFailed(err.code if err.code is not None else 0, err.msg, endpoint,
                                    status)
    return ExchangeRejected(err.code if err.code is not None else 0, err.msg, endpoint, status)


_QUERY = re.compile(r"\?\S*")

def classify_transport_failure(kind: str, detail: str, endpoint: str, *, idempotent: bool,
                               maybe_sent: bool) -> ExchangeError:
    """Map a transport failure (``kind``: the exception's name); a mutation that may have been
    sent is ``OutcomeUnknown``.

    A cancel whose answer timed out may well have executed: saying "unavailable" would invite a
    blind retry, so the caller is told to re-query instead (docs/BINANCE.md §5.2). A failure
    before the request could reach the server (``maybe_sent`` False) is always safe to retry.
    """
    detail = _QUERY.sub("?…", detail)  # a message may quote the signed URL
    if idempotent or not maybe_sent:
        return ExchangeUnavailable(f"{endpoint}: {kind}: {detail}", endpoint=endpoint)
    return OutcomeUnknown(f"{endpoint}: {kind} after sending: outcome unknown", endpoint=endpoint)
