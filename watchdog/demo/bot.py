"""The scripted bot of the demo: a software trailing stop moved by cancel + create.

It talks to the exchange the way the incident's bot did: its own signed REST calls (it shares no
code with the watchdog's Binance client, like a real bot), its own idea of the position, and a
fallback to a remembered quantity when the exchange does not show the position.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx

__all__ = ["BotExchange", "ExchangeAnswer"]


@dataclass(frozen=True, slots=True)
class ExchangeAnswer:
    """What one REST call answered: HTTP status, Binance code (0 when none) and the body."""

    status: int
    code: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.code == 0


class BotExchange:
    """Minimal signed USDⓈ-M REST access, as a bot would write it."""

    def __init__(self, rest_url: str, api_key: str, api_secret: str) -> None:
        self._secret = api_secret.encode()
        self._http = httpx.AsyncClient(base_url=rest_url, headers={"X-MBX-APIKEY": api_key},
                                       timeout=httpx.Timeout(5.0))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _signed(self, method: str, path: str, params: dict[str, str]) -> ExchangeAnswer:
        query = urlencode({**params, "timestamp": str(int(time.time() * 1000)), "recvWindow": "5000"})
        signature = hmac.new(self._secret, query.encode(), hashlib.sha256).hexdigest()
        response = await self._http.request(method, f"{path}?{query}&signature={signature}")
        body = response.json()
        code = int(body.get("code", 0)) if isinstance(body, dict) and "msg" in body else 0
        return ExchangeAnswer(response.status_code, code, body)

    async def create_stop(self, symbol: str, side: str, qty: Decimal, trigger: Decimal,
                          client_id: str) -> ExchangeAnswer:
        """A reduce-only STOP_MARKET: since 2025-12-09 an algo order (docs/BINANCE.md §3.1)."""
        return await self._conditional("STOP_MARKET", symbol, side, qty, trigger, client_id)

    async def create_tp(self, symbol: str, side: str, qty: Decimal, trigger: Decimal,
                        client_id: str) -> ExchangeAnswer:
        """A reduce-only TAKE_PROFIT_MARKET, the sibling a fired stop leaves behind."""
        return await self._conditional("TAKE_PROFIT_MARKET", symbol, side, qty, trigger, client_id)

    async def _conditional(self, order_type: str, symbol: str, side: str, qty: Decimal,
                           trigger: Decimal, client_id: str) -> ExchangeAnswer:
        """A reduce-only conditional algo order triggered by the mark price."""
        return await self._signed("POST", "/fapi/v1/algoOrder", {
            "algoType": "CONDITIONAL", "symbol": symbol, "side": side, "type": order_type,
            "quantity": str(qty), "triggerPrice": str(trigger), "reduceOnly": "true",
            "workingType": "MARK_PRICE", "clientAlgoId": client_id,
        })

    async def cancel_stop(self, algo_id: int) -> ExchangeAnswer:
        return await self._signed("DELETE", "/fapi/v1/algoOrder", {"algoId": str(algo_id)})

    async def position_amount(self, symbol: str) -> Decimal | None:
        """The position as REST shows it now (None when REST lists no open position)."""
        answer = await self._signed("GET", "/fapi/v3/positionRisk", {"symbol": symbol})
        if not answer.ok:
            return None
        for row in answer.body:
            amount = Decimal(row["positionAmt"])
            if amount != 0:
                return amount
        return None
