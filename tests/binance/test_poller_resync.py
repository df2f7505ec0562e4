"""The poller after a reconnect: the stream's post-connect order read restarts that symbol's orders
timer (no second read right after it), but never swallows a read someone asked for; after a
stream gap, the orders of symbols the OrderBook holds orders on are read once more (pure
schedule, and the poller's reading of the event sequence), while symbols with a position are
left to the stream's own post-connect read."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from watchdog.binance.poller import Poller, PollSchedule
from watchdog.binance.rest import BinanceRest
from watchdog.clock import ManualClock, SystemClock
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


def schedule_with_btc_open() -> PollSchedule:
    s = PollSchedule(poll_interval_s=0.9, orders_poll_interval_s=5.0, fast_poll_interval_s=0.25)
    row = PositionAmount(PositionKey(BTC, PositionSide.BOTH), Decimal(1), Decimal(100), 1)
    s.positions_seen(PositionSnapshot(1, 1, 2, (row,), None), 0.0)
    s.orders_read(BTC, 0.0)
    s.sweep_started(0.0)  # no sweep in the way
    return s


def test_an_order_read_by_the_stream_restarts_the_orders_timer() -> None:
    s = schedule_with_btc_open()
    assert BTC in s.plan(5.0).order_symbols  # due after its interval
    s.orders_read_by_other({BTC}, 4.9)
    assert BTC not in s.plan(5.0).order_symbols
    assert BTC not in s.plan(9.8).order_symbols
    assert BTC in s.plan(9.9).order_symbols


def test_an_order_read_by_the_stream_never_serves_a_request() -> None:
    s = schedule_with_btc_open()
    s.snapshot_requested("reaper: confirm flat by REST", {BTC})
    s.orders_read_by_other({BTC}, 1.0)
    assert BTC in s.plan(1.0).orders_urgent
    # A routine request (after a fill the stream reported) is read like after an event.
    s = schedule_with_btc_open()
    s.snapshot_requested("fill on BTCUSDT", {BTC})
    s.orders_read_by_other({BTC}, 1.0)
    assert BTC not in s.plan(1.0).orders_urgent
    assert BTC in s.plan(1.0 + s.fast_poll_interval_s).order_symbols


def test_an_older_read_by_the_stream_does_not_move_the_timer_back() -> None:
    s = schedule_with_btc_open()
    s.orders_read(BTC, 3.0)
    s.orders_read_by_other({BTC}, 2.0)
    assert BTC not in s.plan(7.9).order_symbols
    assert BTC in s.plan(8.0).order_symbols


class _Rest:
    """What Poller's constructor reads of BinanceRest."""

    class budget:  # mirrors the attribute
        budget_per_min = 360

        @staticmethod
        def watch(changed: object) -> None:
            """The poller is told of the budget's changes (budget.py rule 8)."""


def test_the_stream_s_order_reads_are_paid_from_the_orders_share() -> None:
    from watchdog.binance.poller import Poller
    from watchdog.clock import SystemClock
    from watchdog.core.events import OrdersSnapshot

    clock = SystemClock()
    poller = Poller(_Rest(), schedule_with_btc_open(), clock=clock)  # type: ignore[arg-type]
    budget = poller._orders_budget
    now_s = clock.monotonic()
    assert budget.own_used_1m(now_s) == 0
    poller.observe(OrdersSnapshot(7, 1, (), (), frozenset({BTC})))  # not one of the poller's own
    assert budget.own_used_1m(now_s) == 2  # openOrders + openAlgoOrders
    assert budget.budget_per_min == 10  # 360 - reserve 8 - positions 334 - sweep 8


class _BudgetRest:
    def __init__(self) -> None:
        from watchdog.binance.protocol.budget import WeightBudget
        self.budget = WeightBudget(360)

    def budget_wait_s(self, weight: int) -> float:
        return 0.0


def test_an_order_read_held_by_the_budget_does_not_delay_the_positions_poll() -> None:
    from watchdog.binance.poller import Poller

    clock = ManualClock()
    schedule = schedule_with_btc_open()
    poller = Poller(_BudgetRest(), schedule, clock=clock)  # type: ignore[arg-type]
    schedule.positions_started(0.0)  # next positions read due at 0.9
    poller._orders_budget.record(10, 0.0)  # the orders share is spent for a minute
    clock.now_s = 5.5  # BTCUSDT's orders are due, and held back
    schedule.positions_started(5.2)  # the last positions read: the next is due at 6.1
    assert schedule.plan(5.5).order_symbols == (BTC,)
    assert poller._next_wake_s(()) == pytest.approx(0.6)  # the positions poll, not 0.9


# ---------------------------------------------------------------- re-reading orders after a gap


def resync_schedule() -> PollSchedule:
    return PollSchedule(poll_interval_s=1.0, orders_poll_interval_s=300.0,
                        fast_poll_interval_s=0.25, orders_sweep_interval_s=600.0)


def snap(request_id: int, *held: Symbol) -> PositionSnapshot:
    return PositionSnapshot(request_id, 0, 0, tuple(
        PositionAmount(PositionKey(s, PositionSide.BOTH), Decimal(1), Decimal(1), 0) for s in held))


def test_reread_symbols_are_due_first_but_not_urgent_and_read_once() -> None:
    s = resync_schedule()
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
    s = resync_schedule()
    s.reread_orders({ETH})
    s.sweep_started(5.0)
    s.sweep_read(5.0, 5.5)
    assert ETH not in s.tracked(6.0, ())


def resync_poller(order_symbols: set[Symbol]) -> Poller:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    rest = BinanceRest(http, Credentials("k", "s"), recv_window_ms=5000, clock=SystemClock(),
                       weight_budget_per_min=360)
    return Poller(rest, resync_schedule(), clock=SystemClock(), order_symbols=lambda: order_symbols)


def test_the_streams_resync_answer_triggers_the_reread_minus_open_symbols() -> None:
    p = resync_poller({ETH, BTC})
    p.schedule.orders_read(BTC, 0.0)
    p.observe(StreamConnected(2))
    p.observe(SnapshotRequested(41, 0))  # the stream's post-connect read (not the poller's)
    assert ETH not in p.schedule.tracked(0.0, ())
    p.observe(snap(41, BTC))
    tracked = p.schedule.tracked(0.0, ())
    assert ETH in tracked
    assert p.schedule.plan(0.0).order_symbols == (ETH,)  # BTC: the stream reads it itself


def test_a_failed_resync_read_still_rereads_and_other_reads_do_not() -> None:
    p = resync_poller({ETH})
    p.observe(SnapshotRequested(7, 0))  # no connect before it: someone else's read
    p.observe(snap(7))
    assert ETH not in p.schedule.tracked(0.0, ())
    p.observe(StreamConnected(3))
    p.observe(SnapshotRequested(8, 0))
    p.observe(SnapshotFailed(8, "ExchangeUnavailable: 503"))
    assert ETH in p.schedule.tracked(0.0, ())


# ---------------------------------------------------------------- requested order reads and the share


class _OrdersRest(_BudgetRest):
    """A REST client that answers every order read with no orders, and counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Symbol, object]] = []
        self._id = 0

    def exchange_time_ms(self) -> int:
        return 1

    def next_request_id(self) -> int:
        self._id += 1
        return self._id

    async def fetch_open_algo_orders(self, symbol: Symbol, *, priority: object,
                                     retry: bool = True) -> tuple[()]:
        self.calls.append((symbol, priority))
        return ()

    async def fetch_open_orders(self, symbol: Symbol, *, priority: object,
                                retry: bool = True) -> tuple[()]:
        self.calls.append((symbol, priority))
        return ()


async def test_a_requested_order_read_is_paid_from_the_orders_share() -> None:
    """Poller rule 3: a requested order read (the orders of a symbol REST just showed closed,
    the guard's doubt read) is never held by the orders share, but it is paid from it: it is
    that symbol's read too, so the periodic reads make room. On main it came on top of the
    share, and the positions poll paid for it (docs/BENCHMARKS.md, "every weight unit")."""
    from watchdog.binance.protocol.budget import Priority

    clock = ManualClock()
    schedule = schedule_with_btc_open()
    rest = _OrdersRest()
    poller = Poller(rest, schedule, clock=clock)  # type: ignore[arg-type]

    async def emit(event: object) -> None:
        return None

    clock.now_s = 1.0
    schedule.positions_seen(PositionSnapshot(2, 1, 2, (), None), 1.0)  # BTCUSDT closed
    plan = schedule.plan(1.0)
    assert plan.orders_urgent == (BTC,)
    await poller._read_due_orders(plan, emit)  # type: ignore[arg-type]
    assert rest.calls == [(BTC, Priority.REQUESTED)] * 2
    assert poller._orders_budget.own_used_1m(1.0) == 2
    poller._orders_budget.record(8, 1.0)  # four more such reads: the share (10) is spent
    schedule.snapshot_requested("guard: orders of BTCUSDT last read never", {BTC})
    plan = schedule.plan(1.1)
    await poller._read_due_orders(plan, emit)  # type: ignore[arg-type]
    assert len(rest.calls) == 4  # requested: read although the share is spent
    schedule.reread_orders({ETH})  # a routine read now waits for the share
    await poller._read_due_orders(schedule.plan(1.2), emit)  # type: ignore[arg-type]
    assert len(rest.calls) == 4


def test_the_positions_pace_plans_for_what_others_spent() -> None:
    """Budget rule 7 in the poller: the weight of the window that was not its own positions
    reads (here a closure's orders read every 4 s) is planned again over the next minute, so
    the pace is a little wider at once instead of meeting the cap later."""
    clock = ManualClock()
    schedule = schedule_with_btc_open()
    rest = _BudgetRest()
    poller = Poller(rest, schedule, clock=clock)  # type: ignore[arg-type]
    now = 0.0
    while now < 60.0:  # a minute of the poll at 1.0 s
        rest.budget.answered(rest.budget.record(5, now), now)
        poller._paced.append((now, 5))
        now += 1.0
    bare = rest.budget.pace_s(5, now)
    for at in range(0, 60, 4):  # 15 requested order reads of 2 in that minute
        rest.budget.answered(rest.budget.record(2, float(at) + 0.5), float(at) + 0.5)
    assert poller._others_1m(now) == 30
    assert poller._pace_s(now) > rest.budget.pace_s(5, now)  # planned for the next 30
    assert poller._pace_s(now) > bare


def test_the_stream_s_all_symbols_resync_read_is_not_forecast_again() -> None:
    """With more than 40 open symbols the stream's post-connect resync reads every symbol's
    orders at once (80): a sweep, a one-off, which the pace must not expect again over the
    next minute (it would slow the poll by 16 reads for nothing)."""
    from watchdog.core.events import OrdersSnapshot

    clock = ManualClock()
    rest = _BudgetRest()
    poller = Poller(rest, schedule_with_btc_open(), clock=clock)  # type: ignore[arg-type]
    clock.now_s = 10.0
    rest.budget.answered(rest.budget.record(80, 9.9), 9.95)  # the stream's all-symbols read
    poller.observe(OrdersSnapshot(9, 1, (), (), None))
    assert poller._others_1m(10.0) == 0


async def test_the_sweep_waits_for_the_stream_s_all_symbols_resync_read() -> None:
    """Poller rule 4: with more open symbols than per-symbol reads are worth, the stream's
    post-connect resync reads every symbol's orders at once; at a start the poller's own first
    sweep went in the same 10 ms (160 weight in the start's minute, the poll at ~2 s on a
    300-symbol account). Now the sweep waits for that read, which is the sweep."""
    from watchdog.core.events import OrdersSnapshot

    def started() -> tuple[Poller, PollSchedule, ManualClock, _OrdersRest]:
        clock, rest = ManualClock(), _OrdersRest()
        s = PollSchedule(poll_interval_s=0.9, orders_poll_interval_s=5.0, fast_poll_interval_s=0.25)
        rows = tuple(PositionAmount(PositionKey(Symbol(f"S{i:03d}USDT"), PositionSide.BOTH),
                                    Decimal(1), Decimal(1), 1) for i in range(50))
        poller = Poller(rest, s, clock=clock)  # type: ignore[arg-type]
        clock.now_s = 1.0
        s.positions_started(0.5)
        s.positions_seen(PositionSnapshot(1, 1, 2, rows, None), 0.6)  # the first sweep is due
        return poller, s, clock, rest

    async def emit(event: object) -> None:
        return None

    poller, s, clock, rest = started()
    poller.observe(StreamConnected(1))
    assert not await poller._sweep(emit)  # type: ignore[arg-type]
    assert rest.calls == []
    poller.observe(OrdersSnapshot(9, 1, (), (), None))  # the stream's all-symbols read
    assert s.next_sweep_at == pytest.approx(1.0 + s.orders_sweep_interval_s)
    # No connect under way: the sweep goes at once, as before.
    poller, s, clock, rest = started()
    assert await poller._sweep(emit)  # type: ignore[arg-type]
    assert len(rest.calls) == 1  # one list (the algo one) at a time (rule 4)
    # A connect whose read does not come: the sweep goes after RESYNC_ORDERS_WAIT_S.
    poller, s, clock, rest = started()
    poller.observe(StreamConnected(1))
    clock.now_s = 1.0 + 5.0
    s.positions_started(5.9)  # the positions poll is not due (it would go first)
    assert await poller._sweep(emit)  # type: ignore[arg-type]
