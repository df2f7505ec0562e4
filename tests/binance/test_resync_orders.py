"""After a stream gap, the orders of symbols the OrderBook holds orders on are read once more
(pure schedule, and the poller's reading of the event sequence); symbols with a position are
left to the stream's own post-connect read."""

from __future__ import annotations

from decimal import Decimal

import httpx

from watchdog.binance.poller import Poller, PollSchedule
from watchdog.binance.rest import BinanceRest
from watchdog.clock import SystemClock
from watchdog.config import Credentials
from watchdog.core.events import (
    PositionAmount,
    PositionSnapshot,
    SnapshotFailed,
    SnapshotRequested,
    StreamConnected,
)
from watchdog.core.model import PositionKey, PositionSide, Symbol

ETH, BTC, SOL = Symbol("ETHUSDT"), Symbol("BTCUSDT"), Symbol("SOLUSDT")


def schedule() -> PollSchedule:
    return PollSchedule(poll_interval_s=1.0, orders_poll_interval_s=300.0,
                        fast_poll_interval_s=0.25, orders_sweep_interval_s=600.0)


def snap(request_id: int, *held: Symbol) -> PositionSnapshot:
    return PositionSnapshot(request_id, 0, 0, tuple(
        PositionAmount(PositionKey(s, PositionSide.BOTH), Decimal(1), Decimal(1), 0) for s in held))


def test_reread_symbols_are_due_first_but_not_urgent_and_read_once() -> None:
    s = schedule()
    s.positions_started(0.0)
    s.positions_seen(snap(1), 0.0)
    s.sweep_started(0.0)
    s.orders_read(SOL, 0.0)
    s.activity(SOL, 0.0)
    s.orders_read(SOL, 0.1)  # watched (recently active), next read in 300 s
    assert s.plan(1.0).order_symbols == ()
    s.reread_orders({ETH})
    plan = s.plan(1.0)
    assert plan.order_symbols == (ETH,)
    assert plan.orders_urgent == ()  # within the order reads' share, like any poll
    s.orders_read(ETH, 1.1)
    assert ETH not in s.tracked(1.2, ())  # once: it holds no other reason to be watched


def test_a_sweep_counts_as_the_reread() -> None:
    s = schedule()
    s.reread_orders({ETH})
    s.sweep_started(5.0)
    s.sweep_read(5.0, 5.5)
    assert ETH not in s.tracked(6.0, ())


def poller(order_symbols: set[Symbol]) -> Poller:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    rest = BinanceRest(http, Credentials("k", "s"), recv_window_ms=5000, clock=SystemClock(),
                       weight_budget_per_min=360)
    return Poller(rest, schedule(), clock=SystemClock(), order_symbols=lambda: order_symbols)


def test_the_streams_resync_answer_triggers_the_reread_minus_open_symbols() -> None:
    p = poller({ETH, BTC})
    p.schedule.orders_read(BTC, 0.0)
    p.observe(StreamConnected(2))
    p.observe(SnapshotRequested(41, 0))  # the stream's post-connect read (not the poller's)
    assert ETH not in p.schedule.tracked(0.0, ())
    p.observe(snap(41, BTC))
    tracked = p.schedule.tracked(0.0, ())
    assert ETH in tracked
    assert p.schedule.plan(0.0).order_symbols == (ETH,)  # BTC: the stream reads it itself


def test_a_failed_resync_read_still_rereads_and_other_reads_do_not() -> None:
    p = poller({ETH})
    p.observe(SnapshotRequested(7, 0))  # no connect before it: someone else's read
    p.observe(snap(7))
    assert ETH not in p.schedule.tracked(0.0, ())
    p.observe(StreamConnected(3))
    p.observe(SnapshotRequested(8, 0))
    p.observe(SnapshotFailed(8, "ExchangeUnavailable: 503"))
    assert ETH in p.schedule.tracked(0.0, ())
