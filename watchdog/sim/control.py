"""Control API (a public contract used by tests, the demo and operators; names are stable).

    POST   /sim/v1/mark-price  {"symbol", "price"[, "contract_price"]} → moves the mark price (and
                               the contract price, unless given separately); fires triggers
    POST   /sim/v1/fills       {"symbol", "side", "qty"[, "position_side", "parts", "api_key"]}
    POST   /sim/v1/liquidate   {"symbol"[, "position_side", "kind": "liquidation"|"adl",
                               "account_update": true, "api_key"]} → exchange-initiated close
    POST   /sim/v1/faults      any of the keys in :mod:`watchdog.sim.faults`; merged
    DELETE /sim/v1/faults      back to normal
    GET    /sim/v1/state       positions, open orders, open algo orders, listen keys (masked),
                               connected clients, events sent/dropped, faults, prices
    GET    /sim/v1/history?since=SEQ&limit=N  (read-only) every position change and order / algo
                               order status change since SEQ, with the position amount then
    POST   /sim/v1/reset       fresh accounts and prices, no faults, every connection cut
    POST   /sim/v1/listen-key/expire  {"api_key"?} → expire the account's listen key now
    POST   /sim/v1/flood       {"count", "rate_per_s"?, "symbols"?, "api_key"?} → benchmark
                               frames (see :mod:`watchdog.sim.flood`)

Errors answer 400 ``{"error": "…"}``; Binance rejections from the model keep their shape.
Secrets (API keys, listen keys) are shown masked only.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from loguru import logger

from watchdog.sim import flood
from watchdog.sim import rejections as rj
from watchdog.sim.orders import algo_rest, order_rest
from watchdog.sim.venue import VENUE, Venue

__all__ = ["add_routes", "mask"]


def mask(secret: str | None) -> str | None:
    """First 4 characters and an ellipsis: enough to tell keys apart, not to use one."""
    if secret is None:
        return None
    return secret[:4] + "…"


class _BadRequest(Exception):
    pass


def _decimal(doc: dict[str, Any], name: str) -> Decimal:
    try:
        value = Decimal(str(doc[name]))
    except (KeyError, InvalidOperation) as exc:
        raise _BadRequest(f"{name}: expected a decimal string, got {doc.get(name)!r}") from exc
    if not value.is_finite() or value <= 0:
        raise _BadRequest(f"{name}: must be positive, got {doc[name]!r}")
    return value


async def _doc(request: web.Request) -> dict[str, Any]:
    try:
        doc = await request.json()
    except ValueError as exc:
        raise _BadRequest(f"body: expected a JSON object ({exc})") from exc
    if not isinstance(doc, dict):
        raise _BadRequest("body: expected a JSON object")
    return doc


def _venue(request: web.Request) -> Venue:
    return request.app[VENUE]


def _api_key(venue: Venue, doc: dict[str, Any]) -> str:
    key = doc.get("api_key", venue.settings.api_key)
    if key not in venue.exchange.accounts:
        raise _BadRequest("api_key: no such account")
    return str(key)


def _handler(fn: Any) -> Any:
    async def handle(request: web.Request) -> web.Response:
        venue = _venue(request)
        try:
            result = await fn(request, venue)
        except _BadRequest as exc:
            logger.warning("sim control {} {} refused: {}", request.method, request.path, exc)
            return web.json_response({"error": str(exc)}, status=400)
        except rj.Rejection as exc:
            venue.flush()
            return web.json_response(exc.body(), status=exc.status)
        venue.flush()
        return web.json_response(result)
    return handle


async def _mark_price(request: web.Request, venue: Venue) -> Any:
    doc = await _doc(request)
    symbol = str(doc.get("symbol", ""))
    if symbol not in venue.exchange.specs:
        raise _BadRequest(f"symbol: not listed: {symbol!r}")
    mark = _decimal(doc, "price") if "price" in doc else None
    last = _decimal(doc, "contract_price") if "contract_price" in doc else mark
    if mark is None and last is None:
        raise _BadRequest("price or contract_price is required")
    venue.exchange.set_price(symbol, mark=mark, last=last)
    return {"symbol": symbol, "mark_price": f"{venue.exchange.mark[symbol]:f}",
            "contract_price": f"{venue.exchange.last[symbol]:f}"}


async def _fills(request: web.Request, venue: Venue) -> Any:
    doc = await _doc(request)
    symbol = str(doc.get("symbol", ""))
    if symbol not in venue.exchange.specs:
        raise _BadRequest(f"symbol: not listed: {symbol!r}")
    side = doc.get("side")
    if side not in ("BUY", "SELL"):
        raise _BadRequest(f"side: expected BUY or SELL, got {side!r}")
    qty = _decimal(doc, "qty")
    position_side = doc.get("position_side")
    parts = doc.get("parts", 1)
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise _BadRequest(f"parts: expected an integer >= 1, got {parts!r}")
    order = venue.exchange.market_fill(_api_key(venue, doc), symbol, side, qty, position_side, parts=parts)
    return order_rest(order, venue.exchange.specs[symbol], with_time=True)


async def _liquidate(request: web.Request, venue: Venue) -> Any:
    doc = await _doc(request)
    symbol = str(doc.get("symbol", ""))
    if symbol not in venue.exchange.specs:
        raise _BadRequest(f"symbol: not listed: {symbol!r}")
    account_update = doc.get("account_update", True)
    if not isinstance(account_update, bool):
        raise _BadRequest(f"account_update: expected true or false, got {account_update!r}")
    try:
        order = venue.exchange.force_close(
            _api_key(venue, doc), symbol, str(doc.get("position_side", "BOTH")),
            kind=str(doc.get("kind", "liquidation")), account_update=account_update)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from exc
    return order_rest(order, venue.exchange.specs[symbol], with_time=True)


async def _faults_post(request: web.Request, venue: Venue) -> Any:
    doc = await _doc(request)
    try:
        actions = venue.set_faults(doc)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from exc
    logger.info("sim faults set {} actions={}", venue.faults.to_json(), actions)
    return {"faults": venue.faults.to_json(), "actions": actions}


async def _faults_delete(request: web.Request, venue: Venue) -> Any:
    venue.clear_faults()
    logger.info("sim faults cleared")
    return {"faults": venue.faults.to_json()}


async def _state(request: web.Request, venue: Venue) -> Any:
    ex = venue.exchange
    now = ex.now_ms()
    loop = asyncio.get_running_loop()
    accounts = []
    for account in ex.accounts.values():
        accounts.append({
            "api_key": mask(account.api_key), "dual_side": account.dual_side,
            "wallet": f"{account.wallet:f}",
            "positions": [{"symbol": p.symbol, "position_side": p.position_side,
                           "amount": f"{p.amount:f}", "entry_price": f"{p.entry:f}",
                           "realized_pnl": f"{p.realized:f}", "update_time_ms": p.update_time_ms}
                          for p in account.positions.values() if p.amount],
            "open_orders": [order_rest(o, ex.specs[o.symbol], with_time=True) for o in account.open_orders()],
            "open_algo_orders": [algo_rest(a, ex.specs[a.symbol]) for a in account.open_algos()],
            "algo_orders": [algo_rest(a, ex.specs[a.symbol]) for a in account.algos.values()],
            "listen_key": None if account.listen_key is None else {
                "key": mask(account.listen_key), "expires_in_ms": account.listen_key_expires_ms - now},
        })
    connections = [{"id": c.id, "path": c.path, "listen_keys": [mask(k) for k in c.subscriptions],
                    "events": {mask(k): (None if e is None else sorted(e))
                               for k, e in c.subscriptions.items()},
                    "age_s": round(loop.time() - c.opened_at, 3)}
                   for c in sorted(venue.hub.connections, key=lambda c: c.id)]
    return {"time_ms": now, "accounts": accounts, "connections": connections,
            "market_connections": venue.market.describe(loop.time()),
            "market_events": venue.market.counts(),
            "events": venue.hub.counts(), "faults": venue.faults.to_json(),
            "prices": {s: {"mark_price": f"{ex.mark[s]:f}", "contract_price": f"{ex.last[s]:f}"}
                       for s in ex.specs},
            "weight_used_1m": venue.weights.used,
            "weight_used_1m_by_ip": {ip: m.used for ip, m in sorted(venue.weights_by_ip.items())}}


async def _history(request: web.Request, venue: Venue) -> Any:
    values = {}
    for name, default, top in (("since", 0, None), ("limit", 10_000, 10_000)):
        raw = request.query.get(name, str(default))
        try:
            values[name] = int(raw)
        except ValueError as exc:
            raise _BadRequest(f"{name}: expected an integer, got {raw!r}") from exc
        if values[name] < 0 or (top is not None and not 1 <= values[name] <= top):
            raise _BadRequest(f"{name}: out of range: {raw!r}")
    journal = venue.exchange.journal
    entries = journal.since(values["since"], values["limit"])
    oldest = journal.entries[0]["seq"] if journal.entries else journal.seq + 1
    return {"entries": entries, "last_seq": journal.seq, "oldest_seq": oldest,
            "time_ms": venue.exchange.now_ms(), "wall_ms": venue.exchange.wall_ms()}


async def _reset(request: web.Request, venue: Venue) -> Any:
    venue.reset()
    logger.info("sim reset")
    return {"reset": True}


async def _expire_listen_key(request: web.Request, venue: Venue) -> Any:
    doc = await _doc(request) if request.can_read_body else {}
    venue.exchange.force_expire_listen_key(_api_key(venue, doc))
    return {"expired": True}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/sim/v1/mark-price", _handler(_mark_price))
    app.router.add_post("/sim/v1/fills", _handler(_fills))
    app.router.add_post("/sim/v1/liquidate", _handler(_liquidate))
    app.router.add_post("/sim/v1/faults", _handler(_faults_post))
    app.router.add_delete("/sim/v1/faults", _handler(_faults_delete))
    app.router.add_get("/sim/v1/state", _handler(_state))
    app.router.add_get("/sim/v1/history", _handler(_history))
    app.router.add_post("/sim/v1/reset", _handler(_reset))
    app.router.add_post("/sim/v1/listen-key/expire", _handler(_expire_listen_key))
    app.router.add_post("/sim/v1/flood", flood.handle)
