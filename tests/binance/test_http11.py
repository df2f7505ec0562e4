"""binance/http11.py: the lean client against httpx's, on the same scripted failures.

A small HTTP server on a real loopback socket misbehaves as told (resets, closes, silence, slow
or malformed answers, every Binance error status); each scenario runs through ``BinanceRest`` on
``httpx.AsyncClient`` (the old path) and on ``Http11Client`` and the two must end alike: the
same result, or the same error type with the same endpoint, status, code, ``Retry-After`` and
failure kind (the detail text after the kind may be worded differently: httpcore's anyio
backend says "All connection attempts failed" where the socket says "Connect call failed").
The table also says what each failure maps to (rest.py rule 2, classify.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.waiting import eventually
from watchdog.binance.http11 import Http11Client, rest_http
from watchdog.binance.rest import BinanceRest
from watchdog.binance.retry import RetryPolicy
from watchdog.clock import SystemClock
from watchdog.core.model import OrderId, Symbol
from watchdog.errors import ExchangeError, ExchangeUnavailable

pytestmark = pytest.mark.integration

KEY = "k" * 64
SECRET = "s" * 64
TIMEOUT_S = 0.4  # the clients' timeouts in this file: a silent server is waited on this long
BTC = Symbol("BTCUSDT")

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[bool]]


@dataclass
class Creds:
    api_key: str = KEY
    api_secret: str = SECRET


def _answer(status: int, body: bytes, *headers: tuple[str, str], reason: str = "X") -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}",
            "Content-Type: application/json", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _reply(status: int, doc: Any, *headers: tuple[str, str]) -> Behaviour:
    async def act(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        writer.write(_answer(status, json.dumps(doc).encode(), *headers))
        await writer.drain()
        return True
    return act


def _raw(data: bytes, *, then: str = "keep", delay_s: float = 0.0) -> Behaviour:
    """Write ``data`` (after ``delay_s``), then ``keep`` the connection, ``close`` it (FIN),
    ``reset`` it (RST) or ``hang`` (never answer more)."""
    async def act(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> bool:
        if delay_s:
            await asyncio.sleep(delay_s)  # scripted slowness (the client's timeout is the point)
        if data:
            writer.write(data)
            await writer.drain()
        if then == "close":
            writer.close()
            return False
        if then == "reset":
            _reset(writer)
            return False
        if then == "hang":
            await asyncio.Event().wait()
        return True
    return act


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _chunked(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    half = len(body) // 2
    return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:half], body[half:])) \
        + b"0\r\n\r\n"


ORDERS = json.dumps([]).encode()
WEIGHT = ("X-MBX-USED-WEIGHT-1M", "17")

# name → what the server does with the request under test (server time is always answered)
SCENARIOS: dict[str, Behaviour] = {
    "ok": _reply(200, [], WEIGHT),
    "ok_chunked": _raw(_chunked(b"[]  ")),
    "ok_gzip": _raw(_answer(200, gzip.compress(ORDERS), ("Content-Encoding", "gzip"), WEIGHT)),
    "ok_deflate": _raw(_answer(200, zlib.compress(ORDERS), ("Content-Encoding", "deflate"))),
    "ok_unknown_coding": _raw(_answer(200, ORDERS, ("Content-Encoding", "identity, x-none"))),
    "ok_connection_close": _raw(_answer(200, ORDERS, ("Connection", "close")), then="close"),
    "ok_http10_until_close": _raw(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[]",
                                  then="close"),
    "ok_after_100_continue": _raw(b"HTTP/1.1 100 Continue\r\n\r\n" + _answer(200, ORDERS)),
    "ok_slow_within_timeout": _raw(_answer(200, ORDERS), delay_s=TIMEOUT_S / 4),
    "bad_gzip": _raw(_answer(200, b"not gzip at all", ("Content-Encoding", "gzip"))),
    "not_json": _raw(_answer(200, b"<html>proxy</html>")),
    "429_retry_after": _reply(429, {"code": -1003, "msg": "Too many requests."},
                              ("Retry-After", "7"), WEIGHT),
    "429_no_retry_after": _reply(429, {"code": -1003, "msg": "Too many requests."}),
    "418_banned": _reply(418, {"code": -1003, "msg": "Way too many requests; IP banned."},
                         ("Retry-After", "120")),
    "503_unknown": _reply(503, {"code": -1000,
                                "msg": "Unknown error, please check your request or try again later."}),
    "503_unavailable": _reply(503, {"code": -1001, "msg": "Service Unavailable."}),
    "502_html": _raw(_answer(502, b"<html>Bad Gateway</html>")),
    "408": _reply(408, {"code": -1007, "msg": "Timeout waiting for response from backend server."}),
    "401_key": _reply(401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}),
    "400_-2011": _reply(400, {"code": -2011, "msg": "Unknown order sent."}),
    "301_redirect": _raw(_answer(301, b"", ("Location", "https://example.invalid/"))),
    "close_without_answer": _raw(b"", then="close"),
    "reset_without_answer": _raw(b"", then="reset"),
    "close_mid_headers": _raw(b"HTTP/1.1 200 OK\r\nContent-Le", then="close"),
    "close_mid_body": _raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[1, 2", then="close"),
    "reset_mid_body": _raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[1, 2", then="reset"),
    "chunked_cut": _raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n[1, 2",
                        then="close"),
    "garbage": _raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", then="close"),
    "bad_content_length": _raw(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n[]"),
    "huge_headers": _raw(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"),
    "silent": _raw(b"", then="hang"),
    "silent_mid_body": _raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[1, 2", then="hang"),
    "slow_past_timeout": _raw(_answer(200, ORDERS), delay_s=TIMEOUT_S * 3),
}


@dataclass
class Server:
    """Answers ``GET /fapi/v1/time`` always; every other request gets ``behaviour``."""

    behaviour: Behaviour
    connections: int = 0
    requests: list[str] = field(default_factory=list)
    port: int = 0
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method, target = head.split(b" ", 2)[:2]
                path = target.split(b"?")[0].decode()
                self.requests.append(f"{method.decode()} {path}")
                if path == "/fapi/v1/time":
                    writer.write(_answer(200, json.dumps(
                        {"serverTime": SystemClock().wall_ms()}).encode()))
                    await writer.drain()
                    continue
                if not await self.behaviour(reader, writer, self):
                    return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def close_all(self) -> None:
        """Close every connection and wait until each is closed (its FIN sent)."""
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(behaviour: Behaviour) -> AsyncIterator[Server]:
    server = Server(behaviour)
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        await server.close_all()
        srv.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(srv.wait_closed(), 2.0)


def clients(port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    timeout = httpx.Timeout(TIMEOUT_S)
    return {"httpx": httpx.AsyncClient(base_url=url, timeout=timeout),
            "http11": Http11Client(url, timeout=timeout)}


def rest_on(http: Any, sleeps: list[float] | None = None) -> BinanceRest:
    async def sleep(s: float) -> None:
        if sleeps is not None:
            sleeps.append(s)
    # one attempt: the table compares a single request's mapping (retries: a test below)
    return BinanceRest(http, Creds(), clock=SystemClock(), timeout=httpx.Timeout(TIMEOUT_S),
                       retry_policy=RetryPolicy(max_attempts=1), sleep=sleep)


def outcome(result: Any) -> tuple[Any, ...]:
    """What must be equal between the two paths."""
    if not isinstance(result, BaseException):
        return ("ok", result)
    if not isinstance(result, ExchangeError):
        return ("raw", type(result).__name__)
    text = str(result)
    # "<METHOD /path>: <Kind>: <detail>" for transport failures: keep up to the kind
    kind = text.split(": ")[1] if text.count(": ") >= 2 and " HTTP " not in text else text
    return (type(result).__name__, getattr(result, "endpoint", None), getattr(result, "status", None),
            getattr(result, "code", None), getattr(result, "retry_after_s", None), kind)


async def run(behaviour: Behaviour, call: Callable[[BinanceRest], Awaitable[Any]]
              ) -> dict[str, tuple[Any, ...]]:
    seen: dict[str, tuple[Any, ...]] = {}
    for name in ("httpx", "http11"):
        async with serving(behaviour) as server:
            http = clients(server.port)[name]
            async with http:
                rest = rest_on(http)
                try:
                    result: Any = await call(rest)
                except Exception as exc:  # noqa: BLE001 - compared below, whatever it is
                    result = exc
                seen[name] = outcome(result)
                assert KEY not in str(result)
                assert SECRET not in str(result)
                assert "signature" not in str(result)
    return seen


GET = ("get", lambda rest: rest.fetch_open_orders(BTC))
CANCEL = ("cancel", lambda rest: rest.cancel_order(BTC, OrderId(1)))

# What each maps to: (GET, DELETE). "ok" = the parsed answer; a mutation that may have been
# sent is OutcomeUnknown (re-query), one certainly not sent or refused is what classify says.
EXPECTED: dict[str, tuple[str, str]] = {
    "ok": ("ok", "ok"), "ok_chunked": ("ok", "ok"), "ok_gzip": ("ok", "ok"),
    "ok_deflate": ("ok", "ok"), "ok_unknown_coding": ("ok", "ok"),
    "ok_connection_close": ("ok", "ok"), "ok_http10_until_close": ("ok", "ok"),
    "ok_after_100_continue": ("ok", "ok"), "ok_slow_within_timeout": ("ok", "ok"),
    "bad_gzip": ("ExchangeUnavailable", "OutcomeUnknown"),  # answered, unreadable
    "not_json": ("WireFormatError", "WireFormatError"),
    "429_retry_after": ("ExchangeUnavailable", "ExchangeUnavailable"),
    "429_no_retry_after": ("ExchangeUnavailable", "ExchangeUnavailable"),
    "418_banned": ("ExchangeUnavailable", "ExchangeUnavailable"),
    "503_unknown": ("OutcomeUnknown", "OutcomeUnknown"),
    "503_unavailable": ("ExchangeUnavailable", "ExchangeUnavailable"),
    "502_html": ("ExchangeUnavailable", "ExchangeUnavailable"),
    "408": ("OutcomeUnknown", "OutcomeUnknown"),
    "401_key": ("AuthenticationFailed", "AuthenticationFailed"),
    "400_-2011": ("ExchangeRejected", "ExchangeRejected"),
    "301_redirect": ("ExchangeRejected", "ExchangeRejected"),
    "close_without_answer": ("ExchangeUnavailable", "OutcomeUnknown"),
    "reset_without_answer": ("ExchangeUnavailable", "OutcomeUnknown"),
    "close_mid_headers": ("ExchangeUnavailable", "OutcomeUnknown"),
    "close_mid_body": ("ExchangeUnavailable", "OutcomeUnknown"),
    "reset_mid_body": ("ExchangeUnavailable", "OutcomeUnknown"),
    "chunked_cut": ("ExchangeUnavailable", "OutcomeUnknown"),
    "garbage": ("ExchangeUnavailable", "OutcomeUnknown"),
    "bad_content_length": ("ExchangeUnavailable", "OutcomeUnknown"),
    "huge_headers": ("ExchangeUnavailable", "OutcomeUnknown"),
    "silent": ("ExchangeUnavailable", "OutcomeUnknown"),
    "silent_mid_body": ("ExchangeUnavailable", "OutcomeUnknown"),
    "slow_past_timeout": ("ExchangeUnavailable", "OutcomeUnknown"),
}


def test_every_scenario_has_an_expectation() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("call", [GET, CANCEL], ids=lambda c: c[0])
async def test_both_paths_map_each_failure_alike(name: str, call: tuple[str, Any]) -> None:
    seen = await run(SCENARIOS[name], call[1])
    assert seen["http11"] == seen["httpx"]
    want = EXPECTED[name][0 if call[0] == "get" else 1]
    assert seen["http11"][0] == want, seen


async def test_connection_refused_is_not_sent_and_alike() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for call, want in ((GET, ExchangeUnavailable), (CANCEL, ExchangeUnavailable)):
        seen = {}
        for name, http in clients(port).items():
            async with http:
                with pytest.raises(want) as caught:
                    await call[1](rest_on(http))
                seen[name] = outcome(caught.value)
        assert seen["http11"] == seen["httpx"]
        assert seen["http11"][-1] == "ConnectError"


async def test_connect_timeout_maps_like_httpx() -> None:
    async with serving(SCENARIOS["ok"]) as server:
        http = Http11Client(f"http://127.0.0.1:{server.port}", timeout=httpx.Timeout(1.0))
        async with http:
            rest = BinanceRest(http, Creds(), clock=SystemClock(), timeout=httpx.Timeout(1.0, connect=0.0),
                               retry_policy=RetryPolicy(max_attempts=1))
            with pytest.raises(ExchangeUnavailable, match="ConnectTimeout"):
                await rest.cancel_order(BTC, OrderId(1))  # not sent: never OutcomeUnknown


async def test_pool_timeout_is_not_sent() -> None:
    async with serving(SCENARIOS["silent"]) as server:
        http = Http11Client(f"http://127.0.0.1:{server.port}", timeout=httpx.Timeout(TIMEOUT_S),
                            max_connections=1)
        async with http:
            rest = rest_on(http)
            await rest.sync_time()
            hung = asyncio.create_task(http.request("GET", "/x", headers={},
                                                    timeout=httpx.Timeout(30.0)))
            await _until(lambda: server.requests[-1:] == ["GET /x"])
            with pytest.raises(ExchangeUnavailable, match="PoolTimeout"):
                await rest.cancel_order(BTC, OrderId(1))
            hung.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hung


async def _until(probe: Callable[[], bool]) -> None:
    async def check() -> bool:
        return probe()
    await eventually(check, bool, timeout_s=5.0, interval_s=0.005)


async def test_one_connection_is_kept_for_sequential_requests() -> None:
    async with serving(SCENARIOS["ok"]) as server, Http11Client(f"http://127.0.0.1:{server.port}",
                            timeout=httpx.Timeout(TIMEOUT_S)) as http:
        rest = rest_on(http)
        for _ in range(20):
            assert await rest.fetch_open_orders(BTC) == ()
        assert server.connections == 1
        assert http.connections_opened == 1
        assert rest.weight_used_1m == 17  # X-MBX-USED-WEIGHT-1M read


@pytest.mark.parametrize("name", ["httpx", "http11"])
async def test_a_kept_connection_the_server_closed_is_not_used(name: str) -> None:
    """The server drops the idle connection: the next request, even a cancel, goes out on a new
    one at once (an attempt on the dead one would make the cancel's outcome unknown)."""
    async with serving(SCENARIOS["ok"]) as server:
        http = clients(server.port)[name]
        async with http:
            rest = rest_on(http)
            await rest.fetch_open_orders(BTC)
            await server.close_all()  # closed and its FIN sent; our loop has not seen it yet
            await rest.cancel_order(BTC, OrderId(1))
            assert server.connections == 2


async def test_an_idle_connection_expires() -> None:
    async with serving(SCENARIOS["ok"]) as server, Http11Client(
            f"http://127.0.0.1:{server.port}", timeout=httpx.Timeout(TIMEOUT_S),
            keepalive_expiry_s=0.0) as http:
        rest = rest_on(http)
        await rest.fetch_open_orders(BTC)
        await rest.fetch_open_orders(BTC)
        assert server.connections == 3  # the time sync's, then one per read


async def test_a_cancelled_request_closes_its_connection() -> None:
    async with serving(SCENARIOS["silent"]) as server, Http11Client(f"http://127.0.0.1:{server.port}",
                            timeout=httpx.Timeout(30.0)) as http:
        task = asyncio.create_task(http.request("GET", "/x", headers={}))
        await _until(lambda: server.requests == ["GET /x"])
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not http._idle
        assert not http._busy


async def test_a_get_is_retried_after_a_reset_and_succeeds() -> None:
    attempts = 0

    async def reset_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         server: Server) -> bool:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            _reset(writer)
            return False
        return await SCENARIOS["ok"](reader, writer, server)

    async with serving(reset_once) as server:
        sleeps: list[float] = []
        async with Http11Client(f"http://127.0.0.1:{server.port}",
                                timeout=httpx.Timeout(TIMEOUT_S)) as http:
            rest = BinanceRest(http, Creds(), clock=SystemClock(), timeout=httpx.Timeout(TIMEOUT_S),
                               retry_policy=RetryPolicy(initial_s=0.01), sleep=_recorder(sleeps))
            assert await rest.fetch_open_orders(BTC) == ()
        assert attempts == 2
        assert len(sleeps) == 1


def _recorder(sleeps: list[float]) -> Callable[[float], Awaitable[None]]:
    async def sleep(s: float) -> None:
        sleeps.append(s)
    return sleep


async def test_requests_carry_the_path_prefix_host_and_key() -> None:
    heads: list[bytes] = []

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(_answer(200, b"{}"))
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(keep, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with srv, Http11Client(f"http://127.0.0.1:{port}/pre/", timeout=httpx.Timeout(1.0)) as http:
        answer = await http.request("GET", "/fapi/v1/time?a=1", headers={"X-MBX-APIKEY": KEY})
        assert answer.status_code == 200
        assert answer.content == b"{}"
        assert answer.headers.get("content-TYPE") == "application/json"
    head = heads[0].decode()
    assert head.startswith("GET /pre/fapi/v1/time?a=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{port}" in head.lower()
    assert f"X-MBX-APIKEY: {KEY}" in head
    assert "accept-encoding: gzip, deflate" in head.lower()


def test_rest_http_keeps_httpx_when_a_proxy_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(rest_http("https://fapi.binance.com", 5.0), Http11Client)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert isinstance(rest_http("https://fapi.binance.com", 5.0), httpx.AsyncClient)
    assert isinstance(rest_http("http://127.0.0.1:1", 5.0), Http11Client)  # the proxy is for https
    monkeypatch.setenv("ALL_PROXY", "http://proxy.example:3128")
    assert isinstance(rest_http("http://127.0.0.1:1", 5.0), httpx.AsyncClient)


def test_https_uses_httpx_default_tls_with_http11_alpn() -> None:
    http = Http11Client("https://fapi.binance.com", timeout=httpx.Timeout(5.0))
    ctx = http._ssl
    assert ctx is not None
    assert ctx.check_hostname
    assert ctx.verify_mode.name == "CERT_REQUIRED"


def _self_signed(tmp: Any) -> tuple[str, str]:
    """A certificate for ``localhost`` and its key, as PEM files in ``tmp``."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_tls_is_verified_like_httpx_and_kept(tmp_path: Any) -> None:
    """Over TLS: a certificate the client trusts works and the connection is kept; one it does
    not trust, or a host name it does not name, fails to connect on both paths alike."""
    import ssl as ssl_module

    pytest.importorskip("cryptography")
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server = Server(SCENARIOS["ok"])
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    try:
        trusting = ssl_module.create_default_context(cafile=cert)
        async with Http11Client(f"https://localhost:{port}", timeout=httpx.Timeout(2.0),
                                ssl_context=trusting) as http:
            rest = rest_on(http)
            for _ in range(3):
                assert await rest.fetch_open_orders(BTC) == ()
            assert http.connections_opened == 1
        cases = ((f"https://localhost:{port}", None),  # not trusted (the default roots)
                 (f"https://127.0.0.1:{port}", cert))  # trusted, but not this name
        for url, cafile in cases:
            seen = {}
            for name in ("httpx", "http11"):
                ctx = ssl_module.create_default_context(cafile=cafile) if cafile else None
                http: Any = (httpx.AsyncClient(base_url=url, timeout=2.0, verify=ctx or True)
                             if name == "httpx" else
                             Http11Client(url, timeout=httpx.Timeout(2.0), ssl_context=ctx))
                async with http:
                    with pytest.raises(ExchangeUnavailable) as caught:
                        await rest_on(http).cancel_order(BTC, OrderId(1))  # never sent
                    seen[name] = outcome(caught.value)
                    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
            assert seen["http11"] == seen["httpx"]
            assert seen["http11"][-1] == "ConnectError"
    finally:
        await server.close_all()
        srv.close()


async def test_a_timeout_in_a_task_asked_to_stop_is_the_stop() -> None:
    """A cancellation lost earlier (redis-py on 3.11, cancel.py) must not come back as a
    ReadTimeout that the retry would swallow: it is re-raised as CancelledError."""
    async with serving(SCENARIOS["silent"]) as server, Http11Client(
            f"http://127.0.0.1:{server.port}", timeout=httpx.Timeout(0.2)) as http:
        async def lose_a_cancel_then_request() -> None:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # lost, as redis-py loses it
                await asyncio.sleep(1)
            await http.request("GET", "/x", headers={})

        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(lose_a_cancel_then_request())
