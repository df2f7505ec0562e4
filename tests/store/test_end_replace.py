"""end.lua's ``replace`` mode against a real redis-server: a zero-gap replacement records a
window of 0 (and its span), a bad mode is refused before anything is written, and a create
that fails or a confirm that vetoes is recorded too (``replace_stop`` with plain callbacks)."""

from __future__ import annotations

import json

import pytest
import redis.exceptions

from poswatch.calls import sha_of
from poswatch.client import AsyncWatchdogClient, Vetoed
from tests.support.store import ACCOUNT, make_view, now_ms, position_key
from watchdog.core.model import PositionState
from watchdog.store.publisher import RedisPublisher

BTC = position_key("BTCUSDT")


async def test_a_replacement_records_window_0_and_its_span(alive: RedisPublisher,
                                                           client: AsyncWatchdogClient) -> None:
    steps: list[str] = []

    async def create() -> str:
        steps.append("create")
        return "new-stop"

    async def cancel_new(stop: str) -> None:
        pytest.fail("no veto: the new stop stays")

    async def cancel_old() -> None:
        steps.append("cancel_old")

    moved = await client.replace_stop("BTCUSDT", holder="bot", create=create, cancel_new=cancel_new,
                                      cancel_old=cancel_old)
    assert steps == ["create", "cancel_old"]
    assert (moved.new_stop, moved.ended.window_ms) == ("new-stop", 0)
    record = json.loads((await alive.read_windows())["BTCUSDT:BOTH"])
    assert (record["mode"], record["window_ms"], record["after_confirm_ms"]) == ("replace", 0, 0)
    assert record["span_ms"] >= 0
    assert await alive.leased_symbols() == frozenset()


async def test_a_bad_mode_is_refused_and_the_lease_stays(alive: RedisPublisher,
                                                         client: AsyncWatchdogClient) -> None:
    begun = await client.begin("BTCUSDT", holder="bot")
    script, keys, args = client._p.end("BTCUSDT", "BOTH", begun.lease or 0, "ok")
    with pytest.raises(redis.exceptions.ResponseError, match="mode"):
        await client.redis.evalsha(sha_of(script), len(keys), *keys, *args, "swap")
    assert await alive.leased_symbols() == frozenset({BTC})


async def test_a_confirm_veto_cancels_the_new_stop(alive: RedisPublisher,
                                                   client: AsyncWatchdogClient) -> None:
    cancelled: list[str] = []

    async def create() -> str:
        await alive.publish(make_view(BTC, state=PositionState.CLOSED, version=2, verified_ms=now_ms()))
        return "new-stop"

    async def cancel_new(stop: str) -> None:
        cancelled.append(stop)

    async def cancel_old() -> None:
        pytest.fail("the old stop is not touched after a veto")

    with pytest.raises(Vetoed) as caught:
        await client.replace_stop("BTCUSDT", holder="bot", create=create, cancel_new=cancel_new,
                                  cancel_old=cancel_old)
    assert (caught.value.op, caught.value.verdict.reason) == ("confirm", "position_closed")
    assert cancelled == ["new-stop"]
    record = json.loads((await alive.read_windows())["BTCUSDT:BOTH"])
    assert (record["outcome"], record["window_ms"]) == ("vetoed", 0)


async def test_a_failed_create_is_recorded_and_raised(alive: RedisPublisher,
                                                      client: AsyncWatchdogClient) -> None:
    async def create() -> str:
        raise ConnectionError("exchange unreachable")

    async def never(*_: object) -> None:
        pytest.fail("nothing to cancel")

    with pytest.raises(ConnectionError):
        await client.replace_stop("BTCUSDT", holder="bot", create=create, cancel_new=never,
                                  cancel_old=never)
    record = json.loads((await alive.read_windows())["BTCUSDT:BOTH"])
    assert (record["outcome"], record["window_ms"]) == ("error:ConnectionError", 0)


async def test_the_blocking_client_moves_the_same_way(alive: RedisPublisher, redis_url: str) -> None:
    from poswatch.client import WatchdogClient

    steps: list[str] = []
    wd = WatchdogClient.from_url(redis_url, ACCOUNT, socket_timeout_s=2.0)
    try:
        moved = wd.replace_stop("BTCUSDT", holder="bot", create=lambda: steps.append("create") or 42,
                                cancel_new=lambda _: pytest.fail("no veto"),
                                cancel_old=lambda: steps.append("cancel_old"))
    finally:
        wd.close()
    assert steps == ["create", "cancel_old"]
    assert (moved.new_stop, moved.ended.window_ms, moved.ended.released) == (42, 0, True)
