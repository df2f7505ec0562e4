"""Store fixtures: a started RedisPublisher on the session's real redis-server, and view builders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from watchdog.clock import SystemClock
from watchdog.core.model import (
    Knowledge,
    PositionKey,
    PositionSide,
    PositionState,
    PositionView,
    Source,
    Symbol,
)
from watchdog.store.connection import connect
from watchdog.store.publisher import RedisPublisher

ACCOUNT = "test"
HEALTH_TTL_MS = 10_000
MAX_AGE_MS = 5_000


def position_key(symbol: str = "BTCUSDT", side: str = "BOTH") -> PositionKey:
    return PositionKey(Symbol(symbol), PositionSide(side))


def make_view(key: PositionKey | None = None, *, state: PositionState = PositionState.OPEN,
              version: int = 1, verified_ms: int, amount: str = "0.010",
              knowledge: Knowledge | None = None, reason: str = "") -> PositionView:
    """A view as the core would publish it; ``verified_ms`` is the watchdog's wall clock."""
    if knowledge is None:
        knowledge = Knowledge.UNKNOWN if state is PositionState.UNKNOWN else Knowledge.CONFIRMED
    amt = Decimal(0) if state is PositionState.CLOSED else Decimal(amount)
    return PositionView(key=key or position_key(), state=state, knowledge=knowledge, amount=amt,
                        entry_price=Decimal("60000.5"), source=Source.STREAM,
                        as_of_time_ms=verified_ms - 5, verified_ms=verified_ms, version=version,
                        reason=reason)


def publisher_on(redis_url: str, *, socket_timeout_s: float = 2.0,
                 parser: type | None = None) -> RedisPublisher:
    """As ``RedisPublisher.from_url`` (the same client and retry policy); ``parser``: the client
    reads with that redis-py parser (a pure-Python one runs the path of a venv without hiredis,
    the publisher then packs with redis-py too)."""
    client = connect(redis_url, socket_timeout_s=socket_timeout_s, client_name="position-watchdog")
    if parser is not None:
        client.connection_pool.connection_kwargs["parser_class"] = parser
    return RedisPublisher(client, account=ACCOUNT, health_ttl_ms=HEALTH_TTL_MS, closed_ttl_s=60,
                          events_maxlen=1000, veto_max_age_ms=MAX_AGE_MS, url=redis_url)


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[RedisPublisher]:
    pub = RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=HEALTH_TTL_MS, closed_ttl_s=60,
                                  events_maxlen=1000, veto_max_age_ms=MAX_AGE_MS, socket_timeout_s=2.0)
    await pub.start()
    assert await pub.acquire()  # the only instance: it leads (docs/HA.md)
    try:
        yield pub
    finally:
        await pub.close()


async def take_lead(pub: RedisPublisher) -> None:
    """Make ``pub`` the account's leader as a restarted watchdog becomes it once the lease of
    the run before has lapsed (deleted here instead of waited out)."""
    await pub._redis.delete(pub.keys.leader)
    assert await pub.acquire()


def as_leader(pub: RedisPublisher) -> None:
    """``pub`` believes it leads (fence 1) without asking Redis: for tests of unreachable Redis."""
    pub._fence = 1


def now_ms() -> int:
    """The watchdog's wall clock now, in ms: real time, because the Lua scripts compare it with
    the redis-server's own ``TIME``."""
    return SystemClock().wall_ms()
