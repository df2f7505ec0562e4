"""Simulator fixtures: the Binance USDⓈ-M simulator in-process, on real sockets, port 0.

Fixtures (function scope, async; pytest-asyncio ``asyncio_mode=auto``):

``sim``
    A running :class:`watchdog.sim.Simulator` with defaults: account ``sim-key``/``sim-secret``
    (one-way mode, 10,000 USDT), symbols BTCUSDT, ETHUSDT, BASUSDT, server pings every 1 s.
    Use ``sim.rest_url`` / ``sim.ws_url`` (bases, as in ``[binance] rest_url/ws_url``),
    ``sim.control_url``, ``sim.exchange`` (the live model, for assertions),
    ``await sim.wait_connections(n)``, ``await sim.wait_for(lambda s: …)``, and the direct
    control helpers ``sim.set_mark_price(symbol, price[, contract_price])``,
    ``sim.fill(symbol, side, qty[, position_side])``, ``sim.set_faults(**faults)``,
    ``sim.clear_faults()``, ``sim.reset()``.

``sim_factory``
    ``async with sim_factory(time_scale=3600, dual_side=True, ping_interval_s=0.2) as s:`` —
    another simulator with :class:`watchdog.sim.SimSettings` overrides.

``sim_client``
    A :class:`SimClient` for ``sim``: signed Binance REST calls made with httpx and this
    module's own HMAC code (``await c.get("/fapi/v3/positionRisk", symbol="BTCUSDT")`` returns
    the ``httpx.Response``), ``await c.listen_key()``, ``await c.control("POST", "mark-price",
    {...})``, and ``c.stream_url(key, events)``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from watchdog.sim import Simulator, run_simulator

__all__ = ["SimClient", "sim", "sim_client", "sim_factory"]

USER_EVENTS = ["ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE", "ALGO_UPDATE", "TRADE_LITE",
               "ACCOUNT_CONFIG_UPDATE", "MARGIN_CALL", "listenKeyExpired"]


class SimClient:
    """A tiny Binance REST client for tests (deliberately not ``watchdog.binance``)."""

    def __init__(self, sim: Simulator, http: httpx.AsyncClient, *, api_key: str | None = None,
                 api_secret: str | None = None) -> None:
        self.sim = sim
        self.http = http
        self.api_key = api_key if api_key is not None else sim.api_key
        self.api_secret = api_secret if api_secret is not None else sim.api_secret

    def signed_query(self, params: dict[str, Any], *, timestamp_ms: int | None = None) -> str:
        full = {**params, "timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)}
        query = urlencode(full)
        signature = hmac.new(self.api_secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        return f"{query}&signature={signature}"

    async def request(self, method: str, path: str, *, signed: bool = True, in_body: bool | None = None,
                      **params: Any) -> httpx.Response:
        """Signed request; POST/PUT send the signed parameters as a form body (like ccxt)."""
        query = self.signed_query(params) if signed else urlencode(params)
        headers = {"X-MBX-APIKEY": self.api_key}
        body_mode = in_body if in_body is not None else method in ("POST", "PUT")
        if body_mode:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return await self.http.request(method, self.sim.rest_url + path, content=query, headers=headers)
        url = self.sim.rest_url + path + (f"?{query}" if query else "")
        return await self.http.request(method, url, headers=headers)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.request("GET", path, **params)

    async def post(self, path: str, **params: Any) -> httpx.Response:
        return await self.request("POST", path, **params)

    async def delete(self, path: str, **params: Any) -> httpx.Response:
        return await self.request("DELETE", path, **params)

    async def listen_key(self) -> str:
        response = await self.request("POST", "/fapi/v1/listenKey", signed=False)
        response.raise_for_status()
        return str(response.json()["listenKey"])

    async def control(self, method: str, name: str, doc: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.request(method, f"{self.sim.control_url}/{name}", json=doc)

    def stream_url(self, listen_key: str, events: list[str] | None = None) -> str:
        return self.sim.user_stream_url(listen_key, USER_EVENTS if events is None else events)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(ping_interval_s=1.0) as simulator:
        yield simulator


@pytest.fixture
def sim_factory() -> Callable[..., AbstractAsyncContextManager[Simulator]]:
    return run_simulator


@pytest.fixture
async def sim_client(sim: Simulator) -> AsyncIterator[SimClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield SimClient(sim, http)
