"""Public market data in Binance's shapes: klines, ticker price, premium index. Pure.

The simulator keeps no price history: every candle is flat at the contract price as it stands
(open = high = low = close, volume 0), which is what a client needs to parse and page klines;
tests that need a move set the price through the control API. Funding is a constant 0.01 %
every 8 hours (00:00, 08:00, 16:00 UTC), as Binance's default rate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from watchdog.sim import rejections as rj
from watchdog.sim.market import SymbolSpec

__all__ = ["INTERVALS", "kline_weight", "klines", "premium_index", "ticker_price"]

_MINUTE = 60_000
# Binance's kline intervals (``1M`` is a calendar month, handled apart).
INTERVALS: dict[str, int] = {
    "1m": _MINUTE, "3m": 3 * _MINUTE, "5m": 5 * _MINUTE, "15m": 15 * _MINUTE, "30m": 30 * _MINUTE,
    "1h": 60 * _MINUTE, "2h": 120 * _MINUTE, "4h": 240 * _MINUTE, "6h": 360 * _MINUTE,
    "8h": 480 * _MINUTE, "12h": 720 * _MINUTE, "1d": 1440 * _MINUTE, "3d": 3 * 1440 * _MINUTE,
    "1w": 7 * 1440 * _MINUTE, "1M": 0,
}
_FUNDING_MS = 8 * 60 * _MINUTE
_FUNDING_RATE = "0.00010000"
# 1970-01-01 was a Thursday; Binance's weekly candles open on Monday 00:00 UTC.
_WEEK_OFFSET_MS = 4 * 1440 * _MINUTE


def kline_weight(limit: int) -> int:
    """Weight by ``limit``: [1, 100) 1, [100, 500) 2, [500, 1000] 5, above 10."""
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def _month_start(time_ms: int, shift: int = 0) -> int:
    moment = datetime.fromtimestamp(time_ms / 1000, UTC)
    months = moment.year * 12 + moment.month - 1 + shift
    return int(datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC).timestamp() * 1000)


def _open_time(time_ms: int, interval: str) -> int:
    if interval == "1M":
        return _month_start(time_ms)
    length = INTERVALS[interval]
    offset = _WEEK_OFFSET_MS if interval == "1w" else 0
    return (time_ms - offset) // length * length + offset


def _next_open(open_ms: int, interval: str) -> int:
    return _month_start(open_ms, 1) if interval == "1M" else open_ms + INTERVALS[interval]


def klines(spec: SymbolSpec, price: Decimal, *, interval: str, limit: int, now_ms: int,
           start_ms: int | None, end_ms: int | None) -> list[list[object]]:
    """``GET /fapi/v1/klines``: up to ``limit`` candles, oldest first; the newest one is the
    candle open at ``now_ms`` (or at ``end_ms``); with ``start_ms`` they start there."""
    if interval not in INTERVALS:
        raise rj.Rejection(-1120, "Invalid interval.")
    if not 1 <= limit <= 1500:
        raise rj.Rejection(-1130, "Data sent for parameter 'limit' is not valid.")
    last_open = _open_time(min(now_ms, end_ms) if end_ms is not None else now_ms, interval)
    opens: list[int] = []
    if start_ms is not None:
        at = _open_time(start_ms, interval)
        at = at if at >= start_ms else _next_open(at, interval)
        while at <= last_open and len(opens) < limit:
            opens.append(at)
            at = _next_open(at, interval)
    else:
        at = last_open
        while len(opens) < limit and at >= 0:
            opens.append(at)
            at = _open_time(at - 1, interval)
        opens.reverse()
    text = spec.fmt_price(price)
    return [[o, text, text, text, text, "0", _next_open(o, interval) - 1, "0", 0, "0", "0", "0"]
            for o in opens]


def ticker_price(specs: list[SymbolSpec], last: dict[str, Decimal], now_ms: int,
                 symbol: str | None) -> dict[str, object] | list[dict[str, object]]:
    """``GET /fapi/v1/ticker/price`` and ``/fapi/v2/ticker/price``: one object with ``symbol``,
    a list without."""
    rows = [{"symbol": s.symbol, "price": s.fmt_price(last[s.symbol]), "time": now_ms}
            for s in specs if symbol is None or s.symbol == symbol]
    return rows[0] if symbol is not None else rows


def premium_index(specs: list[SymbolSpec], mark: dict[str, Decimal], now_ms: int,
                  symbol: str | None) -> dict[str, object] | list[dict[str, object]]:
    """``GET /fapi/v1/premiumIndex``: mark price and funding; one object with ``symbol``."""
    next_funding = (now_ms // _FUNDING_MS + 1) * _FUNDING_MS
    rows: list[dict[str, object]] = []
    for s in specs:
        if symbol is not None and s.symbol != symbol:
            continue
        price = f"{mark[s.symbol]:f}"
        rows.append({"symbol": s.symbol, "markPrice": price, "indexPrice": price,
                     "estimatedSettlePrice": price, "lastFundingRate": _FUNDING_RATE,
                     "interestRate": "0.00010000", "nextFundingTime": next_funding, "time": now_ms})
    return rows[0] if symbol is not None else rows
