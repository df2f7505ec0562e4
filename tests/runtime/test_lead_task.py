"""The lead task and the heartbeat task on the daemon's beat (runtime/beat.py), on a real
redis-server: the renewal due with the heartbeat travels with it in one round trip
(store/runner.py rule 2), and the lead is still kept, and still lost, on the renewal's own
reply (store/lead.py rule 3)."""

from __future__ import annotations

import asyncio

import redis.asyncio

from tests.runtime.test_effects_runner import Sinks, make_runner
from tests.runtime.test_effects_runner_lead import publisher
from tests.support.waiting import eventually
from watchdog.clock import SystemClock
from watchdog.runtime.lead_task import run_lead
from watchdog.runtime.loops import run_heartbeat


async def _noop() -> None:
    return None


async def test_the_renewal_due_with_the_beat_goes_with_it_and_a_lost_lease_is_still_seen(
        redis_url: str) -> None:
    leader = publisher(redis_url)
    await leader.start()
    runner, vitals = make_runner(leader, Sinks())
    clock = SystemClock()
    # At the defaults: a 0.25 s grid, renewals every 0.5 s, a beat every second.
    tasks = [asyncio.create_task(run_lead(leader, _noop, clock, timeout_s=1.0, grid_s=0.25)),
             asyncio.create_task(run_heartbeat(leader, runner, vitals, clock, interval_s=1.0,
                                               timeout_s=1.0, grid_s=0.25))]
    r = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        await eventually(lambda: _value(leader._runner.joined_batches), lambda n: n >= 2,
                         timeout_s=10, what="renewals joined with the beat")
        assert leader.leading
        assert await r.get(leader.keys.leader) == leader.instance
        # The lease taken by hand under our fence: only the renewal's reply can tell; the beats
        # it travels with keep being written (they check the fence only).
        await r.set(leader.keys.leader, "host:1:other", px=60_000)
        await eventually(lambda: _value(leader.leading), lambda leading: not leading,
                         timeout_s=5, what="the lead task steps down on its renewal's reply")
        assert await r.get(leader.keys.leader) == "host:1:other"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await r.aclose()
        await leader.close()


async def _value(value: object) -> object:
    return value
