"""Poller rule 4 (session 6): the sweep reads the algo list and the regular list each on its
own, never in one 60 s window; each read's snapshot says which list it holds. Both in one
minute put 80 weight in every window holding them, where the positions poll could read only
every ~1.2 s (docs/BENCHMARKS.md, session 6)."""

from __future__ import annotations

from decimal import Decimal

from tests.binance.test_poller_resync import _OrdersRest
from watchdog.binance.poller import SWEEP_RETRY_S, Poller, PollSchedule
from watchdog.binance.protocol.schedule import SWEEP_APART_S
from watchdog.clock import ManualClock
from watchdog.core.events import Event, OrdersSnapshot, PositionAmount, PositionSnapshot
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.errors import ExchangeUnavailable


class _Lists(_OrdersRest):
    """Names which list each all-symbols read asked for; can fail the algo one."""

    def __init__(self) -> None:
        super().__init__()
        self.lists: list[str] = []
        self.fail_algo = False

    async def fetch_open_algo_orders(self, symbol: Symbol, *, priority: object,
                                     retry: bool = True) -> tuple[()]:
        if symbol is None:
            self.lists.append("algo")
            if self.fail_algo:
                raise ExchangeUnavailable("503 from the test", status=503)
        return await super().fetch_open_algo_orders(symbol, priority=priority)

    async def fetch_open_orders(self, symbol: Symbol, *, priority: object,
                                retry: bool = True) -> tuple[()]:
        if symbol is None:
            self.lists.append("regular")
        return await super().fetch_open_orders(symbol, priority=priority)


def started() -> tuple[Poller, PollSchedule, ManualClock, _Lists, list[Event]]:
    clock, rest = ManualClock(), _Lists()
    s = PollSchedule(poll_interval_s=0.9, orders_poll_interval_s=5.0, fast_poll_interval_s=0.25)
    poller = Poller(rest, s, clock=clock)  # type: ignore[arg-type]
    row = PositionAmount(PositionKey(Symbol("BTCUSDT"), PositionSide.BOTH), Decimal(1),
                         Decimal(1), 1)
    clock.now_s = 1.0
    s.positions_started(0.9)
    s.positions_seen(PositionSnapshot(1, 1, 2, (row,), None), 0.95)  # the first sweep is due
    return poller, s, clock, rest, []


async def test_at_a_start_the_algo_list_first_and_the_regular_list_half_an_interval_later(
        ) -> None:
    poller, s, clock, rest, seen = started()

    async def emit(event: Event) -> None:
        seen.append(event)

    assert await poller._sweep(emit)
    assert rest.lists == ["algo"]
    swept = [e for e in seen if isinstance(e, OrdersSnapshot)]
    assert [(e.symbols, e.covers_orders, e.covers_algo) for e in swept] == [(None, False, True)]
    half_s = s.orders_sweep_interval_s / 2  # 300 s at the default 600
    for at in (1.5, 30.0, 1.0 + SWEEP_APART_S, 1.0 + half_s - 0.1):
        clock.now_s = at
        s.positions_started(at - 0.1)  # the positions poll is not due (it would go first)
        assert not await poller._sweep(emit)
    assert rest.lists == ["algo"]  # the regular list: half an interval after the algo list
    clock.now_s = 1.0 + half_s
    s.positions_started(clock.now_s - 0.1)
    assert await poller._sweep(emit)
    assert rest.lists == ["algo", "regular"]
    swept = [e for e in seen if isinstance(e, OrdersSnapshot)]
    assert (swept[-1].covers_orders, swept[-1].covers_algo) == (True, False)


async def test_a_failed_list_is_retried_alone_and_the_other_waits_for_its_read() -> None:
    poller, s, clock, rest, _ = started()
    rest.fail_algo = True

    async def emit(event: Event) -> None:
        return None

    assert not await poller._sweep(emit)
    assert rest.lists == ["algo"]
    assert poller.sweep_failures == 1
    # The algo list is tried again first (its failure counts in the window as if charged),
    # and the regular list goes half an interval after the algo list's read.
    retry_at = 1.0 + SWEEP_RETRY_S
    clock.now_s = retry_at
    s.positions_started(clock.now_s - 0.1)
    rest.fail_algo = False
    assert await poller._sweep(emit)
    assert rest.lists == ["algo", "algo"]
    clock.now_s = retry_at + s.orders_sweep_interval_s / 2 - 0.1
    s.positions_started(clock.now_s - 0.1)
    assert not await poller._sweep(emit)
    clock.now_s = retry_at + s.orders_sweep_interval_s / 2
    s.positions_started(clock.now_s - 0.1)
    assert await poller._sweep(emit)
    assert rest.lists == ["algo", "algo", "regular"]
