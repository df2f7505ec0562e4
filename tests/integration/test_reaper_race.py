"""The reaper's race and REST lag (issue 12): simulator over real sockets, real Redis, the real
``ReaperTask``, the real books (docs/RULES.md rule 1).

Each test reproduces one hole found on the pre-fix main:
- the race: the pre-cancel re-read says flat, the bot's entry fills, the reaper cancels the stop
  that now protects the new position (and told the bot to drop its trailing stop);
- REST lag inside ``max_rest_lag_ms`` (1.5 s of 2 s) with the stream muted: a stop was cancelled
  about 1.4 s after its position opened;
- the exchange clock 15 s behind: REST rows were skipped as "older reads" and the reaper
  selected a stop on an open position.
Waits are conditions with deadlines; where the scenario itself is about time (the entry fills
0.8 s after the stop), the test waits for that moment on the clock, as the market would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Any

import pytest

from tests.integration.test_reaper import flat_by_rest, price, verdict
from tests.support.reaper_rig import ReaperRig
from tests.support.waiting import eventually
from watchdog.core.effects import Notify
from watchdog.core.model import PositionKey, PositionSide, PositionState, Symbol
from watchdog.core.reaper import Why
from watchdog.runtime.reaper_after_cancel import ReadPositions
from watchdog.runtime.reaper_task import Outcome
from watchdog.runtime.restore import RESTORE_CLIENT_ID_PREFIX
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

Rig = Callable[..., AbstractAsyncContextManager[ReaperRig]]

ETH = Symbol("ETHUSDT")
KEY = PositionKey(ETH, PositionSide.BOTH)
DEFAULT_GRACE_MS = 2000
DEFAULT_LAG_MS = 2000


async def never_selected(rig: ReaperRig, algo_id: int, until: Callable[[], bool],
                         what: str, timeout_s: float) -> None:
    """Watch every decision until ``until()`` holds: ``algo_id`` must never be an orphan, never
    reach the cancel path, and stay open on the simulator."""
    def probe() -> bool:
        assert verdict(rig, algo_id) is not Why.ORPHAN, f"algo {algo_id} selected as an orphan"
        assert not [r for r in rig.reaper.results if r.cancel.order_id == algo_id], \
            f"algo {algo_id} reached the cancel path: {list(rig.reaper.results)}"
        assert rig.algo_open(algo_id), f"algo {algo_id} was cancelled"
        return until()

    await rig.until(what, probe, timeout_s=timeout_s)


def is_open(rig: ReaperRig) -> bool:
    view = rig.book.view(KEY)
    return view is not None and view.state is PositionState.OPEN


# ---------------------------------------------------------------- REST lag within the bound


async def test_rest_lag_within_the_bound_never_removes_a_stop_whose_entry_fills(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    """Stream muted, REST 1.5 s behind (bound 2 s), the entry fills 0.8 s after the stop: the
    stop must stay (on the pre-fix main it was cancelled ~1.4 s after the position opened)."""
    async with reaper_rig(sim, redis_url, grace_ms=DEFAULT_GRACE_MS,
                          max_rest_lag_ms=DEFAULT_LAG_MS) as rig:
        await flat_by_rest(rig, KEY)
        stop = await rig.bot.place_stop(ETH, "SELL", price(sim, ETH, "0.95"), qty="1",
                                        client_id="bot-sl-lag")
        placed_s = time.monotonic()
        await rig.until("stop known", lambda: verdict(rig, stop) is not None)
        sim.set_faults(stream="mute", rest_lag_ms=1500)
        await rig.until("0.8 s after the stop", lambda: time.monotonic() - placed_s >= 0.8)
        sim.fill(ETH, "BUY", "1")
        await never_selected(rig, stop, lambda: is_open(rig), "open seen through the lag",
                             timeout_s=15)
        held_s = time.monotonic()
        await never_selected(rig, stop, lambda: time.monotonic() - held_s >= 1.0,
                             "stop kept on the open position", timeout_s=5)
        assert await rig.events_of_kind("orphan_removed") == []


# ---------------------------------------------------------------- the exchange clock behind


async def test_exchange_clock_15s_behind_never_selects_a_stop_on_an_open_position(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    async with reaper_rig(sim, redis_url, grace_ms=DEFAULT_GRACE_MS,
                          max_rest_lag_ms=DEFAULT_LAG_MS) as rig:
        await flat_by_rest(rig, KEY)
        # A run older than the skew plus the grace: on the pre-fix main its start, dated on the
        # old clock, no longer held the grace back once the clock went 15 s behind.
        await rig.until("flat by REST for 18 s", lambda: rig.rest.exchange_time_ms()
                        - (rig.book.flat_since(KEY) or rig.rest.exchange_time_ms()) >= 18_000,
                        timeout_s=40)
        sim.set_faults(stream="mute", clock_skew_ms=-15_000)
        rig.bot.time_offset_ms = -15_000
        await rig.until("client re-synced to the exchange clock",
                        lambda: rig.rest.offset_ms < -10_000, timeout_s=15)
        sim.fill(ETH, "BUY", "1")
        stop = await rig.bot.place_stop(ETH, "SELL", price(sim, ETH, "0.95"), qty="1",
                                        client_id="bot-sl-skew")
        started_s = time.monotonic()
        # 16 s: past the 15 s during which the pre-fix book skipped every REST row.
        await never_selected(rig, stop, lambda: time.monotonic() - started_s >= 16.0,
                             "16 s of decisions", timeout_s=30)
        assert is_open(rig), rig.book.view(KEY)


# ---------------------------------------------------------------- the race


@pytest.mark.parametrize("faults", [{}, {"stream": "mute", "rest_lag_ms": 400}],
                         ids=["stream_live", "muted_rest_lag_400"])
async def test_entry_filled_between_reread_and_cancel_gets_its_stop_back(
        sim: Simulator, redis_url: str, reaper_rig: Rig, faults: dict[str, Any]) -> None:
    """The pre-cancel re-read shows flat, then the bot's entry fills, then the cancel goes out:
    the stop now protected the new position, so an equivalent one is placed at once and
    ``protection_restored`` names both ids; no ``trailing_stop_orphaned`` for a reopened
    position."""
    def fill_after_read(read: ReadPositions) -> ReadPositions:
        async def wrapped(reason: str) -> Any:
            snapshot = await read(reason)
            if "before cancelling" in reason:
                sim.fill(ETH, "BUY", "1")  # the entry fills right after the re-read
            return snapshot
        return wrapped

    async with reaper_rig(sim, redis_url, grace_ms=500, wrap_reader=fill_after_read) as rig:
        await flat_by_rest(rig, KEY)
        trigger = price(sim, ETH, "0.95")
        stop = await rig.bot.place_stop(ETH, "SELL", trigger, qty="1", client_id="bot-sl-race")
        if faults:  # muted: only REST (400 ms behind, within the rig's 500 ms bound) sees it
            await rig.until("stop known", lambda: verdict(rig, stop) is not None)
            sim.set_faults(**faults)
        account = sim.exchange.accounts[sim.api_key]
        await rig.until("the stop was cancelled (the race)", lambda: not rig.algo_open(stop),
                        timeout_s=15)
        events = await eventually(lambda: rig.events_of_kind("protection_restored"), bool,
                                  what="protection_restored event", timeout_s=10)
        event = events[0]
        assert event["order_id"] == str(stop)
        new_id = int(event["new_order_id"])
        new = account.algos[new_id]
        old = account.algos[stop]
        assert new.is_open
        assert (new.order_type, new.side, new.trigger_price, new.qty, new.reduce_only,
                new.close_position, new.working_type, new.position_side) == (
            old.order_type, old.side, old.trigger_price, old.qty, old.reduce_only,
            old.close_position, old.working_type, old.position_side)
        assert new.client_algo_id.startswith(RESTORE_CLIENT_ID_PREFIX)
        assert event["new_client_id"] == new.client_algo_id
        assert (event["symbol"], event["side"], event["position"]) == (
            "ETHUSDT", "BOTH", "ETHUSDT:BOTH")
        assert account.position(ETH, "BOTH").amount == Decimal(1)
        assert await rig.events_of_kind("trailing_stop_orphaned") == []
        assert await rig.events_of_kind("orphan_removed") == []
        result = [r for r in rig.reaper.results if r.cancel.order_id == stop]
        assert result
        assert result[0].outcome is Outcome.RESTORED, result
        # The restored stop protects an open position: the reaper keeps it.
        await rig.until("restored stop judged", lambda: verdict(rig, new_id) is not None)
        assert verdict(rig, new_id) is Why.POSITION_OPEN or not is_open(rig)



async def test_a_fill_the_stream_reported_after_the_reread_restores_the_stop_whatever_rest_says(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    """REST lags beyond ``max_rest_lag_ms`` (1.5 s against the rig's 0.5 s) and the stream sends
    the fill but no ACCOUNT_UPDATE (the incident's stream); the entry fills right after the
    pre-cancel re-read. No REST read can show the open for 1.5 s, so the post-cancel read says
    flat; the fill the stream reported after the re-read must still bring the stop back. On
    the pre-fix main: ``orphan_removed`` and ``trailing_stop_orphaned`` on the open position."""
    def fill_after_read(read: ReadPositions) -> ReadPositions:
        async def wrapped(reason: str) -> Any:
            snapshot = await read(reason)
            if "before cancelling" in reason:
                sim.fill(ETH, "BUY", "1")  # the entry fills right after the re-read
            return snapshot
        return wrapped

    async with reaper_rig(sim, redis_url, grace_ms=500, wrap_reader=fill_after_read) as rig:
        await flat_by_rest(rig, KEY)
        stop = await rig.bot.place_stop(ETH, "SELL", price(sim, ETH, "0.95"), qty="1",
                                        client_id="bot-sl-lagged")
        await rig.until("stop known", lambda: verdict(rig, stop) is not None)
        sim.set_faults(drop_events=["ACCOUNT_UPDATE"], rest_lag_ms=1500)
        await rig.until("the stop was cancelled (the race)", lambda: not rig.algo_open(stop),
                        timeout_s=15)
        await rig.until("the reaper is done with it",
                        lambda: [r for r in rig.reaper.results if r.cancel.order_id == stop],
                        timeout_s=10)
        result = next(r for r in rig.reaper.results if r.cancel.order_id == stop)
        assert sim.exchange.accounts[sim.api_key].position(ETH, "BOTH").amount == Decimal(1)
        assert result.outcome is Outcome.RESTORED, result
        assert result.new_order_id is not None
        assert rig.algo_open(result.new_order_id)
        assert await rig.events_of_kind("trailing_stop_orphaned") == []
        assert await rig.events_of_kind("orphan_removed") == []



# ---------------------------------------------------------------- a closure that flaps


async def test_a_closure_learned_from_rest_does_not_flap_back_open_on_a_lagging_answer(
        sim: Simulator, redis_url: str, reaper_rig: Rig) -> None:
    """Stream muted, the position closes, REST says flat; then REST starts answering from before
    the close (a lag burst). Pre-fix: position_closed → position_opened → … (a bot told
    ``position_closed`` got ``allow`` again)."""
    async with reaper_rig(sim, redis_url, max_rest_lag_ms=DEFAULT_LAG_MS) as rig:
        sim.fill(ETH, "BUY", "1")
        await rig.until("open", lambda: is_open(rig))
        opened_s = time.monotonic()
        # Open longer than the lag bound, so that REST's "flat" may override the open.
        await rig.until("open for 2.5 s", lambda: time.monotonic() - opened_s >= 2.5)
        sim.set_faults(stream="mute")
        closed_s = time.monotonic()
        sim.fill(ETH, "SELL", "1")
        await rig.until("closed by REST", lambda: (v := rig.book.view(KEY)) is not None
                        and v.state is PositionState.CLOSED, timeout_s=10)
        # A lag burst: every answer now shows the state from before the close.
        sim.set_faults(rest_lag_ms=round((time.monotonic() - closed_s) * 1000) + 1500)
        burst_s = time.monotonic()

        def notified() -> list[str]:
            return [e.kind for e in rig.effects if isinstance(e, Notify) and e.key == KEY
                    and e.kind in ("position_opened", "position_closed")]

        closed_at = len(notified())
        await rig.until("3 s of lagging answers", lambda: time.monotonic() - burst_s >= 3.0)
        assert notified()[closed_at - 1:] == ["position_closed"], notified()
        view = rig.book.view(KEY)
        assert view is not None
        assert view.state is PositionState.CLOSED, view
