"""The core loop with real parts (books, store on a real redis-server, sd_notify over a real
datagram socket) and a fake clock: READY once published, WATCHDOG=1 only while loops progress."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.store import ACCOUNT
from watchdog.clock import ManualClock
from watchdog.core.book import PositionBook
from watchdog.core.effects import CancelOrder, Effect, ReadNow, RequestSnapshot
from watchdog.core.events import (
    PositionAmount,
    PositionSnapshot,
    SnapshotRequested,
    StreamConnected,
    Tick,
)
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.core.orders import OrderBook
from watchdog.errors import InvariantViolation
from watchdog.runtime.effects_runner import EffectsRunner
from watchdog.runtime.loops import CoreLoop, Inbox
from watchdog.runtime.systemd import Notifier
from watchdog.runtime.vitals import Identity, Vitals
from watchdog.store.keys import AccountKeys
from watchdog.store.publisher import RedisPublisher

KEY = PositionKey(Symbol("BASUSDT"), PositionSide.BOTH)
T0_MS = 1_764_000_000_000


def start_clock() -> ManualClock:
    return ManualClock(now_s=1000.0, now_ms=T0_MS + 1_000_000)


class Sinks:
    def __init__(self) -> None:
        self.snapshots: list[RequestSnapshot] = []
        self.reads_now: list[ReadNow] = []

    def request_snapshot(self, request: RequestSnapshot) -> None:
        self.snapshots.append(request)

    def read_now(self, effect: ReadNow) -> None:
        self.reads_now.append(effect)

    def submit(self, cancel: CancelOrder) -> None:
        raise AssertionError(f"no cancel expected: {cancel}")


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[Notifier, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}), sock
    sock.close()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisPublisher]:
    pub = RedisPublisher.from_url(redis_url, account=ACCOUNT, health_ttl_ms=5000, closed_ttl_s=60,
                                  events_maxlen=1000, veto_max_age_ms=3000, socket_timeout_s=1.0)
    await pub.start()
    assert await pub.acquire()  # the only instance: it leads
    yield pub
    await pub.close()


def received(sock: socket.socket) -> list[str]:
    lines: list[str] = []
    while True:
        try:
            lines += sock.recv(4096).decode().split("\n")
        except BlockingIOError:
            return lines


def make_loop(store: RedisPublisher, notifier: Notifier, clock: ManualClock,
              inbox: Inbox | None = None) -> tuple[CoreLoop, Vitals]:
    book = PositionBook()
    vitals = Vitals(Identity(1, "h", "0", 0), book, weight_budget_1m=360, progress_limit_s=10.0)
    runner = EffectsRunner(store, Sinks(), Sinks(), vitals, store_timeout_s=2.0)
    loop = CoreLoop(inbox or Inbox(100), book, OrderBook(), runner, vitals, notifier, clock,
                    status_interval_s=3600.0)
    return loop, vitals


async def test_ready_after_the_first_published_snapshot_then_keepalive_only_while_loops_progress(
        store: RedisPublisher, notify: tuple[Notifier, socket.socket], redis_url: str) -> None:
    import redis.asyncio

    notifier, sock = notify
    clock = start_clock()
    loop, vitals = make_loop(store, notifier, clock)
    await loop.handle(Tick())
    assert "READY=1" not in received(sock)

    await loop.handle(StreamConnected(1))
    await loop.handle(SnapshotRequested(1, clock.wall_ms()))
    row = PositionAmount(KEY, Decimal(1216), Decimal("0.00832684"), clock.wall_ms())
    await loop.handle(PositionSnapshot(1, clock.wall_ms(), clock.wall_ms(), (row,)))
    assert "READY=1" not in received(sock), "no heartbeat written yet: bots would see no watchdog"
    vitals.heartbeat_written = True
    vitals.progressed("poller", clock.now_s)
    vitals.progressed("heartbeat", clock.now_s)
    await loop.handle(Tick())
    lines = received(sock)
    assert lines[0] == "READY=1"
    assert "WATCHDOG=1" in lines
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        assert await client.hget(AccountKeys(ACCOUNT).position(KEY), "state") == "open"
    finally:
        await client.aclose()

    clock.advance(1.5)  # keepalive due (WATCHDOG_USEC/2 = 1 s); loops progressed 1.5 s ago
    await loop.handle(Tick())
    assert received(sock) == ["WATCHDOG=1"]

    clock.advance(20) # no progress from the poller or the heartbeat for 20 s: a hang
    await loop.handle(Tick())
    assert received(sock) == [], "WATCHDOG=1 must stop while a loop makes no progress"

    vitals.progressed("poller", clock.now_s)
    vitals.progressed("heartbeat", clock.now_s)
    await loop.handle(Tick())
    assert received(sock) == ["WATCHDOG=1"]


def test_a_full_inbox_is_an_invariant_violation() -> None:
    inbox = Inbox(2)
    inbox.put(Tick())
    inbox.put(Tick())
    with pytest.raises(InvariantViolation, match="inbox full"):
        inbox.put(Tick())


async def test_after_batch_runs_once_per_batch_after_the_guard_step(
        store: RedisPublisher, notify: tuple[Notifier, socket.socket]) -> None:
    """Rule 4: the reaper's poke hears a need for leases the guard's step began in the batch."""
    calls: list[str] = []
    book = PositionBook()
    vitals = Vitals(Identity(1, "h", "0", 0), book, weight_budget_1m=360, progress_limit_s=10.0)
    runner = EffectsRunner(store, Sinks(), Sinks(), vitals, store_timeout_s=2.0)

    def guard_step(*_: object) -> list[Effect]:
        calls.append("guard")
        return []

    loop = CoreLoop(Inbox(100), book, OrderBook(), runner, vitals, notify[0], start_clock(),
                    status_interval_s=3600.0, guard_step=guard_step,
                    after_batch=lambda: calls.append("poke"))
    await loop.handle_many([Tick(), Tick()])
    await loop.handle(Tick())
    assert calls == ["guard", "poke", "guard", "poke"]


async def test_an_unreported_algo_order_makes_the_stream_blind_and_unproven(
        store: RedisPublisher, notify: tuple[Notifier, socket.socket], redis_url: str) -> None:
    """The core loop runs order blindness and the stream's proof: an algo order REST lists that
    the stream never reported raises ``stream_blind`` (the runner replaces the connection)
    and the heartbeat says ``unproven`` until REST corroborates a stream event."""
    import redis.asyncio

    from tests.core.reaper_support import algo_row
    from tests.core.reaper_support import snapshot as orders_snapshot
    from watchdog.core.events import StreamPositions

    notifier, _ = notify
    clock = start_clock()
    loop, vitals = make_loop(store, notifier, clock)
    blind: list[str] = []
    loop._runner._reconnect = blind.append
    now = clock.wall_ms()
    await loop.handle(StreamConnected(1))
    await loop.handle(SnapshotRequested(1, now))
    await loop.handle(PositionSnapshot(1, now, now, ()))
    await loop.handle(orders_snapshot(algos=(algo_row(7, created_ms=now + 10),), at_ms=now + 1500))
    assert len(blind) == 1
    assert "algo order 7" in blind[0]
    assert vitals.proof.state == "unproven"
    assert "stream unproven" in " ".join(vitals.health(now + 1500).problems)
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        kinds = [f.get("kind") for _, f in await client.xrange(AccountKeys(ACCOUNT).events)]
        assert "stream_blind" in kinds
    finally:
        await client.aclose()
    row = PositionAmount(KEY, Decimal(1), Decimal(1), now + 2000)
    await loop.handle(StreamPositions(now + 2000, now + 2000, "ORDER", (row,)))
    await loop.handle(SnapshotRequested(2, now + 2100))
    await loop.handle(PositionSnapshot(2, now + 2100, now + 2100, (row,)))
    assert vitals.proof.state == "proven"


async def test_an_unprotected_position_degrades_health_but_never_stops_the_keepalive(
        store: RedisPublisher, notify: tuple[Notifier, socket.socket]) -> None:
    """Issue 17 x systemd: a bot that forgets its stop must not make systemd restart the
    watchdog in a loop (WatchdogSec=): the guard's answer degrades the published health
    (``status`` exit 1), the keepalive follows loop progress only."""
    notifier, sock = notify
    clock = start_clock()
    loop, vitals = make_loop(store, notifier, clock)
    await loop.handle(StreamConnected(1))
    await loop.handle(SnapshotRequested(1, clock.wall_ms()))
    row = PositionAmount(KEY, Decimal(1216), Decimal("0.00832684"), clock.wall_ms())
    await loop.handle(PositionSnapshot(1, clock.wall_ms(), clock.wall_ms(), (row,)))
    vitals.heartbeat_written = True
    vitals.unprotected = lambda: ((KEY, clock.wall_ms() - 60_000),)  # the guard's alerted run
    for _ in range(3):
        vitals.progressed("poller", clock.now_s)
        vitals.progressed("heartbeat", clock.now_s)
        await loop.handle(Tick())
        assert "WATCHDOG=1" in received(sock)
        health = vitals.health(clock.wall_ms())
        assert not health.healthy
        assert any("unprotected" in p and str(KEY) in p for p in health.problems)
        clock.advance(1.5)


async def test_an_orders_read_that_changes_nothing_leaves_the_reapers_decision_standing(
        store: RedisPublisher, notify: tuple[Notifier, socket.socket]) -> None:
    """reaper_task.py rule 10 as wired by build.py: the order book's revision (core/orders.py
    rule 8), not the arrival of an orders read, says the reaper's last decision may be stale.
    Until session 10 every orders read (~5 a second at the defaults) asked a Tick in which the
    reaper decided again over every order, to the same verdicts."""
    from tests.core.reaper_support import algo_row
    from tests.core.reaper_support import snapshot as orders_snapshot
    from tests.runtime.test_reaper_revision import Leases, reaper, run_now
    from watchdog.runtime.loops import TickDue

    clock = start_clock()
    book = PositionBook()
    vitals = Vitals(Identity(1, "h", "0", 0), book, weight_budget_1m=360, progress_limit_s=10.0)
    runner = EffectsRunner(store, Sinks(), Sinks(), vitals, store_timeout_s=2.0)
    task = reaper(clock, Leases())
    loop = CoreLoop(Inbox(100), book, OrderBook(), runner, vitals, notify[0], clock,
                    status_interval_s=3600.0, reaper_step=task.step,
                    due=TickDue(busy=(task.wants_tick,), books_changed=task.books_changed))
    now = clock.wall_ms()
    row = PositionAmount(KEY, Decimal(1), Decimal(1), now - 100)
    await loop.handle(StreamConnected(1))
    await loop.handle(SnapshotRequested(1, now))
    await loop.handle(PositionSnapshot(1, now, now + 10, (row,)))
    stop = algo_row(7, key=KEY, created_ms=now - 5_000)
    stops = (stop, algo_row(8, key=KEY, created_ms=now - 4_000))
    await loop.handle(orders_snapshot(algos=stops, at_ms=now + 20, request_id=2))
    run_now(task.refresh_leases())
    await loop.handle(Tick())
    decision = task.last_decision
    assert decision is not None
    assert [a.why.value for a in decision.assessments] == ["position_open"] * 2
    assert not task.wants_tick()
    for rid in range(3, 8):  # the stops read again, unchanged: no Tick asked, the decision stands
        clock.advance(0.2)
        await loop.handle(orders_snapshot(algos=stops, at_ms=clock.wall_ms(), request_id=rid))
        assert not task.wants_tick()
    clock.advance(2.0)  # a read that no longer lists one (past the lag bound): decide again
    await loop.handle(orders_snapshot(algos=(stop,), at_ms=clock.wall_ms(), request_id=8))
    assert len(loop._orders) == 1
    assert task.wants_tick()
