"""The EffectsRunner tells its observer (the metrics) what it ran and whether it reached Redis,
against a real redis-server that goes away."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from tests.runtime.test_effects_runner import KEY, NOW_MS, Sinks
from tests.support.store import ACCOUNT, make_view, take_lead
from watchdog.core.book import PositionBook
from watchdog.core.effects import Effect, Notify, Publish
from watchdog.core.model import PositionState
from watchdog.runtime.effects_runner import EffectsRunner
from watchdog.runtime.vitals import Identity, Vitals
from watchdog.store.publisher import RedisPublisher


class Seen:
    def __init__(self) -> None:
        self.runs: list[tuple[list[Effect], bool]] = []
        self.writes: list[float] = []

    def effects_run(self, effects: Sequence[Effect], *, written: bool) -> None:
        self.runs.append((list(effects), written))

    def store_written(self, seconds: float) -> None:
        self.writes.append(seconds)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisPublisher]:
    pub = RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=5000, closed_ttl_s=60,
                                  events_maxlen=1000, veto_max_age_ms=3000, socket_timeout_s=0.3)
    await pub.start()
    await take_lead(pub)
    yield pub
    await pub.close()


async def test_observer_sees_written_batches_and_their_latency_and_deferred_ones(
        store: RedisPublisher, redis_server: Any) -> None:
    seen, sinks = Seen(), Sinks()
    vitals = Vitals(Identity(1, "h", "0", 0), PositionBook(), weight_budget_1m=360, progress_limit_s=10)
    runner = EffectsRunner(store, sinks, sinks, vitals, store_timeout_s=2.0, observer=seen)
    opened = [Publish(make_view(KEY, verified_ms=NOW_MS, version=1))]
    await runner.run(opened)
    assert seen.runs == [(opened, True)]
    assert len(seen.writes) == 1
    assert 0 <= seen.writes[0] < 2.0
    redis_server.stop()
    try:
        closed = [Publish(make_view(KEY, state=PositionState.CLOSED, verified_ms=NOW_MS + 1, version=2)),
                  Notify("position_closed", KEY)]
        await runner.run(closed)
        assert seen.runs[-1] == (closed, False), "deferred: bots have not seen it yet"
        assert len(seen.writes) == 1, "no latency for a write that failed"
    finally:
        redis_server.start()
