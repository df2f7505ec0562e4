"""The daemon's poller against the simulator: leases speed up order reads; a store outage does
not stop polling (leases are an accelerator, not a dependency); the startup sweep finds a stop
on a symbol nothing else points at."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.simulator import SimClient
from tests.support.waiting import eventually
from watchdog.binance.poller import Poller
from watchdog.binance.rest import make_http_client
from watchdog.clock import SystemClock
from watchdog.config import BinanceConfig, Config, Credentials
from watchdog.core.events import Event, OrdersSnapshot, PositionSnapshot, SnapshotRequested
from watchdog.core.model import PositionKey, PositionSide, Symbol
from watchdog.core.orders import OrderBook
from watchdog.errors import StoreUnavailable
from watchdog.runtime.build import leased_symbols_of, rest_of, schedule_of
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


class Leases:
    """Stands in for RedisPublisher.leased_symbols (the only call the poller makes)."""

    def __init__(self) -> None:
        self.symbols: set[str] = set()
        self.down = False
        self.reads = 0  # one per poller round

    async def leased_symbols(self) -> frozenset[PositionKey]:
        self.reads += 1
        if self.down:
            raise StoreUnavailable("redis://127.0.0.1:1: connection refused")
        return frozenset(PositionKey(Symbol(s), PositionSide.BOTH) for s in self.symbols)


@contextlib.asynccontextmanager
async def polling(sim: Simulator, leases: Leases, *, orders_poll_interval_s: float = 60.0,
                  book: OrderBook | None = None,
                  started: list[Poller] | None = None) -> AsyncIterator[list[Event]]:
    # The default weight share and positions pace (issue 12: no 50 % share for 0.3 s polls).
    cfg = BinanceConfig(rest_url=sim.rest_url, ws_url=sim.ws_url,
                        orders_poll_interval_s=orders_poll_interval_s, fast_poll_interval_s=0.1)
    http = make_http_client(cfg.rest_url, cfg.request_timeout_s)
    rest = rest_of(Config(binance=cfg), Credentials(sim.api_key, sim.api_secret), SystemClock(), http)
    events: list[Event] = []

    async def emit(event: Event) -> None:
        events.append(event)
        if book is not None:
            book.apply(event)

    poller = Poller(rest, schedule_of(Config(binance=cfg)), clock=SystemClock(),
                    leased_symbols=leased_symbols_of(leases))
    if started is not None:
        started.append(poller)
    task = asyncio.create_task(poller.run(emit))
    try:
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http.aclose()


def count(events: list[Event], kind: type[Any], symbol: str | None = None) -> int:
    return sum(1 for e in events if isinstance(e, kind)
               and (symbol is None or e.symbols == frozenset({symbol})))


async def test_leased_symbol_orders_are_read_fast(sim: Simulator) -> None:
    leases = Leases()
    async with polling(sim, leases) as events:
        async def probe() -> int:
            return count(events, OrdersSnapshot, "ETHUSDT")
        await eventually(lambda: probe(), lambda n: n == 0, what="no lease, no ETH order reads")
        leases.symbols.add("ETHUSDT")
        await eventually(probe, lambda n: n >= 4, what="fast order reads while leased")
        # Positions reads stay bracketed: every snapshot has its request before it.
        requested = {e.request_id for e in events if isinstance(e, SnapshotRequested)}
        assert all(e.request_id in requested for e in events if isinstance(e, PositionSnapshot))


async def test_a_positions_read_held_by_its_pace_takes_one_round(sim: Simulator) -> None:
    # Poller rule 8. A minute of reads every 0.95 s and 20 weight of others' calls are in the
    # window: the pace spaces the next reads a little more than the 0.9 s schedule, as in the
    # footprint's steady state. Each read was deferred at its due time and read in a second
    # round (two lease reads, two plans); now the poller wakes when the pace allows.
    leases = Leases()
    started: list[Poller] = []
    async with polling(sim, leases, started=started) as events:
        poller = started[0]
        budget = poller._rest.budget
        now_s = SystemClock().monotonic()
        for i in range(62):
            at_s = now_s - 59.5 + i * 0.95
            budget.answered(budget.record(5, at_s), at_s + 0.01)
            poller._paced.append((at_s, 5))
            if i == 31:  # and someone else's calls (budget rule 7)
                budget.answered(budget.record(20, at_s), at_s + 0.01)
        poller.schedule.sweep_started(now_s)  # no sweep in the way

        async def reads() -> int:
            return count(events, PositionSnapshot)
        await eventually(reads, lambda n: n >= 2, what="the first reads")
        first, rounds = await reads(), leases.reads
        start_s = SystemClock().monotonic()
        await eventually(reads, lambda n: n >= first + 4, what="four paced reads", timeout_s=30)
        spacing_s = (SystemClock().monotonic() - start_s) / (await reads() - first)
        assert spacing_s > 0.905  # held by the pace (≈ 0.91 s), not the 0.9 s schedule
        assert leases.reads - rounds <= await reads() - first + 1  # one round a read


async def test_store_outage_does_not_stop_polling(sim: Simulator) -> None:
    leases = Leases()
    leases.down = True
    async with polling(sim, leases) as events:
        async def probe() -> int:
            return count(events, PositionSnapshot)
        await eventually(probe, lambda n: n >= 3, what="positions polled with Redis down")


async def test_startup_sweep_finds_a_stop_on_a_symbol_without_position_or_activity(
        sim: Simulator, sim_client: SimClient) -> None:
    # Placed "while the watchdog was down": no position on ETHUSDT, no lease, no stream.
    placed = await sim_client.post("/fapi/v1/algoOrder", algoType="CONDITIONAL", symbol="ETHUSDT",
                                   side="SELL", type="STOP_MARKET", triggerPrice="1000",
                                   closePosition="true", workingType="MARK_PRICE",
                                   clientAlgoId="left-behind")
    assert placed.status_code == 200, placed.text
    algo_id = placed.json()["algoId"]
    book = OrderBook()
    started: list[Poller] = []
    async with polling(sim, Leases(), orders_poll_interval_s=0.5, book=book,
                       started=started) as events:
        async def algo_ids() -> set[int]:
            return {o.order_id for o in book.orders() if o.is_algo}
        await eventually(algo_ids, lambda ids: algo_id in ids, what="the stop in the OrderBook")
        sweep = next(i for i, e in enumerate(events)
                     if isinstance(e, OrdersSnapshot) and e.symbols is None)
        first_positions = next(i for i, e in enumerate(events) if isinstance(e, PositionSnapshot))
        assert first_positions < sweep  # the sweep goes right after the first positions answer
        [order] = [o for o in book.orders() if o.order_id == algo_id]
        assert order.key.symbol == "ETHUSDT"
        assert order.client_id == "left-behind"

        # From now on ETHUSDT is read per symbol while it has orders (weight 2, not 80).
        async def eth_reads() -> int:
            return count(events, OrdersSnapshot, "ETHUSDT")
        await eventually(eth_reads, lambda n: n >= 1, what="per-symbol reads of ETHUSDT")
        cancelled = await sim_client.delete("/fapi/v1/algoOrder", algoId=algo_id)
        assert cancelled.status_code == 200, cancelled.text
        await eventually(algo_ids, lambda ids: algo_id not in ids, what="the cancel seen by REST")

        async def watched() -> set[Symbol]:
            return started[0].schedule.tracked(SystemClock().monotonic(), ())
        await eventually(watched, lambda s: Symbol("ETHUSDT") not in s,
                         what="ETHUSDT no longer watched once it has no orders")


async def test_accounts_on_one_ip_sweep_in_turn_not_at_once(sim: Simulator) -> None:
    """Rule 7: two accounts' pollers on one IP, their sweeps spread by one ``SweepSlots``: the
    second goes at its slot, one gap after the first, and polls positions meanwhile (without
    slots both sweeps go right after their first positions answers, in the same second)."""
    from watchdog.binance.protocol.weights import SWEEP_LIST_WEIGHT, SWEEP_WEIGHT
    from watchdog.runtime.share import SweepSlots

    cfg = BinanceConfig(rest_url=sim.rest_url, ws_url=sim.ws_url, weight_budget_pct=100)
    config = Config(binance=cfg)
    slots = SweepSlots(2400, share=1.0)  # a sweep every 2 s: the test's own pace
    claimed: list[float] = []

    class Recorded:
        def claim(self, now_s: float, weight: int = SWEEP_WEIGHT) -> float:
            claimed.append(slots.claim(now_s, weight))
            return claimed[-1]

        def planned(self, now_s: float) -> list[tuple[float, int]]:
            return slots.planned(now_s)

    http = make_http_client(cfg.rest_url, cfg.request_timeout_s)
    first = rest_of(config, Credentials(sim.api_key, sim.api_secret), SystemClock(), http)
    second = rest_of(config, Credentials(sim.api_key, sim.api_secret), SystemClock(), http,
                     budget=first.budget)
    seen: list[tuple[int, float, Event]] = []
    tasks = []
    for i, rest in enumerate((first, second)):
        async def emit(event: Event, i: int = i) -> None:
            seen.append((i, SystemClock().monotonic(), event))
        poller = Poller(rest, schedule_of(config), clock=SystemClock(), sweep_plan=Recorded())
        tasks.append(asyncio.create_task(poller.run(emit)))
    try:
        def sweeps() -> list[tuple[int, float]]:
            return [(i, at) for i, at, e in seen if isinstance(e, OrdersSnapshot) and e.symbols is None]

        async def both() -> list[tuple[int, float]]:
            return sweeps()
        done = await eventually(both, lambda s: len(s) == 2, timeout_s=30, what="both sweeps")
        assert len(claimed) == 2
        gap_s = slots.gap_s * SWEEP_LIST_WEIGHT / SWEEP_WEIGHT  # one list's sweep: 40 of 80
        assert claimed[1] - claimed[0] == pytest.approx(gap_s)
        (_, at_first), (later, at_second) = done
        assert at_second >= claimed[1] - 0.01  # waited for its slot
        assert at_second - at_first >= gap_s - 0.1
        polls = [at for i, at, e in seen if i == later and isinstance(e, PositionSnapshot)
                 and at_first < at < at_second]
        assert polls, "the waiting account polled positions meanwhile"
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await http.aclose()
