"""The READMEs' bot example, run as written: real redis-server, real publisher, a fake Binance.

The incident's path: the old stop already fired, so the cancel answers -2011 (ccxt's
OrderNotFound) and the position is closed; the example must not create a stop then.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ccxt
import pytest
import redis

from poswatch import WatchdogClient
from tests.support.store import ACCOUNT, make_view, position_key
from watchdog.core.model import PositionState
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

REPO = Path(__file__).resolve().parents[2]
BAS = position_key("BASUSDT")


def example(readme: Path) -> str:
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.DOTALL)
    found = [b for b in blocks if "def move_stop" in b]
    assert len(found) == 1, f"{readme}: expected one python block defining move_stop"
    return found[0]


class FakeBinance:
    """ccxt's binanceusdm as far as the example uses it; ``on_cancel`` plays the exchange's side."""

    def __init__(self, on_cancel: Callable[[], None]) -> None:
        self.on_cancel = on_cancel
        self.created: list[tuple[Any, ...]] = []

    def cancel_order(self, order_id: str, symbol: str, params: dict[str, Any]) -> None:
        self.on_cancel()
        raise ccxt.OrderNotFound('binanceusdm {"code":-2011,"msg":"Unknown order sent."}')

    def create_order(self, *args: Any) -> dict[str, Any]:
        self.created.append(args)
        return {"id": "1000000099"}


def last_window(redis_url: str) -> dict[str, Any]:
    """The unprotected window ``end`` recorded for BASUSDT:BOTH."""
    with redis.Redis.from_url(redis_url, decode_responses=True) as r:
        text = r.hget(AccountKeys(ACCOUNT).windows, "BASUSDT:BOTH")
    assert isinstance(text, str)
    window: dict[str, Any] = json.loads(text)
    return window


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(params=["README.md", "client/README.md"])
def readme(request: pytest.FixtureRequest) -> Path:
    return REPO / request.param


async def run_example(readme: Path, redis_url: str, exchange: FakeBinance) -> tuple[str | None, list[str]]:
    forgotten: list[str] = []
    namespace: dict[str, Any] = {"KEY": "key", "SECRET": "secret", "forget_trailing_stop": forgotten.append}
    exec(compile(example(readme), str(readme), "exec"), namespace)  # the document's own code, as written
    namespace["wd"].close()
    wd = WatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
    namespace |= {"wd": wd, "exchange": exchange}
    try:
        new_id = await asyncio.to_thread(namespace["move_stop"], "BAS/USDT:USDT", "61937004", "sell",
                                         "0.00829")
    finally:
        wd.close()
    return new_id, forgotten


async def test_the_stop_fired_cancel_answers_2011_and_no_stop_is_created(
        readme: Path, redis_url: str, publisher: RedisPublisher) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BAS, version=1, verified_ms=now_ms()))
    loop = asyncio.get_running_loop()

    def stop_fires() -> None:   # the exchange closed the position while the bot was cancelling
        closed = make_view(BAS, state=PositionState.CLOSED, version=2, verified_ms=now_ms())
        asyncio.run_coroutine_threadsafe(publisher.publish(closed), loop).result(timeout=10)

    exchange = FakeBinance(stop_fires)
    new_id, forgotten = await run_example(readme, redis_url, exchange)
    assert new_id is None
    assert exchange.created == []                   # the incident: a stop for a closed position
    assert forgotten == ["BAS/USDT:USDT"]
    assert last_window(redis_url)["outcome"] == "vetoed"


async def test_the_stop_vanished_but_the_position_is_open_a_stop_is_put_back_without_a_quantity(
        readme: Path, redis_url: str, publisher: RedisPublisher) -> None:
    await publisher.heartbeat({"stream": "live"})
    await publisher.publish(make_view(BAS, version=1, verified_ms=now_ms()))
    exchange = FakeBinance(lambda: None)
    new_id, forgotten = await run_example(readme, redis_url, exchange)
    assert new_id == "1000000099"
    assert forgotten == []
    [(market, kind, side, amount, price, params)] = exchange.created
    assert (market, kind, side, amount, price) == ("BAS/USDT:USDT", "STOP_MARKET", "sell", None, None)
    assert params == {"stopPrice": "0.00829", "closePosition": True}
    assert last_window(redis_url)["outcome"] == "stop_gone"


async def test_with_the_watchdog_down_nothing_is_touched(readme: Path, redis_url: str,
                                                          publisher: RedisPublisher) -> None:
    await publisher.publish(make_view(BAS, version=1, verified_ms=now_ms()))   # no heartbeat
    cancelled: list[bool] = []
    exchange = FakeBinance(lambda: cancelled.append(True))
    new_id, forgotten = await run_example(readme, redis_url, exchange)
    assert (new_id, forgotten, cancelled, exchange.created) == (None, [], [], [])
