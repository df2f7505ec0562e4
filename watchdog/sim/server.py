"""The simulator's aiohttp Application: Binance REST routes, user streams and control API on
one port. REST is strict on purpose: API key, HMAC signature over the raw
query+body, ``timestamp``/``recvWindow``, mandatory parameters, request weights, and
Binance-shaped ``{"code", "msg"}`` errors with Binance's HTTP statuses.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from loguru import logger

from watchdog.sim import control, market_data, market_stream, stream, views
from watchdog.sim import rejections as rj
from watchdog.sim.account import AccountView
from watchdog.sim.auth import check_timestamp, merge_params, verify_signature
from watchdog.sim.market import exchange_info, leverage_brackets
from watchdog.sim.orders import algo_rest, order_rest
from watchdog.sim.requests import Params, parse_bool, require
from watchdog.sim.venue import VENUE, Venue

__all__ = ["ROUTES", "build_app"]

NONE, USER_STREAM, SIGNED = "NONE", "USER_STREAM", "SIGNED"
Handler = Callable[[Venue, str, Params], Any]
Weight = int | Callable[[Params], int]
# Binance sends compact JSON: {"code":-2021,"msg":"…"} (ccxt error strings quote it verbatim).
_dumps = functools.partial(json.dumps, separators=(",", ":"))
_CANCEL_ALL = {"code": 200, "msg": "The operation of cancel all open order is done."}


def _authenticate(request: web.Request, venue: Venue, security: str, query: str, body: str,
                  params: Params) -> str:
    api_key = request.headers.get("X-MBX-APIKEY")
    if not api_key:
        raise rj.bad_api_key_format()
    account = venue.exchange.accounts.get(api_key)
    if account is None or venue.faults.ip_not_whitelisted:
        raise rj.unknown_api_key()  # Binance's answer to an IP outside the key's whitelist too
    if security == SIGNED:
        if "signature" not in params:
            raise rj.mandatory_param("signature")
        check_timestamp(params, venue.now_ms())
        verify_signature(query, body, account.api_secret)
    return api_key


def _metered_ip(request: web.Request, weight_key: str) -> str:
    """Whose IP weight a request counts in (``SimSettings.weight_key``)."""
    if weight_key == "dialled":
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return str(sockname[0]) if sockname else ""
    if weight_key == "peer":
        return request.remote or ""
    return ""


def _endpoint(security: str, weight: Weight, fn: Handler, *, counts_order: bool = False
              ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        venue = request.app[VENUE]
        headers: dict[str, str] = {}
        try:
            injected = venue.take_rest_error()
            if injected is not None:
                raise rj.server_error(*injected)
            query = request.rel_url.raw_query_string
            body = (await request.read()).decode()
            params = merge_params(query, body)
            ip = _metered_ip(request, venue.settings.weight_key)
            meter = venue.meter(ip)
            charged = weight(params) if callable(weight) else weight
            used = meter.charge(venue.now_ms(), charged)
            if venue.on_charge is not None:
                venue.on_charge(ip, f"{request.method} {request.path}",
                                request.headers.get("X-MBX-APIKEY", ""), charged)
            headers["X-MBX-USED-WEIGHT-1M"] = str(used)
            api_key = ""
            if security != NONE:
                api_key = _authenticate(request, venue, security, query, body, params)
            if counts_order:
                headers.update(venue.order_counter.count(api_key, venue.now_ms()))
            result = fn(venue, api_key, params)
        except rj.Rejection as exc:
            # The path only: query strings carry signatures.
            logger.debug("sim rejected {} {} status={} code={}", request.method, request.path,
                         exc.status, exc.code)
            headers.update(exc.headers)
            headers.setdefault("X-MBX-USED-WEIGHT-1M",
                               str(venue.meter(_metered_ip(request, venue.settings.weight_key)).used))
            venue.flush()
            return web.json_response(exc.body(), status=exc.status, headers=headers, dumps=_dumps)
        venue.flush()
        return web.json_response(result, headers=headers, dumps=_dumps)

    return handle


def _symbol(venue: Venue, params: Params, *, required: bool) -> str | None:
    symbol = require(params, "symbol") if required else params.get("symbol")
    if symbol is not None and symbol not in venue.exchange.specs:
        raise rj.invalid_symbol()
    return symbol


def _int(params: Params, name: str) -> int | None:
    text = params.get(name)
    if text is None:
        return None
    if not text.isdigit():
        raise rj.mandatory_param(name)
    return int(text)


def _ids(params: Params, id_name: str, client_name: str) -> tuple[int | None, str | None]:
    order_id, client_id = _int(params, id_name), params.get(client_name)
    if order_id is None and not client_id:
        raise rj.Rejection(-1102, f"Param '{id_name}' or '{client_name}' must be sent, "
                                  "but both were empty/null!")
    return order_id, client_id


def _per_symbol(params: Params) -> int:
    return 1 if params.get("symbol") else 40


# ---------------------------------------------------------------- handlers (sync, pure over Venue)

def _time(v: Venue, _k: str, _p: Params) -> Any:
    return {"serverTime": v.now_ms()}


def _exchange_info(v: Venue, _k: str, _p: Params) -> Any:
    return exchange_info(list(v.exchange.specs.values()), v.now_ms())


def _leverage_bracket(v: Venue, _k: str, p: Params) -> Any:
    symbol = _symbol(v, p, required=False)
    rows = leverage_brackets(list(v.exchange.specs.values()), symbol)
    return rows[0] if symbol else rows


def _listen_key_post(v: Venue, k: str, _p: Params) -> Any:
    return {"listenKey": v.exchange.create_listen_key(k)}


def _listen_key_put(v: Venue, k: str, _p: Params) -> Any:
    return {"listenKey": v.exchange.keepalive_listen_key(k)}


def _listen_key_delete(v: Venue, k: str, _p: Params) -> Any:
    key = v.exchange.close_listen_key(k)
    if key is not None:
        v.hub.close_key(key)
    return {}


def _lag(v: Venue, k: str) -> AccountView:
    return v.exchange.view(k, v.faults.rest_lag_ms)


def _position_risk_v2(v: Venue, k: str, p: Params) -> Any:
    return views.position_risk_v2(_lag(v, k), v.exchange.specs, _symbol(v, p, required=False))


def _position_risk_v3(v: Venue, k: str, p: Params) -> Any:
    return views.position_risk_v3(_lag(v, k), v.exchange.specs, _symbol(v, p, required=False))


def _account_v2(v: Venue, k: str, _p: Params) -> Any:
    return views.account_v2(_lag(v, k), v.exchange.specs)


def _account_v3(v: Venue, k: str, _p: Params) -> Any:
    return views.account_v3(_lag(v, k), v.exchange.specs)


def _dual_get(v: Venue, k: str, _p: Params) -> Any:
    return {"dualSidePosition": v.exchange.account(k).dual_side}


def _dual_post(v: Venue, k: str, p: Params) -> Any:
    require(p, "dualSidePosition")
    v.exchange.set_dual_side(k, parse_bool(p, "dualSidePosition"))
    return {"code": 200, "msg": "success"}


def _leverage(v: Venue, k: str, p: Params) -> Any:
    symbol = _symbol(v, p, required=True)
    assert symbol is not None
    leverage = _int(p, "leverage")
    if leverage is None:
        raise rj.mandatory_param("leverage")
    v.exchange.set_leverage(k, symbol, leverage)
    return {"leverage": leverage, "maxNotionalValue": "500000", "symbol": symbol}


def _order_post(v: Venue, k: str, p: Params) -> Any:
    order = v.exchange.place_order(k, p)
    return order_rest(order, v.exchange.specs[order.symbol], with_time=False)


def _order_get(v: Venue, k: str, p: Params) -> Any:
    symbol = _symbol(v, p, required=True)
    assert symbol is not None
    order = v.exchange.find_order(k, symbol, *_ids(p, "orderId", "origClientOrderId"))
    return order_rest(order, v.exchange.specs[symbol], with_time=True)


def _order_delete(v: Venue, k: str, p: Params) -> Any:
    symbol = _symbol(v, p, required=True)
    assert symbol is not None
    order = v.exchange.cancel_order(k, symbol, *_ids(p, "orderId", "origClientOrderId"))
    return order_rest(order, v.exchange.specs[symbol], with_time=False)


def _open_orders(v: Venue, k: str, p: Params) -> Any:
    return views.open_orders(_lag(v, k), v.exchange.specs, _symbol(v, p, required=False))


def _all_open_orders_delete(v: Venue, k: str, p: Params) -> Any:
    symbol = _symbol(v, p, required=True)
    assert symbol is not None
    v.exchange.cancel_all_orders(k, symbol)
    return _CANCEL_ALL


def _limit(params: Params, default: int, maximum: int) -> int:
    limit = _int(params, "limit")
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise rj.Rejection(-1130, "Data sent for parameter 'limit' is not valid.")
    return limit


def _klines(v: Venue, _k: str, p: Params) -> Any:
    symbol = _symbol(v, p, required=True)
    assert symbol is not None
    return market_data.klines(v.exchange.specs[symbol], v.exchange.last[symbol],
                              interval=require(p, "interval"), limit=_int(p, "limit") or 500,
                              now_ms=v.now_ms(), start_ms=_int(p, "startTime"), end_ms=_int(p, "endTime"))


def _kline_weight(p: Params) -> int:
    text = p.get("limit", "500")
    return market_data.kline_weight(int(text) if text.isdigit() else 500)


def _ticker_price(v: Venue, _k: str, p: Params) -> Any:
    return market_data.ticker_price(list(v.exchange.specs.values()), v.exchange.last, v.now_ms(),
                                    _symbol(v, p, required=False))


def _premium_index(v: Venue, _k: str, p: Params) -> Any:
    return market_data.premium_index(list(v.exchange.specs.values()), v.exchange.mark, v.now_ms(),
                                     _symbol(v, p, required=False))


def _balance(v: Venue, k: str, _p: Params) -> Any:
    # Binance's alias is a short opaque per-account name; derived here, never the key itself.
    return views.balance(_lag(v, k), account_alias=hashlib.sha256(k.encode()).hexdigest()[:6])


def _user_trades(v: Venue, k: str, p: Params) -> Any:
    symbol = _symbol(v, p, required=True)
    assert symbol is not None
    return views.user_trades(v.exchange.account(k).trades, v.exchange.specs[symbol],
                             order_id=_int(p, "orderId"), start_ms=_int(p, "startTime"),
                             end_ms=_int(p, "endTime"), from_id=_int(p, "fromId"),
                             limit=_limit(p, 500, 1000))


def _algo_post(v: Venue, k: str, p: Params) -> Any:
    algo = v.exchange.place_algo(k, p)
    return algo_rest(algo, v.exchange.specs[algo.symbol])


def _algo_get(v: Venue, k: str, p: Params) -> Any:
    algo = v.exchange.find_algo(k, *_ids(p, "algoId", "clientAlgoId"))
    return algo_rest(algo, v.exchange.specs[algo.symbol])


def _algo_delete(v: Venue, k: str, p: Params) -> Any:
    algo = v.exchange.cancel_algo(k, *_ids(p, "algoId", "clientAlgoId"))
    return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}


def _open_algo_orders(v: Venue, k: str, p: Params) -> Any:
    rows = views.open_algo_orders(_lag(v, k), v.exchange.specs, _symbol(v, p, required=False))
    algo_id = _int(p, "algoId")
    return [r for r in rows if algo_id is None or r["algoId"] == algo_id]


def _algo_open_orders_delete(v: Venue, k: str, p: Params) -> Any:
    symbol = _symbol(v, p, required=True)
    assert symbol is not None
    v.exchange.cancel_all_algos(k, symbol)
    return _CANCEL_ALL


ROUTES: list[tuple[str, str, str, Weight, Handler, bool]] = [
    ("GET", "/fapi/v1/ping", NONE, 1, lambda v, k, p: {}, False),
    ("GET", "/fapi/v1/time", NONE, 1, _time, False),
    ("GET", "/fapi/v1/exchangeInfo", NONE, 1, _exchange_info, False),
    ("GET", "/fapi/v1/leverageBracket", SIGNED, 1, _leverage_bracket, False),
    ("GET", "/fapi/v1/klines", NONE, _kline_weight, _klines, False),
    ("GET", "/fapi/v1/ticker/price", NONE, lambda p: 1 if p.get("symbol") else 2, _ticker_price, False),
    ("GET", "/fapi/v2/ticker/price", NONE, lambda p: 1 if p.get("symbol") else 2, _ticker_price, False),
    ("GET", "/fapi/v1/premiumIndex", NONE, lambda p: 1 if p.get("symbol") else 10, _premium_index, False),
    ("GET", "/fapi/v1/userTrades", SIGNED, 5, _user_trades, False),
    ("GET", "/fapi/v2/balance", SIGNED, 5, _balance, False),
    ("GET", "/fapi/v3/balance", SIGNED, 5, _balance, False),
    ("POST", "/fapi/v1/listenKey", USER_STREAM, 1, _listen_key_post, False),
    ("PUT", "/fapi/v1/listenKey", USER_STREAM, 1, _listen_key_put, False),
    ("DELETE", "/fapi/v1/listenKey", USER_STREAM, 1, _listen_key_delete, False),
    ("GET", "/fapi/v2/positionRisk", SIGNED, 5, _position_risk_v2, False),
    ("GET", "/fapi/v3/positionRisk", SIGNED, 5, _position_risk_v3, False),
    ("GET", "/fapi/v2/account", SIGNED, 5, _account_v2, False),
    ("GET", "/fapi/v3/account", SIGNED, 5, _account_v3, False),
    ("GET", "/fapi/v1/positionSide/dual", SIGNED, 30, _dual_get, False),
    ("POST", "/fapi/v1/positionSide/dual", SIGNED, 1, _dual_post, False),
    ("POST", "/fapi/v1/leverage", SIGNED, 1, _leverage, False),
    ("POST", "/fapi/v1/order", SIGNED, 0, _order_post, True),
    ("GET", "/fapi/v1/order", SIGNED, 1, _order_get, False),
    ("DELETE", "/fapi/v1/order", SIGNED, 1, _order_delete, False),
    ("GET", "/fapi/v1/openOrders", SIGNED, _per_symbol, _open_orders, False),
    ("DELETE", "/fapi/v1/allOpenOrders", SIGNED, 1, _all_open_orders_delete, False),
    ("POST", "/fapi/v1/algoOrder", SIGNED, 0, _algo_post, True),
    ("GET", "/fapi/v1/algoOrder", SIGNED, 1, _algo_get, False),
    ("DELETE", "/fapi/v1/algoOrder", SIGNED, 1, _algo_delete, False),
    ("GET", "/fapi/v1/openAlgoOrders", SIGNED, _per_symbol, _open_algo_orders, False),
    ("DELETE", "/fapi/v1/algoOpenOrders", SIGNED, 1, _algo_open_orders_delete, False),
]


@web.middleware
async def _binance_not_found(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                             ) -> web.StreamResponse:
    """An unknown path or method answers as Binance does, in JSON a client can parse (aiohttp's
    default is a plain-text "404: Not Found"); the control API keeps its own error shape."""
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if request.path.startswith("/sim/"):
            return web.json_response({"error": f"{request.method} {request.path}: {exc.reason}"},
                                     status=exc.status)
        body = {"code": -5000, "msg": f"Path {request.path}, Method {request.method} is invalid"}
        return web.json_response(body, status=exc.status, dumps=_dumps)


def build_app(venue: Venue) -> web.Application:
    """REST + streams + control on one Application (the runner adds housekeeping)."""
    app = web.Application(middlewares=[_binance_not_found])
    app[VENUE] = venue
    for method, path, security, weight, fn, counts_order in ROUTES:
        app.router.add_route(method, path, _endpoint(security, weight, fn, counts_order=counts_order))
    market_stream.add_routes(app)  # first: the user-stream module keeps /market/… others silent
    stream.add_routes(app)
    control.add_routes(app)
    return app
