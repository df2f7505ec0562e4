"""ReaperTask reads leases only while a verdict depends on them (reaper_task rule 1): at idle (no
order, or only stops of open positions) it leaves Redis alone; an order that reaches the lease
check is decided only on leases read since that need began (real Redis, no Binance)."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

from tests.core.reaper_support import KEY, StubPositions, algo_update, listed_book, view
from tests.support.waiting import eventually
from watchdog.clock import ManualClock, SystemClock
from watchdog.config import ReaperConfig
from watchdog.core.effects import CancelOrder, Effect
from watchdog.core.events import Event
from watchdog.core.model import AlgoStatus, PositionKey
from watchdog.core.orders import OrderBook
from watchdog.core.reaper import Why
from watchdog.runtime.reaper_task import ReaperTask
from watchdog.store.keys import member_of
from watchdog.store.publisher import RedisPublisher


class Exchange:
    """What ``step`` asks of BinanceRest: Binance's clock."""

    def exchange_time_ms(self) -> int:
        return 100_000


class CountingStore:
    """The real publisher, counting lease reads."""

    def __init__(self, publisher: RedisPublisher) -> None:
        self.publisher = publisher
        self.lease_reads = 0

    async def leased_symbols(self) -> frozenset[PositionKey]:
        self.lease_reads += 1
        return await self.publisher.leased_symbols()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.publisher, name)


class CountingQueue(asyncio.Queue[CancelOrder]):
    """The reaper's queue, counting the run loop's turns (one ``get`` per turn)."""

    turns = 0

    async def get(self) -> CancelOrder:
        self.turns += 1
        return await super().get()


def stop_on(positions: StubPositions) -> tuple[StubPositions, OrderBook]:
    orders = listed_book()
    orders.apply(algo_update(2, AlgoStatus.NEW, at_ms=2_000))
    return positions, orders


def open_book() -> tuple[StubPositions, OrderBook]:
    """A stop protecting an open position: kept whatever the leases (POSITION_OPEN)."""
    return stop_on(StubPositions(views={KEY: view(KEY, amount=Decimal(1216))}))


def flat_book() -> tuple[StubPositions, OrderBook]:
    """The same stop on a position flat by REST: its verdict depends on the leases."""
    return stop_on(StubPositions().set_flat(KEY, 1_000))


async def no_event(event: Event) -> None:
    raise AssertionError(f"unexpected event {event}")


def task_of(store: CountingStore, clock: Any, lease_refresh_s: float = 0.2) -> ReaperTask:
    return ReaperTask(Exchange(), store, no_event, clock, ReaperConfig(grace_ms=0),  # type: ignore[arg-type]
                      read_positions=None, lease_refresh_s=lease_refresh_s)


def kinds(effects: list[Effect]) -> list[str]:
    return [type(e).__name__ for e in effects]


async def test_run_reads_leases_only_while_a_verdict_needs_them(
        publisher: RedisPublisher) -> None:
    store = CountingStore(publisher)
    task = task_of(store, SystemClock(), lease_refresh_s=0.01)
    queue = CountingQueue()
    task._queue = queue  # type: ignore[assignment]
    runner = asyncio.create_task(task.run())

    async def idle() -> None:
        await eventually(lambda: asyncio.sleep(0, task._idle), lambda i: i,
                         what="the reaper's loop waiting without a timer")

    try:
        await idle()
        assert store.lease_reads == 1  # once at start: "reaper active" (or paused) is known
        assert kinds(task.step(*open_book(), 0)) == []
        turns = queue.turns
        for _ in range(50):  # the loop gets every chance to turn: it has no reason to
            await asyncio.sleep(0)
        assert (queue.turns, store.lease_reads) == (turns, 1)  # a stop on an open position needs no lease
        task.step(*flat_book(), 0)  # a candidate: leases are read again, every turn
        await eventually(lambda: asyncio.sleep(0, store.lease_reads), lambda n: n >= 4,
                         what="lease reads while a candidate waits")
        task.step(*open_book(), 0)  # the position reopened: no verdict needs leases
        reads = store.lease_reads
        await idle()
        assert store.lease_reads <= reads + 1  # at most the read already under way
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_an_idle_run_loop_waits_without_a_timer_until_a_need_begins(
        publisher: RedisPublisher) -> None:
    """Session 7: it woke every lease_refresh_s (5 times a second) to look at the need; now the
    core loop's poke after each batch wakes it, at once, when a need began there."""
    store = CountingStore(publisher)
    guard_needs = False
    task = ReaperTask(Exchange(), store, no_event, SystemClock(), ReaperConfig(grace_ms=0),  # type: ignore[arg-type]
                      read_positions=None, lease_refresh_s=0.01,
                      also_needs_leases=lambda: guard_needs)
    queue = CountingQueue()
    task._queue = queue  # type: ignore[assignment]
    runner = asyncio.create_task(task.run())
    try:
        await eventually(lambda: asyncio.sleep(0, task._idle), lambda i: i, what="idle")
        turns, reads = queue.turns, store.lease_reads
        loop = asyncio.get_running_loop()
        # No turn for a long while (10 lease_refresh_s) with no need: no timer is armed.
        waited = loop.create_future()
        loop.call_later(0.1, waited.set_result, None)
        await waited
        assert (queue.turns, store.lease_reads) == (turns, reads)
        task.poke()  # a batch without a need: nothing happens
        await asyncio.sleep(0)
        assert queue.turns == turns
        guard_needs = True  # the guard's step began a need (a run not yet alerted)
        task.poke()  # what CoreLoop does after the batch
        await eventually(lambda: asyncio.sleep(0, store.lease_reads), lambda n: n > reads,
                         what="the lease read the guard's need asks for")
        guard_needs = False
        await eventually(lambda: asyncio.sleep(0, task._idle), lambda i: i, what="idle again")
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_a_candidate_is_decided_only_on_leases_read_since_it_appeared(
        publisher: RedisPublisher) -> None:
    clock = ManualClock(now_ms=100_000)  # the wall clock stands still; leases follow now_s
    task = task_of(CountingStore(publisher), clock)
    await task.refresh_leases()  # at 0 s: no lease
    clock.now_s = 30.0
    assert task.step(*open_book(), 0) == []
    assert task.last_decision is not None
    assert [a.why for a in task.last_decision.assessments] == [Why.POSITION_OPEN]
    # Meanwhile the bot took a lease on the position, which then went flat.
    await publisher._redis.zadd(publisher.keys.leases, {member_of(KEY): 2**52})
    positions, orders = flat_book()
    assert task.step(positions, orders, 0) == []  # the lease set is from 0 s: not decided
    assert [a.why for a in task.last_decision.assessments] == [Why.POSITION_OPEN]
    clock.now_s = 30.1
    await task.refresh_leases()  # what ``run`` does within lease_refresh_s
    assert task.step(positions, orders, 0) == []
    assert [a.why for a in task.last_decision.assessments] == [Why.LEASE_HELD]
    await publisher._redis.zrem(publisher.keys.leases, member_of(KEY))
    clock.now_s = 30.5
    await task.refresh_leases()
    assert kinds(task.step(positions, orders, 0)) == ["CancelOrder"]  # the bot let go
