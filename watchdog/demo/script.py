"""The scripted market of the BASUSDT demo and what its scenarios share: the incident's prices
and delays, the simulator's control API, the watchdog's config, and waits with a deadline.

Why apart from the scenarios (``incident.py``, ``forgotten_stop.py``): each scenario reads as its
story; the plumbing under them is written once.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from poswatch.client import AsyncWatchdogClient
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.demo.bot import BotExchange
from watchdog.sim import Simulator
from watchdog.store.keys import AccountKeys

__all__ = ["ACCOUNT", "BOT_REACTION_S", "CANCEL_TO_CREATE_S", "CRASH", "ENTRY", "FIRST_STOP",
           "HOLD_S", "LOOKUP_DELAYS_S", "NEXT_STOP", "PEAK", "QTY", "REST_LAG_MS", "STALE_STOP",
           "SYMBOL", "TAKE_PROFIT", "TRAILED_STOP", "DemoFailed", "SimControl", "demo_config",
           "field_is", "flag", "no_stops", "state_is", "wait_async", "watchdog_actors"]

SYMBOL = "BASUSDT"
QTY = Decimal("1216")
ENTRY = Decimal("0.00832684")
FIRST_STOP = Decimal("0.00771")
TAKE_PROFIT = Decimal("0.00900")
PEAK = Decimal("0.00840")
TRAILED_STOP = Decimal("0.00831600")
CRASH = Decimal("0.00831168")          # mark price that fires the trailed stop
STALE_STOP = Decimal("0.00829353")     # what the incident bot created for the closed position
NEXT_STOP = Decimal("0.00831500")      # above the mark: -2021, as in the incident
REST_LAG_MS = 300
# The bot's trailing move starts 50 ms after the stop fired (its feed lags); then the incident's
# own delays: position lookups 296 ms and 795 ms after the cancel, the create at 1090 ms.
BOT_REACTION_S = 0.05
LOOKUP_DELAYS_S = (0.296, 0.499, 0.295)
CANCEL_TO_CREATE_S = sum(LOOKUP_DELAYS_S)
HOLD_S = 2.5
ACCOUNT = "demo"


class DemoFailed(RuntimeError):
    """The watchdog did not do its part; the message carries the tail of its log."""

    def __init__(self, what: str, log_path: Path) -> None:
        try:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        except OSError as exc:
            tail = f"(no log: {exc})"
        super().__init__(f"{what}; last lines of its log:\n{tail}")


class SimControl:
    """The simulator's public control API (``/sim/v1``), as operators and tests use it."""

    def __init__(self, control_url: str) -> None:
        self._http = httpx.AsyncClient(base_url=control_url, timeout=httpx.Timeout(5.0))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, doc: dict[str, Any]) -> None:
        response = await self._http.post(path, json=doc)
        response.raise_for_status()

    async def mark_price(self, price: Decimal) -> None:
        await self._post("/mark-price", {"symbol": SYMBOL, "price": str(price)})

    async def fill(self, side: str, qty: Decimal) -> None:
        await self._post("/fills", {"symbol": SYMBOL, "side": side, "qty": str(qty)})

    async def faults(self, **faults: Any) -> None:
        await self._post("/faults", faults)

    async def reset(self) -> None:
        await self._post("/reset", {})

    async def _account(self) -> dict[str, Any]:
        response = await self._http.get("/state")
        response.raise_for_status()
        account: dict[str, Any] = response.json()["accounts"][0]
        return account

    async def open_stops(self) -> list[dict[str, Any]]:
        """Open algo orders on the demo symbol, as the exchange holds them."""
        return [o for o in (await self._account())["open_algo_orders"] if o.get("symbol") == SYMBOL]

    async def position_amount(self) -> Decimal:
        for row in (await self._account())["positions"]:
            if row["symbol"] == SYMBOL and row["position_side"] == "BOTH":
                return Decimal(row["amount"])
        return Decimal(0)


def no_stops(ctl: SimControl) -> Any:
    async def probe() -> bool:
        return not await ctl.open_stops()
    return probe


def demo_config(sim: Simulator, redis_url: str) -> str:
    return (f'[binance]\nrest_url = "{sim.rest_url}"\nws_url = "{sim.ws_url}"\n\n'
            f'[redis]\nurl = "{redis_url}"\naccount = "{ACCOUNT}"\nheartbeat_interval_s = 0.5\n')


async def field_is(client: AsyncWatchdogClient, key: str, name: str, value: str) -> bool:
    got = await client.redis.hget(key, name)
    return got is not None and (got.decode() if isinstance(got, bytes) else got) == value


def flag(predicate: Any) -> Any:
    async def probe() -> bool:
        return bool(predicate())
    return probe


async def wait_async(probe: Any, timeout_s: float) -> bool:
    """Wait for a condition with a deadline; False (not an exception) when it never held."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await probe():
            return True
        await asyncio.sleep(0.02)
    return False


async def state_is(client: AsyncWatchdogClient, key: str, state: str) -> bool:
    value = await client.redis.hget(key, "state")
    return value is not None and (value.decode() if isinstance(value, bytes) else value) == state


def watchdog_actors(sim: Simulator, redis_url: str
                    ) -> tuple[AccountKeys, str, AsyncWatchdogClient, BotExchange]:
    """A scenario with the watchdog: its keys, the demo position's key, the bot's watchdog
    client and the bot's exchange connection (the caller closes both)."""
    keys = AccountKeys(ACCOUNT)
    position = keys.position(PositionKey(Symbol(SYMBOL), PositionSide.BOTH))
    return (keys, position, AsyncWatchdogClient.from_url(redis_url, ACCOUNT),
            BotExchange(sim.rest_url, sim.api_key, sim.api_secret))
