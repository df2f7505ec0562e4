"""Signed REST client for Binance USDⓈ-M futures: one HTTP client, typed errors.

Over 400 lines on purpose: one request path (signing, the clock offset, the weight budget,
retries, one error mapping) and the typed endpoint methods over it, a few lines each; the rules
below are that one seam's, and apart they would span modules. Parsing is ``protocol/wire_rest``.

Rules of this module:
1. The seam is the injected HTTP client (``http11.RestHttp``): the daemon's lean
   ``http11.Http11Client`` (``http11.rest_http``), or an ``httpx.AsyncClient`` (tests give it an
   ``httpx.MockTransport``; a proxy from the environment). Both raise httpx's transport errors,
   mapped once below.
2. Every answer is classified once, by ``classify.py``; only ``watchdog.errors`` types leave.
3. Only idempotent GETs are retried (``retry.retrying_for``); a mutation is sent once and an
   uncertain outcome surfaces as ``OutcomeUnknown`` for the caller to re-query. The
   poller's sweep (an all-symbols order read, weight 40) is sent once too (``retry=False``):
   eight attempts through a 503 burst would spend 320 of our 360 share and hold the positions
   poll back for most of a minute, and the poller backs a failed sweep off itself (30 s,
   doubling).
4. Signed requests carry ``timestamp`` on Binance's clock (local wall clock + the offset from
   ``GET /fapi/v1/time``); a -1021 answer re-syncs the offset and resends once.
5. Logs name ``METHOD /path`` only: queries carry signatures, headers the API key, and listen
   keys are secrets (HELPERS rule 4). Nothing here ever DELETEs the listen key: Binance gives
   one key per account, shared with the bot, and a DELETE would kill the bot's stream too
   (docs/BINANCE.md §1.1).
6. Weight: every call, whatever it is, goes through the one ``WeightBudget`` (hard cap, no
   bypass) at a ``Priority``: cancels and their re-queries ``SAFETY``; listen keys, time syncs
   and reads someone waits on ``REQUESTED``; the caller says for reads. A routine call over
   budget raises ``ExchangeUnavailable`` at once (its caller defers it); a priority call waits
   for room up to ``PRIORITY_WAIT_MAX_S`` first.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import itertools
import json
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import httpx
from loguru import logger

from watchdog.binance.http11 import RestHttp
from watchdog.binance.protocol import wire_rest
from watchdog.binance.protocol.budget import Priority, WeightBudget
from watchdog.binance.protocol.classify import (
    CODE_INVALID_TIMESTAMP,
    classify_response,
    classify_transport_failure,
)
from watchdog.binance.protocol.signing import Credentials, ParamValue, build_query, build_signed_query
from watchdog.binance.protocol.weights import request_weight
from watchdog.binance.retry import RetryPolicy, retrying_for
from watchdog.clock import Clock
from watchdog.core.events import OpenAlgoOrder, OpenOrder, PositionAmount, PositionSnapshot
from watchdog.core.model import OrderId, PositionKey, Symbol
from watchdog.errors import (
    AuthenticationFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    WireFormatError,
)

__all__ = ["BinanceRest", "make_http_client"]

_loads: Callable[[bytes], Any] = json.loads
try:
    import orjson

    # The fast extra, as in stream.py: a 300-row positionRisk (~150 kB, every 0.9 s) decodes in
    # about 0.45 ms instead of 1.1 ms. Its errors are ValueErrors too ("not JSON" below).
    _loads = orjson.loads
except ImportError:  # pragma: no cover - optional
    pass

# Failures that happen before a request could have reached the server: always safe to retry.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

_TIME_RESYNC_EVERY_S = 600.0
# A priority call (rule 6) waits at most this long for weight; routine polls yield meanwhile.
PRIORITY_WAIT_MAX_S = 5.0
_PRIORITY_WAIT_STEP_S = 0.25
_PRIORITY_WAIT_STEPS = 100  # bounded even if the clock does not move (tests' fake clocks)

# A rejected key is said again at most this often while it lasts: the poller meets it every
# poll (0.9 s), and one line a minute keeps the journal readable and the cause visible.
AUTH_REPORT_INTERVAL_S = 60.0


class _NoCookies(http.cookiejar.CookieJar):
    """A jar that keeps nothing: Binance's API is keyed and signed, never a cookie session, and
    httpx's own jar parsed every answer's headers for cookies (~4 % of an idle daemon's CPU
    with a positions read each 0.9 s, docs/BENCHMARKS.md, session 6)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def make_http_client(rest_url: str, request_timeout_s: float, *,
                     transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one AsyncClient for Binance REST: base URL, an explicit, finite timeout, and no
    cookies kept or sent. ``transport``: for tests."""
    return httpx.AsyncClient(base_url=rest_url, cookies=_NoCookies(), transport=transport,
                             timeout=httpx.Timeout(request_timeout_s,
                                                   connect=min(3.0, request_timeout_s)),
                             limits=httpx.Limits(max_connections=4, max_keepalive_connections=4))


class BinanceRest:
    """The watchdog's only REST connection to Binance.

    Attributes worth showing in status: ``degraded`` (429/418 seen and its wait not over),
    ``weight_used_1m`` (the IP's weight as Binance reports it, bot included) and
    ``own_weight_1m`` (what this process spent over the last 60 s).
    """

    def __init__(self, client: RestHttp, credentials: Credentials, *,
                 recv_window_ms: int = 5000, weight_budget_per_min: int = 360,
                 clock: Clock, timeout: httpx.Timeout | None = None,
                 retry_policy: RetryPolicy | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 budget: WeightBudget | None = None) -> None:
        self._client = client
        self._credentials = credentials
        self._recv_window_ms = recv_window_ms
        self._clock = clock
        self._timeout = timeout or httpx.Timeout(5.0, connect=3.0)
        self._retry_policy = retry_policy or RetryPolicy()
        self._sleep = sleep
        # ``budget``: one shared by every account's client on the same IP (the limit is the
        # IP's, docs/HA.md); else this client's own.
        self.budget = budget or WeightBudget(weight_budget_per_min)
        self.offset_ms = 0
        self._synced_at_s: float | None = None
        self._request_ids = itertools.count(1)
        self.requests_sent = 0
        self.weight_sent = 0  # every request's weight since start (for benchmarks and status)
        # The latest refusal of the credentials (-2014/-2015/-1022/401), None once a keyed call
        # succeeds again: the daemon's health problem and its startup verdict (exit 77).
        self.auth_rejection: AuthenticationFailed | None = None
        self._auth_rejections = 0
        self._auth_reported_at_s: float | None = None

    # -------------------------------------------------------------- state

    @property
    def degraded(self) -> bool:
        """True from a 429/418 until a call succeeds after its ``Retry-After``."""
        return self.budget.degraded

    @property
    def weight_used_1m(self) -> int:
        """The IP's used weight as Binance last reported it (``X-MBX-USED-WEIGHT-1M``)."""
        return self.budget.ip_used_1m(self._clock.monotonic())

    @property
    def own_weight_1m(self) -> int:
        """Weight this process sent over the last 60 s."""
        return self.budget.own_used_1m(self._clock.monotonic())

    def exchange_time_ms(self) -> int:
        """Now on Binance's clock (local wall clock corrected by the measured offset)."""
        return self._clock.wall_ms() + self.offset_ms

    def next_request_id(self) -> int:
        """Ids for ``SnapshotRequested``; shared by every reader of this client."""
        return next(self._request_ids)

    def budget_wait_s(self, weight: int, *, priority: Priority = Priority.ROUTINE) -> float:
        """How long a call of ``weight`` at ``priority`` would be held back now (0: go)."""
        return self.budget.wait_for_s(weight, priority=priority, now_s=self._clock.monotonic())

    # -------------------------------------------------------------- public calls

    async def server_time(self) -> int:
        """Binance's clock in epoch ms (unsigned, weight 1)."""
        return wire_rest.parse_server_time(await self._get("/fapi/v1/time", signed=False,
                                                      priority=Priority.REQUESTED))

    async def sync_time(self) -> int:
        """Measure and keep the offset between Binance's clock and ours; returns it in ms."""
        before_ms = self._clock.wall_ms()
        server_ms = await self.server_time()
        after_ms = self._clock.wall_ms()
        self.offset_ms = server_ms - (before_ms + after_ms) // 2
        self._synced_at_s = self._clock.monotonic()
        logger.info("server time synced offset_ms={} rtt_ms={}", self.offset_ms,
                    after_ms - before_ms)
        return self.offset_ms

    async def position_mode(self) -> bool:
        """True in hedge mode (``dualSidePosition``); weight 30, so cache the answer."""
        return wire_rest.parse_position_mode(await self._get("/fapi/v1/positionSide/dual",
                                                        priority=Priority.REQUESTED))

    async def fetch_positions(self, *, priority: Priority = Priority.REQUESTED
                              ) -> tuple[PositionAmount, ...]:
        """Every position row of ``GET /fapi/v3/positionRisk`` (weight 5), e.g. for a re-check.

        Feeding the core? Use :meth:`fetch_position_snapshot` inside a ``SnapshotRequested``
        bracket instead (``snapshots.read_positions``).
        """
        snapshot = await self.fetch_position_snapshot(
            request_id=0, requested_time_ms=self.exchange_time_ms(), priority=priority)
        return snapshot.positions

    async def fetch_position_snapshot(self, *, request_id: int, requested_time_ms: int,
                                      priority: Priority = Priority.REQUESTED
                                      ) -> PositionSnapshot:
        """All positions from ``GET /fapi/v3/positionRisk`` (weight 5), as a core snapshot.

        ``request_id``/``requested_time_ms`` are those of the ``SnapshotRequested`` the caller
        emitted before calling (core/events.py rule 3).
        """
        data = await self._get("/fapi/v3/positionRisk", priority=priority)
        return wire_rest.parse_position_risk(data, request_id=request_id,
                                        requested_time_ms=requested_time_ms,
                                        received_time_ms=self.exchange_time_ms())

    async def fetch_open_orders(self, symbol: Symbol | None, *,
                                priority: Priority = Priority.ROUTINE, retry: bool = True
                                ) -> tuple[OpenOrder, ...]:
        """Open regular orders of one symbol (weight 1; algo orders are not in here).

        ``symbol=None`` reads every symbol at weight 40: for the poller's sweep (sent once,
        ``retry=False``; rule 3), the stream's post-connect read and ``orphans``.
        """
        params: dict[str, ParamValue] = {} if symbol is None else {"symbol": symbol}
        data = await self._get("/fapi/v1/openOrders", params, priority=priority, retry=retry)
        return wire_rest.parse_open_orders(data)

    async def fetch_open_algo_orders(self, symbol: Symbol | None, *,
                                     priority: Priority = Priority.ROUTINE, retry: bool = True
                                     ) -> tuple[OpenAlgoOrder, ...]:
        """Open algo (conditional) orders of one symbol (weight 1; docs/BINANCE.md §3.2).

        ``symbol=None`` reads every symbol at weight 40: for the poller's sweep (sent once,
        ``retry=False``; rule 3), the stream's post-connect read and ``orphans``.
        """
        params: dict[str, ParamValue] = {} if symbol is None else {"symbol": symbol}
        data = await self._get("/fapi/v1/openAlgoOrders", params, priority=priority, retry=retry)
        return wire_rest.parse_open_algo_orders(data)

    async def get_order(self, symbol: Symbol, order_id: OrderId) -> OpenOrder:
        """One regular order, whatever its status: the re-query after ``OutcomeUnknown``."""
        data = await self._get("/fapi/v1/order", {"symbol": symbol, "orderId": order_id},
                               priority=Priority.SAFETY)
        return wire_rest.parse_open_orders([data])[0]

    async def get_algo_order(self, algo_id: OrderId) -> OpenAlgoOrder:
        """One algo order, whatever its status: the re-query after ``OutcomeUnknown``."""
        data = await self._get("/fapi/v1/algoOrder", {"algoId": algo_id},
                               priority=Priority.SAFETY)
        return wire_rest.parse_open_algo_orders([data])[0]

    async def order_object(self, symbol: Symbol, order_id: OrderId) -> dict[str, Any]:
        """One regular order as Binance answers it (the reaper's recipe to restore it)."""
        return _object("order", await self._get("/fapi/v1/order",
                                                {"symbol": symbol, "orderId": order_id},
                                                priority=Priority.SAFETY))

    async def algo_order_object(self, algo_id: OrderId) -> dict[str, Any]:
        """One algo order as Binance answers it (the reaper's recipe to restore it)."""
        return _object("algoOrder", await self._get("/fapi/v1/algoOrder", {"algoId": algo_id},
                                                    priority=Priority.SAFETY))

    async def place_order(self, params: Mapping[str, ParamValue]) -> dict[str, Any]:
        """``POST /fapi/v1/order``; sent once, never retried (a retry could place it twice)."""
        return _object("order", await self._call("POST", "/fapi/v1/order", params, signed=True,
                                                 priority=Priority.SAFETY, idempotent=False))

    async def cancel_order(self, symbol: Symbol, order_id: OrderId) -> None:
        """Cancel one regular order; sent once, never retried.

        Raises:
            OutcomeUnknown: -1007 / 503 "Unknown error" / timeout after sending: re-query.
            ExchangeRejected: e.g. -2011 (already gone, or it is an algo id): re-query.
        """
        await self._call("DELETE", "/fapi/v1/order", {"symbol": symbol, "orderId": order_id},
                         signed=True, priority=Priority.SAFETY, idempotent=False)

    async def cancel_algo_order(self, algo_id: OrderId) -> None:
        """Cancel one untriggered algo order; sent once, never retried (see ``cancel_order``)."""
        await self._call("DELETE", "/fapi/v1/algoOrder", {"algoId": algo_id},
                         signed=True, priority=Priority.SAFETY, idempotent=False)

    async def exchange_info(self) -> Any:
        """``GET /fapi/v1/exchangeInfo`` (unsigned, weight 1): the canary reads it once."""
        return await self._get("/fapi/v1/exchangeInfo", signed=False,
                               priority=Priority.REQUESTED)

    async def place_algo_order(self, params: Mapping[str, ParamValue]) -> Any:
        """``POST /fapi/v1/algoOrder`` (0 IP weight, 1 order count); sent once, never retried.
        Only the canary (binance/protocol/canary.py) and the reaper's restore of a stop it took from a
        position that opened meanwhile (runtime/restore.py) place orders: nothing else.

        Raises:
            OutcomeUnknown, ExchangeUnavailable: it may or may not exist: cancel by client id.
            ExchangeRejected: refused, it does not exist.
        """
        return await self._call("POST", "/fapi/v1/algoOrder", params, signed=True,
                                priority=Priority.REQUESTED, idempotent=False)

    async def cancel_algo_order_by_client_id(self, client_algo_id: str) -> None:
        """Cancel one untriggered algo order by ``clientAlgoId`` (the canary's, whose algoId may
        not be known yet); sent once. -2011 → ExchangeRejected: it does not exist."""
        await self._call("DELETE", "/fapi/v1/algoOrder", {"clientAlgoId": client_algo_id},
                         signed=True, priority=Priority.SAFETY, idempotent=False)

    async def create_listen_key(self) -> str:
        """POST listenKey: the account's one active key (created or extended 60 min)."""
        data = await self._call("POST", "/fapi/v1/listenKey", None, signed=False,
                                priority=Priority.REQUESTED, idempotent=False, api_key=True)
        key = data.get("listenKey") if isinstance(data, dict) else None
        if not isinstance(key, str) or not key:
            raise WireFormatError("listenKey", "listenKey", "missing or empty", "")
        return key

    async def keepalive_listen_key(self) -> None:
        """PUT listenKey: extend the active key 60 min. -1125 → ExchangeRejected: POST anew."""
        await self._call("PUT", "/fapi/v1/listenKey", None, signed=False,
                         priority=Priority.REQUESTED, idempotent=False, api_key=True)

    # There is deliberately no delete/close of the listen key: see rule 5 above.

    # -------------------------------------------------------------- the guard's last resort

    async def fetch_marks(self, symbol: Symbol) -> dict[PositionKey, tuple[Decimal, Decimal]]:
        """(signed amount, mark price) per position of ``symbol`` (positionRisk, weight 5)."""
        data = await self._get("/fapi/v3/positionRisk", {"symbol": symbol}, priority=Priority.SAFETY)
        return wire_rest.parse_marks(data)

    async def fetch_tick_size(self, symbol: Symbol) -> Decimal:
        """The symbol's price tick (``exchangeInfo``, weight 1; callers cache it)."""
        data = await self._get("/fapi/v1/exchangeInfo", signed=False, priority=Priority.SAFETY)
        return wire_rest.parse_tick_size(data, symbol)

    async def get_algo_order_by_client_id(self, client_id: str) -> OrderId:
        """The id of the algo order with ``clientAlgoId`` (the re-query after OutcomeUnknown)."""
        data = await self._get("/fapi/v1/algoOrder", {"clientAlgoId": client_id}, priority=Priority.SAFETY)
        return wire_rest.parse_open_algo_orders([data])[0].algo_id

    async def place_close_stop(self, key: PositionKey, side: str, trigger_price: Decimal,
                               client_id: str) -> OrderId:
        """A closePosition STOP_MARKET algo order on the mark price; sent once, never retried
        (a timeout leaves its outcome unknown: the order book learns it from the stream/REST)."""
        params: dict[str, ParamValue] = {
            "algoType": "CONDITIONAL", "symbol": key.symbol, "side": side,
            "positionSide": key.side.value, "type": "STOP_MARKET",
            "triggerPrice": format(trigger_price, "f"), "closePosition": "true",
            "workingType": "MARK_PRICE", "clientAlgoId": client_id}
        data = await self._call("POST", "/fapi/v1/algoOrder", params, signed=True, priority=Priority.SAFETY,
                                idempotent=False)
        return wire_rest.parse_algo_id(data)

    # -------------------------------------------------------------- plumbing

    async def _get(self, path: str, params: Mapping[str, ParamValue] | None = None, *,
                   signed: bool = True, priority: Priority = Priority.ROUTINE,
                   retry: bool = True) -> Any:
        """An idempotent GET, retried on ``ExchangeUnavailable`` only (``retry=False``: sent
        once, rule 3)."""
        if not retry:
            return await self._call("GET", path, params, signed=signed, priority=priority,
                                    idempotent=True, api_key=signed)
        async for attempt in retrying_for(self._retry_policy, sleep=self._sleep):
            with attempt:
                return await self._call("GET", path, params, signed=signed, priority=priority,
                                        idempotent=True, api_key=signed)
        raise AssertionError("unreachable: retrying_for re-raises")  # pragma: no cover

    async def _call(self, method: str, path: str, params: Mapping[str, ParamValue] | None, *,
                    signed: bool, priority: Priority, idempotent: bool, api_key: bool = True) -> Any:
        if signed and (self._synced_at_s is None
                       or self._clock.monotonic() - self._synced_at_s > _TIME_RESYNC_EVERY_S):
            await self.sync_time()
        try:
            return await self._send(method, path, params, signed=signed, priority=priority,
                                    idempotent=idempotent, api_key=api_key)
        except ExchangeRejected as exc:
            if not (signed and exc.code == CODE_INVALID_TIMESTAMP):
                raise
            # Our clock drifted from Binance's: the request was refused, so resending is safe.
            logger.warning("{} {}: -1021 timestamp outside recvWindow; re-syncing server time",
                           method, path)
            await self.sync_time()
            return await self._send(method, path, params, signed=signed, priority=priority,
                                    idempotent=idempotent, api_key=api_key)

    async def _send(self, method: str, path: str, params: Mapping[str, ParamValue] | None, *,
                    signed: bool, priority: Priority, idempotent: bool, api_key: bool) -> Any:
        endpoint = f"{method} {path}"
        weight = request_weight(endpoint, has_symbol=bool((params or {}).get("symbol")))
        await self._room_for(endpoint, weight, priority)
        now_s = self._clock.monotonic()
        query = self._query(params, signed=signed)
        url = path + (f"?{query}" if query else "")
        headers = {"X-MBX-APIKEY": self._credentials.api_key} if api_key else {}
        spent = self.budget.record(weight, now_s)
        self.requests_sent += 1
        self.weight_sent += weight
        started_s = now_s
        try:
            response = await self._client.request(method, url, headers=headers,
                                                   timeout=self._timeout)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            # A body whose Content-Encoding does not decode was answered but is unreadable:
            # a read is retried, a mutation re-queried (it may have executed).
            raise classify_transport_failure(type(exc).__name__, str(exc), endpoint,
                                             idempotent=idempotent,
                                             maybe_sent=not isinstance(exc, _NOT_SENT)) from exc
        finally:  # Binance charged it by now: it counts until 60 s from here (budget rule 6)
            self.budget.answered(spent, self._clock.monotonic())
        now_s = self._clock.monotonic()
        used = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if used is not None and used.strip().isdigit():
            self.budget.observe_used_weight(int(used), now_s, self.exchange_time_ms())
        logger.debug("rest {} status={} ms={:.0f} weight={} priority={} symbol={} ip_weight_1m={} "
                     "own_weight_1m={}", endpoint, response.status_code,
                     (now_s - started_s) * 1000, weight, priority.name.lower(),
                     (params or {}).get("symbol", "-"), used, self.budget.own_used_1m(now_s))
        error = classify_response(response.status_code, response.content, endpoint,
                                  retry_after=response.headers.get("Retry-After"))
        if error is not None:
            if isinstance(error, ExchangeUnavailable) and error.retry_after_s is not None:
                self.budget.block(error.retry_after_s, now_s)
                logger.warning("rest degraded: {}", error)
            if isinstance(error, AuthenticationFailed):
                self._auth_refused(error, now_s)
            raise error
        self.budget.succeeded(now_s)
        if api_key and self.auth_rejection is not None:
            logger.warning("Binance accepts the credentials again ({} after {} rejection(s))",
                           endpoint, self._auth_rejections)
            self.auth_rejection, self._auth_rejections, self._auth_reported_at_s = None, 0, None
        try:
            return _loads(response.content)
        except ValueError as exc:
            raise WireFormatError(endpoint, "body", "not JSON",
                                  response.content[:200].decode("utf-8", "replace")) from exc

    async def _room_for(self, endpoint: str, weight: int, priority: Priority) -> None:
        """Rule 6: return once the budget has room for this call. A routine call never waits
        here (its caller defers it); a priority call waits up to ``PRIORITY_WAIT_MAX_S`` while
        routine polls leave it the room (``WeightBudget.want``). Otherwise ExchangeUnavailable
        with the wait."""
        now_s = self._clock.monotonic()
        wait_s = self.budget.wait_for_s(weight, priority=priority, now_s=now_s)
        if wait_s > 0 and priority is not Priority.ROUTINE and wait_s <= PRIORITY_WAIT_MAX_S \
                and self.budget.blocked_for_s(now_s) == 0:
            deadline_s = now_s + PRIORITY_WAIT_MAX_S
            logger.info("{} ({}) waits {:.2f}s for weight: routine polls make room", endpoint,
                        priority.name.lower(), wait_s)
            self.budget.want(weight)
            try:
                for _ in range(_PRIORITY_WAIT_STEPS):
                    await self._sleep(min(wait_s, _PRIORITY_WAIT_STEP_S))
                    now_s = self._clock.monotonic()
                    wait_s = self.budget.wait_for_s(weight, priority=priority, now_s=now_s)
                    if wait_s <= 0 or now_s + wait_s > deadline_s:
                        break
            finally:
                self.budget.served(weight)
        if wait_s > 0:
            why = ("Binance asked us to wait (429/418)" if self.budget.blocked_for_s(now_s) > 0
                   else "our weight budget is spent")
            raise ExchangeUnavailable(f"{endpoint}: not sent: {why}; retry in {wait_s:.1f}s",
                                      endpoint=endpoint, retry_after_s=wait_s)

    def _auth_refused(self, error: AuthenticationFailed, now_s: float) -> None:
        """Keep the refusal and say it, at most every ``AUTH_REPORT_INTERVAL_S``."""
        self.auth_rejection = error
        self._auth_rejections += 1
        last = self._auth_reported_at_s
        if last is not None and now_s - last < AUTH_REPORT_INTERVAL_S:
            return
        self._auth_reported_at_s = now_s
        logger.error("Binance rejects the credentials ({} rejection(s) so far): {}; check the API "
                     "key, its secret, its futures permission and its IP whitelist",
                     self._auth_rejections, error)

    def _query(self, params: Mapping[str, ParamValue] | None, *, signed: bool) -> str:
        """The exact query string sent; signed ones end in ``signature`` over all before it."""
        if not signed:
            return build_query(params or {})
        return build_signed_query(params or {}, self._credentials.api_secret,
                                  self.exchange_time_ms(), self._recv_window_ms)


def _object(endpoint: str, body: Any) -> dict[str, Any]:
    """A JSON object answer, or ``WireFormatError`` naming the endpoint."""
    if not isinstance(body, dict):
        raise WireFormatError(endpoint, "body", "expected an object", repr(body)[:200])
    return body
