"""The reaper end to end: simulator over real sockets, real Redis, the real adapters and core.

Each test drives the simulator like the bot and the market would, and waits on conditions with
deadlines (never fixed sleeps). Timing is recorded, not asserted tightly: the deadlines are
generous so a busy 2-core machine does not make the suite flaky; lower bounds (the reaper must
NOT act before the grace) are asserted, since slowness can only make them safer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any

import pytest

from tests.support.reaper_rig import ReaperRig
from tests.support.waiting import eventually
from watchdog.core.model import OrderId, PositionKey, PositionSide, PositionState, Symbol
from watchdog.core.reaper import Why
from watchdog.runtime.reaper_after_cancel import ReadPositions
from watchdog.runtime.reaper_task import Outcome
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

Rig = Callable[..., AbstractAsyncContextManager[ReaperRig]]

BAS = Symbol("BASUSDT")
ETH = Symbol("ETHUSDT")
BTC = Symbol("BTCUSDT")
MARGIN_S = 3.0  # generous: 2 cores, up to 8 test suites at once


def price(sim: Simulator, symbol: str, factor: str) -> str:
    """The mark price times ``factor``, on the symbol's tick."""
    tick = sim.exchange.specs[symbol].tick_size
    return f"{(sim.exchange.mark[symbol] * Decimal(factor)).quantize(tick):f}"


async def flat_by_rest(rig: ReaperRig, key: PositionKey) -> None:
    await rig.until(f"{key} flat by REST", lambda: rig.book.flat_since(key) is not None)


def verdict(rig: ReaperRig, order_id: int) -> Why | None:
    decision = rig.reaper.last_decision
    if decision is None:
        return None
    for a in decision.assessments:
        if a.order.order_id == order_id:
            return a.why
    return None


async def kept_for(rig: ReaperRig, algo_id: int, why: Why, hold_s: float) -> None:
    """Wait until the reaper has kept ``algo_id`` for ``why`` continuously for ``hold_s``."""
    since: list[float] = []

    def probe() -> bool:
        if verdict(rig, algo_id) is not why:
            since.clear()
            return False
        if not since:
            since.append(time.monotonic())
        return time.monotonic() - since[0] >= hold_s

    await rig.until(f"algo {algo_id} kept for {why} during {hold_s}s", probe, timeout_s=hold_s + 10)
    assert rig.algo_open(algo_id), f"algo {algo_id} was cancelled although kept for {why}"


# ---------------------------------------------------------------- the incident


async def test_incident_stop_for_a_closed_position_is_removed_within_grace(
        sim: Simulator, redis_url: str, reaper_rig: Rig,
        record_property: Callable[[str, object], None]) -> None:
    key = PositionKey(BAS, PositionSide.BOTH)
    grace_s = 2.0
    async with reaper_rig(sim, redis_url, grace_ms=int(grace_s * 1000)) as rig:
        sim.fill(BAS, "BUY", "1216")
        first = await rig.bot.place_stop(BAS, "SELL", price(sim, BAS, "0.99"), qty="1216",
                                         client_id="bot-sl-1")
        await rig.until("position open", lambda: (v := rig.book.view(key)) is not None
                    and v.state is PositionState.OPEN)
        sim.set_mark_price(BAS, price(sim, BAS, "0.98"))  # the trailing stop fires: closed
        await rig.until("position closed", lambda: (v := rig.book.view(key)) is not None
                    and v.state is PositionState.CLOSED)
        assert not rig.algo_open(first)
        await flat_by_rest(rig, key)
        # The bot, fooled by a stale DB row, places a new stop for the closed position.
        started = time.monotonic()
        orphan = await rig.bot.place_stop(BAS, "SELL", price(sim, BAS, "0.99"), qty="1216",
                                          client_id="bot-sl-2")
        lag_s = 0.5  # the rig's max_rest_lag_ms: REST proves flatness only as of a read - lag
        deadline_s = grace_s + lag_s + 0.5 + MARGIN_S
        await rig.until("orphan removed", lambda: not rig.algo_open(orphan), timeout_s=deadline_s)
        elapsed_s = time.monotonic() - started
        record_property("orphan_removed_after_s", round(elapsed_s, 3))
        print(f"\nincident orphan removed {elapsed_s:.3f} s after its creation "
              f"(grace {grace_s} s + REST lag bound {lag_s} s, target + 0.5 s)")
        assert elapsed_s >= grace_s + lag_s - 0.05, "removed before the grace was proven over"
        removed = await rig.until("orphan_removed event", lambda: [
            r for r in rig.reaper.results if r.cancel.order_id == orphan
            and r.outcome is Outcome.REMOVED])
        assert removed[0].cancel.is_algo
        events = await rig.events_of_kind("orphan_removed")
        assert [e["order_id"] for e in events] == [str(orphan)]
        orphaned = await rig.events_of_kind("trailing_stop_orphaned")
        assert [e["client_id"] for e in orphaned] == ["bot-sl-2"]


# ---------------------------------------------------------------- hedge mode


async def test_hedge_mode_only_the_closed_side_loses_its_stop(
        sim_factory: Callable[..., AbstractAsyncContextManager[Simulator]], redis_url: str,
        reaper_rig: Rig) -> None:
    long_key, short_key = PositionKey(BTC, PositionSide.LONG), PositionKey(BTC, PositionSide.SHORT)
    async with sim_factory(dual_side=True, ping_interval_s=1.0) as sim, \
            reaper_rig(sim, redis_url, grace_ms=800) as rig:
        sim.fill(BTC, "BUY", "0.01", "LONG")
        sim.fill(BTC, "SELL", "0.02", "SHORT")
        long_stop = await rig.bot.place_stop(BTC, "SELL", price(sim, BTC, "0.95"), qty="0.01",
                                             position_side="LONG")
        short_stop = await rig.bot.place_stop(BTC, "BUY", price(sim, BTC, "1.05"), qty="0.02",
                                              position_side="SHORT")
        entry = await rig.bot.place_stop(BTC, "SELL", price(sim, BTC, "0.90"), qty="0.01",
                                         position_side="SHORT")  # a breakdown entry on SHORT
        sim.fill(BTC, "SELL", "0.01", "LONG")  # the bot closes LONG by hand
        await rig.until("long stop removed", lambda: not rig.algo_open(long_stop), timeout_s=10)
        await kept_for(rig, short_stop, Why.POSITION_OPEN, 0.5)
        await kept_for(rig, entry, Why.ENTRY_ORDER, 0.5)
        assert rig.book.view(short_key).state is PositionState.OPEN  # type: ignore[union-attr]
        assert rig.book.view(long_key).state is PositionState.CLOSED  # type: ignore[union-attr]


# ---------------------------------------------------------------- reopened during the grace


async def test_position_reopened_during_the_grace_keeps_its_stop(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    key = PositionKey(ETH, PositionSide.BOTH)
    grace_s = 1.0
    async with reaper_rig(sim, redis_url, grace_ms=int(grace_s * 1000)) as rig:
        await flat_by_rest(rig, key)
        stop = await rig.bot.place_stop(ETH, "SELL", price(sim, ETH, "0.95"), qty="1")
        await rig.until("stop judged", lambda: verdict(rig, stop) is Why.NOT_FLAT_LONG_ENOUGH)
        sim.fill(ETH, "BUY", "1")  # reopened inside the grace
        await kept_for(rig, stop, Why.POSITION_OPEN, grace_s + 0.5)


async def test_position_reopened_between_decision_and_cancel_aborts_the_cancel(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    key = PositionKey(ETH, PositionSide.BOTH)

    def reopen_first(read: ReadPositions) -> ReadPositions:
        async def wrapped(reason: str) -> Any:
            if not sim.exchange.accounts[sim.api_key].position(ETH, "BOTH").amount:
                sim.fill(ETH, "BUY", "1")  # the bot reopens right after the decision
            return await read(reason)
        return wrapped

    async with reaper_rig(sim, redis_url, grace_ms=500, wrap_reader=reopen_first) as rig:
        await flat_by_rest(rig, key)
        stop = await rig.bot.place_stop(ETH, "SELL", price(sim, ETH, "0.95"), qty="1")
        aborted = await rig.until("cancel aborted", lambda: [
            r for r in rig.reaper.results if r.cancel.order_id == stop])
        assert aborted[0].outcome is Outcome.ABORTED
        assert "position reopened" in aborted[0].detail
        assert rig.algo_open(stop)
        await kept_for(rig, stop, Why.POSITION_OPEN, 0.5)
        assert await rig.events_of_kind("orphan_removed") == []


# ---------------------------------------------------------------- leases


async def test_bracket_stop_survives_its_entry_filling_unseen_under_rest_lag(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    """docs/RULES.md rule 1 end to end: a bracket (a breakout entry plus its closePosition stop,
    placed while flat) whose entry fills while the stream sends no ACCOUNT_UPDATE (the incident)
    and REST lags (less than the grace). The stop is the new position's only protection: the
    reaper must never cancel it."""
    key = PositionKey(ETH, PositionSide.BOTH)
    async with reaper_rig(sim, redis_url, grace_ms=1000) as rig:
        await flat_by_rest(rig, key)
        entry = await rig.bot.place_stop(ETH, "BUY", price(sim, ETH, "1.02"), qty="1",
                                         reduce_only=False, client_id="bot-entry")
        stop = await rig.bot.place_stop(ETH, "SELL", price(sim, ETH, "0.90"),
                                        close_position=True, client_id="bot-sl")
        await kept_for(rig, stop, Why.ENTRY_PENDING, 1.5)  # older than the grace by now
        sim.set_faults(drop_events=["ACCOUNT_UPDATE"], rest_lag_ms=600)
        sim.set_mark_price(ETH, price(sim, ETH, "1.05"))  # the entry triggers and fills
        await rig.until("position open on the exchange", lambda: sim.exchange.accounts[
            sim.api_key].position(ETH, "BOTH").amount != 0)
        await rig.until("entry gone", lambda: not rig.algo_open(entry))
        await kept_for(rig, stop, Why.POSITION_OPEN, 1.0)
        assert verdict(rig, stop) is Why.POSITION_OPEN
        assert await rig.events_of_kind("orphan_removed") == []
        assert [r for r in rig.reaper.results if r.cancel.order_id == stop
                and r.outcome.value in ("removed", "already_gone")] == []


async def test_a_held_lease_makes_the_reaper_wait(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    key = PositionKey(BAS, PositionSide.BOTH)
    async with reaper_rig(sim, redis_url, grace_ms=500) as rig:
        sim.fill(BAS, "BUY", "1216")

        async def check() -> Any:
            return await rig.bot.veto.check(key.symbol, key.side.value)

        await eventually(check, lambda v: v.allowed, what="open position published")
        lease = await rig.bot.begin(key)
        # A closure that has not reached Redis yet (writes deferred) leaves the lease live.
        rig.publishing = False
        sim.fill(BAS, "SELL", "1216")
        stop = await rig.bot.place_stop(BAS, "SELL", price(sim, BAS, "0.95"), qty="1216")
        await flat_by_rest(rig, key)
        await kept_for(rig, stop, Why.LEASE_HELD, 1.0)
        await rig.bot.end(key, lease)
        await rig.until("stop removed after the lease ended", lambda: not rig.algo_open(stop))


# ---------------------------------------------------------------- stuck TRIGGERING


async def test_stuck_triggering_raises_an_alert_and_is_not_cancelled(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    key = PositionKey(BAS, PositionSide.BOTH)
    async with reaper_rig(sim, redis_url, grace_ms=500, stuck_triggering_s=1.0) as rig:
        sim.fill(BAS, "BUY", "1216")
        stop = await rig.bot.place_stop(BAS, "SELL", price(sim, BAS, "0.99"), qty="1216")
        sim.set_faults(stuck_triggering=True)
        sim.set_mark_price(BAS, price(sim, BAS, "0.98"))
        await rig.until("algo TRIGGERING in the book", lambda: (
            o := rig.orders.get(OrderId(stop), is_algo=True)) is not None and o.in_trigger)
        alerts = await rig.until("stuck alert", lambda: rig.alerts("algo_stuck_triggering"),
                             timeout_s=10)
        assert alerts[0].key == key
        assert str(stop) in alerts[0].message
        assert verdict(rig, stop) is Why.TRIGGERING
        assert all(r.cancel.order_id != stop for r in rig.reaper.results)
        assert sim.exchange.accounts[sim.api_key].algos[stop].status == "TRIGGERING"


# ---------------------------------------------------------------- REST failures


async def test_rest_failures_during_the_grace_reset_it(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    key = PositionKey(ETH, PositionSide.BOTH)
    grace_ms = 1500
    async with reaper_rig(sim, redis_url, grace_ms=grace_ms) as rig:
        await flat_by_rest(rig, key)
        first_run_ms = rig.book.flat_since(key)
        assert first_run_ms is not None
        stop = await rig.bot.place_stop(ETH, "SELL", price(sim, ETH, "0.95"), qty="1")
        await rig.until("stop in grace", lambda: verdict(rig, stop) is Why.NOT_FLAT_LONG_ENOUGH)
        failing_from_ms = rig.rest.exchange_time_ms()
        sim.set_faults(rest_errors={"status": 503, "count": 100_000})
        await rig.until("flat run reset by failed reads", lambda: rig.book.flat_since(key) is None)
        assert rig.algo_open(stop)
        sim.clear_faults()
        new_run_ms = await rig.until("a new flat run", lambda: rig.book.flat_since(key))
        assert new_run_ms > first_run_ms
        assert new_run_ms >= failing_from_ms - 100  # requested once the failures had begun
        await rig.until("stop removed after a fresh grace", lambda: not rig.algo_open(stop),
                        timeout_s=10)
        removed_ms = rig.rest.exchange_time_ms()
        assert removed_ms >= new_run_ms + grace_ms, "removed before the new grace was over"
        await rig.until("removal reported", lambda: [
            r for r in rig.reaper.results if r.cancel.order_id == stop
            and r.outcome is Outcome.REMOVED])


# ---------------------------------------------------------------- dry run


async def test_dry_run_only_reports(sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    key = PositionKey(ETH, PositionSide.BOTH)
    async with reaper_rig(sim, redis_url, grace_ms=300, dry_run=True) as rig:
        await flat_by_rest(rig, key)
        stop = await rig.bot.place_stop(ETH, "SELL", price(sim, ETH, "0.95"), qty="1")
        result = await rig.until("dry-run result", lambda: [
            r for r in rig.reaper.results if r.cancel.order_id == stop])
        assert result[0].outcome is Outcome.WOULD_REMOVE
        assert rig.algo_open(stop)
        assert await rig.events_of_kind("orphan_removed") == []
        assert await rig.events_of_kind("trailing_stop_orphaned") == []
        candidates = await rig.events_of_kind("orphan_candidate")
        assert [c["order_id"] for c in candidates] == [str(stop)]


# ---------------------------------------------------------------- the startup sweep


async def test_stop_left_while_the_watchdog_was_down_is_found_and_removed(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    """No position, no lease, no event on the symbol: only the all-symbols sweep sees it."""
    orphan = int(sim.exchange.place_algo(sim.api_key, {
        "algoType": "CONDITIONAL", "symbol": ETH, "side": "SELL", "type": "STOP_MARKET",
        "triggerPrice": price(sim, ETH, "0.95"), "closePosition": "true",
        "clientAlgoId": "left-behind"}).algo_id)
    async with reaper_rig(sim, redis_url, grace_ms=300) as rig:
        await rig.until("orphan removed", lambda: not rig.algo_open(orphan), timeout_s=10.0)
        removed = await rig.until("orphan_removed result", lambda: [
            r for r in rig.reaper.results if r.cancel.order_id == orphan
            and r.outcome is Outcome.REMOVED])
        assert removed[0].cancel.is_algo
