"""The market streams' pure parts and their hub (no routes: ``market_stream.py`` serves them).

Payload shapes as Binance's Mark-Price-Stream and Aggregate-Trade-Streams pages; limits as
docs/BINANCE.md §1.3 (1024 streams per connection, 10 incoming messages per second).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from aiohttp import web

from watchdog.sim.market import SymbolSpec
from watchdog.sim.matching import MarketPrint
from watchdog.sim.ws_shell import MAX_INCOMING_PER_S, ConnectionSet, IncomingRate, read_request

__all__ = [
    "MAX_INCOMING_PER_S",
    "MAX_STREAMS",
    "IncomingRate",
    "MarketConnection",
    "MarketHub",
    "agg_trade",
    "answer_market_request",
    "mark_price_update",
    "parse_stream",
]

MAX_STREAMS = 1024          # "A single connection can listen to a maximum of 1024 streams."
KINDS = ("markPrice@1s", "markPrice", "aggTrade")
_FUNDING_RATE = "0.00010000"
_FUNDING_MS = 8 * 3600 * 1000
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def parse_stream(name: str, symbols: Iterable[str]) -> tuple[str, str] | None:
    """``"btcusdt@markPrice@1s"`` → ``("BTCUSDT", "markPrice@1s")``; None for anything else
    (an unlisted symbol, another stream type, or a symbol not in lower case)."""
    symbol, _, kind = name.partition("@")
    if kind not in KINDS or symbol != symbol.lower() or symbol.upper() not in symbols:
        return None
    return symbol.upper(), kind


def mark_price_update(spec: SymbolSpec, mark: Decimal, now_ms: int) -> dict[str, object]:
    """``markPriceUpdate`` (Mark-Price-Stream): index and settle price equal to the mark here."""
    price = f"{mark:f}"
    return {"e": "markPriceUpdate", "E": now_ms, "s": spec.symbol, "p": price, "i": price,
            "P": price, "r": _FUNDING_RATE, "T": (now_ms // _FUNDING_MS + 1) * _FUNDING_MS}


def agg_trade(spec: SymbolSpec, agg_id: int, trade_id: int, p: MarketPrint, now_ms: int
              ) -> dict[str, object]:
    """``aggTrade`` (Aggregate-Trade-Streams): one print, first and last trade id equal."""
    return {"e": "aggTrade", "E": now_ms, "a": agg_id, "s": spec.symbol,
            "p": spec.fmt_price(p.price), "q": spec.fmt_qty(p.qty), "f": trade_id,
            "l": trade_id, "T": p.time_ms, "m": p.buyer_maker}


def answer_market_request(text: str, subs: frozenset[str], symbols: Iterable[str]
                          ) -> tuple[dict[str, object], frozenset[str]]:
    """The reply to a client's request frame and the subscriptions after it (PURE).

    A name that is no stream of ours is refused (code 2) and nothing changes; so is a
    SUBSCRIBE that would take the connection past ``MAX_STREAMS``.
    """
    request = read_request(text, subs)
    if isinstance(request, dict):
        return request, subs
    request_id, method, params = request.id, request.method, request.params
    listed = set(symbols)
    bad = [p for p in params if parse_stream(p, listed) is None]
    if bad:
        return {"error": {"code": 2, "msg": f"Invalid request: unknown stream name(s) {bad!r}"},
                "id": request_id}, subs
    after = subs - set(params) if method == "UNSUBSCRIBE" else subs | set(params)
    if len(after) > MAX_STREAMS:
        return {"error": {"code": 2, "msg": f"Invalid request: more than {MAX_STREAMS} streams "
                                            "on one connection"}, "id": request_id}, subs
    return {"result": None, "id": request_id}, frozenset(after)


@dataclass(eq=False)
class MarketConnection:
    id: int
    ws: web.WebSocketResponse
    request: web.Request
    wrap: bool
    subs: frozenset[str]
    opened_at: float
    last_pong_at: float
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    rate: IncomingRate = field(default_factory=IncomingRate)


class MarketHub(ConnectionSet[MarketConnection]):
    """Market connections, what they subscribed, and the frames sent per stream type."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.mode = "normal"  # fault ``market``: normal | mute | stall
        self.ids = itertools.count(1)
        self._agg_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)

    async def resubscribe(self, conn: MarketConnection, subs: frozenset[str]) -> None:
        await self._change(lambda: setattr(conn, "subs", subs))

    async def wait_subscribed(self, streams: Iterable[str], timeout_s: float = 10.0) -> None:
        """Until some connection subscribes to every name in ``streams``."""
        wanted = set(streams)
        await self._wait_for(lambda: any(wanted <= c.subs for c in self.connections), timeout_s)

    def subscribed(self) -> set[str]:
        """Every stream some connection receives."""
        return {s for c in self.connections for s in c.subs}

    def publish(self, specs: dict[str, SymbolSpec], prints: list[MarketPrint], now: int) -> None:
        """Hand the model's public prints to the subscribed connections, in order."""
        if not self.connections:
            return
        for p in prints:
            spec = specs[p.symbol]
            if p.kind == "mark":
                payload = mark_price_update(spec, p.price, now)
                self._send(f"{p.symbol.lower()}@markPrice@1s", payload)
                self._send(f"{p.symbol.lower()}@markPrice", payload)
            else:
                payload = agg_trade(spec, next(self._agg_ids), next(self._trade_ids), p, now)
                self._send(f"{p.symbol.lower()}@aggTrade", payload)

    def tick_marks(self, specs: dict[str, SymbolSpec], mark: dict[str, Decimal], kind: str,
                   now: int) -> None:
        """The periodic mark price: one update per subscribed symbol of stream ``kind``."""
        suffix = f"@{kind}"
        for name in sorted({s for s in self.subscribed() if s.endswith(suffix)}):
            parsed = parse_stream(name, specs)
            if parsed is not None and parsed[1] == kind:
                self._send(name, mark_price_update(specs[parsed[0]], mark[parsed[0]], now))

    def _send(self, name: str, payload: dict[str, object]) -> None:
        kind = name.partition("@")[2]
        raw: str | None = None
        for conn in self.connections:
            if name not in conn.subs:
                continue
            if self.mode != "normal":
                self.dropped[kind] += 1
                continue
            if conn.wrap:
                conn.queue.put_nowait(_dumps({"stream": name, "data": payload}))
            else:
                raw = raw or _dumps(payload)
                conn.queue.put_nowait(raw)
            self.sent[kind] += 1

    def describe(self, now: float) -> list[dict[str, object]]:
        return [{"id": c.id, "path": c.request.path, "streams": sorted(c.subs),
                 "age_s": round(now - c.opened_at, 3)}
                for c in sorted(self.connections, key=lambda c: c.id)]

    def counts(self) -> dict[str, object]:
        return {"sent": dict(self.sent), "dropped": dict(self.dropped)}
