"""BinanceRest against httpx.MockTransport: one test per status/code class, signing, time sync."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx
import pytest

from watchdog.binance.protocol.budget import Priority
from watchdog.binance.rest import BinanceRest
from watchdog.binance.retry import RetryPolicy
from watchdog.clock import ManualClock
from watchdog.core.model import OrderId, Symbol
from watchdog.errors import (
    AuthenticationFailed,
    ExchangeRejected,
    ExchangeUnavailable,
    OutcomeUnknown,
    WireFormatError,
)

SECRET = "s3cr3t-value"
KEY = "api-key-value"


@dataclass
class Creds:
    api_key: str = KEY
    api_secret: str = SECRET


def rest_clock(wall_ms: int = 1_700_000_000_000) -> ManualClock:
    """The tests' clock: ``now_s`` moves alone (budget windows, retries) unless ``advance`` says."""
    return ManualClock(now_s=1000.0, now_ms=wall_ms)


@dataclass
class Recorder:
    sleeps: list[float] = field(default_factory=list)

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)


def make(handler: Callable[[httpx.Request], httpx.Response], *, clock: ManualClock | None = None,
         budget: int = 360) -> tuple[BinanceRest, Recorder, ManualClock]:
    rec = Recorder()
    clock = clock or rest_clock()
    client = httpx.AsyncClient(base_url="https://fapi.test", transport=httpx.MockTransport(handler))
    rest = BinanceRest(client, Creds(), recv_window_ms=5000, weight_budget_per_min=budget,
                       clock=clock, retry_policy=RetryPolicy(max_delay_s=5, initial_s=0.1),
                       sleep=rec.sleep)
    return rest, rec, clock


def server(routes: dict[str, Callable[[httpx.Request], httpx.Response]],
           server_ms: int = 1_700_000_000_000) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/fapi/v1/time":
            return httpx.Response(200, json={"serverTime": server_ms})
        return routes[f"{request.method} {request.url.path}"](request)
    return handler


def err(status: int, code: int, msg: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "msg": msg}, headers=headers)


async def test_signs_exactly_the_bytes_sent_and_sends_api_key() -> None:
    seen: list[httpx.Request] = []

    def cancel(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"orderId": 1, "status": "CANCELED"})

    rest, _, _ = make(server({"DELETE /fapi/v1/order": cancel}))
    await rest.cancel_order(Symbol("BTCUSDT"), OrderId(2**60 + 1))
    request = seen[0]
    raw = request.url.query.decode()
    body, _, signature = raw.rpartition("&signature=")
    assert signature == hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    params = dict(parse_qsl(body))
    assert params["orderId"] == str(2**60 + 1)
    assert params["recvWindow"] == "5000"
    assert params["timestamp"] == "1700000000000"
    assert request.headers["X-MBX-APIKEY"] == KEY


async def test_timestamp_uses_server_offset() -> None:
    seen: list[httpx.Request] = []

    def route(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    rest, _, _ = make(server({"GET /fapi/v1/openOrders": route}, server_ms=1_700_000_003_000))
    await rest.fetch_open_orders(Symbol("BTCUSDT"))
    assert rest.offset_ms == 3000
    assert dict(parse_qsl(seen[0].url.query.decode()))["timestamp"] == "1700000003000"


async def test_minus_1021_resyncs_time_and_resends_once() -> None:
    calls: list[str] = []
    server_ms = [1_700_000_000_000]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/fapi/v1/time":
            calls.append("time")
            return httpx.Response(200, json={"serverTime": server_ms[0]})
        calls.append("order")
        ts = int(dict(parse_qsl(request.url.query.decode()))["timestamp"])
        if ts < server_ms[0] - 1000:
            return err(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return httpx.Response(200, json={"orderId": 1})

    rest, _, _ = make(handler)
    await rest.server_time()
    await rest.sync_time()
    server_ms[0] += 60_000  # Binance's clock jumps ahead of ours (skew)
    await rest.cancel_order(Symbol("BTCUSDT"), OrderId(1))
    assert calls[-3:] == ["order", "time", "order"]
    assert rest.offset_ms == 60_000


async def test_weight_header_and_own_weight_are_tracked() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[], headers={"X-MBX-USED-WEIGHT-1M": "1234"})

    rest, _, clock = make(server({"GET /fapi/v3/positionRisk": route}))
    await rest.fetch_positions()
    await rest.fetch_positions()
    assert rest.weight_used_1m == 1234
    assert rest.own_weight_1m == 1 + 5 + 5  # time sync + two positionRisk
    clock.now_s += 61
    assert rest.own_weight_1m == 0
    assert rest.weight_used_1m == 0  # a minute-old report is not current


async def test_calls_wait_when_budget_spent_whatever_their_priority() -> None:
    def route(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[])

    rest, _, _ = make(server({"GET /fapi/v1/openOrders": route,
                              "GET /fapi/v3/positionRisk": route}), budget=12)
    await rest.fetch_positions()            # 1 (time) + 5
    await rest.fetch_positions()            # 11
    assert rest.budget_wait_s(1, priority=Priority.SAFETY) == 0
    assert rest.budget_wait_s(5, priority=Priority.SAFETY) > 0  # the cap is hard
    assert rest.budget_wait_s(1) > 0  # routine calls leave the reserve (12 // 2 = 6) free


@pytest.mark.parametrize(("status", "code", "msg", "kind"), [
    (500, -1000, "An unknown error occured while processing the request.", ExchangeUnavailable),
    (502, None, "<html>bad gateway</html>", ExchangeUnavailable),
    (503, -1001, "Service Unavailable.", ExchangeUnavailable),
    (503, None, "Unknown error, please check your request or try again later.", OutcomeUnknown),
    (408, -1007, "Timeout waiting for response from backend server. Send status unknown; "
                 "execution status unknown.", OutcomeUnknown),
    (401, -2015, "Invalid API-key, IP, or permissions for action.", AuthenticationFailed),
    (400, -2015, "Invalid API-key, IP, or permissions for action.", AuthenticationFailed),
    (400, -2014, "API-key format invalid.", AuthenticationFailed),
    (400, -2011, "Unknown order sent.", ExchangeRejected),
    (400, -1125, "This listenKey does not exist.", ExchangeRejected),
])
async def test_mutation_error_classes(status: int, code: int | None, msg: str,
                                      kind: type[Exception]) -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if code is None:
            return httpx.Response(status, text=msg if msg.startswith("<") else json.dumps(
                {"msg": msg}))
        return err(status, code, msg)

    rest, rec, _ = make(server({"DELETE /fapi/v1/order": route}))
    with pytest.raises(kind) as info:
        await rest.cancel_order(Symbol("BTCUSDT"), OrderId(7))
    assert type(info.value) is kind
    assert rec.sleeps == []  # mutations are never retried
    if isinstance(info.value, ExchangeRejected):
        assert info.value.code == (code or 0)
        assert info.value.endpoint == "DELETE /fapi/v1/order"


async def test_get_retries_5xx_then_succeeds_and_logs_no_secrets() -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    attempts = [0]

    def route(request: httpx.Request) -> httpx.Response:
        attempts[0] += 1
        if attempts[0] <= 2:
            return err(503, -1001, "Internal error; unable to process your request.")
        return httpx.Response(200, json=[])

    try:
        rest, rec, _ = make(server({"GET /fapi/v3/positionRisk": route}))
        assert await rest.fetch_positions() == ()
    finally:
        logger.remove(sink)
    assert attempts[0] == 3
    assert len(rec.sleeps) == 2
    text = "\n".join(lines)
    assert "retrying" in text
    for secret in (SECRET, KEY, "signature", "timestamp="):
        assert secret not in text


@pytest.mark.parametrize("path", ["/fapi/v1/openOrders", "/fapi/v1/openAlgoOrders"])
async def test_the_sweeps_read_is_sent_once_through_a_5xx(path: str) -> None:
    """Rule 3: the sweep's weight-40 read is never retried in the call (eight attempts would
    spend 320 of the 360 share); other reads of the same list still are."""
    sent: list[str | None] = []

    def route(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.params.get("symbol"))
        return err(503, -1001, "Service Unavailable.")

    rest, rec, _ = make(server({f"GET {path}": route}))
    fetch = rest.fetch_open_orders if path.endswith("openOrders") else rest.fetch_open_algo_orders
    with pytest.raises(ExchangeUnavailable):
        await fetch(None, retry=False)
    assert sent == [None]
    assert rec.sleeps == []
    assert rest.budget.own_used_1m(rest._clock.monotonic()) == 40 + 1  # and the time sync
    with pytest.raises(ExchangeUnavailable):
        await fetch(Symbol("BTCUSDT"))
    assert sent.count("BTCUSDT") > 1


async def test_get_gives_up_after_policy_delay_with_the_error() -> None:
    clock = rest_clock()
    rec = Recorder()

    async def sleep(s: float) -> None:
        rec.sleeps.append(s)
        clock.now_s += s

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/fapi/v1/time":
            return httpx.Response(200, json={"serverTime": clock.now_ms})
        return err(502, -1000, "bad gateway")

    client = httpx.AsyncClient(base_url="https://x", transport=httpx.MockTransport(handler))
    rest = BinanceRest(client, Creds(), clock=clock, sleep=sleep,
                       retry_policy=RetryPolicy(max_delay_s=1.0, initial_s=0.1, max_wait_s=0.3))
    with pytest.raises(ExchangeUnavailable):
        await rest.fetch_positions()
    assert 1 <= len(rec.sleeps) < 20


async def test_transport_errors() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def timed_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    rest, _, _ = make(server({"GET /fapi/v3/positionRisk": refused,
                              "DELETE /fapi/v1/order": timed_out,
                              "DELETE /fapi/v1/algoOrder": refused}))
    with pytest.raises(ExchangeUnavailable):
        await rest.fetch_positions()
    # A cancel whose answer timed out may have executed: re-query, never assume.
    with pytest.raises(OutcomeUnknown):
        await rest.cancel_order(Symbol("BTCUSDT"), OrderId(1))
    # Refused before sending: certainly not executed.
    with pytest.raises(ExchangeUnavailable):
        await rest.cancel_algo_order(OrderId(1))


@pytest.mark.parametrize("status", [429, 418])
async def test_rate_limit_honours_retry_after_and_degrades(status: int) -> None:
    sent: list[str] = []

    def route(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        if len(sent) == 1:
            return err(status, -1003, "Too many requests.", **{"Retry-After": "7"})
        return httpx.Response(200, json=[])

    clock = rest_clock()
    rest, _, _ = make(server({"GET /fapi/v1/openOrders": route,
                              "DELETE /fapi/v1/order": route}), clock=clock)
    rest._retry_policy = RetryPolicy(max_delay_s=0.0)  # no retry: see the raw error
    with pytest.raises(ExchangeUnavailable) as info:
        await rest.fetch_open_orders(Symbol("BTCUSDT"))
    assert info.value.retry_after_s == 7
    assert rest.degraded
    clock.now_s += 3
    with pytest.raises(ExchangeUnavailable):  # held back locally: nothing is sent
        await rest.cancel_order(Symbol("BTCUSDT"), OrderId(1))
    assert len(sent) == 1
    clock.now_s += 5
    assert await rest.fetch_open_orders(Symbol("BTCUSDT")) == ()
    assert not rest.degraded


async def test_retry_waits_at_least_retry_after() -> None:
    sent: list[int] = []

    def route(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        if len(sent) == 1:
            return err(429, -1003, "Too many requests.", **{"Retry-After": "2"})
        return httpx.Response(200, json=[])

    clock = rest_clock()
    sleeps: list[float] = []

    async def sleep(s: float) -> None:
        sleeps.append(s)
        clock.now_s += s

    client = httpx.AsyncClient(base_url="https://x", transport=httpx.MockTransport(
        server({"GET /fapi/v1/openAlgoOrders": route})))
    rest = BinanceRest(client, Creds(), clock=clock, sleep=sleep)
    assert await rest.fetch_open_algo_orders(Symbol("BTCUSDT")) == ()
    assert sleeps
    assert sleeps[0] >= 2


async def test_listen_key_calls_are_unsigned_and_never_delete() -> None:
    seen: list[httpx.Request] = []

    def route(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"listenKey": "LK123"})

    rest, _, _ = make(server({"POST /fapi/v1/listenKey": route, "PUT /fapi/v1/listenKey": route}))
    assert await rest.create_listen_key() == "LK123"
    await rest.keepalive_listen_key()
    assert [r.method for r in seen] == ["POST", "PUT"]
    assert all(r.url.query == b"" and r.headers["X-MBX-APIKEY"] == KEY for r in seen)
    assert not any("delete" in name and "listen" in name for name in dir(rest))


async def test_keepalive_minus_1125_is_rejected_with_code() -> None:
    rest, _, _ = make(server({"PUT /fapi/v1/listenKey": lambda r: err(
        400, -1125, "This listenKey does not exist.")}))
    with pytest.raises(ExchangeRejected) as info:
        await rest.keepalive_listen_key()
    assert info.value.code == -1125


async def test_retry_gives_up_at_once_when_retry_after_exceeds_the_policy() -> None:
    sent: list[int] = []

    def route(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return err(418, -1003, "Way too many requests; IP banned.", **{"Retry-After": "120"})

    rest, rec, _ = make(server({"GET /fapi/v1/openOrders": route}))
    with pytest.raises(ExchangeUnavailable) as info:
        await rest.fetch_open_orders(Symbol("BTCUSDT"))
    assert info.value.retry_after_s == 120
    assert rec.sleeps == []  # no 120 s sleep hidden inside one call
    assert len(sent) == 1
    assert rest.degraded


async def test_after_a_429_the_poll_resumes_when_binance_minute_resets() -> None:
    """Issue 12: the bot exhausted the IP weight; a 429 at second 45.5 of Binance's minute
    with Retry-After 14.5 s. The positions poll deferred 46 s more on main (the reported 2,400
    kept for a sliding 60 s); Binance's counter resets with its minute, 14.5 s later."""
    minute_start_ms = 1_700_000_040_000  # a multiple of 60,000
    clock = rest_clock(minute_start_ms + 45_500)
    answers = [err(429, -1003, "Too many requests", **{"Retry-After": "14.5",
                                                        "X-MBX-USED-WEIGHT-1M": "2400"})]

    def positions(request: httpx.Request) -> httpx.Response:
        if answers:
            return answers.pop()
        return httpx.Response(200, json=[], headers={"X-MBX-USED-WEIGHT-1M": "5"})

    rest, _, _ = make(server({"GET /fapi/v3/positionRisk": positions},
                             server_ms=clock.now_ms), clock=clock)
    rest._retry_policy = RetryPolicy(max_delay_s=1.0, max_attempts=1)
    with pytest.raises(ExchangeUnavailable):
        await rest.fetch_positions(priority=Priority.ROUTINE)
    assert rest.degraded
    assert rest.budget_wait_s(5) == pytest.approx(14.5)
    clock.advance(14.5)
    assert rest.budget_wait_s(5) == 0  # not 46 s more
    assert rest.weight_used_1m == 0
    await rest.fetch_positions(priority=Priority.ROUTINE)
    assert not rest.degraded


async def test_a_priority_call_waits_for_room_while_routine_calls_yield() -> None:
    """The hard cap holds for a cancel's re-query too, but it waits (up to 5 s) instead of
    failing, and while it waits routine polls leave it the room (issue 12, weight goes to
    safety first)."""
    def algo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"algoId": 7, "symbol": "BTCUSDT", "algoStatus": "CANCELED"})

    rest, rec, clock = make(server({"GET /fapi/v1/algoOrder": algo}), budget=20)
    await rest.sync_time()
    rest.budget.record(19, clock.now_s)  # with the time sync: the whole share, for 60 s
    clock.now_s += 50.0
    with pytest.raises(ExchangeUnavailable, match="budget is spent"):
        await rest.get_algo_order(OrderId(7))  # 10 s to wait: more than a priority call waits
    seen_wanted: list[int] = []

    async def sleep(s: float) -> None:
        seen_wanted.append(rest.budget.wanted)
        assert rest.budget_wait_s(1) > 0  # routine calls yield meanwhile
        clock.now_s += s

    rest._sleep = sleep
    clock.now_s += 7.0  # 3 s left
    sent = rest.requests_sent
    with contextlib.suppress(WireFormatError):  # the answer's shape is not the point here
        await rest.get_algo_order(OrderId(7))
    assert rest.requests_sent == sent + 1
    assert seen_wanted
    assert all(w == 1 for w in seen_wanted)
    assert rest.budget.wanted == 0
    assert rest.own_weight_1m <= 20
    assert rec.sleeps == []


async def test_an_order_batch_stops_at_the_first_read_the_budget_refuses() -> None:
    """After a gap, 300 open symbols' order reads must not each wait and fail in turn: the
    first refusal ends the batch (the poller reads the rest later)."""
    from watchdog.binance.snapshots import read_orders

    def empty(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[])

    rest, _, _clock = make(server({"GET /fapi/v1/openOrders": empty,
                                  "GET /fapi/v1/openAlgoOrders": empty}), budget=20)
    await rest.sync_time()  # 1
    emitted: list[object] = []

    async def emit(event: object) -> None:
        emitted.append(event)

    symbols = [Symbol(f"S{i}USDT") for i in range(10)]
    done = await read_orders(rest, emit, symbols, reason="test")  # routine: 20 - 8 = 12
    assert len(done) == 5  # 1 + 5 x 2 = 11; the sixth symbol's second read does not fit
    assert rest.requests_sent == 1 + 10 + 1  # nothing tried after the refusal
    assert len(emitted) == 5  # no half-read symbol


async def test_the_client_keeps_and_sends_no_cookies() -> None:
    """Binance's API is keyed and signed: a Set-Cookie is ignored (not parsed per answer)."""
    from watchdog.binance.rest import make_http_client

    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, json={"serverTime": 1}, headers={"Set-Cookie": "s=1; Path=/"})

    client = make_http_client("https://fapi.test", 5.0, transport=httpx.MockTransport(handler))
    async with client:
        await client.get("/fapi/v1/time")
        await client.get("/fapi/v1/time")
        assert not client.cookies
    assert seen == [None, None]
