"""The REST client's HTTP/1.1 transport: h11 over asyncio streams, kept connections, no layers.

Why not ``httpx.AsyncClient``: a positions read every 0.9 s paid ≈ 1.2 ms of CPU per request
in httpx's request building, auth/redirect/cookie layers, header models and anyio's cancel
scopes (httpcore's pool alone still ≈ 0.5 ms more than this), at 300 tracked positions a
tenth of the idle daemon (docs/BENCHMARKS.md, "#13 item 2: the REST request path"). The
signed GETs need none of it: one origin, no redirects, no cookies, no auth flow.

Rules of this module:
1. It speaks httpx's vocabulary at its edge: ``request(method, url, headers=, timeout=)`` with an
   ``httpx.Timeout``, an answer with ``status_code``/``headers.get``/``content``, and every
   transport failure raised as the ``httpx.TransportError`` subclass httpx raises for it (same
   name, the same message as far as httpcore words it). So ``rest.py``'s one mapping (rule 2
   there; ``_NOT_SENT`` decides "maybe sent") serves both clients unchanged, and a test runs
   both against the same misbehaving server (tests/binance/test_http11.py).
2. The failures, as httpcore's asyncio backend maps them: connecting (and the TLS handshake)
   ``TimeoutError`` → ``ConnectTimeout``, ``OSError`` → ``ConnectError``; writing
   ``WriteTimeout``/``WriteError``; reading ``ReadTimeout``/``ReadError``; EOF before any
   answer → ``RemoteProtocolError("Server disconnected without sending a response.")``; h11's
   protocol errors → ``RemoteProtocolError``/``LocalProtocolError``; no free connection within
   ``timeout.pool`` → ``PoolTimeout``. Each phase has its own timeout, per socket operation. A
   timeout that expires in a task already asked to stop is that stop (``cancel.py``), never
   a failure to map and retry.
3. A connection goes back to the pool only after a complete exchange both sides may keep
   (h11 ``DONE``/``DONE``); anything else — an error, a cancellation, ``Connection: close`` —
   closes it. An idle connection is dropped when it is older than ``keepalive_expiry_s`` or the
   server closed or wrote on it meanwhile (httpx's defaults: 5 s, 20 idle, 100 in all).
4. TLS for ``https`` URLs with httpx's own default context (certifi, or ``SSL_CERT_FILE``/
   ``SSL_CERT_DIR``), ALPN ``http/1.1``, the host name checked. No proxy: ``rest_http`` keeps the
   httpx client whenever the environment names one (``HTTP(S)_PROXY``/``ALL_PROXY``), so a host
   that routes Binance through a proxy keeps doing so.
5. Bodies are decoded like httpx's (``gzip``, ``deflate``, identity; other codings left as
   sent); a body that does not decode raises ``httpx.DecodingError`` as httpx does. Nothing here
   logs: URLs carry signatures and headers the API key (rest.py rule 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
import time
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

import h11
import httpx

from watchdog import __version__
from watchdog.cancel import raise_if_cancelling

__all__ = ["Answer", "Http11Client", "RestAnswer", "RestHttp", "rest_http"]

# One read takes what asyncio's transport received (it reads 256 KiB at a time), and its
# buffer holds that much before it pauses the socket. httpcore's 64 KiB cut a 300-row
# positionRisk (~140 kB, every 0.9 s) into three reads, each with its own timeout, h11 ``Data``
# event and a pause and resume of the socket (two epoll calls): ~8 % of a read's CPU
# (docs/BENCHMARKS.md, "#13 item 2: the Binance shell of a read").
_READ_BYTES = 256 * 1024
_HEADER_SETS = 8  # validated header lists kept (rest.py uses two)
_MAX_HEADER_BYTES = 100 * 1024   # as httpcore (h11's max_incomplete_event_size)


class RestAnswer(Protocol):
    """What rest.py reads of an answer: ``httpx.Response`` and :class:`Answer` both are one."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...  # ``.get(name)``, names case-insensitive

    @property
    def content(self) -> bytes: ...


class RestHttp(Protocol):
    """The seam of ``BinanceRest``: ``httpx.AsyncClient`` (tests' ``MockTransport``, proxies)
    or :class:`Http11Client`."""

    async def request(self, method: str, url: str, *, headers: Mapping[str, str],
                      timeout: httpx.Timeout) -> RestAnswer: ...  # noqa: ASYNC109 (httpx's)


class _Headers(dict[str, str]):
    """Lower-cased names; ``get`` is case-insensitive like httpx's. A repeated header keeps its
    values joined by ", " (httpx's ``get`` does the same)."""

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, key.lower(), default)


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    headers: _Headers
    content: bytes


class _Conn:
    """One kept connection: its streams and its h11 state machine."""

    __slots__ = ("h11", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEADER_BYTES)
        self.idle_since = 0.0

    def reusable(self, now_s: float, expiry_s: float) -> bool:
        """Rule 3: not expired, and nothing arrived while idle (a server's close or garbage).
        The socket itself is asked too, as httpcore does: a close the loop has not yet seen
        would otherwise meet the next request (a mutation's outcome would become unknown)."""
        unread: bytes = getattr(self.reader, "_buffer", b"")  # bytes that came while idle
        if (now_s - self.idle_since > expiry_s or self.writer.is_closing()
                or self.reader.at_eof() or unread or self.reader.exception()):
            return False
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return True
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return not poller.poll(0)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken socket may itself fail: moot
            self.writer.close()


class Http11Client:
    """HTTP/1.1 to one origin (``base_url``, whose path prefixes every request's)."""

    def __init__(self, base_url: str, *, timeout: httpx.Timeout,
                 ssl_context: ssl.SSLContext | None = None, max_connections: int = 100,
                 max_idle: int = 20, keepalive_expiry_s: float = 5.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) base URL: {base_url!r}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        default_port = self._port == (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._prefix = parts.path.rstrip("/")
        self._base_headers = [("Host", host if default_port else f"{host}:{self._port}"),
                              ("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate"),
                              ("Connection", "keep-alive"),
                              ("User-Agent", f"position-watchdog/{__version__}")]
        self._ssl: ssl.SSLContext | None = None
        if self._tls:
            self._ssl = ssl_context or httpx.create_ssl_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Conn] = []
        self._max_idle = max_idle
        self._expiry_s = keepalive_expiry_s
        self._busy: set[_Conn] = set()
        self.connections_opened = 0  # for tests and benchmarks: reuse is visible
        # The request headers as h11 validated them, per set of extra headers (rest.py sends
        # two: with the API key and without): h11 checks every name and value of a list on
        # each request, and takes its own ``Headers`` as they are.
        self._headers: dict[tuple[tuple[str, str], ...], Any] = {}

    async def __aenter__(self) -> Http11Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection, idle or in use (their requests fail as the server's close)."""
        for conn in [*self._idle, *self._busy]:
            conn.close()
        self._idle.clear()

    async def request(self, method: str, url: str, *, headers: Mapping[str, str],
                      timeout: httpx.Timeout | None = None  # noqa: ASYNC109 (httpx's signature)
                      ) -> Answer:
        """Send one request (``url``: path and query) and read its whole answer."""
        t = timeout or self.timeout
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot is taken at once: no timeout to arm
        else:
            try:
                async with asyncio.timeout(t.pool):
                    await self._slots.acquire()
            except TimeoutError as exc:
                raise_if_cancelling(exc)  # a stop asked meanwhile is not a timeout
                raise httpx.PoolTimeout("") from None
        try:
            conn = self._take_idle()
            if conn is None:
                conn = await self._connect(t.connect)
            self._busy.add(conn)
            keep = False
            try:
                answer = await self._exchange(conn, method, url, headers, t)
                keep = conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
            finally:
                self._busy.discard(conn)
                self._release(conn, keep)
            return answer
        finally:
            self._slots.release()

    # -------------------------------------------------------------- connections

    def _take_idle(self) -> _Conn | None:
        now_s = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # the most recently used first
            if conn.reusable(now_s, self._expiry_s):
                return conn
            conn.close()
        return None

    def _release(self, conn: _Conn, keep: bool) -> None:
        if keep and len(self._idle) < self._max_idle:
            conn.h11.start_next_cycle()
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()

    async def _connect(self, timeout_s: float | None) -> _Conn:
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl, limit=_READ_BYTES,
                    server_hostname=self._host if self._tls else None)
        except TimeoutError as exc:
            raise_if_cancelling(exc)  # a stop asked meanwhile is not a timeout
            raise httpx.ConnectTimeout("") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(str(exc)) from exc
        self.connections_opened += 1
        return _Conn(reader, writer)

    # -------------------------------------------------------------- one exchange

    async def _exchange(self, conn: _Conn, method: str, url: str, headers: Mapping[str, str],
                        t: httpx.Timeout) -> Answer:
        try:
            extra = tuple(headers.items())
            known = self._headers.get(extra)
            request = h11.Request(method=method, target=self._prefix + url,
                                  headers=known or [*self._base_headers, *extra])
            if known is None and len(self._headers) < _HEADER_SETS:
                self._headers[extra] = request.headers
            data = conn.h11.send(request) + conn.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        try:
            conn.writer.write(data)
            async with asyncio.timeout(t.write):
                await conn.writer.drain()
        except TimeoutError as exc:
            raise_if_cancelling(exc)  # a stop asked meanwhile is not a timeout
            raise httpx.WriteTimeout("") from None
        except OSError as exc:
            raise httpx.WriteError(str(exc)) from exc
        event = await self._next(conn, t.read)
        while not isinstance(event, h11.Response):  # 1xx informational answers: skipped
            event = await self._next(conn, t.read)
        parts: list[bytes] = []
        while True:
            body = await self._next(conn, t.read)
            if isinstance(body, h11.Data):
                parts.append(body.data)  # joined into bytes once below
            elif isinstance(body, h11.EndOfMessage):
                break
        answer_headers = _Headers()
        for name, value in event.headers:
            key = name.decode("latin-1")  # h11 gives lower-cased names
            text = value.decode("latin-1")
            answer_headers[key] = f"{answer_headers[key]}, {text}" if key in answer_headers else text
        content = b"".join(parts)
        coding = answer_headers.get("content-encoding")
        if coding is not None and content:
            content = _decode(content, coding)
        return Answer(event.status_code, answer_headers, content)

    async def _next(self, conn: _Conn, timeout_s: float | None) -> Any:
        """The next h11 event, reading the socket as needed (httpcore's ``_receive_event``)."""
        state = conn.h11
        while True:
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                return event
            try:
                async with asyncio.timeout(timeout_s):
                    data = await conn.reader.read(_READ_BYTES)
            except TimeoutError as exc:
                raise_if_cancelling(exc)
                raise httpx.ReadTimeout("") from None
            except OSError as exc:
                raise httpx.ReadError(str(exc)) from exc
            if data == b"" and state.their_state is h11.SEND_RESPONSE:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            try:
                state.receive_data(data)
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc


def _decode(content: bytes, coding: str) -> bytes:
    """Rule 5: the codings httpx decodes, in the order they were applied, undone last first."""
    for value in reversed([v.strip().lower() for v in coding.split(",")]):
        if value == "gzip":
            decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif value == "deflate":
            decoder = zlib.decompressobj()
            try:
                content = decoder.decompress(content) + decoder.flush()
                continue
            except zlib.error:  # raw deflate without the zlib header, as httpx also accepts
                decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        else:
            continue
        try:
            content = decoder.decompress(content) + decoder.flush()
        except zlib.error as exc:
            raise httpx.DecodingError(str(exc)) from exc
    return content


def rest_http(rest_url: str, request_timeout_s: float) -> Http11Client | httpx.AsyncClient:
    """The daemon's HTTP client for Binance REST: :class:`Http11Client`, or httpx's client (with
    its proxy support) when the environment names a proxy (rule 4). Use as ``async with``."""
    timeout = httpx.Timeout(request_timeout_s)
    proxies = urllib.request.getproxies()
    if {"all", urlsplit(rest_url).scheme} & set(proxies):
        return httpx.AsyncClient(base_url=rest_url, timeout=timeout)
    return Http11Client(rest_url, timeout=timeout)
