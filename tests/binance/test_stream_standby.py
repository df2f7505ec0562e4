"""The standby connection of make-before-break at suspicion (stream rule 6, binance/standby.py)
over real sockets, against test_stream's scripted look-alike: what the core receives, in which
order, when a blind verdict promotes the standby, and that an unused one goes quietly."""

from __future__ import annotations

import json

import pytest

from tests.binance.test_stream import (
    FakeBinance,
    Harness,
    _value,
    account_update,
    running,
    until,
)
from tests.support.waiting import eventually
from watchdog.core.events import (
    Event,
    OrdersSnapshot,
    SnapshotRequested,
    StandbyListening,
    StreamConnected,
    StreamLost,
    StreamPositions,
)

pytestmark = pytest.mark.integration

SUSPICION = "REST shows a change the stream has not reported"


def _count(kind: type[Event], events: list[Event]) -> int:
    return sum(isinstance(e, kind) for e in events)


async def resynced(h: Harness, times: int = 1) -> None:
    """The stream's ``times``-th resync done (its post-connect read ends with open orders)."""
    await until(h, lambda ev: _count(OrdersSnapshot, ev) >= times,
                "resynced" if times == 1 else f"resynced {times} times")


async def standby_listening(h: Harness, why: str = SUSPICION) -> None:
    """Suspicion: a standby connection opened beside the live one, and listening."""
    h.stream.prepare_standby(why)
    await until(h, lambda ev: _count(StandbyListening, ev) > 0, "standby listening")


async def reconnected(h: Harness, connections: int) -> StreamConnected:
    """The last StreamConnected, once there were ``connections`` of them."""
    await until(h, lambda ev: _count(StreamConnected, ev) == connections,
                f"{connections} connections")
    return [e for e in h.events if isinstance(e, StreamConnected)][-1]


async def blind_reconnected_once(h: Harness) -> None:
    """Once resynced, the first blind reconnect (allowed at once), connected and resynced: the
    next one within ``blind_reconnect_interval_s`` is deferred."""
    await resynced(h)
    h.stream.request_blind_reconnect("found blind")
    await reconnected(h, 2)
    await resynced(h, 2)


async def test_a_promoted_standby_delivers_what_it_buffered_before_the_post_connect_read() -> None:
    fake = FakeBinance()
    async with running(fake) as h:
        await resynced(h)
        await standby_listening(h)
        mark = next(i for i, e in enumerate(h.events) if isinstance(e, StandbyListening))
        # Rule 6: the read the kept run may start at, requested after the mark.
        await until(h, lambda ev: any(isinstance(e, SnapshotRequested) for e in ev[mark:]),
                    "a positions read after the mark")
        assert len(fake.sockets) == 2
        received = h.stream.stats.received
        # The old connection is mute: an event after the mark reaches the standby only.
        await fake.sockets[1].send_str(json.dumps(account_update(7, "3")))
        await eventually(lambda: _value(h.stream.stats.received), lambda n: n > received,
                         what="the standby buffered the frame")
        assert not any(isinstance(e, StreamPositions) for e in h.events)  # buffered, not fed
        h.stream.request_blind_reconnect("REST shows an unreported change")
        await until(h, lambda ev: any(isinstance(e, OrdersSnapshot) for e in ev[mark:]),
                    "promoted and resynced")
        after = h.events[mark + 1:]
        kinds = [type(e).__name__ for e in after]
        lost = kinds.index("StreamLost")
        assert kinds[lost:lost + 4] == ["StreamLost", "StreamConnected", "StreamPositions",
                                        "SnapshotRequested"], kinds
        connected = after[lost + 1]
        assert isinstance(connected, StreamConnected)
        assert connected.standby
        assert connected.connection_id == 2
        assert h.stream.standby.promoted == 1
        assert fake.posts == 2  # the standby's listen key; the promotion opens nothing new
        assert h.stream.stats.blind_reconnects == 1


async def test_a_standby_without_a_verdict_is_dropped_and_changes_nothing() -> None:
    fake = FakeBinance()
    async with running(fake, standby_hold_s=0.3) as h:
        await resynced(h)
        await standby_listening(h)
        await eventually(lambda: _value(h.stream.standby.dropped), lambda n: n == 1,
                         what="the standby dropped after its hold")
        assert h.stream.standby.listening_id is None
        assert not any(isinstance(e, (StreamLost,)) for e in h.events)
        assert [e.connection_id for e in h.events if isinstance(e, StreamConnected)] == [1]
        # A verdict now is an ordinary blind reconnect: a fresh connection, not a promotion.
        h.stream.request_blind_reconnect("REST shows an unreported change")
        connected = await reconnected(h, 2)
        assert not connected.standby
        assert h.stream.standby.promoted == 0


async def test_no_standby_while_a_blind_reconnect_would_be_deferred() -> None:
    fake = FakeBinance()
    async with running(fake) as h:
        await blind_reconnected_once(h)
        h.stream.prepare_standby("suspected again within the blind-reconnect interval")
        posts = fake.posts
        assert not h.stream.standby.active
        assert len(fake.sockets) == 2
        assert fake.posts == posts


async def test_a_blind_reconnect_deferred_within_the_hold_promotes_the_standby() -> None:
    """The blind-reap bench's 7.15 s trial: the incident came 1.5 s before the once-a-minute
    blind reconnect was allowed again, so no standby was opened and the reconnect restarted the
    flat run. A standby opened then is promoted by the deferred reconnect."""
    fake = FakeBinance()
    async with running(fake, blind_reconnect_interval_s=1.5) as h:
        await blind_reconnected_once(h)
        await standby_listening(h, "suspected again within the blind-reconnect interval")
        h.stream.request_blind_reconnect("found blind again")  # deferred, due within the hold
        connected = await reconnected(h, 3)
        assert connected.standby
        assert h.stream.standby.promoted == 1
        assert h.stream.stats.blind_deferred == 1


async def test_a_standby_that_closed_before_the_verdict_is_not_promoted() -> None:
    """It missed what came after its close: the verdict opens a fresh connection instead."""
    fake = FakeBinance()
    async with running(fake) as h:
        await resynced(h)
        await standby_listening(h)
        await fake.sockets[1].close()  # Binance drops the standby
        h.stream.request_blind_reconnect("REST shows an unreported change")
        connected = await reconnected(h, 2)
        assert not connected.standby
        assert connected.connection_id == 3
        assert fake.posts == 3


async def test_no_standby_when_the_budget_has_no_room_for_it() -> None:
    """A read the budget refuses is a failed read (the keys it covers go unknown): without room
    for its listen key and read, no standby, no read (the bot-exhausts-the-IP chaos scenario)."""
    fake = FakeBinance()
    async with running(fake) as h:
        await resynced(h)
        rest = h.stream.standby._rest  # the stream's REST client (its budget)
        rest.budget.block(30.0, rest._clock.monotonic())  # a 429's Retry-After
        posts, n = fake.posts, len(h.events)
        h.stream.prepare_standby(SUSPICION)
        assert not h.stream.standby.active
        assert fake.posts == posts
        assert h.events[n:] == []
