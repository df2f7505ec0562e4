"""Issue 12, "rotation onto a mute socket", against the simulator: a make-before-break rotation
whose new connection delivers nothing must not replace the working one."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.binance.test_adapters_sim import lost_reasons, stream_amounts, watching
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_a_mute_new_connection_never_replaces_the_working_one(
        sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url, rotate_after_s=1.0) as w:
        sim.set_faults(stream="mute_new")  # every connection opened from now on is mute
        hub = sim.venue.hub
        amount = Decimal(0)
        for rejected in (1, 2):  # two successors in a row fail their probation
            opened = hub.last_id
            await w.until(lambda w, n=opened: hub.last_id > n, "a successor opened", timeout_s=10)
            for _ in range(5):  # trade until the successor is judged; each fill via the stream
                amount += Decimal("0.001")
                w.sim.fill("BTCUSDT", "BUY", "0.001")
                await w.until(lambda w, a=amount: a in stream_amounts(w.events),
                              f"the stream delivered the fill to {amount}", timeout_s=10)
                try:
                    await w.until(lambda w, n=rejected: w.stream.stats.rotations_rejected >= n,
                                  f"successor #{rejected} rejected", timeout_s=4)
                    break
                except AssertionError:
                    continue  # that fill reached the old one before the new one was ready
            assert w.stream.stats.rotations_rejected >= rejected
        assert w.stream.stats.rotations == 0  # none replaced the working connection
        assert lost_reasons(w) == []  # no gap either: the old connection never stopped
        assert w.book.stream_state == "live"


async def test_a_delivering_new_connection_replaces_the_old_one(
        sim: Simulator, redis_url: str) -> None:
    async with watching(sim, redis_url, rotate_after_s=1.0) as w:
        hub = sim.venue.hub
        amount = Decimal(0)
        for rotation in (1, 2):
            opened = hub.last_id
            await w.until(lambda w, n=opened: hub.last_id > n, "a successor opened", timeout_s=10)
            for _ in range(5):  # a fill sent before the successor's probation began proves nothing
                amount += Decimal("0.001")
                w.sim.fill("BTCUSDT", "BUY", "0.001")  # what the new connection proves itself on
                await w.until(lambda w, a=amount: a in stream_amounts(w.events),
                              f"the stream delivered the fill to {amount}", timeout_s=10)
                try:
                    await w.until(lambda w, n=rotation: w.stream.stats.rotations >= n,
                                  f"rotation #{rotation}", timeout_s=4)
                    break
                except AssertionError:
                    continue  # under load the fill reached the old one before probation began
            assert w.stream.stats.rotations >= rotation
        assert lost_reasons(w) == []  # make-before-break: never a gap
