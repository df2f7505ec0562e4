"""Rule 6 of the stream: connections found blind are replaced at a bounded, steady cadence."""

from __future__ import annotations

import time

import pytest
from loguru import logger

from tests.binance.test_stream import FakeBinance, Harness, running, until
from watchdog.binance.protocol.reconnect import BlindReconnects
from watchdog.core.events import Event, PositionSnapshot, StreamConnected, StreamLost

pytestmark = pytest.mark.integration


def connects(events: list[Event]) -> int:
    return sum(isinstance(e, StreamConnected) for e in events)


async def resynced(h: Harness, n: int) -> None:
    await until(h, lambda ev: sum(isinstance(e, PositionSnapshot) for e in ev) >= n,
                f"post-connect snapshot #{n}")


def test_blind_reconnects_policy_spaces_them() -> None:
    policy = BlindReconnects(30.0)
    assert policy.wait_s(100.0) == 0.0  # the first one goes at once
    policy.started(100.0)
    assert policy.wait_s(100.0) == 30.0
    assert policy.wait_s(120.0) == 10.0
    assert policy.wait_s(131.0) == 0.0
    with pytest.raises(ValueError, match="interval_s > 0"):
        BlindReconnects(0.0)


async def test_blind_reports_are_spaced_by_the_interval_and_logged() -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="INFO", format="{message}")
    lost_at: list[float] = []
    try:
        async with running(FakeBinance(), blind_reconnect_interval_s=0.6) as h:
            await resynced(h, 1)
            h.stream.request_blind_reconnect("REST shows amount 0")
            await until(h, lambda ev: connects(ev) >= 2, "first blind reconnect (at once)")
            lost_at.append(time.monotonic())
            await resynced(h, 2)
            for _ in range(3):  # the stream is still blind: reported again and again
                h.stream.request_blind_reconnect("REST shows amount 1")
            assert h.stream.stats.blind_deferred == 1  # one scheduled, the others only log
            assert connects(h.events) == 2
            await until(h, lambda ev: connects(ev) >= 3, "the scheduled blind reconnect")
            lost_at.append(time.monotonic())
            stats = h.stream.stats
            assert stats.blind_reconnects == 2
            lost = [e for e in h.events if isinstance(e, StreamLost)]
            assert [e.reason.startswith("blind: REST shows amount") for e in lost] == [True, True]
    finally:
        logger.remove(sink)
    assert lost_at[1] - lost_at[0] >= 0.6 - 0.05  # never sooner than the interval (a lower bound)
    text = "\n".join(lines)
    assert text.count("user stream blind: reconnecting now") == 2
    assert text.count("user stream blind again: reconnecting in") == 1
    assert "already scheduled" in text


async def test_a_new_connection_cancels_a_scheduled_blind_reconnect() -> None:
    fake = FakeBinance()
    async with running(fake, blind_reconnect_interval_s=30.0) as h:
        await resynced(h, 1)
        h.stream.request_blind_reconnect("REST shows amount 0")
        await until(h, lambda ev: connects(ev) >= 2, "blind reconnect")
        await resynced(h, 2)
        h.stream.request_blind_reconnect("REST shows amount 1")
        assert h.stream.stats.blind_deferred == 1
        await fake.sockets[-1].close()  # the link drops: a fresh connection anyway
        await until(h, lambda ev: connects(ev) >= 3, "reconnect after the drop")
        assert h.stream._blind_timer is None  # the verdict was about the old connection
        assert h.stream.stats.blind_reconnects == 1


async def test_blind_reconnect_does_not_grow_the_backoff() -> None:
    async with running(FakeBinance(), blind_reconnect_interval_s=0.05) as h:
        await resynced(h, 1)
        for n in range(2, 6):
            h.stream.request_blind_reconnect(f"REST shows amount {n}")
            await until(h, lambda ev, n=n: connects(ev) >= n, f"blind reconnect {n}")
            await resynced(h, n)
            assert h.stream._backoff.failures == 0  # reset each time, and no delay taken
