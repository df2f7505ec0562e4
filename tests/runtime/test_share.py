"""Fair share of leads (runtime/share.py): who counts as live, the share, and that an instance
never takes more than its share nor keeps more once another instance is live."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.binance.protocol.weights import SWEEP_WEIGHT
from watchdog.clock import ManualClock
from watchdog.runtime.share import SWEEP_SHARE, FairShare, SweepSlots, fair_share, live_instances

TTL = 1500


class FakeStore:
    """One account's lead as the share sees it; ``rows``: the instances zset (shared dict)."""

    def __init__(self, rows: dict[str, int], instance: str = "me", holder: str = "") -> None:
        self.rows = rows
        self.instance = instance
        self.lead_ttl_ms = TTL
        self.leading = False
        self.holder = holder

    async def instances(self) -> list[tuple[str, int]]:
        return list(self.rows.items())

    async def acquire(self, *, announce: bool = False) -> bool:
        if self.holder and self.holder != self.instance:
            return False
        self.leading = True
        return True

    async def register(self) -> None:
        """A registration only (at the share): nothing to count here."""


class RegisteringStore(FakeStore):
    registered = 0

    async def register(self) -> None:
        self.registered += 1


def test_live_instances_are_those_registered_within_one_ttl_of_the_freshest() -> None:
    rows = [("a", 10_000), ("b", 9_000), ("c", 8_400), ("a", 9_500)]
    assert live_instances(rows, "me", TTL) == {"a", "b", "me"}
    assert live_instances([], "me", TTL) == {"me"}


@given(st.integers(1, 200), st.integers(1, 50))
def test_the_shares_cover_every_account_and_differ_by_at_most_one(accounts: int, live: int) -> None:
    share = fair_share(accounts, live)
    assert share * live >= accounts
    assert (share - 1) * live < accounts or share == 1


@pytest.mark.parametrize(("accounts", "others", "expected"), [(4, 0, 4), (4, 1, 2), (5, 1, 3),
                                                               (10, 1, 5), (1, 3, 1)])
async def test_an_instance_acquires_up_to_its_share_and_no_more(accounts: int, others: int,
                                                                expected: int) -> None:
    rows = {"me": 10_000} | {f"other{i}": 10_000 for i in range(others)}
    stores = [FakeStore(rows) for _ in range(accounts)]
    share = FairShare(stores, ManualClock())
    # Every pipeline's standby round at once: the lock keeps them from overshooting together.
    await asyncio.gather(*(share.acquire(s, announce=True) for s in stores))
    assert share.leading == expected


async def test_a_new_live_instance_makes_the_last_leading_account_over_the_share() -> None:
    rows = {"me": 10_000}
    clock = ManualClock()
    stores = [FakeStore(rows) for _ in range(4)]
    share = FairShare(stores, clock)
    for store in stores:
        assert await share.acquire(store, announce=False)
    assert not any([await share.over(s) for s in stores])
    rows["new"] = 10_200  # another instance registered
    clock.advance(1.0)  # past the cached count
    # Exactly one hands on per round (the last leading one), until 2 of 4 are left.
    for left in (3, 2):
        over = [s for s in stores if await share.over(s)]
        assert over == [[s for s in stores if s.leading][-1]]
        over[0].leading = False
        assert share.leading == left
    assert not any([await share.over(s) for s in stores])


async def test_a_dead_instance_stops_counting_and_its_accounts_may_be_taken() -> None:
    rows = {"me": 10_000, "dead": 10_000}
    clock = ManualClock()
    stores = [FakeStore(rows) for _ in range(4)]
    share = FairShare(stores, clock)
    for store in stores:
        await share.acquire(store, announce=False)
    assert share.leading == 2
    rows["me"] = 10_000 + TTL + 1  # we keep registering; the dead one does not
    clock.advance(1.0)
    for store in stores:
        await share.acquire(store, announce=True)
    assert share.leading == 4


async def test_at_its_share_an_instance_registers_as_standby_of_the_accounts_it_does_not_lead(
        ) -> None:
    """Without it an instance at its share vanished from those accounts' instances sets
    (``status`` listed no standby there; test_share_redis.py has it against Redis)."""
    rows = {"me": 10_000, "other": 10_000}
    stores = [RegisteringStore(rows) for _ in range(4)]
    share = FairShare(stores, ManualClock())
    for store in stores:
        await share.acquire(store, announce=False)
    assert [s.registered for s in stores] == [0, 0, 1, 1]
    assert share.leading == 2


def test_sweep_slots_spread_ten_accounts_over_two_minutes_of_the_whole_ip() -> None:
    slots = SweepSlots(2400)
    assert slots.gap_s == pytest.approx(12.0)  # 5 a minute: 400 of 2400
    assert [slots.claim(0.0) for _ in range(10)] == pytest.approx([12.0 * i for i in range(10)])
    assert slots.planned(30.0) == [(pytest.approx(12.0 * i), SWEEP_WEIGHT) for i in range(3, 10)]
    assert slots.claim(200.0) == 200.0  # long after the last slot: at once
    assert SweepSlots(360).gap_s == pytest.approx(60.0)  # the default 15 % share


@given(st.integers(80, 20_000), st.lists(st.floats(0, 600), min_size=1, max_size=60))
def test_sweep_slots_never_put_more_than_their_share_of_the_budget_in_a_minute(
        budget: int, asked: list[float]) -> None:
    slots = SweepSlots(budget)
    got = [slots.claim(now) for now in sorted(asked)]
    assert all(at >= now for at, now in zip(got, sorted(asked), strict=True))
    for at in got:  # any 60 s window starting at a slot
        inside = sum(1 for other in got if at <= other < at + 60)
        assert inside * SWEEP_WEIGHT <= max(SWEEP_WEIGHT, budget * SWEEP_SHARE) + 1e-6
