"""Issue 12, "Reconnect storm": a listen key that expires right after every connect.

On main at the time, ``listenKeyExpired`` reset the backoff (the reconnect was "decided"),
and each connect's listen key and post-connect reads were exempt from the weight budget:
20 connects in 10 s and 726 weight/min for one symbol, twice our share. Here the real stream,
poller and core run at the default ``[binance]`` settings against the simulator, whose listen
keys live 0.3 s, with a position open (so each connect also reads that symbol's orders).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from tests.support.pipeline import running
from watchdog.binance.protocol.reconnect import backoff_resets
from watchdog.binance.rest import BinanceRest
from watchdog.binance.stream import UserDataStream
from watchdog.clock import SystemClock
from watchdog.config import BinanceConfig, Config, Credentials, RedisConfig
from watchdog.runtime.build import build
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

WINDOW_S = 10.0


@pytest.mark.parametrize(("lived_s", "resets"), [
    (0.0, False), (0.3, False), (4.99, False),  # expired, blind or dropped within seconds
    (5.0, True), (3600.0, True),                # a connection that lived
])
def test_only_a_connection_that_lived_resets_the_backoff(lived_s: float, resets: bool) -> None:
    assert backoff_resets(lived_s) is resets


@contextlib.asynccontextmanager
async def watchdog_on(sim: Simulator,
                      redis_url: str) -> AsyncIterator[tuple[BinanceRest, UserDataStream]]:
    """The pipeline the daemon runs; every ``[binance]`` key but the URLs at its default."""
    config = Config(binance=BinanceConfig(rest_url=sim.rest_url, ws_url=sim.ws_url),
                    redis=RedisConfig(url=redis_url, account="storm"))
    async with build(config, Credentials(sim.api_key, sim.api_secret), SystemClock()) as pipeline, \
            running(pipeline):
        yield pipeline.rest, pipeline.stream


async def test_a_key_expiring_at_every_connect_backs_off_and_stays_within_the_share(
        sim_factory: Callable[..., AbstractAsyncContextManager[Simulator]], redis_url: str) -> None:
    async with sim_factory(listen_key_ttl_s=0.3) as sim:
        sim.fill("BASUSDT", "BUY", "1216")
        charged: list[int] = []
        meter = sim.venue.weights
        loop = asyncio.get_running_loop()
        async with watchdog_on(sim, redis_url) as (rest, stream):
            connected_at: list[float] = []
            peak_own = 0
            started = loop.time()
            # A measurement window, not a synchronisation: count what happens in 10 s.
            while loop.time() - started < WINDOW_S + 0.5:
                if stream.stats.connects > len(connected_at):
                    connected_at.append(loop.time())
                peak_own = max(peak_own, rest.own_weight_1m)
                charged.append(meter.used)
                assert stream.stats.connects <= 12, "reconnecting as fast as on main"
                await asyncio.sleep(0.01)
            first = connected_at[0]
            in_window = [t for t in connected_at if t - first <= WINDOW_S]
            print(f"\nconnects in {WINDOW_S:g} s: {len(in_window)}; peak own weight over "
                  f"60 s: {peak_own}/{rest.budget.budget_per_min}; expired keys seen: "
                  f"{stream.stats.last_lost_reason!r}")
            assert stream.stats.last_lost_reason == "listen_key_expired"
            assert len(in_window) >= 3  # it does keep trying
            # Backoff 0.5 s doubling (defaults): 0.5 + 0.5 + 1 + 2 + 4 s at the least.
            assert len(in_window) <= 6, connected_at
            assert peak_own <= rest.budget.budget_per_min
            # The simulator's own count (Binance's X-MBX-USED-WEIGHT-1M; the run is shorter
            # than a minute, so no 60 s holds more than the whole run).
            assert max(charged) <= rest.budget.budget_per_min
