"""``Pipeline.take_over`` (runtime/build.py): what the core ran between the acquisition and the
takeover's first beat was deferred (effects_runner.py rule 6), and the takeover writes it at
once, not a heartbeat later. Real redis-server; Binance is never called (a 503 transport)."""

from __future__ import annotations

from typing import Any

import httpx
import redis.asyncio

from tests.support.store import ACCOUNT, position_key
from watchdog.clock import SystemClock
from watchdog.config import Config, Credentials, RedisConfig
from watchdog.core.effects import RaiseAlert
from watchdog.runtime.build import Endpoints, build, store_of
from watchdog.store.keys import AccountKeys


async def test_the_takeover_writes_an_alert_run_before_its_first_beat(redis_url: str) -> None:
    config = Config(redis=RedisConfig(url=redis_url, account=ACCOUNT))
    store = store_of(config)
    await store.start()
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(503)),
                             base_url=config.binance.rest_url)
    async with http, build(config, Credentials("key", "secret"), SystemClock(),
                           Endpoints(http=http, store=store)) as pipeline:
        for coro in pipeline.tasks().values():
            coro.close()  # built, never started: the test plays the lead task's round
        assert await store.acquire(announce=True)
        alert = RaiseAlert("stream_blind", "test: run before the first beat",
                           position_key("BASUSDT"))
        await pipeline.runner.run([alert])
        assert pipeline.runner.store_down, "deferred until the takeover's first beat"
        await pipeline.take_over()
        assert not pipeline.runner.store_down
    await store.close()
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        entries: Any = await client.xrange(AccountKeys(ACCOUNT).events)
    finally:
        await client.aclose()
    assert [fields.get("code") for _, fields in entries if fields["kind"] == "alert"] \
        == ["stream_blind"]
