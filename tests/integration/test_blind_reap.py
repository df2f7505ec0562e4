"""Issue 12's opening scenario, at the default configuration: the stream is muted, a position
closes by a fill, and a reduce-only stop is left on it (the one the watchdog knew, and one the
bot places after the close). Both must be removed, with the watchdog's REST weight within its
share the whole time.

The real daemon (``run``; every setting at its default but the URLs and the account) against
the simulator and a real redis-server, once routine polls use most of the share (after about a
minute). On main at the time, the routine positions polls then took the whole share (over it:
they were exempt from it) and the stop placed after the close stayed for up to a minute. Timing is
recorded, not asserted: the figure (p95 over 10 trials against ``grace_ms`` + 2 s) is
``bench/blind_reap.py``'s; here the deadline is generous for a loaded machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio

from tests.support.simulator import SimClient
from tests.support.waiting import eventually
from watchdog.binance.protocol.weights import IP_WEIGHT_LIMIT_PER_MIN
from watchdog.config import Credentials, parse_config
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.runtime.daemon import run
from watchdog.sim import Simulator
from watchdog.sim.auth import WeightMeter
from watchdog.store.keys import AccountKeys

pytestmark = pytest.mark.integration

ACCOUNT = "blind"
KEYS = AccountKeys(ACCOUNT)
SYMBOL = "BASUSDT"
QTY = "1216"
INCIDENTS = 3  # the second and third come within a minute of the first (one blind reconnect)
DEADLINE_S = 20.0


def log_weights(sim: Simulator) -> list[tuple[float, int]]:
    """Every weight the simulator charges from now on, with its monotonic time."""
    charges: list[tuple[float, int]] = []

    class Logged(WeightMeter):
        def charge(self, now_ms: int, weight: int) -> int:
            used = super().charge(now_ms, weight)
            charges.append((time.monotonic(), weight))
            return used

    sim.venue.weights = Logged()
    return charges


def peak_60s(charges: list[tuple[float, int]]) -> int:
    return max((sum(w for t, w in charges if at - 60 < t <= at) for at, _ in charges), default=0)


async def place_stop(client: SimClient, sim: Simulator, client_id: str) -> int:
    tick = sim.exchange.specs[SYMBOL].tick_size
    trigger = (sim.exchange.mark[SYMBOL] * 9 / 10).quantize(tick)
    answer = await client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol=SYMBOL,
                               side="SELL", type="STOP_MARKET", triggerPrice=f"{trigger:f}",
                               quantity=QTY, reduceOnly="true", clientAlgoId=client_id)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["algoId"])


def algo_open(sim: Simulator, algo_id: int) -> bool:
    algo = sim.exchange.accounts[sim.api_key].algos.get(algo_id)
    return algo is not None and algo.is_open


async def test_stops_on_a_position_closed_while_the_stream_is_muted_are_removed(
        sim: Simulator, sim_client: SimClient, redis_url: str, rclient: redis.asyncio.Redis,
        record_property: Callable[[str, object], None]) -> None:
    charges = log_weights(sim)
    config = parse_config({"binance": {"rest_url": sim.rest_url, "ws_url": sim.ws_url},
                           "redis": {"url": redis_url, "account": ACCOUNT}}, "defaults.toml")
    share = IP_WEIGHT_LIMIT_PER_MIN * config.binance.weight_budget_pct // 100
    stop = asyncio.Event()
    daemon = asyncio.create_task(run(config, Credentials(sim.api_key, sim.api_secret),
                                     stop=stop), name="daemon-under-test")
    position = KEYS.position(PositionKey(Symbol(SYMBOL), PositionSide.BOTH))

    async def state() -> dict[str, Any]:
        assert not daemon.done(), daemon
        return await rclient.hgetall(position)  # type: ignore[no-any-return, misc]

    async def removed_events() -> set[str]:
        entries = await rclient.xrange(KEYS.events)
        return {f["order_id"] for _, f in entries if f.get("kind") == "orphan_removed"}

    async def one_incident(n: int) -> None:
        sim.clear_faults()
        sim.fill(SYMBOL, "BUY", QTY)
        known = await place_stop(sim_client, sim, f"bot-sl-{n}-a")
        await eventually(state, lambda h: h.get("state") == "open", timeout_s=30,
                         what=f"incident {n}: the position published open")
        # The core takes a REST "flat" within max_rest_lag_ms of a newer stream fact for
        # possible lag: the stop fires later than that, as a real one would.
        opened_at = time.monotonic()

        async def age_s() -> float:
            return time.monotonic() - opened_at

        await eventually(age_s, lambda age: age >= config.core.max_rest_lag_ms / 1000 + 0.5,
                         timeout_s=10, what="the open fact older than the REST lag bound")
        sim.set_faults(stream="mute")
        closed_at = time.monotonic()
        sim.fill(SYMBOL, "SELL", QTY)
        placed = await place_stop(sim_client, sim, f"bot-sl-{n}-b")  # the incident's mistake

        async def gone() -> tuple[bool, bool]:
            await state()
            return not algo_open(sim, known), not algo_open(sim, placed)

        # Generous for a loaded machine; the bound itself (grace_ms + 2 s, p95) is measured by
        # bench/blind_reap.py. On main at the time, the second incident's stop stayed 17-57 s.
        await eventually(gone, lambda g: all(g), timeout_s=DEADLINE_S,
                         what=f"incident {n}: both stops removed with the stream muted")
        elapsed_s = time.monotonic() - closed_at
        record_property(f"incident_{n}_removed_after_close_s", round(elapsed_s, 2))
        print(f"\nincident {n}: both stops removed {elapsed_s:.2f} s after the close")
        await eventually(removed_events, lambda ids: {str(known), str(placed)} <= ids,
                         timeout_s=10, what="orphan_removed for both stops")

    try:
        # The issue's state: running for a while, the share used by routine polls ("healthy
        # … weight=347/360"): on main, the reads a reap waits on then never got a turn.
        await eventually(lambda: rclient.hgetall(KEYS.health),
                         lambda h: int(h.get("rest_weight_used_1m", 0)) >= share * 5 // 6,
                         timeout_s=180, interval_s=0.5,
                         what="routine polls using most of the share")
        for incident in range(INCIDENTS):
            await one_incident(incident)
    finally:
        stop.set()
        code = await asyncio.wait_for(daemon, timeout=30)
    assert code == 0
    assert peak_60s(charges) <= share, (peak_60s(charges), share)
