"""Several accounts' user streams on one connection (binance/shared_stream.py), against the
simulator over real sockets. Each account runs its own ``UserDataStream`` exactly as the daemon
wires it with ``Shared`` (runtime/build.py rule 4); assertions are on the events each account's
core would receive and on the simulator's own list of connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import pytest

from tests.support.waiting import eventually as _eventually
from watchdog.binance.rest import BinanceRest, make_http_client
from watchdog.binance.shared_stream import SharedUserStreams
from watchdog.binance.stream import UserDataStream
from watchdog.clock import SystemClock
from watchdog.config import Credentials
from watchdog.core.events import (
    Event,
    ListenKeyExpired,
    PositionSnapshot,
    StreamConnected,
    StreamLost,
    StreamPositions,
)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


@dataclass
class Account:
    name: str
    api_key: str
    stream: UserDataStream
    events: list[Event] = field(default_factory=list)

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def amounts(self) -> list[Decimal]:
        return [row.amount for e in self.events if isinstance(e, StreamPositions)
                for row in e.positions]


async def eventually(condition: Callable[[], object], what: str, timeout_s: float = 15.0) -> None:
    async def probe() -> bool:
        return bool(condition())

    await _eventually(probe, bool, timeout_s=timeout_s, what=what)


def private_connections(sim: Simulator) -> list[int]:
    """Keys per open private connection, as the simulator sees them."""
    return [len(c.subscriptions) for c in sim.venue.hub.connections if c.subscriptions]


@contextlib.asynccontextmanager
async def accounts(sim: Simulator, n: int, **stream_options: float,
                   ) -> AsyncIterator[tuple[list[Account], SharedUserStreams]]:
    clock = SystemClock()
    shared = SharedUserStreams(sim.ws_url, clock)
    found: list[Account] = []
    async with contextlib.AsyncExitStack() as stack:
        for i in range(n):
            key, secret = ((sim.api_key, sim.api_secret) if i == 0 else
                           (f"key{i:02d}" + "k" * 58, f"secret{i:02d}" + "s" * 55))
            if i:
                sim.exchange.add_account(key, secret)
            http: httpx.AsyncClient = await stack.enter_async_context(
                make_http_client(sim.rest_url, 5.0))
            rest = BinanceRest(http, Credentials(key, secret), clock=clock,
                               weight_budget_per_min=2400)
            name = f"acct{i}"
            stream = UserDataStream(rest, ws_url=sim.ws_url, clock=clock, max_silence_s=5.0,
                                    reconnect_min_delay_s=0.05, reconnect_max_delay_s=0.3,
                                    connect=shared.connector(name), **stream_options)
            shared.bind(name, stream.request_rotation)
            found.append(Account(name, key, stream))
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(shared.run(), name="shared")]
            tasks += [tg.create_task(a.stream.run(a.emit), name=a.name) for a in found]
            try:
                yield found, shared
            finally:
                for task in tasks:
                    task.cancel()


def fill(sim: Simulator, api_key: str, qty: str) -> None:
    sim.venue.exchange.market_fill(api_key, "BTCUSDT", "BUY", Decimal(qty), None)
    sim.venue.flush()


async def test_one_connection_carries_every_account_and_each_sees_only_its_own(
        sim: Simulator) -> None:
    async with accounts(sim, 3) as (found, shared):
        await eventually(lambda: all(a.of(PositionSnapshot) for a in found), "all resynced")
        assert private_connections(sim) == [3]
        assert [c.path for c in sim.venue.hub.connections] == ["/private/stream"]
        assert shared.stats.opened == 1
        for i, account in enumerate(found):
            fill(sim, account.api_key, f"0.0{i + 1}")
        await eventually(lambda: all(a.amounts() for a in found), "each account's update")
        for i, account in enumerate(found):
            assert account.amounts() == [Decimal(f"0.0{i + 1}")], account.name
            assert len(account.of(StreamConnected)) == 1


async def test_one_account_alone_gets_the_one_account_url(sim: Simulator) -> None:
    async with accounts(sim, 1) as (found, _shared):
        await eventually(lambda: found[0].of(PositionSnapshot), "resynced")
        assert [c.path for c in sim.venue.hub.connections] == ["/private/ws"]
        fill(sim, found[0].api_key, "0.01")
        await eventually(lambda: found[0].amounts() == [Decimal("0.01")], "its update")


async def test_an_expired_key_moves_that_account_alone_and_the_others_keep_their_stream(
        sim: Simulator) -> None:
    async with accounts(sim, 3) as (found, shared):
        await eventually(lambda: all(a.of(PositionSnapshot) for a in found), "all resynced")
        first = sim.venue.hub.connections.copy()
        victim, others = found[1], [found[0], found[2]]
        sim.venue.exchange.force_expire_listen_key(victim.api_key)
        sim.venue.flush()
        await eventually(lambda: len(victim.of(StreamConnected)) == 2, "victim reconnected")
        assert victim.of(ListenKeyExpired)
        # Its own connection, and the shared one (which still names its expired key).
        assert sorted(private_connections(sim)) == [1, 3]
        for account in others:  # no gap, no second connect
            assert not account.of(StreamLost), account.name
            assert len(account.of(StreamConnected)) == 1
        assert any(c in first for c in sim.venue.hub.connections)  # the shared one lives on
        for i, account in enumerate(found):
            fill(sim, account.api_key, f"0.0{i + 1}")
        await eventually(lambda: all(a.amounts() for a in found), "each account's update")
        for i, account in enumerate(found):
            assert account.amounts() == [Decimal(f"0.0{i + 1}")], account.name
        assert shared.connections == 2


async def test_losing_the_connection_is_a_gap_for_every_account_and_all_come_back_together(
        sim: Simulator) -> None:
    async with accounts(sim, 3) as (found, shared):
        await eventually(lambda: all(a.of(PositionSnapshot) for a in found), "all resynced")
        sim.set_faults(stream="disconnect")
        await eventually(lambda: all(len(a.of(PositionSnapshot)) == 2 for a in found),
                         "every account resynced after the loss")
        for account in found:
            assert len(account.of(StreamLost)) == 1, account.name
            assert len(account.of(StreamConnected)) == 2, account.name
        await eventually(lambda: private_connections(sim) == [3], "back on one connection")
        assert shared.stats.opened == 2


async def test_one_account_found_blind_leaves_alone_without_a_gap_for_the_others(
        sim: Simulator) -> None:
    async with accounts(sim, 2) as (found, shared):
        await eventually(lambda: all(a.of(PositionSnapshot) for a in found), "all resynced")
        found[0].stream.request_blind_reconnect("test: REST saw what the stream did not")
        await eventually(lambda: len(found[0].of(PositionSnapshot)) == 2, "replaced")
        assert not found[1].of(StreamLost)
        assert shared.connections == 2
        fill(sim, found[1].api_key, "0.02")
        fill(sim, found[0].api_key, "0.01")
        await eventually(lambda: all(a.amounts() for a in found), "each account's update")
        assert found[0].amounts() == [Decimal("0.01")]
        assert found[1].amounts() == [Decimal("0.02")]


async def trade_until(sim: Simulator, found: list[Account], done: Callable[[], bool],
                      what: str, timeout_s: float = 30.0) -> None:
    """Fill each account in turn (what a successor proves itself on) until ``done``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    step = 0
    while not done():
        assert loop.time() < deadline, f"{what} not reached within {timeout_s}s"
        step += 1
        for account in found:
            before = len(account.amounts())
            fill(sim, account.api_key, "0.001")
            await eventually(lambda a=account, n=before: len(a.amounts()) > n,
                             f"{account.name} fill #{step} delivered")


async def test_a_rotation_moves_every_account_together_without_a_gap(sim: Simulator) -> None:
    async with accounts(sim, 3, rotate_after_s=2.0) as (found, shared):
        await eventually(lambda: all(a.of(PositionSnapshot) for a in found), "all resynced")
        await trade_until(sim, found, lambda: all(a.stream.stats.rotations >= 1 for a in found),
                          "every account rotated")
        for account in found:
            assert not account.of(StreamLost), account.name  # make-before-break: no gap
        assert shared.stats.most_keys == 3
        assert shared.stats.opened_alone == 0  # nobody rotated onto a connection of its own


async def test_an_account_alone_after_its_key_expired_rejoins_at_the_next_rotation(
        sim: Simulator) -> None:
    async with accounts(sim, 3, rotate_after_s=8.0) as (found, shared):
        await eventually(lambda: all(a.of(PositionSnapshot) for a in found), "all resynced")
        victim = found[1]
        sim.venue.exchange.force_expire_listen_key(victim.api_key)
        sim.venue.flush()
        await eventually(lambda: len(victim.of(StreamConnected)) == 2, "victim alone")
        assert shared.connections == 2
        await trade_until(sim, found, lambda: all(a.stream.stats.rotations >= 1 for a in found),
                          "every account rotated, the victim invited")
        await eventually(lambda: private_connections(sim) == [3], "one connection again")
        assert len(victim.of(StreamLost)) == 1  # its expiry; the rotation was no gap
        for account in (found[0], found[2]):
            assert not account.of(StreamLost), account.name


async def test_rule_5_a_refused_shared_handshake_makes_each_account_retry_alone(
        sim: Simulator) -> None:
    sim.set_faults(ws_handshake_errors={"status": 400, "code": -1125, "count": 1})
    async with accounts(sim, 3) as (found, shared):
        await eventually(lambda: all(a.of(PositionSnapshot) for a in found), "all resynced")
        assert shared.stats.refused == 1
        assert sorted(private_connections(sim)) == [1, 1, 1]  # one bad key keeps nobody off
        for i, account in enumerate(found):
            fill(sim, account.api_key, f"0.0{i + 1}")
        await eventually(lambda: all(a.amounts() for a in found), "each account's update")
        for i, account in enumerate(found):
            assert account.amounts() == [Decimal(f"0.0{i + 1}")], account.name
