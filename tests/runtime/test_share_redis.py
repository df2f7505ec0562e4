"""The fair share against real Redis (runtime/share.py, docs/HA.md): every instance stays
registered in the ``instances`` set of every account it watches, leader or standby, so
``status`` names the leader and every standby of each account."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from watchdog.clock import ManualClock
from watchdog.ops.status import read_status
from watchdog.ops.status_view import render_text
from watchdog.runtime.share import FairShare
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

ACCOUNTS = ("a", "b", "c", "d")


class Instance:
    """One process's pipelines as the lead task drives them (runtime/lead_task.py), one round
    at a time: renew (and hand on when over the share) while leading, else the share's acquire."""

    def __init__(self, redis_url: str, name: str) -> None:
        self.name = name
        self.clock = ManualClock()
        self.stores = [RedisPublisher.from_url(
            redis_url, account=account, health_ttl_ms=10_000, closed_ttl_s=60, events_maxlen=100,
            veto_max_age_ms=5_000, socket_timeout_s=2.0, instance=name) for account in ACCOUNTS]
        self.share = FairShare(self.stores, self.clock)

    async def round(self) -> None:
        self.clock.advance(1.0)  # past the share's cached count of live instances
        for store in self.stores:
            if store.leading:
                if await store.renew() and await self.share.over(store):
                    await store.resign("over this instance's fair share of the accounts")
            else:
                await self.share.acquire(store, announce=False)

    def leads(self) -> set[str]:
        return {s.keys.account for s in self.stores if s.leading}


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[Instance, Instance]]:
    group = (Instance(redis_url, "host1:1:aaaa"), Instance(redis_url, "host2:2:bbbb"))
    for instance in group:
        for store in instance.stores:
            await store.start()
    yield group
    for instance in group:
        for store in instance.stores:
            await store.close()


async def registered(rclient: redis.asyncio.Redis) -> dict[str, set[str]]:
    return {a: set(await rclient.zrange(AccountKeys(a).instances, 0, -1)) for a in ACCOUNTS}


async def test_every_instance_is_registered_and_listed_as_standby_of_every_account_it_does_not_lead(
        pair: tuple[Instance, Instance], redis_url: str, rclient: redis.asyncio.Redis) -> None:
    first, second = pair
    await first.round()  # alone: it leads every account
    assert first.leads() == set(ACCOUNTS)
    for _ in range(6):  # the second joins; the first hands on one lead per round
        await second.round()
        await first.round()
    assert (len(first.leads()), len(second.leads())) == (2, 2)
    both = {first.name, second.name}
    # Right after the hand-ons (a resign unregistered the first from those accounts' sets).
    await first.round()
    await second.round()
    assert await registered(rclient) == {a: both for a in ACCOUNTS}
    # Every registration ran out (three TTLs without a round): one round each brings back all
    # of them, the standbys' too (an instance at its share does not try to acquire).
    for account in ACCOUNTS:
        await rclient.delete(AccountKeys(account).instances)
    await first.round()
    await second.round()
    assert await registered(rclient) == {a: both for a in ACCOUNTS}
    for instance, other in ((first, second), (second, first)):
        for account in instance.leads():
            report = read_status(redis_url, account, socket_timeout_s=2.0)
            assert report.ha["leader"] == instance.name, report.ha
            assert report.ha["standbys"] == [other.name], (account, report.ha)
            assert report.to_json()["ha"]["standbys"] == [other.name]
            assert f"standbys: {other.name}" in render_text(report)
    for store in first.stores + second.stores:  # the registration told who leads
        assert store.leader in both
