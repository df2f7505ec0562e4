"""Issue 12, Deliver 3: the optional liveness proof. The real daemon (``run()``) on the
simulator and a real redis-server, default settings but ``[stream] canary_*`` (the test is
about them): a healthy stream proves each canary and the canary is cancelled at once; a stream
that drops ALGO_UPDATE (or is muted) is declared blind (``stream_blind`` with the canary's
message), and no canary rests longer than its bound (plus one REST round trip)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import redis.asyncio

from tests.integration.test_daemon import KEYS, start_daemon
from tests.integration.test_stop_triggered import default_table
from tests.support.waiting import eventually
from watchdog.core.canary import is_canary
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.5
# One REST round trip on a loaded 2-core test machine: the cancel is sent when the bound ends.
REST_SLACK_MS = 1_500


def canary_table(sim: Simulator, redis_url: str) -> dict[str, Any]:
    table = default_table(sim, redis_url)
    table["stream"] = {"canary_interval_s": 1.2, "canary_symbol": "BASUSDT",
                       "canary_timeout_s": TIMEOUT_S}
    return table


def canaries(sim: Simulator) -> list[Any]:
    return [a for account in sim.exchange.accounts.values() for a in account.algos.values()
            if is_canary(a.client_algo_id)]


async def blind_events(rclient: redis.asyncio.Redis) -> list[dict[str, str]]:
    entries = await rclient.xrange(KEYS.events)
    return [f for _, f in entries if f.get("kind") == "stream_blind"]


async def _stop(daemon: asyncio.Task[int], stop: asyncio.Event) -> None:
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        assert await asyncio.wait_for(daemon, 30) == 0


def assert_rested_within_the_bound(sim: Simulator) -> None:
    for algo in canaries(sim):
        assert algo.status == "CANCELED", (algo.client_algo_id, algo.status)
        rested_ms = algo.update_time_ms - algo.create_time_ms
        assert rested_ms <= TIMEOUT_S * 1000 + REST_SLACK_MS, (algo.client_algo_id, rested_ms)


async def test_a_healthy_stream_proves_every_canary(sim: Simulator, redis_url: str,
                                                   rclient: redis.asyncio.Redis) -> None:
    daemon, stop = start_daemon(sim, canary_table(sim, redis_url))
    try:
        await eventually(lambda: asyncio.sleep(0, canaries(sim)),
                         lambda found: len([a for a in found if a.status == "CANCELED"]) >= 3,
                         timeout_s=30, what="three canaries placed and cancelled")
    finally:
        await _stop(daemon, stop)
    assert_rested_within_the_bound(sim)
    assert await blind_events(rclient) == []
    assert all(a.side == "BUY" and a.reduce_only for a in canaries(sim))


@pytest.mark.parametrize("fault", [{"drop_events": ["ALGO_UPDATE"]}, {"stream": "mute"}],
                         ids=["algo_updates_dropped", "muted"])
async def test_a_canary_without_its_update_declares_the_stream_blind(
        sim: Simulator, redis_url: str, rclient: redis.asyncio.Redis,
        fault: dict[str, Any]) -> None:
    daemon, stop = start_daemon(sim, canary_table(sim, redis_url))
    try:
        await eventually(lambda: asyncio.sleep(0, canaries(sim)),
                         lambda found: any(a.status == "CANCELED" for a in found),
                         timeout_s=30, what="a first canary proven")
        assert await blind_events(rclient) == []
        sim.set_faults(**fault)
        blind = await eventually(lambda: blind_events(rclient), lambda found: len(found) >= 1,
                                 timeout_s=30, what="stream_blind from the canary")
        assert "canary" in blind[0]["message"]
        assert "within 500 ms" in blind[0]["message"]
        await eventually(lambda: asyncio.sleep(0, canaries(sim)),
                         lambda found: all(a.status == "CANCELED" for a in found),
                         timeout_s=10, what="the unproven canary cancelled")
    finally:
        await _stop(daemon, stop)
    assert_rested_within_the_bound(sim)
