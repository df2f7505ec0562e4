"""Flood: push many valid user-data frames, as fast as the client reads or at a fixed rate.

For benchmarks (``bench/run.py``): ``POST /sim/v1/flood {"count": n, "rate_per_s": r|null,
"symbols": [...], "api_key"?}`` sends ``n`` frames alternating ``ACCOUNT_UPDATE`` (one position
row, a new amount each time) and ``ORDER_TRADE_UPDATE`` (a limit order far from the price placed
(NEW), then cancelled (CANCELED) by the next one: nothing fills, no order stays open) to
every user-stream connection of the account's current listen key, then answers
``{"sent", "connections", "elapsed_s", "rate_per_s", "first_event_ms", "last_event_ms",
"final_amounts": {symbol: amount}}``.

Rules of this module:
1. Frames are Binance-shaped (the same builders as the model's events) and serialised once per
   symbol into templates; only ``E``/``T`` (the send time in ms, never decreasing) and the order
   id are filled in per frame, so the simulator is not the bottleneck.
2. ``rate_per_s`` null: frames go out in chunks as fast as the client reads them (at most
   ~1 MiB unread per connection; no queue grows in the simulator). A rate: frame ``k`` is due
   at ``start + k / rate`` and is sent through aiohttp like every other event.
3. Amounts move away from zero and alternate between two values per symbol (``A + 1 step``,
   ``A + 2 steps`` where ``A`` is the model's amount), so every ACCOUNT_UPDATE is a state change
   and a position never flips. When the flood ends the model holds each symbol's last amount (at
   the symbol's price, with the last frame's time), so REST agrees with the stream.
4. Stream faults apply: ``mute``/``stall`` refuse the flood (400); frames bypass the per-event
   queue, so ``delay_events_ms``/``drop_events`` do not apply to them.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

from aiohttp import web

from watchdog.sim import events as ev
from watchdog.sim.hub import Connection
from watchdog.sim.orders import ZERO, Order

__all__ = ["FloodError", "flood"]

MAX_COUNT = 10_000_000
_CHUNK = 128               # frames per transport write at full speed
_HIGH_WATER = 1 << 20      # bytes the client may leave unread before we wait for it
_DRAIN_POLL_S = 0.0005
_TYPES = ("ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE")
# Placeholders replaced per frame (digits only, so the template stays valid JSON).
_E, _ID = 1111111111111, 3333333333333
_ORDER_IDS = 9_000_000_000_000


class FloodError(ValueError):
    """A bad flood request; the message names the field."""


def _template(event: dict[str, object]) -> str:
    """``event`` as compact JSON turned into a ``str.format`` template: {0} time, {1} order id."""
    text = json.dumps(event, separators=(",", ":")).replace("{", "{{").replace("}", "}}")
    return text.replace(str(_E), "{0}").replace(str(_ID), "{1}")


class _Frames:
    """Per-symbol templates; ``frame(k, now_ms)`` returns the k-th frame's text."""

    def __init__(self, venue: Any, api_key: str, symbols: list[str]) -> None:
        exchange = venue.exchange
        account = exchange.account(api_key)
        side = "LONG" if account.dual_side else "BOTH"
        self.symbols = symbols
        self.side = side
        self.amounts: list[tuple[Decimal, Decimal]] = []
        self.account_updates: list[list[str]] = []
        self.order_updates: list[tuple[str, str]] = []
        for symbol in symbols:
            spec = exchange.specs[symbol]
            held = account.positions.get((symbol, side))
            base = held.amount if held is not None else ZERO
            sign = -1 if base < 0 else 1
            pair = (base + sign * spec.step_size, base + 2 * sign * spec.step_size)
            self.amounts.append(pair)
            rows = []
            for amount in pair:
                row = ev.position_row(symbol, side, amount, spec.price, ZERO, ZERO, spec)
                rows.append(_template(ev.account_update("ORDER", account.wallet, ZERO, [row], _E)))
            self.account_updates.append(rows)
            order = Order(_ID, "flood", symbol, "BUY", "LIMIT", "GTC", spec.step_size,
                          spec.price / 2, side, False, False, _E, _E)
            placed = _template(ev.order_trade_update(order, spec, execution="NEW", now_ms=_E))
            order.status = "CANCELED"
            cancelled = _template(ev.order_trade_update(order, spec, execution="CANCELED", now_ms=_E))
            self.order_updates.append((placed, cancelled))

    def frame(self, k: int, now_ms: int) -> tuple[str, str]:
        """(event type, text) of frame ``k``: even k ACCOUNT_UPDATE, odd ORDER_TRADE_UPDATE."""
        n = len(self.symbols)
        index = (k // 2) % n
        if k % 2 == 0:
            return _TYPES[0], self.account_updates[index][(k // (2 * n)) % 2].format(now_ms)
        m = k // 2  # the m-th order frame: order m // 2 is placed, then cancelled
        placed, cancelled = self.order_updates[(m // 2) % n]
        return _TYPES[1], (cancelled if m % 2 else placed).format(now_ms, _ORDER_IDS + m // 2)

    def final_amounts(self, count: int) -> dict[str, Decimal]:
        """Each symbol's amount after ``count`` frames (symbols without a frame: absent)."""
        n = len(self.symbols)
        final: dict[str, Decimal] = {}
        for k in range(max(0, count - 2 * 2 * n), count):
            if k % 2 == 0:
                index = (k // 2) % n
                final[self.symbols[index]] = self.amounts[index][(k // (2 * n)) % 2]
        return final


def _targets(venue: Any, api_key: str) -> list[Connection]:
    key = venue.exchange.account(api_key).listen_key
    found = []
    for conn in venue.hub.connections:
        if key is None or key not in conn.subscriptions or conn.ws.closed:
            continue
        wanted = conn.subscriptions[key]
        if wanted is None or all(t in wanted for t in _TYPES):
            found.append(conn)
    return found


def parse_request(doc: dict[str, Any], venue: Any) -> tuple[int, float | None, list[str]]:
    """Validate a flood document; returns (count, rate_per_s or None, symbols)."""
    count = doc.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise FloodError(f"count: expected an integer 1..{MAX_COUNT}, got {count!r}")
    rate = doc.get("rate_per_s")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0):
        raise FloodError(f"rate_per_s: expected a positive number or null, got {rate!r}")
    symbols = doc.get("symbols", list(venue.exchange.specs)[:1])
    if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
        raise FloodError(f"symbols: expected a non-empty list of symbols, got {symbols!r}")
    unknown = [s for s in symbols if s not in venue.exchange.specs]
    if unknown:
        raise FloodError(f"symbols: not listed: {unknown}")
    return count, None if rate is None else float(rate), symbols


async def flood(venue: Any, api_key: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Send the frames (see the module rules) and report what was sent."""
    count, rate, symbols = parse_request(doc, venue)
    if venue.hub.faults.stream in ("mute", "stall"):
        raise FloodError(f"stream fault {venue.hub.faults.stream!r} is active: nothing would arrive")
    targets = _targets(venue, api_key)
    if not targets:
        raise FloodError("no user-stream connection of this account receives "
                         "ACCOUNT_UPDATE and ORDER_TRADE_UPDATE")
    frames = _Frames(venue, api_key, symbols)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stamps: list[int] = []
    if rate is None:
        await _burst(venue, targets, frames, count, stamps)
    else:
        await _paced(venue, targets, frames, count, rate, stamps)
    elapsed = loop.time() - started
    first_ms, last_ms = stamps[0], stamps[-1]
    _settle(venue, api_key, frames, count, last_ms)
    return {"sent": count, "connections": len(targets), "elapsed_s": round(elapsed, 6),
            "rate_per_s": round(count / elapsed, 1) if elapsed > 0 else None,
            "first_event_ms": first_ms, "last_event_ms": last_ms,
            "final_amounts": {s: f"{a:f}" for s, a in frames.final_amounts(count).items()}}


async def _paced(venue: Any, targets: list[Connection], frames: _Frames, count: int, rate: float,
                 stamps: list[int]) -> None:
    """Frame ``k`` at ``start + k / rate``, stamped with its own send time."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    last_ms = 0
    for k in range(count):
        delay = started + k / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        last_ms = max(last_ms, int(time.time() * 1000))
        event_type, text = frames.frame(k, last_ms)
        for conn in targets:
            if not conn.ws.closed:
                await conn.ws.send_str(text)
        venue.hub.sent[event_type] += 1
        if not stamps:
            stamps.append(last_ms)
    stamps.append(last_ms)


async def _burst(venue: Any, targets: list[Connection], frames: _Frames, count: int,
                 stamps: list[int]) -> None:
    """As fast as the client reads: frames are encoded here and written in chunks straight to
    the transport (unmasked, uncompressed text frames — valid with or without permessage-deflate,
    RFC 7692 §6), waiting while the client leaves more than ``_HIGH_WATER`` bytes unread."""
    last_ms = 0
    for start in range(0, count, _CHUNK):
        last_ms = max(last_ms, int(time.time() * 1000))
        if not stamps:
            stamps.append(last_ms)
        chunk = []
        for k in range(start, min(count, start + _CHUNK)):
            event_type, text = frames.frame(k, last_ms)
            chunk.append(_ws_text_frame(text.encode()))
            venue.hub.sent[event_type] += 1
        data = b"".join(chunk)
        for conn in targets:
            transport = conn.request.transport
            if transport is None or transport.is_closing():
                continue
            transport.write(data)
            # A raw transport has no public drain(): poll its buffer (bounded, sub-ms).
            while transport.get_write_buffer_size() > _HIGH_WATER and not transport.is_closing():  # noqa: ASYNC110
                await asyncio.sleep(_DRAIN_POLL_S)
    stamps.append(last_ms)


def _ws_text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (server to client, RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def _settle(venue: Any, api_key: str, frames: _Frames, count: int, last_ms: int) -> None:
    """Rule 3: the model (REST) ends where the stream left each symbol."""
    exchange = venue.exchange
    account = exchange.account(api_key)
    for symbol, amount in frames.final_amounts(count).items():
        position = account.position(symbol, frames.side)
        position.amount = amount
        position.entry = exchange.specs[symbol].price
        position.update_time_ms = last_ms
    exchange._commit(account)  # keep the REST-lag history consistent (same package)


async def handle(request: web.Request) -> web.Response:
    """``POST /sim/v1/flood``; 400 ``{"error"}`` on a bad request."""
    from watchdog.sim.venue import VENUE

    venue = request.app[VENUE]
    try:
        doc = await request.json()
        if not isinstance(doc, dict):
            raise FloodError("body: expected a JSON object")
        key = doc.get("api_key", venue.settings.api_key)
        if key not in venue.exchange.accounts:
            raise FloodError("api_key: no such account")
        result = await flood(venue, str(key), doc)
    except (FloodError, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(result)
